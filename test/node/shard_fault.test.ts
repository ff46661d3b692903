// Goal: a shard worker that dies (terminated, as a crash of its thread would) is restarted: every
// shard restarts from LMDB, the prepares that were held are rejected upstream at once (T00, no
// hang), committed balances are unchanged, no hold survives, and traffic flows again.

import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { RunningNode } from '../../src/node'

import { shardOfAccount } from '../../src/config/account_table'
import {
  addHttpPeer, asFulfill, asReject, BtpPlugin, closeServer, connectPlugin, fulfillmentPair, IlpPacket, peerBalance, prepare, sleep, testConfigJson, withNode,
} from '../support/helpers'
import { captureStderrPerTest } from '../support/stderr_capture'

/** The deaths these tests cause are logged as errors: asserted here, not printed. */
const logs = captureStderrPerTest()
/** While the shards restart, the node refuses new work; whether a line says so depends on timing. */
const REFUSING = /ERROR storage: refusing new prepares and transfers \(T00\), \/health 503 reason="storage unavailable: the shards are restarting"/

/** bob fulfills while `hold` is false; while it is true he keeps each prepare unanswered. */
function holdingReceiver(bob: BtpPlugin, fulfillment: Buffer): { hold: boolean; held: number } {
  const state = { hold: false, held: 0 }
  bob.registerDataHandler(async () => {
    if (!state.hold) return IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
    state.held++
    return new Promise<Buffer>(() => {})
  })
  return state
}

/** Three prepares of 50 from alice that bob holds; resolves once he holds them all. */
async function threeHeldPrepares(alice: BtpPlugin, bob: { hold: boolean; held: number }, condition: Buffer): Promise<Promise<Buffer>[]> {
  bob.hold = true
  const pending = [1, 2, 3].map(() => alice.sendData(prepare({ destination: 'test.node.bob', amount: '50', executionCondition: condition, expiresAt: new Date(Date.now() + 20_000) })))
  while (bob.held < 3) await sleep(10)
  return pending
}

describe('a shard worker dies (SHARDS=2)', () => {
  let node: RunningNode
  let alice: BtpPlugin
  let bob: BtpPlugin
  const fixture = withNode(2, undefined, ['alice', 'bob'])
  before(() => ({ node, clients: { alice, bob } } = fixture))

  it('rejects the prepares its shards held (T00), keeps the books, and forwards again after the restart', async () => {
    const { fulfillment, condition } = fulfillmentPair()
    const bobHolds = holdingReceiver(bob, fulfillment)
    asFulfill(await alice.sendData(prepare({ destination: 'test.node.bob', amount: '100', executionCondition: condition })))
    assert.equal(await peerBalance(alice), -100n)
    const committedAlice = await node.balance('alice')
    const committedBob = await node.balance('bob')

    const pending = await threeHeldPrepares(alice, bobHolds, condition)
    const t0 = Date.now()
    await node.shards.terminate(shardOfAccount('alice', 2))
    for (const reply of await Promise.all(pending)) {
      const reject = asReject(reply)
      assert.equal(reject.code, 'T00')
      assert.match(reject.message, /restarted its shards/)
    }
    assert.ok(Date.now() - t0 < 5000, 'answered at once, not at expiry')
    while (node.shards.restarts() === 0) await sleep(10)
    assert.equal(node.shards.restarts(), 1)

    assert.equal(await node.balance('alice'), committedAlice, 'alice\'s committed balance unchanged')
    assert.equal(await node.balance('bob'), committedBob, 'bob\'s committed balance unchanged')
    // Traffic again; the three held prepares left no hold behind (alice's maximum is 10^9).
    bobHolds.hold = false
    let reply = await alice.sendData(prepare({ destination: 'test.node.bob', amount: '1000000', executionCondition: condition }))
    for (let i = 0; i < 50 && reply[0] === IlpPacket.Type.TYPE_ILP_REJECT && asReject(reply).code === 'T03'; i++) {
      await sleep(50) // still restarting
      reply = await alice.sendData(prepare({ destination: 'test.node.bob', amount: '1000000', executionCondition: condition }))
    }
    asFulfill(reply)
    assert.equal(await peerBalance(alice), -1_000_100n)
    assert.equal(await node.balance('alice') + await node.balance('bob'), 0n, 'nothing created or lost')
    logs.assertErrors([
      /ERROR shards: shard worker died shard=\d/,
      /ERROR shards: a thread of the data plane died; restarting every shard from LMDB reason="shard \d failed/,
    ], [REFUSING])
  })
})

// Goal: an I/O thread that fails (IO_THREADS=2) takes down only its own sockets: the data plane is
// restarted from LMDB as for a shard's death (prepares waiting on it are answered at once),
// a new thread takes its place on the shared port, committed balances are unchanged, and traffic
// flows again once the peer whose socket died has redialled.
describe('an I/O thread dies (IO_THREADS=2, SHARDS=2)', () => {
  let node: RunningNode
  let alice: BtpPlugin
  let bob: BtpPlugin
  const fixture = withNode(2, { ...testConfigJson(), shards: 2, ioThreads: 2 }, ['bob'])

  before(async () => {
    ({ node, clients: { bob } } = fixture)
    // alice on the other I/O thread than bob (the kernel spreads connections by their address).
    for (let attempt = 0; ; attempt++) {
      alice = await connectPlugin(node.port, 'alice', 'alice-token')
      await sleep(20)
      if (node.ioThreads.linkOf('alice') !== node.ioThreads.linkOf('bob')) break
      assert.ok(attempt < 40, 'the kernel put every connection on one I/O thread')
      await alice.disconnect()
    }
  })

  after(async () => {
    await alice.disconnect()
  })

  it('answers what waited on the dead thread\'s shards (T00), keeps the books, and serves on a new thread', async () => {
    const { fulfillment, condition } = fulfillmentPair()
    const bobHolds = holdingReceiver(bob, fulfillment)
    asFulfill(await alice.sendData(prepare({ destination: 'test.node.bob', amount: '100', executionCondition: condition })))
    const committedAlice = await node.balance('alice')
    const committedBob = await node.balance('bob')
    assert.equal(committedAlice + committedBob, 0n)

    const pending = await threeHeldPrepares(alice, bobHolds, condition)
    const t0 = Date.now()
    node.ioThreads.crash(node.ioThreads.linkOf('bob'))
    for (const reply of await Promise.all(pending)) {
      // T01 if the dying thread closed bob's socket first (the next hop disconnected), T00 if the
      // data plane restart reached them first; either way at once, and the hold released.
      const reject = asReject(reply)
      assert.ok(['T00', 'T01'].includes(reject.code), `${reject.code} ${reject.message}`)
    }
    assert.ok(Date.now() - t0 < 5000, 'answered at once, not at expiry')
    while (node.shards.restarts() === 0) await sleep(10)
    assert.equal(await node.balance('alice'), committedAlice, 'alice\'s committed balance unchanged')
    assert.equal(await node.balance('bob'), committedBob, 'bob\'s committed balance unchanged')

    // bob's plugin redials (to whichever thread the kernel picks); then alice pays him again, up
    // to her full maximum: the three held prepares left no hold behind.
    bobHolds.hold = false
    let reply = await alice.sendData(prepare({ destination: 'test.node.bob', amount: '1000000', executionCondition: condition }))
    for (let i = 0; i < 200 && reply[0] === IlpPacket.Type.TYPE_ILP_REJECT && ['T00', 'T01', 'T03'].includes(asReject(reply).code); i++) {
      await sleep(50)
      reply = await alice.sendData(prepare({ destination: 'test.node.bob', amount: '1000000', executionCondition: condition }))
    }
    asFulfill(reply)
    assert.equal(await node.balance('alice') + await node.balance('bob'), 0n, 'nothing created or lost')
    assert.equal(await peerBalance(alice), -1_000_100n)
    // Both threads take connections again: new links land on each of them.
    const seen = new Set<number>()
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const carl = await connectPlugin(node.port, 'carl', 'carl-token')
      await sleep(10)
      seen.add(node.ioThreads.linkOf('carl'))
      await carl.disconnect()
    }
    assert.deepEqual([...seen].sort(), [0, 1])
    // The I/O thread's own line comes through its stderr, piped by the main thread.
    await logs.waitFor(/ERROR io\d: I\/O thread failed; closing its sockets error="Error: fault injected into I\/O thread \d"/)
    logs.assertErrors([
      /ERROR io\d: I\/O thread failed/,
      /ERROR io: I\/O thread died thread=\d/,
      /ERROR shards: a thread of the data plane died; restarting every shard from LMDB reason="I\/O thread \d failed/,
    ], [REFUSING])
  })
})

describe('a shard restart with ILP-over-HTTP prepares waiting for a connection (SHARDS=2)', () => {
  /** dave's unanswered requests: he holds every one until the test lets them go (a reject each). */
  const held: import('node:http').ServerResponse[] = []
  let daveSaw = 0
  const dave = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      daveSaw++
      held.push(res)
    })
  })
  before(() => new Promise<void>((resolve) => dave.listen(0, '127.0.0.1', resolve)))
  after(() => closeServer(dave))
  const fixture = withNode(2, () => {
    const json = testConfigJson()
    addHttpPeer(json, 'dave', `http://127.0.0.1:${(dave.address() as AddressInfo).port}/ilp`)
    return json
  }, ['alice'])

  it('never sends them after the restart: their prepares were answered T00, so a fulfill for one could not be booked', async () => {
    const { node, clients: { alice } } = fixture
    const { condition } = fulfillmentPair()
    // More than the node's connections per origin (32): the rest wait in its queue.
    const replies = Array.from({ length: 40 }, () => alice.sendData(prepare({
      destination: 'test.node.dave', amount: '1', executionCondition: condition, expiresAt: new Date(Date.now() + 20_000),
    })))
    while (daveSaw < 32) await sleep(10)
    await sleep(100)
    assert.equal(daveSaw, 32, 'the node keeps 32 connections to an origin; the other 8 wait')
    await node.shards.terminate(shardOfAccount('alice', 2))
    for (const reply of await Promise.all(replies)) assert.equal(asReject(reply).code, 'T00')
    // dave answers what he held: each connection is free again, and nothing waits to go out on it.
    const reject = IlpPacket.serializeIlpReject({ code: 'F99', triggeredBy: 'test.node.dave', message: 'no', data: Buffer.alloc(0) })
    for (const res of held.splice(0)) res.end(reject)
    await sleep(500)
    assert.equal(daveSaw, 32, 'the 8 prepares that waited for a connection were never sent')
    logs.assertErrors([
      /ERROR shards: shard worker died shard=\d/,
      /ERROR shards: a thread of the data plane died; restarting every shard from LMDB reason="shard \d failed/,
    ], [REFUSING])
  })
})
