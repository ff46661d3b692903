// Goal: the short crash test in `npm test` (3 kills; `npm run test:crash` runs 25): the node is
// killed with SIGKILL under load and restarted, and the books are audited against what the
// clients saw after each restart (see test/crash/harness.ts), with operator adjustments through
// the admin API, each sent again after a kill that cut off its answer, and the node settling
// with bob over BTP transfers, each settlement delivered and booked once. Zero drift is the bar.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { runCrashTest } from './crash/harness'

describe('crash: SIGKILL under load, restart, audit', () => {
  it('3 kills with 4 senders at W=50 operator adjustments and settlements: every fulfill seen is booked, each adjustment and settlement once, balances sum to the adjustments, no hold survives', async () => {
    const report = await runCrashTest({ kills: 3, senders: 4, window: 50, minRunMs: 150, maxRunMs: 500, seed: 7 })
    assert.deepEqual(report.failures, [])
    assert.equal(report.kills, 3)
    assert.equal(report.audits, 4)
    assert.ok(report.packetsFulfilled > 100, `${report.packetsFulfilled} packets fulfilled`)
    assert.ok(report.adjustments > 5, `${report.adjustments} adjustments made`)
    assert.ok(report.settlements >= 3, `${report.settlements} settlements made to bob`)
  })
})
