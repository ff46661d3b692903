// Goal: the connector core, seen from real BTP clients. alice and bob are ilp-plugin-btp@1.5.0
// clients of a node on 127.0.0.1 (real LMDB in a temp dir); every assertion is on the bytes a
// client receives, decoded by ilp-packet. Each case runs with SHARDS=0 (inline) and SHARDS=2
// (worker threads over SharedArrayBuffer rings).

import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import * as ILDCP from 'ilp-protocol-ildcp'
import { asFulfill, asReject, BtpPlugin, connectPlugin, fulfillmentPair, IlpPacket, layoutName, NODE_ADDRESS, peerBalance, prepare, sleep, withNode } from '../support/helpers'
import type { RunningNode } from '../../src/node'

/** Sends a prepare from `client` and checks that the node itself rejected it, with `code`. */
async function rejectedByNode(client: BtpPlugin, fields: Parameters<typeof prepare>[0], code: string): Promise<ReturnType<typeof asReject>> {
  const reject = asReject(await client.sendData(prepare(fields)))
  assert.equal(reject.code, code)
  assert.equal(reject.triggeredBy, NODE_ADDRESS)
  return reject
}

for (const shards of [0, 2]) {
  describe(`forwarding with ${layoutName(shards)}`, () => {
    let node: RunningNode
    let alice: BtpPlugin
    let bob: BtpPlugin
    /** What bob does with the next prepare; default: fulfill with the test's fulfillment. */
    let bobHandler: (prepare: Buffer) => Promise<Buffer>
    const received: IlpPacket.IlpPrepare[] = []
    const fixture = withNode(shards, undefined, ['alice', 'bob'])

    before(() => {
      ({ node, clients: { alice, bob } } = fixture)
      bob.registerDataHandler(async (data) => {
        received.push(IlpPacket.deserializeIlpPrepare(data))
        return bobHandler(data)
      })
    })

    it('answers IL-DCP (peer.config) to ilp-protocol-ildcp over ilp-plugin-btp', async () => {
      const info = await ILDCP.fetch((data: Buffer) => alice.sendData(data))
      assert.equal(info.clientAddress, `${NODE_ADDRESS}.alice`)
      assert.equal(info.assetScale, 9)
      assert.equal(info.assetCode, 'USD')
    })

    it('forwards a prepare to bob and relays the fulfill byte for byte', async () => {
      const { fulfillment, condition } = fulfillmentPair()
      let bobReply: Buffer = Buffer.alloc(0)
      bobHandler = async () => {
        bobReply = IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.from('thanks from bob') })
        return bobReply
      }
      const expiresAt = new Date(Date.now() + 10_000)
      const data = Buffer.from('hello bob')
      const reply = await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob.wallet`, amount: '1234', executionCondition: condition, expiresAt, data }))
      assert.deepEqual(reply, bobReply)
      assert.deepEqual(asFulfill(reply).fulfillment, fulfillment)
      const forwarded = received[received.length - 1]
      assert.equal(forwarded.amount, '1234')
      assert.equal(forwarded.destination, `${NODE_ADDRESS}.bob.wallet`)
      assert.deepEqual(forwarded.executionCondition, condition)
      assert.deepEqual(forwarded.data, data)
      // Expiry shortened by the 1 s minimum message window.
      assert.equal(forwarded.expiresAt.getTime(), expiresAt.getTime() - 1000)
    })

    it('reports balances with peer.balance (positive = the node owes the requester)', async () => {
      const aliceBefore = await peerBalance(alice)
      const bobBefore = await peerBalance(bob)
      const { fulfillment, condition } = fulfillmentPair()
      bobHandler = async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
      asFulfill(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, amount: '500', executionCondition: condition })))
      // With SHARDS=2 bob's credit is a message from alice's shard to his, published before the
      // fulfill that alice saw: a query sent after it must see it, with no waiting.
      assert.equal(await peerBalance(alice), aliceBefore - 500n)
      assert.equal(await peerBalance(bob), bobBefore + 500n)
    })

    it('routes a configured prefix (test.elsewhere) to its peer', async () => {
      const { fulfillment, condition } = fulfillmentPair()
      bobHandler = async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
      asFulfill(await alice.sendData(prepare({ destination: 'test.elsewhere.someone', executionCondition: condition })))
      assert.equal(received[received.length - 1].destination, 'test.elsewhere.someone')
    })

    it('relays bob\'s reject unchanged and releases the hold', async () => {
      const before = await peerBalance(alice)
      const bobReject = IlpPacket.serializeIlpReject({ code: 'F99', triggeredBy: `${NODE_ADDRESS}.bob`, message: 'no thanks', data: Buffer.from([1, 2, 3]) })
      bobHandler = async () => bobReject
      const reply = await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob` }))
      assert.deepEqual(reply, bobReject)
      assert.equal(await peerBalance(alice), before)
    })

    it('rejects F02 when there is no route, triggered by the node', async () => {
      await rejectedByNode(alice, { destination: 'test.nowhere.bob' }, 'F02')
    })

    it('rejects F02 when the route leads back to the sender', async () => {
      const reject = asReject(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.alice.x` })))
      assert.equal(reject.code, 'F02')
    })

    it('rejects F01 for a malformed ILP packet and an unknown peer protocol, F00 for any route broadcast from a child', async () => {
      const garbage = asReject(await alice.sendData(Buffer.from([0x0c, 0x05, 1, 2, 3])))
      assert.equal(garbage.code, 'F01')
      assert.equal(garbage.triggeredBy, NODE_ADDRESS)
      const truncated = prepare({ destination: `${NODE_ADDRESS}.bob` }).subarray(0, 40)
      assert.equal(asReject(await alice.sendData(truncated)).code, 'F01')
      const badAddress = asReject(await alice.sendData(Buffer.from(
        prepare({ destination: 'test.node.bob' }).toString('hex').replace(Buffer.from('test.node.bob').toString('hex'), Buffer.from('test.node.b b').toString('hex')), 'hex')))
      assert.equal(badAddress.code, 'F01')
      const peerUnknown = asReject(await alice.sendData(prepare({ destination: 'peer.route.nonsense', amount: '0' })))
      assert.equal(peerUnknown.code, 'F01')
      // We take no routes from children: a broadcast from one is refused before it is read,
      // malformed or not (a malformed one from a peer we take routes from is F01: route_broadcast.test.ts).
      const badJson = asReject(await alice.sendData(Buffer.from('{"method":')))
      assert.equal(badJson.code, 'F00')
      const broadcast = asReject(await alice.sendData(Buffer.from('{"method":"broadcast_routes","data":{}}')))
      assert.equal(broadcast.code, 'F00')
    })

    it('rejects F08 above the max packet amount, with (received, maximum) in the data', async () => {
      const reject = await rejectedByNode(alice, { destination: `${NODE_ADDRESS}.bob`, amount: '1000001' }, 'F08')
      assert.equal(reject.data.length, 16)
      assert.equal(reject.data.readBigUInt64BE(0), 1000001n)
      assert.equal(reject.data.readBigUInt64BE(8), 1000000n)
    })

    it('rejects T04 when the hold would pass the account\'s maximum balance', async () => {
      // alice's maximum is 1e9 and her packets are at most 1e6: hold many at once, bob silent.
      const released: (() => void)[] = []
      bobHandler = () => new Promise((resolve) => {
        released.push(() => resolve(IlpPacket.serializeIlpReject({ code: 'F99', triggeredBy: '', message: '', data: Buffer.alloc(0) })))
      })
      const inFlight = Array.from({ length: 1000 }, () => alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, amount: '1000000' })))
      while (released.length < 999) await sleep(10)
      await rejectedByNode(alice, { destination: `${NODE_ADDRESS}.bob`, amount: '1000000' }, 'T04')
      for (const release of released) release()
      await Promise.all(inFlight)
      // Holds released: the same amount goes through again.
      bobHandler = async () => IlpPacket.serializeIlpReject({ code: 'F99', triggeredBy: '', message: 'x', data: Buffer.alloc(0) })
      assert.equal(asReject(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, amount: '1000000' }))).code, 'F99')
    })

    it('rejects R02 for an expired prepare and for one with too little time left', async () => {
      const expired = asReject(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, expiresAt: new Date(Date.now() - 1000) })))
      assert.equal(expired.code, 'R02')
      const tooSoon = asReject(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, expiresAt: new Date(Date.now() + 500) })))
      assert.equal(tooSoon.code, 'R02')
      assert.equal(tooSoon.triggeredBy, NODE_ADDRESS)
    })

    it('rejects R00 when the next hop does not answer before expiry, and ignores the late fulfill', async () => {
      const before = await peerBalance(alice)
      const { fulfillment, condition } = fulfillmentPair()
      bobHandler = async () => {
        await sleep(1200)
        return IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
      }
      const started = Date.now()
      await rejectedByNode(alice, { destination: `${NODE_ADDRESS}.bob`, executionCondition: condition, expiresAt: new Date(Date.now() + 1600) }, 'R00')
      assert.ok(Date.now() - started < 1600, 'R00 arrives before the incoming prepare expires')
      await sleep(900) // the late fulfill arrives and must change nothing
      assert.equal(await peerBalance(alice), before)
    })

    it('never relays a fulfillment that does not match the condition (F05 upstream, no balance change)', async () => {
      const before = await peerBalance(alice)
      const bobBefore = await peerBalance(bob)
      bobHandler = async () => IlpPacket.serializeIlpFulfill({ fulfillment: Buffer.alloc(32, 7), data: Buffer.alloc(0) })
      await rejectedByNode(alice, { destination: `${NODE_ADDRESS}.bob`, amount: '77' }, 'F05')
      await sleep(50)
      assert.equal(await peerBalance(alice), before)
      assert.equal(await peerBalance(bob), bobBefore)
    })

    it('rejects T01 when the next hop is not connected', async () => {
      await rejectedByNode(alice, { destination: 'test.carl.shop' }, 'T01')
    })

    it('rejects T01 for prepares held by a next hop that disconnects', async () => {
      const carl = await connectPlugin(node.port, 'carl', 'carl-token')
      let seen = 0
      carl.registerDataHandler(() => {
        seen++
        return new Promise(() => {}) // never answers
      })
      const pending = alice.sendData(prepare({ destination: 'test.carl.shop', expiresAt: new Date(Date.now() + 20_000) }))
      while (seen === 0) await sleep(10)
      await carl.disconnect()
      const reject = asReject(await pending)
      assert.equal(reject.code, 'T01')
    })
  })
}
