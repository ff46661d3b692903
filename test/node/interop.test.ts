// Goal: the node in a network of the reference implementation, ilp-connector@23 (in this process,
// on 127.0.0.1, accounts served by ilp-plugin-btp listeners as its README configures them).
//   child: the node dials ilp-connector over BTP as its child, learns its address by IL-DCP, and a
//          packet from alice (a client of the node) reaches zoe (a client of ilp-connector) and is
//          fulfilled; zoe's packet reaches alice the other way.

import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import * as ILDCP from 'ilp-protocol-ildcp'
import {
  asFulfill, asReject, BtpPlugin, freePort, fulfillmentPair, IlpPacket, peerBalance, prepare,
} from '../support/helpers'
import { ConnectorParty, connectorConfig, withNetwork } from '../support/network'
import type { RunningNode } from '../../src/node'


function btpListenerAccount(port: number, secret: string, relation: string): Record<string, unknown> {
  return {
    relation, assetCode: 'USD', assetScale: 9, plugin: 'ilp-plugin-btp', options: { listener: { port, secret } },
    balance: { minimum: '-1000000000', maximum: '1000000000' },
  }
}

describe('interop: the node as a child of ilp-connector@23 over BTP', () => {
  let node: RunningNode
  let alice: BtpPlugin
  let zoe: BtpPlugin
  let nodePort: number

  before(async () => {
    nodePort = await freePort()
  })
  const parent = new ConnectorParty((zoePort) => connectorConfig('test.parent', {
    ilpnode: btpListenerAccount(nodePort, 'node-secret', 'child'),
    zoe: btpListenerAccount(zoePort, 'zoe-secret', 'child'),
  }))
  const net = withNetwork({
    parties: { parent },
    nodes: {
      node: () => ({
        accounts: {
          parent: { relation: 'parent', assetCode: 'USD', assetScale: 9, btp: { url: `btp+ws://ilpnode:node-secret@127.0.0.1:${nodePort}` } },
          alice: { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'alice-token' } },
        },
      }),
    },
    links: [{ from: 'node.parent', to: 'parent' }],
    clients: ['node.alice'],
  })

  before(() => {
    ({ nodes: { node }, clients: { node: { alice } } } = net)
    zoe = parent.zoe
  })

  it('learns its address from the parent by IL-DCP and hands <address>.alice to its child', async () => {
    assert.equal(node.config.ilpAddress, 'test.parent.ilpnode')
    const info = await ILDCP.fetch((data: Buffer) => alice.sendData(data))
    assert.equal(info.clientAddress, 'test.parent.ilpnode.alice')
  })

  it('forwards alice → node → ilp-connector → zoe, fulfilled', async () => {
    const { fulfillment, condition } = fulfillmentPair()
    zoe.registerDataHandler(async (data) => {
      assert.equal(IlpPacket.deserializeIlpPrepare(data).destination, 'test.parent.zoe.inbox')
      return IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.from('hi from zoe') })
    })
    // The dialled link is up: withNetwork waited for it.
    const reply = await alice.sendData(prepare({ destination: 'test.parent.zoe.inbox', amount: '10', executionCondition: condition }))
    assert.deepEqual(asFulfill(reply).data, Buffer.from('hi from zoe'))
  })

  it('relays zoe\'s reject back over the dialled link unchanged, and nothing moves', async () => {
    zoe.deregisterDataHandler()
    zoe.registerDataHandler(async () => IlpPacket.serializeIlpReject({
      code: 'F99', triggeredBy: 'test.parent.zoe', message: 'no thanks', data: Buffer.from('zoe says no'),
    }))
    const before = await peerBalance(alice)
    const reject = asReject(await alice.sendData(prepare({ destination: 'test.parent.zoe.inbox', amount: '10' })))
    assert.equal(reject.code, 'F99')
    assert.equal(reject.triggeredBy, 'test.parent.zoe')
    assert.equal(reject.message, 'no thanks')
    assert.deepEqual(reject.data, Buffer.from('zoe says no'))
    assert.equal(await peerBalance(alice), before)
  })

  it('forwards zoe → ilp-connector → node → alice, fulfilled', async () => {
    const { fulfillment, condition } = fulfillmentPair()
    alice.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))
    const reply = await zoe.sendData(prepare({ destination: 'test.parent.ilpnode.alice.x', amount: '7', executionCondition: condition }))
    assert.deepEqual(asFulfill(reply).fulfillment, fulfillment)
  })
})
