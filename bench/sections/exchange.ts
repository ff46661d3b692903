// Section 8, exchange: forwarding USD → USD and USD → EUR with a static rate and a 0.2 % spread,
// in alternating runs, and the difference in node CPU per packet against the project's bound.

import { EMBEDDED_DEFAULT_CONFIG } from '../../src/config/load'
import { fmt, markdownTable } from '../report'
import { alternatingRuns, layoutName, log, meanOf, type Layout, type Run, type RunPlan } from '../runner'

/** Section 8: forwarding within one asset, and across assets with a rate and a spread, in alternating runs. */
export interface ExchangeCost {
  layout: Layout
  runs: (Run & { exchange: boolean })[]
  /** Mean node CPU per packet across assets less within one asset (µs). */
  cpuPerPacketDeltaUs: number
  packetsPerSecondRatio: number
}

export const EXCHANGE_PAIRS = 3

/** The project's bound on what the rate and the fee may cost a packet (node CPU, µs). */
export const EXCHANGE_MAX_DELTA_US = 1

/** 1000 units: USD → EUR at 0.9173 with a 0.2 % spread gives bob 915, not a unit lost to R01. */
export const EXCHANGE_PREPARE_AMOUNT = 1000n

export async function exchangeCost(t: RunPlan, layout: Layout): Promise<ExchangeCost> {
  log(`\n8. Exchange: node (${layoutName(layout)}) alice → bob at W=100, USD → USD and USD → EUR (static rate, 0.2 % spread), ${EXCHANGE_PAIRS} alternating pairs\n`)
  const eur = { ...EMBEDDED_DEFAULT_CONFIG.accounts.bob, assetCode: 'EUR' }
  // With two assets among the accounts the payee no longer follows the only one, so it names its own.
  const crossAsset = { ...EMBEDDED_DEFAULT_CONFIG, accounts: { ...EMBEDDED_DEFAULT_CONFIG.accounts, bob: eur }, payees: { carol: { assetCode: 'USD', assetScale: 9 } }, rates: { backend: 'static', base: 'USD', table: { EUR: '0.9173' } }, spread: '0.002' }
  const variants = [
    { tag: false, label: 'USD → USD          ', config: { ...EMBEDDED_DEFAULT_CONFIG } },
    { tag: true, label: 'USD → EUR, spread  ', config: crossAsset },
  ]
  const runs = (await alternatingRuns('exchange', variants, layout, EXCHANGE_PAIRS, t, { amount: EXCHANGE_PREPARE_AMOUNT })).map(({ tag, ...run }) => ({ ...run, exchange: tag }))
  const mean = (on: boolean, f: (r: Run) => number) => meanOf(runs, (r) => r.exchange === on, f)
  const result = {
    layout,
    runs,
    cpuPerPacketDeltaUs: mean(true, (r) => r.serverCpuUsPerPacket) - mean(false, (r) => r.serverCpuUsPerPacket),
    packetsPerSecondRatio: mean(true, (r) => r.packetsPerSecond) / mean(false, (r) => r.packetsPerSecond),
  }
  log(`  ${describeExchangeCost(result)}\n`)
  return result
}

export function describeExchangeCost(m: ExchangeCost): string {
  return `Across assets with a spread: ${m.cpuPerPacketDeltaUs >= 0 ? '+' : ''}${m.cpuPerPacketDeltaUs.toFixed(2)} µs of node CPU per packet, ${(100 * m.packetsPerSecondRatio).toFixed(1)} % of the packets/s ` +
    `(means of ${EXCHANGE_PAIRS} runs each): ${m.cpuPerPacketDeltaUs <= EXCHANGE_MAX_DELTA_US ? '✓ within' : '✗ beyond'} the ${EXCHANGE_MAX_DELTA_US} µs the project allows.`
}

export function exchangeCostMarkdown(m: ExchangeCost): string[] {
  return [
    `## Exchange and fee: node (${layoutName(m.layout)}) alice → bob, W=100`, '',
    markdownTable(['run', 'bob\'s asset', 'packets/s', 'p50 µs', 'p99 µs', 'node CPU µs/packet'],
      m.runs.map((r, i) => [i + 1, r.exchange ? 'EUR (rate, spread)' : 'USD', fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p99Us), r.serverCpuUsPerPacket.toFixed(2)])), '',
    describeExchangeCost(m) + ` Each prepare is ${EXCHANGE_PREPARE_AMOUNT} units; across assets bob gets floor(${EXCHANGE_PREPARE_AMOUNT} × 0.9173 × 0.998).`, '',
  ]
}

/** The console summary: the cost across assets against the bound. */
export function exchangeSummary(m: ExchangeCost): string[] {
  return ['### Exchange', '', describeExchangeCost(m), '']
}
