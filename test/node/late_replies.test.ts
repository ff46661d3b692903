// Goal: an answer from a next hop is applied only to the prepare it answers. A late answer must
// never land on a newer prepare that took the same slot of the pending table.
// Method, with real BTP sockets (lean clients) and the node in the suite's layout: alice pays bob
// a prepare P0 that bob holds past its expiry, so the node answers alice R00 and frees P0's slot.
// Then alice pays carol 4096 times, one at a time, so that the most recently freed slot, P0's, is
// taken again each time (4096 reuses: a 12-bit generation, as this node had, comes back to P0's),
// and carol holds the last of those prepares, P1. Now bob answers P0, late: a reject in one case,
// a fulfill (all prepares share one condition, so it would pass the hash check) in the other.
// Then carol answers P1 the other way. The test checks that alice gets carol's answer to P1, that
// the books follow carol's answer (carol credited for her fulfill; nobody for bob's), and that
// /metrics counted bob's answer as dropped. (The ids of this node come back only after 2^27 or
// more reuses of one slot, which no test can run; shard/pending_table.ts argues why that is
// enough.)

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { encodeFulfill, encodeReject } from '../../src/codec/ilp_packet'
import { FULFILLMENT, kindOf, LeanNextHop, LeanSender } from '../support/lean_peers'
import { layoutName, sleep, withNode } from '../support/helpers'

const REUSES = 4096
const METRICS_TOKEN = 'a-metrics-token-for-late-replies'

function config(): Record<string, unknown> {
  const child = (id: string) => ({ relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: `${id}-token` } })
  return {
    ilpAddress: 'test.late',
    metrics: { enabled: true, token: METRICS_TOKEN },
    limits: { minMessageWindowMs: 500 },
    accounts: { alice: child('alice'), bob: child('bob'), carol: child('carol') },
  }
}

async function droppedFrom(port: number, account: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
  const text = await res.text()
  let total = 0
  for (const m of text.matchAll(/^ilp_node_answers_dropped_total\{([^}]*)\} (\d+)$/gm)) if (m[1].includes(`account="${account}"`)) total += Number(m[2])
  return total
}

for (const lateAnswer of ['reject', 'fulfill'] as const) {
  describe(`a late ${lateAnswer} after ${REUSES} reuses of its slot (${layoutName(0)})`, () => {
    const f = withNode(0, config())

    it(`is dropped and counted; the newer prepare gets its own next hop's answer, and the books follow it`, async () => {
      const port = f.node.port
      const alice = await LeanSender.connect(port, 'alice')
      const bob = await LeanNextHop.connect(port, 'bob')
      const carol = await LeanNextHop.connect(port, 'carol')
      const bobBefore = f.node.balance('bob')
      const carolBefore = f.node.balance('carol')
      const aliceBefore = f.node.balance('alice')

      // P0: bob holds it past its expiry; the node answers alice R00 and frees its slot.
      const p0 = await alice.pay('test.late.bob', 1000n, 1200)
      assert.equal(kindOf(p0), 'R00')
      assert.equal(bob.held.length, 1)

      // 4096 reuses of that slot, one prepare at a time (carol fulfils at once), the last one held.
      carol.autoAnswer = encodeFulfill(FULFILLMENT, Buffer.alloc(0))
      for (let i = 1; i < REUSES; i++) assert.equal(kindOf(await alice.pay('test.late.carol', 1n, 10_000)), 'fulfill')
      carol.autoAnswer = null
      const p1 = alice.pay('test.late.carol', 500n, 10_000)
      for (let i = 0; i < 100 && carol.held.length === 0; i++) await sleep(10)
      assert.equal(carol.held.length, 1, 'carol holds P1')

      // bob answers P0 now, long after it expired; then carol answers P1 the other way.
      const droppedBefore = await droppedFrom(port, 'bob')
      bob.answer(bob.held[0].requestId, 1000n, lateAnswer === 'reject' ? encodeReject('F99', 'test.late.bob', 'late') : encodeFulfill(FULFILLMENT, Buffer.alloc(0)))
      await sleep(200)
      const carolAnswer = lateAnswer === 'reject' ? encodeFulfill(FULFILLMENT, Buffer.alloc(0)) : encodeReject('F99', 'test.late.carol', 'no')
      carol.answer(carol.held[0].requestId, 500n, carolAnswer)
      const answer = await p1

      assert.equal(kindOf(answer), lateAnswer === 'reject' ? 'fulfill' : 'F99', 'alice gets carol\'s answer to P1, not bob\'s to P0')
      const carolCredit = lateAnswer === 'reject' ? 500n : 0n
      await sleep(100) // the credit is committed before the fulfill leaves; the reads are of LMDB
      assert.equal(f.node.balance('bob'), bobBefore, 'bob is credited nothing: his answer came after P0 expired')
      assert.equal(f.node.balance('carol'), carolBefore - BigInt(REUSES - 1) - carolCredit, 'carol is credited exactly what she fulfilled')
      assert.equal(f.node.balance('alice'), aliceBefore + BigInt(REUSES - 1) + carolCredit, 'alice is charged exactly what she saw fulfilled')
      assert.equal(await droppedFrom(port, 'bob'), droppedBefore + 1, 'bob\'s late answer is counted as dropped')

      // And a duplicate of bob's answer is dropped too (the node forgot that request).
      bob.answer(bob.held[0].requestId, 1000n, encodeReject('F99', 'test.late.bob', 'again'))
      await sleep(100)
      assert.equal(await droppedFrom(port, 'bob'), droppedBefore + 2)
      for (const ws of [alice.ws, bob.ws, carol.ws]) ws.close()
    })
  })
}
