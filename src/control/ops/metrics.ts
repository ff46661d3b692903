// GET /metrics in the Prometheus text format (prom-client's registry and its default process and
// Node.js metrics). The data plane's figures are never pushed anywhere: each shard and each I/O
// thread counts in its own block of shared memory (shared/packet_counters.ts), and this reads the
// blocks, the rings, the shared connection counts, LMDB and /proc when a scrape comes in.
//
//   ilp_node_packets_total{account,direction,result}         counter (result="fulfill" at 0 per
//                                                            live account and direction before traffic)
//   ilp_node_packet_amount_total{account,direction,result}   counter, base units of the account
//   ilp_node_account_balance{account,asset_code,asset_scale} gauge, committed, base units
//                                                            (positive: the peer owes this node)
//   ilp_node_account_balance_limit{account,limit}            gauge, base units, from the config: limit=
//                                                            minimum, maximum (only when bounded),
//                                                            settle_threshold, settle_to (when set)
//   ilp_node_prepares_in_flight{shard}                       gauge
//   ilp_node_connections{transport}                          gauge (btp, http, shop)
//   ilp_node_thread_cpu_seconds_total{thread}                counter (its rate is the busy fraction)
//   ilp_node_shard_packets_total{shard}                      counter (prepares it answered)
//   ilp_node_io_records_total{thread,direction}              counter (to_shards, from_shards)
//   ilp_node_ring_used_bytes{ring} / ilp_node_ring_size_bytes{ring}  gauges (ring: ioN_to_shardM, …)
//   ilp_node_lmdb_commit_seconds{shard}                      histogram
//   ilp_node_answers_dropped_total{account,reason}           counter: answers from next hops never
//                                                            applied (late, wrong_peer, unknown_request)
//   ilp_node_settlement_log_entries{log}                     gauge: entries the settlement logs keep
//                                                            (sent, received; sending: not yet answered)
//   process_*, nodejs_*                                      prom-client's defaults (main thread)

import { collectDefaultMetrics, Registry } from 'prom-client'
import type { AccountTable } from '../../config/account_table'
import type { Config } from '../../config/schema'
import { ConnectionCount, TRANSPORTS } from '../../shared/client_table'
import {
  COMMIT_BUCKETS_S, CounterReader, DIRECTIONS, DROP_REASONS, FULFILL, Incoming, IO_COUNTS, IoCounters, RESULTS, sumCounterRows, type CounterRow,
} from '../../shared/packet_counters'
import { ringUsedBytes } from '../../ring/ring'
import type { Wiring } from '../../ring/wiring'
import { INT64_MAX, INT64_MIN } from '../../codec/oer'
import { readBalance, settlementLogCounts, type Store } from '../../store/balance_store'
import { namedThreadCpuSeconds } from '../threads/thread_stats'

type Labels = Record<string, string | number>
interface Sample {
  value: number
  labels: Labels
  metricName?: string
}

/** What the collectors read, at each scrape (the wiring changes when the shards restart). */
export interface MetricsSources {
  config: Config
  accounts: AccountTable
  store: Store
  wiring: () => Wiring
  limits: SharedArrayBuffer
  ioCounters: SharedArrayBuffer | null
}

export class Metrics {
  private readonly registry = new Registry()

  constructor(private readonly s: MetricsSources) {
    collectDefaultMetrics({ register: this.registry })
    this.addAccountFamilies()
    this.addThreadFamilies()
    this.addStoreFamilies()
  }

  /** Per account: packets and amounts by result, balances and their limits, answers dropped. */
  private addAccountFamilies(): void {
    const s = this.s
    const id = (account: number) => s.accounts.get(account).id
    this.add('ilp_node_packets_total', 'ILP prepares by account, direction (incoming: sent by the account; outgoing: sent to it) and result (fulfill or the reject code)', 'counter', () =>
      this.counterRows().map((r) => ({ value: r.packets, labels: { account: id(r.account), direction: DIRECTIONS[r.direction], result: RESULTS[r.result] } })))
    this.add('ilp_node_packet_amount_total', 'Amounts of those prepares, in base units of the account', 'counter', () =>
      this.counterRows().map((r) => ({ value: Number(r.amount), labels: { account: id(r.account), direction: DIRECTIONS[r.direction], result: RESULTS[r.result] } })))
    this.add('ilp_node_account_balance', 'Committed balance of each account in its base units (positive: the peer owes this node)', 'gauge', () =>
      s.accounts.accounts.filter((_, i) => s.accounts.isLive(i)).map((a) => ({ value: Number(readBalance(s.store, a.id)), labels: { account: a.id, asset_code: a.assetCode, asset_scale: a.assetScale } })))
    // An unbounded side (the int64 default) has no series: a bound of ±9.2e18 would only flatten
    // the balance it is drawn against.
    this.add('ilp_node_account_balance_limit', 'Configured limits of each account\'s balance in its base units: minimum and maximum (when bounded), settle_threshold and settle_to (when the node settles the account)', 'gauge', () => {
      const samples: Sample[] = []
      s.accounts.accounts.forEach((a, i) => {
        if (!s.accounts.isLive(i)) return
        if (a.balanceMinimum !== INT64_MIN) samples.push({ value: Number(a.balanceMinimum), labels: { account: a.id, limit: 'minimum' } })
        if (a.balanceMaximum !== INT64_MAX) samples.push({ value: Number(a.balanceMaximum), labels: { account: a.id, limit: 'maximum' } })
        if (a.settleThreshold !== null) {
          samples.push({ value: Number(a.settleThreshold), labels: { account: a.id, limit: 'settle_threshold' } })
          samples.push({ value: Number(a.settleTo), labels: { account: a.id, limit: 'settle_to' } })
        }
      })
      return samples
    })
    this.add('ilp_node_answers_dropped_total', 'Answers from next hops that were dropped, never applied: late (their prepare had expired or was answered), wrong_peer (from another account than the prepare went to), unknown_request (to a BTP request the node had not sent, had forgotten, or had seen answered)', 'counter', () => {
      const sums = new Map<string, number>()
      const add = (account: number, reason: number, answers: number) => {
        const key = `${account} ${reason}`
        sums.set(key, (sums.get(key) ?? 0) + answers)
      }
      for (const sab of s.wiring().counters ?? []) for (const r of new CounterReader(sab, s.accounts.capacity).dropRows()) add(r.account, r.reason, r.answers)
      if (s.ioCounters !== null) {
        IoCounters.readUnknownAnswers(s.ioCounters, s.config.ioThreads, s.accounts.capacity).forEach((answers, account) => {
          if (answers > 0) add(account, DROP_REASONS.indexOf('unknown_request'), answers)
        })
      }
      return [...sums].map(([key, value]) => {
        const [account, reason] = key.split(' ').map(Number)
        return { value, labels: { account: id(account), reason: DROP_REASONS[reason] } }
      })
    })
  }

  /** The threads and what is between them: prepares in flight, connections, CPU, records, rings. */
  private addThreadFamilies(): void {
    const s = this.s
    this.add('ilp_node_prepares_in_flight', 'Prepares a shard has forwarded and not yet seen answered', 'gauge', () => {
      const counts = new Int32Array(s.wiring().inFlight)
      return Array.from(counts, (_, shard) => ({ value: Atomics.load(counts, shard), labels: { shard } }))
    })
    this.add('ilp_node_connections', 'Open BTP connections, ILP-over-HTTP exchanges and paid shop requests, over all I/O threads', 'gauge', () => {
      const open = new ConnectionCount(s.limits).byTransport()
      return TRANSPORTS.map((transport, i) => ({ value: open[i], labels: { transport } }))
    })
    this.add('ilp_node_thread_cpu_seconds_total', 'CPU time of each of the node\'s threads (its rate is the thread\'s busy fraction)', 'counter', () =>
      namedThreadCpuSeconds().map(({ thread, seconds }) => ({ value: seconds, labels: { thread } })))
    this.add('ilp_node_shard_packets_total', 'Prepares each shard answered (for the accounts it owns)', 'counter', () => {
      const counters = s.wiring().counters ?? []
      return counters.map((sab, shard) => ({
        value: new CounterReader(sab, s.accounts.capacity).rows().filter((r) => r.direction === Incoming).reduce((sum, r) => sum + r.packets, 0),
        labels: { shard },
      }))
    })
    this.add('ilp_node_io_records_total', 'Records each I/O thread handed to the shards and took from them', 'counter', () => {
      if (s.ioCounters === null) return []
      const samples: Sample[] = []
      for (let t = 0; t < s.config.ioThreads; t++) {
        const counts = IoCounters.read(s.ioCounters, t)
        IO_COUNTS.forEach((direction, k) => samples.push({ value: counts[k], labels: { thread: s.config.ioThreads > 1 ? `ilp-io-${t}` : 'ilp-main', direction } }))
      }
      return samples
    })
    this.add('ilp_node_ring_used_bytes', 'Bytes waiting in each ring between the threads', 'gauge', () => this.rings().map(([ring, sab]) => ({ value: ringUsedBytes(sab), labels: { ring } })))
    this.add('ilp_node_ring_size_bytes', 'Capacity of each ring between the threads', 'gauge', () => this.rings().map(([ring]) => ({ value: s.config.ringBytes, labels: { ring } })))
  }

  /** LMDB: the settlement logs' sizes and the shards' commit times. */
  private addStoreFamilies(): void {
    const s = this.s
    // LMDB keeps each database's entry count, so this reads no entries. The logs are pruned
    // (settlement_log_pruner.ts), so sent and received can fall: they are gauges, not counters.
    this.add('ilp_node_settlement_log_entries', 'Entries the settlement logs keep: sent (settlements the node made), received (settlements peers made to it), sending (sent, not yet acknowledged or refused by the peer)', 'gauge', () => {
      const counts = settlementLogCounts(s.store)
      return (['sent', 'received', 'sending'] as const).map((log) => ({ value: counts[log], labels: { log } }))
    })
    this.add('ilp_node_lmdb_commit_seconds', 'Time of each shard\'s LMDB write transactions', 'histogram', () => {
      const samples: Sample[] = []
      ;(s.wiring().counters ?? []).forEach((sab, shard) => {
        const { buckets, seconds, count } = new CounterReader(sab, s.accounts.capacity).commits()
        let cumulative = 0
        COMMIT_BUCKETS_S.forEach((le, b) => {
          cumulative += buckets[b]
          samples.push({ metricName: 'ilp_node_lmdb_commit_seconds_bucket', value: cumulative, labels: { shard, le } })
        })
        samples.push({ metricName: 'ilp_node_lmdb_commit_seconds_bucket', value: count, labels: { shard, le: '+Inf' } })
        samples.push({ metricName: 'ilp_node_lmdb_commit_seconds_sum', value: seconds, labels: { shard } })
        samples.push({ metricName: 'ilp_node_lmdb_commit_seconds_count', value: count, labels: { shard } })
      })
      return samples
    })
  }

  /** The whole exposition, as text/plain; version=0.0.4. */
  text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }

  private add(name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: () => Sample[]): void {
    // A metric of our own for prom-client's registry: read at each scrape, nothing kept between.
    this.registry.registerMetric({ name, help, type, get: () => ({ name, help, type, values: values(), aggregator: 'sum' }) } as never)
  }

  /**
   * Every configured account has its fulfill series in both directions from the start, at zero
   * until it counts: a rate() or an alert over them has a series to start from, and a scrape
   * before traffic shows which accounts the node counts for. Reject codes appear when they occur.
   */
  private counterRows(): CounterRow[] {
    const rows = sumCounterRows(this.s.wiring().counters ?? [], this.s.accounts.capacity)
    const counted = new Set(rows.filter((r) => r.result === FULFILL).map((r) => r.account * DIRECTIONS.length + r.direction))
    this.s.accounts.accounts.forEach((_, account) => {
      if (!this.s.accounts.isLive(account)) return
      for (let direction = 0; direction < DIRECTIONS.length; direction++) {
        if (!counted.has(account * DIRECTIONS.length + direction)) rows.push({ account, direction, result: FULFILL, packets: 0, amount: 0n })
      }
    })
    return rows
  }

  private rings(): [string, SharedArrayBuffer][] {
    const w = this.s.wiring()
    const out: [string, SharedArrayBuffer][] = []
    w.ioToShard.forEach((rings, t) => rings.forEach((sab, sh) => out.push([`io${t}_to_shard${sh}`, sab])))
    w.shardToIo.forEach((rings, sh) => rings.forEach((sab, t) => out.push([`shard${sh}_to_io${t}`, sab])))
    w.shardToShard.forEach((rings, i) => rings.forEach((sab, j) => { if (sab !== null) out.push([`shard${i}_to_shard${j}`, sab]) }))
    return out
  }
}
