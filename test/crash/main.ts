// `npm run test:crash [-- --kills N --seed S]`: the long crash test (see harness.ts).

import { runCrashTest } from './harness'

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? Number(process.argv[at + 1]) : fallback
}

async function main(): Promise<void> {
  const kills = arg('kills', 25)
  const seed = arg('seed', Date.now() % 100000)
  console.log(`crash test: ${kills} kills under load (8 senders × W=100), seed ${seed}`)
  const started = Date.now()
  const report = await runCrashTest({ kills, senders: 8, window: 100, minRunMs: 200, maxRunMs: 1500, seed, log: (line) => console.log(`  ${line}`) })
  console.log(`\n${report.kills} kills, ${report.audits} audits, ${report.packetsFulfilled} packets fulfilled (${report.unitsFulfilled} units seen by senders), ` +
    `${report.unitsInFlightAtKills} units in flight at the kills, of which ${report.unitsCommittedUnseen} committed without the sender seeing the fulfill; ` +
    `${report.adjustments} operator adjustments, ${report.adjustmentsRetried} of them found made when sent again after a kill; ` +
    `${report.settlements} settlements to bob, in ${report.settlementFrames} TRANSFER frames (the rest were retries of the same ids), ` +
    `${report.settlementsInFlightAtKills} of them unacknowledged at a kill; ` +
    `${((Date.now() - started) / 1000).toFixed(0)} s`)
  if (report.failures.length > 0) {
    console.log(`DRIFT: ${report.failures.length} failures\n${report.failures.join('\n')}`)
    process.exit(1)
  }
  console.log('zero drift: every fulfill seen is in the balances, each adjustment counted once, every settlement delivered and booked once, the balances sum to the adjustments and settlements, no hold survived')
}

main().catch((err: Error) => {
  console.error(err.stack)
  process.exit(1)
})
