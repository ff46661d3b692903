// Goal: one account can never act as another. Its packets are debited to itself (never to the
// account whose name it uses in a destination), peer.balance answers its own balance only, its
// HTTP token does not work as another's, and a child cannot announce routes (CCP or JSON).

import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { request } from 'undici'
import * as Ccp from 'ilp-protocol-ccp'
import type { RunningNode } from '../../src/node'
import { asFulfill, asReject, BtpPlugin, fulfillmentPair, IlpPacket, peerBalance, prepare, testConfigJson, withNode } from '../support/helpers'

describe('isolation between accounts', () => {
  let node: RunningNode
  let alice: BtpPlugin
  let bob: BtpPlugin
  const json = testConfigJson()
  json.accounts = { ...(json.accounts as object), dave: { relation: 'child', assetCode: 'USD', assetScale: 9, http: { incomingToken: 'dave-token' } } }
  const fixture = withNode(2, json, ['alice', 'bob'])
  before(() => ({ node, clients: { alice, bob } } = fixture))

  it('debits the sender\'s own account and answers peer.balance with the asker\'s own balance', async () => {
    const { fulfillment, condition } = fulfillmentPair()
    bob.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))
    asFulfill(await alice.sendData(prepare({ destination: 'test.node.bob', amount: '40', executionCondition: condition })))
    let bobView = await peerBalance(bob)
    for (let i = 0; i < 50 && bobView === 0n; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
      bobView = await peerBalance(bob)
    }
    assert.equal(await peerBalance(alice), -40n, 'alice paid 40')
    assert.equal(bobView, 40n, 'bob is owed 40; each sees only its own')
    // A packet from alice addressed "from bob" (bob's address as destination) is still alice's.
    assert.equal(asReject(await alice.sendData(prepare({ destination: 'test.node.alice.x', amount: '5' }))).code, 'F02')
    assert.equal(await node.balance('alice'), 40n)
  })

  it('an HTTP token is one account\'s only: alice\'s BTP token and a made-up one are refused over HTTP', async () => {
    for (const token of ['alice-token', 'bob-token', 'dave-token-x']) {
      const res = await request(`http://127.0.0.1:${node.port}/ilp`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body: prepare({ destination: 'test.node.bob' }),
      })
      assert.equal(res.statusCode, 401, token)
      await res.body.dump()
    }
  })

  it('a child cannot announce routes: CCP and JSON broadcasts from alice get F00 and route nothing', async () => {
    const update = Ccp.serializeCcpRouteUpdateRequest({
      speaker: 'test.evil', routingTableId: '3b069822-a754-4e44-8a60-0f9f7084144d', currentEpochIndex: 1, fromEpochIndex: 0, toEpochIndex: 1, holdDownTime: 45000,
      newRoutes: [{ prefix: 'test.node.bob', path: ['test.evil'], auth: Buffer.alloc(32), props: [] }], withdrawnRoutes: [],
    })
    assert.equal(asReject(await alice.sendData(update)).code, 'F00')
    const json = Buffer.from(JSON.stringify({ method: 'broadcast_routes', data: { new_routes: [{ prefix: 'test.elsewhere', path: [] }] } }))
    assert.equal(asReject(await alice.sendData(json)).code, 'F00')
    const { fulfillment, condition } = fulfillmentPair()
    bob.deregisterDataHandler()
    bob.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.from('still bob') }))
    assert.deepEqual(asFulfill(await alice.sendData(prepare({ destination: 'test.node.bob', amount: '1', executionCondition: condition }))).data, Buffer.from('still bob'))
  })
})
