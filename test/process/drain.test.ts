// Goal: SIGTERM under load loses nothing and books nothing twice. The node stops taking prepares
// (T00 from then on) and connections, waits until every prepare it had taken is answered, and
// exits 0; every fulfill bob sent reached alice, and the books in LMDB are exactly what alice saw.
// Method: the real entry point as a child process (the embedded default config: alice and bob),
// in the inline layout and at IO_THREADS=2 SHARDS=2; ilp-plugin-btp clients; alice keeps 50
// prepares of varying amounts in flight, bob fulfills each after 0–20 ms (so some are always
// held at the next hop when the signal arrives); SIGTERM 400 ms into the load; then the store is
// read with the node's own reader.

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { openStore, readBalance } from '../../src/store/balance_store'
import { startNodeProcess } from '../../src/testing/node_process'
import { connectPlugin, fulfillmentPair, IlpPacket, prepare, sleep } from '../support/helpers'

const LANES = 50
const SIGNAL_AFTER_MS = 400

for (const layout of [{ IO_THREADS: '1', SHARDS: '0' }, { IO_THREADS: '2', SHARDS: '2' }]) {
  describe(`drain on SIGTERM (IO_THREADS=${layout.IO_THREADS} SHARDS=${layout.SHARDS})`, () => {
    it('answers every prepare it took, refuses new ones with T00, exits 0, and the books match what the clients saw', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'ilp-node-drain-'))
      try {
        const node = await startNodeProcess({ ...layout, DATA_DIR: dataDir })
        const exited = new Promise<number | null>((resolve) => node.proc.once('exit', resolve))
        const alice = await connectPlugin(node.port, 'alice', 'alice-token')
        const bob = await connectPlugin(node.port, 'bob', 'bob-token')
        const { fulfillment, condition } = fulfillmentPair()
        let bobFulfilled = 0
        let bobAmount = 0n
        bob.registerDataHandler(async (data) => {
          await sleep(Math.floor(Math.random() * 20))
          bobFulfilled++
          bobAmount += BigInt(IlpPacket.deserializeIlpPrepare(data).amount)
          return IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
        })

        let signalled = false
        let fulfilled = 0
        let fulfilledAmount = 0n
        const rejects = new Map<string, number>()
        let rejectedBeforeSignal = 0
        const lane = async (seed: number): Promise<void> => {
          for (let i = 0; ; i++) {
            const amount = 1 + ((seed * 7919 + i * 104729) % 1000)
            let reply: Buffer
            try {
              reply = await alice.sendData(prepare({ destination: 'test.ilpnode.bob', amount: String(amount), executionCondition: condition }))
            } catch {
              return // the node closed the link after its drain
            }
            if (reply[0] === IlpPacket.Type.TYPE_ILP_FULFILL) {
              fulfilled++
              fulfilledAmount += BigInt(amount)
            } else {
              const code = IlpPacket.deserializeIlpReject(reply).code
              rejects.set(code, (rejects.get(code) ?? 0) + 1)
              if (!signalled) rejectedBeforeSignal++
              if (code === 'T00') await sleep(5)
            }
          }
        }
        const lanes = Array.from({ length: LANES }, (_, i) => lane(i))
        await sleep(SIGNAL_AFTER_MS)
        signalled = true
        node.proc.kill('SIGTERM')
        const code = await Promise.race([exited, sleep(20_000).then(() => 'timeout' as const)])
        await Promise.all(lanes)
        await Promise.allSettled([alice.disconnect(), bob.disconnect()])
        assert.equal(code, 0, node.output())
        assert.match(node.output(), /INFO  main: drained/)

        assert.ok(fulfilled > 100, `only ${fulfilled} packets were fulfilled`)
        assert.equal(rejectedBeforeSignal, 0)
        assert.deepEqual([...rejects.keys()].filter((c) => c !== 'T00'), [], `rejects other than T00: ${[...rejects]}`)
        // Every fulfill bob gave reached alice: nothing was left between them.
        assert.equal(fulfilled, bobFulfilled)
        assert.equal(fulfilledAmount, bobAmount)
        const store = openStore(dataDir, 'process')
        try {
          assert.equal(readBalance(store, 'alice'), fulfilledAmount, 'alice owes the node what she saw fulfilled')
          assert.equal(readBalance(store, 'bob'), -fulfilledAmount, 'the node owes bob what he fulfilled')
          assert.equal(store.inflight.getKeysCount(), 0, 'no prepare was left in flight')
        } finally {
          await store.root.close()
        }
      } finally {
        rmSync(dataDir, { recursive: true, force: true })
      }
    })
  })
}
