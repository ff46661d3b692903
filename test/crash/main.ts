// `npm run test:crash [-- --kills N --seed S --full-disk-every F]`: the long crash test (see
// harness.ts). Every F-th round (3 by default; 0: none) fills the node's disk while the load runs;
// that needs root, for the tmpfs it mounts.

import { runCrashTest } from './harness'

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? Number(process.argv[at + 1]) : fallback
}

async function main(): Promise<void> {
  const kills = arg('kills', 25)
  const seed = arg('seed', Date.now() % 100000)
  const fullDiskEvery = arg('full-disk-every', 3)
  console.log(`crash test: ${kills} kills under load (8 senders × W=100), seed ${seed}` +
    `${fullDiskEvery > 0 ? `; DATA_DIR on a 64 MB tmpfs, filled in every ${fullDiskEvery === 1 ? '' : `${fullDiskEvery}${fullDiskEvery === 2 ? 'nd' : fullDiskEvery === 3 ? 'rd' : 'th'} `}round` : ''}`)
  const started = Date.now()
  const report = await runCrashTest({ kills, senders: 8, window: 100, minRunMs: 200, maxRunMs: 1500, seed, fullDiskEvery, log: (line) => console.log(`  ${line}`) })
  console.log(`\n${report.kills} kills, ${report.audits} audits, ${report.packetsFulfilled} packets fulfilled (${report.unitsFulfilled} units seen by senders), ` +
    `${report.unitsInFlightAtKills} units in flight at the kills, of which ${report.unitsCommittedUnseen} committed without the sender seeing the fulfill; ` +
    `${report.adjustments} operator adjustments, ${report.adjustmentsRetried} of them found made when sent again after a kill; ` +
    `${report.settlements} settlements to bob, in ${report.settlementFrames} TRANSFER frames (the rest were retries of the same ids), ` +
    `${report.settlementsInFlightAtKills} of them unacknowledged at a kill; ` +
    `${report.fullDiskRounds} full-disk rounds, the fault seen in ${report.faultsSeen} (/health 503 and the reserve in use), ` +
    `${report.storageRejects} T00 storage-unavailable rejects seen by the senders, ` +
    `${report.adjustmentsRefused} adjustments answered 503 storage_unavailable and ${report.adjustmentsOutcomeUnknown} 503 outcome_unknown (each sent again, same key), ` +
    `owed commits made on the full disk in ${report.owedCommitsMade} of the rounds freed before the kill, ` +
    `${report.killsWhileFull} kills while the disk was full, ${report.startsRefused73} starts on the full disk refused with exit 73, ` +
    `${report.nodeDeaths} exits of the node's own; ` +
    `${((Date.now() - started) / 1000).toFixed(0)} s`)
  if (report.failures.length > 0) console.log(`DRIFT: ${report.failures.length} failures\n${report.failures.join('\n')}`)
  else console.log('zero drift: every fulfill seen is in the balances, each adjustment counted once, every settlement delivered and booked once, the balances sum to the adjustments and settlements, no hold survived')
  if (report.nodeFailures.length > 0) console.log(`NODE FAILURES (not drift): ${report.nodeFailures.length}\n${report.nodeFailures.join('\n')}`)
  else if (report.fullDiskRounds > 0) console.log('on the full disk the node failed closed in every round it was filled, and never exited by itself')
  if (report.failures.length > 0 || report.nodeFailures.length > 0) process.exit(1)
}

// Stopped from outside: exit, so that the harness's exit hook unmounts its tmpfs.
process.once('SIGINT', () => process.exit(130))
process.once('SIGTERM', () => process.exit(143))

main().catch((err: Error) => {
  console.error(err.stack)
  process.exit(1)
})
