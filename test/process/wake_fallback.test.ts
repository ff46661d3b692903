// Goal: without the native wake-up addon (src/native/wake.c) the node still works in a threaded
// layout, waking its threads through Atomics, and says so. Method: the real entry point as a
// child process with ILP_NODE_NATIVE_WAKE=0 at IO_THREADS=2 SHARDS=2; ilp-plugin-btp clients
// alice and bob (the embedded default config); 2,000 packets in flight 100 at a time, each
// fulfilled by bob; the books checked with peer.balance. (The rest of the suite runs with the
// addon, which ring.test.ts requires to be built.)

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { startNodeProcess } from '../../src/testing/node_process'
import { asFulfill, connectPlugin, fulfillmentPair, IlpPacket, peerBalance, prepare } from '../support/helpers'

describe('wake-ups without the native addon (ILP_NODE_NATIVE_WAKE=0, IO_THREADS=2 SHARDS=2)', () => {
  it('warns at start and forwards 2,000 packets with exact balances', async () => {
    const node = await startNodeProcess({ IO_THREADS: '2', SHARDS: '2', ILP_NODE_NATIVE_WAKE: '0' })
    try {
      assert.match(node.output(), /WARN .*native wake-ups unavailable.*reason="turned off by ILP_NODE_NATIVE_WAKE=0"/)
      const alice = await connectPlugin(node.port, 'alice', 'alice-token')
      const bob = await connectPlugin(node.port, 'bob', 'bob-token')
      const { fulfillment, condition } = fulfillmentPair()
      bob.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))
      const packets = 2_000
      for (let sent = 0; sent < packets; sent += 100) {
        const replies = await Promise.all(Array.from({ length: 100 }, () =>
          alice.sendData(prepare({ destination: 'test.ilpnode.bob', amount: '3', executionCondition: condition }))))
        for (const reply of replies) asFulfill(reply)
      }
      assert.equal(await peerBalance(alice), -3n * BigInt(packets))
      assert.equal(await peerBalance(bob), 3n * BigInt(packets))
      await alice.disconnect()
      await bob.disconnect()
    } finally {
      await node.stop()
    }
  })
})
