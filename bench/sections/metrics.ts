// Section 7, metrics: forwarding with the /metrics counters on and off, in alternating runs, and
// the ratio against the project's bound.

import { EMBEDDED_DEFAULT_CONFIG } from '../../src/config/load'
import { fmt, markdownTable } from '../report'
import { alternatingRuns, layoutName, log, meanOf, type Layout, type Run, type RunPlan } from '../runner'

/** Section 7: forwarding with the /metrics counters on and off, in alternating runs. */
export interface MetricsCost {
  layout: Layout
  runs: (Run & { metrics: boolean })[]
  /** Mean packets/s with metrics on over off; and the same for CPU per packet. */
  packetsPerSecondRatio: number
  cpuPerPacketRatio: number
}

export const METRICS_PAIRS = 3

/** The project's bound on what the counters may cost forwarding (packets/s, on against off). */
export const METRICS_MAX_LOSS = 0.03

export async function metricsCost(t: RunPlan, layout: Layout): Promise<MetricsCost> {
  log(`\n7. Metrics: node (${layoutName(layout)}) alice → bob at W=100 with the counters on and off, ${METRICS_PAIRS} alternating pairs\n`)
  const variants = [true, false].map((metrics) => ({ tag: metrics, label: `metrics ${metrics ? 'on ' : 'off'}`, config: { ...EMBEDDED_DEFAULT_CONFIG, metrics: { enabled: metrics } } }))
  const runs = (await alternatingRuns('metrics', variants, layout, METRICS_PAIRS, t)).map(({ tag, ...run }) => ({ ...run, metrics: tag }))
  const mean = (on: boolean, f: (r: Run) => number) => meanOf(runs, (r) => r.metrics === on, f)
  const result = {
    layout,
    runs,
    packetsPerSecondRatio: mean(true, (r) => r.packetsPerSecond) / mean(false, (r) => r.packetsPerSecond),
    cpuPerPacketRatio: mean(true, (r) => r.serverCpuUsPerPacket) / mean(false, (r) => r.serverCpuUsPerPacket),
  }
  log(`  ${describeMetricsCost(result)}\n`)
  return result
}

export function describeMetricsCost(m: MetricsCost): string {
  const loss = 1 - m.packetsPerSecondRatio
  return `With metrics on: ${(100 * m.packetsPerSecondRatio).toFixed(1)} % of the packets/s with them off, ${(100 * m.cpuPerPacketRatio).toFixed(1)} % of the CPU per packet ` +
    `(means of ${METRICS_PAIRS} runs each): ${loss <= METRICS_MAX_LOSS ? '✓ within' : '✗ beyond'} the ${100 * METRICS_MAX_LOSS} % the project allows.`
}

export function metricsCostMarkdown(m: MetricsCost): string[] {
  return [
    `## Metrics on and off: node (${layoutName(m.layout)}) alice → bob, W=100`, '',
    markdownTable(['run', 'metrics', 'packets/s', 'p50 µs', 'p99 µs', 'node CPU µs/packet'],
      m.runs.map((r, i) => [i + 1, r.metrics ? 'on' : 'off', fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p99Us), r.serverCpuUsPerPacket.toFixed(2)])), '',
    describeMetricsCost(m) + ' Metrics on: every shard and I/O thread counts into shared memory; nothing is gathered unless /metrics is scraped (it is not, here).', '',
  ]
}

/** The console summary: the counters' cost against the bound. */
export function metricsSummary(m: MetricsCost): string[] {
  return ['### Metrics', '', describeMetricsCost(m), '']
}
