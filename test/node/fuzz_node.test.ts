// Goal: bad input harms nothing, end to end. A running node (SHARDS=2) takes mutated BTP frames on
// an authenticated connection and mutated ILP-over-HTTP bodies; every answer is a well-formed BTP
// frame or an HTTP status below 500 (ILP rejects inside 200s parse), none hangs, and afterwards the
// node still forwards and its books are unchanged.

import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { request } from 'undici'
import { connectBtp } from '../support/btp_connect'
import { BtpFrame, encodeMessage } from '../../src/codec/btp_packet'
import { classifyReply, ReplyKind } from '../../src/codec/ilp_packet'
import type { RunningNode } from '../../src/node'
import { mutate } from '../fuzz/targets'
import { asFulfill, BtpPlugin, connectPlugin, fulfillmentPair, IlpPacket, peerBalance, prepare, prng, testConfigJson, withNode } from '../support/helpers'

const INPUTS = 1500

describe('fuzz a running node (SHARDS=2)', () => {
  let node: RunningNode
  let bob: BtpPlugin
  const json = testConfigJson()
  json.accounts = { ...(json.accounts as object), dave: { relation: 'child', assetCode: 'USD', assetScale: 9, http: { incomingToken: 'dave-token' } } }
  const fixture = withNode(2, json, ['bob'])
  before(() => ({ node, clients: { bob } } = fixture))

  const alice = () => connectBtp(node.port, 'alice', 'alice-token')

  it(`answers ${INPUTS} mutated BTP frames with well-formed frames or a close, and keeps serving`, async () => {
    const random = prng(99)
    const seeds = [
      encodeMessage(5, [{ protocolName: 'ilp', contentType: 0, data: prepare({ destination: 'test.node.bob', amount: '1' }) }]),
      encodeMessage(6, [{ protocolName: 'ilp', contentType: 0, data: prepare({ destination: 'peer.config', amount: '0' }) }]),
      encodeMessage(7, [{ protocolName: 'ilp', contentType: 0, data: Buffer.from('{"method":"broadcast_routes","data":{}}') }]),
    ]
    bob.registerDataHandler(async () => IlpPacket.serializeIlpReject({ code: 'F99', triggeredBy: 'test.node.bob', message: 'no', data: Buffer.alloc(0) }))
    const before = await peerBalance(bob)
    let ws = await alice()
    let answers = 0
    let malformed = 0
    let reconnects = 0
    const frame = new BtpFrame()
    for (let i = 0; i < INPUTS; i++) {
      if (ws.closed) {
        ws = await alice()
        reconnects++
      }
      const input = mutate(seeds, random)
      const answered = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200) // frames the node cannot even attribute get no answer
        ws.onMessage = (data) => {
          answers++
          if (!frame.parse(data)) malformed++
          clearTimeout(timer)
          resolve()
        }
        ws.onClose = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      ws.send(input)
      await answered
    }
    ws.close()
    assert.equal(malformed, 0, 'every answer parses as a BTP frame')
    assert.ok(answers > INPUTS / 2, `${answers} answers, ${reconnects} reconnects`)
    const { fulfillment, condition } = fulfillmentPair()
    bob.deregisterDataHandler()
    bob.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))
    const client = await connectPlugin(node.port, 'alice', 'alice-token')
    asFulfill(await client.sendData(prepare({ destination: 'test.node.bob', amount: '3', executionCondition: condition })))
    await client.disconnect()
    // bob's shard learns of the credit by a message from alice's shard: ask until it has.
    let after = await peerBalance(bob)
    for (let i = 0; i < 50 && after === before; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
      after = await peerBalance(bob)
    }
    assert.equal(after, before + 3n, 'only the one real payment moved money')
  })

  it(`answers ${INPUTS} mutated ILP-over-HTTP bodies with a status below 500, ILP answers well-formed`, async () => {
    const random = prng(7)
    const seeds = [prepare({ destination: 'test.node.bob', amount: '1' }), prepare({ destination: 'peer.config', amount: '0' })]
    let ilpAnswers = 0
    for (let i = 0; i < INPUTS; i++) {
      const res = await request(`http://127.0.0.1:${node.port}/ilp`, {
        method: 'POST', headers: { authorization: 'Bearer dave-token', 'content-type': 'application/octet-stream' }, body: mutate(seeds, random),
      })
      const body = Buffer.from(await res.body.arrayBuffer())
      assert.ok(res.statusCode < 500, `status ${res.statusCode}`)
      if (res.statusCode === 200) {
        ilpAnswers++
        assert.notEqual(classifyReply(body, 0, body.length), ReplyKind.Malformed, 'a 200 carries a well-formed fulfill or reject')
      }
    }
    assert.ok(ilpAnswers > 0)
  })
})
