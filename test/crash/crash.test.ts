// Goal: the short crash test in `npm test` (3 kills; `npm run test:crash` runs 25): the node is
// killed with SIGKILL under load and restarted, and the books are audited against what the
// clients saw after each restart (see test/crash/harness.ts), with operator adjustments through
// the admin API, each sent again after a kill that cut off its answer, and the node settling
// with bob over BTP transfers, each settlement delivered and booked once. Zero drift is the bar.
// Its third round fills the node's disk (a 64 MB tmpfs; root, as for test/node/storage_fault.test.ts)
// under load: the node must fail closed, be killed while the disk is still full, refuse to start
// there (exit 73, one line), and start once the disk has room, with the same books.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { runCrashTest } from './harness'

describe('crash: SIGKILL under load, restart, audit', () => {
  it('3 kills with 4 senders at W=50 operator adjustments and settlements, the last on a full disk: every fulfill seen is booked, each adjustment and settlement once, balances sum to the adjustments, no hold survives', async () => {
    const report = await runCrashTest({ kills: 3, senders: 4, window: 50, minRunMs: 150, maxRunMs: 500, seed: 7, fullDiskEvery: 3 })
    assert.deepEqual(report.failures, [], 'drift')
    assert.deepEqual(report.nodeFailures, [], 'the node on the full disk')
    assert.equal(report.kills, 3)
    assert.equal(report.audits, 4)
    assert.ok(report.packetsFulfilled > 100, `${report.packetsFulfilled} packets fulfilled`)
    assert.ok(report.adjustments > 5, `${report.adjustments} adjustments made`)
    assert.ok(report.settlements >= 3, `${report.settlements} settlements made to bob`)
    assert.equal(report.fullDiskRounds, 1)
    assert.equal(report.faultsSeen, 1, 'the node hit the full disk (/health 503, the reserve given back)')
    assert.equal(report.killsWhileFull, 1)
    assert.equal(report.startsRefused73, 1, 'a start on the full disk exits 73 with one line')
  })
})
