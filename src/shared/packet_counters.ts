// Counters of what the data plane did, in shared memory: each shard writes its own block, and the
// main thread reads every block when /metrics is scraped (control/ops/metrics.ts). A count costs the
// packet path an array increment; nothing crosses a thread for it.
//
//   per shard, one SAB:
//     Float64   packets[account][direction][result]   (exact to 2^53)
//     BigUint64 amounts[account][direction][result]    base units of the account, wrapping at 2^64
//     Float64   commitBuckets[COMMIT_BUCKETS_S.length + 1], commitSeconds, commits
//     Float64   answersDropped[account][SHARD_DROP_REASONS]
//   per I/O thread, in one SAB: Float64 [thread][IO_COUNTS], then Float64 [thread][account]:
//   answers to requests the thread had not sent or no longer knew (unknown_request)
//
//   direction  incoming: prepares the account sent us, by how we answered them
//              outgoing: prepares we sent the account, by how they ended (its answer, or ours
//              when it gave none: T01/T02 when it could not be reached, R00 at expiry, F05 for
//              a fulfillment that did not match)
//   result     fulfill, an RFC 27 reject code, or "other" for a code outside RFC 27
//
// The writer is one thread; a reader may see a count one packet behind its amount, never a torn
// value (aligned 8-byte stores).

import type { IlpErrorCode } from '../codec/ilp_errors'

export const DIRECTIONS = ['incoming', 'outgoing'] as const
export const Incoming = 0
export const Outgoing = 1

const CODES: readonly IlpErrorCode[] = [
  'F00', 'F01', 'F02', 'F03', 'F04', 'F05', 'F06', 'F07', 'F08', 'F99',
  'T00', 'T01', 'T02', 'T03', 'T04', 'T05', 'T99',
  'R00', 'R01', 'R02', 'R99',
]
export const RESULTS: readonly string[] = ['fulfill', ...CODES, 'other']
export const FULFILL = 0
const OTHER = RESULTS.length - 1
const CODE_INDEX = new Map<string, number>(CODES.map((c, i) => [c, i + 1]))

/** Upper bounds of the LMDB commit histogram, in seconds. */
export const COMMIT_BUCKETS_S = [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1]

/** What each I/O thread counts: records it handed to the shards, and records it took from them. */
export const IO_COUNTS = ['to_shards', 'from_shards'] as const

/**
 * Why an answer from a next hop was dropped, never applied (ilp_node_answers_dropped_total):
 *   late             no prepare in flight has its id: it expired (R00) or was answered already
 *   wrong_peer       the prepare with that id went to another account
 *   unknown_request  (I/O thread) an answer to a request it has not sent, has seen answered, or no
 *                    longer waits for: a BTP answer to an unknown request id, an ILP-over-HTTP answer
 *                    that came after its prepare expired
 */
export const DROP_REASONS = ['late', 'wrong_peer', 'unknown_request'] as const
export const DROP_LATE = 0
export const DROP_WRONG_PEER = 1
const SHARD_DROP_REASONS = 2

function cells(accounts: number): number {
  return accounts * DIRECTIONS.length * RESULTS.length
}

export function shardCountersBytes(accounts: number): number {
  return 8 * (2 * cells(accounts) + COMMIT_BUCKETS_S.length + 1 + 2 + accounts * SHARD_DROP_REASONS)
}

/** The result index of a reject code we make. */
export function resultOfCode(code: IlpErrorCode): number {
  return CODE_INDEX.get(code) ?? OTHER
}

/**
 * The result index of the 3-byte reject code at `at` in `buf` (another node's reject), without
 * making a string: RESULTS lists F00–F08, F99, T00–T05, T99, R00–R02, R99 in that order.
 */
export function resultOfCodeBytes(buf: Uint8Array, at: number): number {
  const tens = buf[at + 1] - 0x30
  const units = buf[at + 2] - 0x30
  if (tens < 0 || tens > 9 || units < 0 || units > 9) return OTHER
  const n = tens * 10 + units
  switch (buf[at]) {
    case 0x46: // F
      return n <= 8 ? 1 + n : n === 99 ? 10 : OTHER
    case 0x54: // T
      return n <= 5 ? 11 + n : n === 99 ? 17 : OTHER
    case 0x52: // R
      return n <= 2 ? 18 + n : n === 99 ? 21 : OTHER
    default:
      return OTHER
  }
}

class CounterView {
  protected readonly packets: Float64Array
  protected readonly amounts: BigUint64Array
  protected readonly commitBuckets: Float64Array
  protected readonly commitTotals: Float64Array
  protected readonly drops: Float64Array

  constructor(sab: SharedArrayBuffer, protected readonly accounts: number) {
    const n = cells(accounts)
    this.packets = new Float64Array(sab, 0, n)
    this.amounts = new BigUint64Array(sab, 8 * n, n)
    this.commitBuckets = new Float64Array(sab, 16 * n, COMMIT_BUCKETS_S.length + 1)
    this.commitTotals = new Float64Array(sab, 16 * n + 8 * (COMMIT_BUCKETS_S.length + 1), 2)
    this.drops = new Float64Array(sab, 16 * n + 8 * (COMMIT_BUCKETS_S.length + 3), accounts * SHARD_DROP_REASONS)
  }

  protected cell(account: number, direction: number, result: number): number {
    return (account * DIRECTIONS.length + direction) * RESULTS.length + result
  }
}

/** A shard's side: it alone writes its block. */
export class PacketCounters extends CounterView {
  count(account: number, direction: number, result: number, amount: bigint): void {
    const i = this.cell(account, direction, result)
    this.packets[i]++
    // A BigUint64Array stores its value modulo 2^64: the wrap needs no code of its own.
    this.amounts[i] += amount
  }

  /** An answer from `account` dropped for `reason` (DROP_LATE, DROP_WRONG_PEER). */
  dropped(account: number, reason: number): void {
    this.drops[account * SHARD_DROP_REASONS + reason]++
  }

  commitTook(seconds: number): void {
    let b = 0
    while (b < COMMIT_BUCKETS_S.length && seconds > COMMIT_BUCKETS_S[b]) b++
    this.commitBuckets[b]++
    this.commitTotals[0] += seconds
    this.commitTotals[1]++
  }
}

export interface CounterRow {
  account: number
  direction: number
  result: number
  packets: number
  amount: bigint
}

/** Every shard's rows summed per (account, direction, result): an account's figures over the node. */
export function sumCounterRows(blocks: SharedArrayBuffer[], accounts: number): CounterRow[] {
  const sums = new Map<number, CounterRow>()
  for (const sab of blocks) {
    for (const r of new CounterReader(sab, accounts).rows()) {
      const key = (r.account * DIRECTIONS.length + r.direction) * RESULTS.length + r.result
      const sum = sums.get(key)
      if (sum === undefined) sums.set(key, { ...r })
      else {
        sum.packets += r.packets
        sum.amount += r.amount
      }
    }
  }
  return [...sums.values()]
}

/** One account's rows over every shard (what GET /admin/accounts/:id shows), without reading the others'. */
export function sumCounterRowsOf(blocks: SharedArrayBuffer[], accounts: number, account: number): CounterRow[] {
  const sums: CounterRow[] = []
  for (const sab of blocks) {
    for (const r of new CounterReader(sab, accounts).rowsOf(account)) {
      const sum = sums.find((s) => s.direction === r.direction && s.result === r.result)
      if (sum === undefined) sums.push({ ...r })
      else {
        sum.packets += r.packets
        sum.amount += r.amount
      }
    }
  }
  return sums
}

/** The main thread's side: reads a shard's block when scraped. */
export class CounterReader extends CounterView {
  /** The cells of one account that have counted something. */
  rowsOf(account: number): CounterRow[] {
    const rows: CounterRow[] = []
    for (let direction = 0; direction < DIRECTIONS.length; direction++) {
      for (let result = 0; result < RESULTS.length; result++) {
        const i = this.cell(account, direction, result)
        if (this.packets[i] > 0) rows.push({ account, direction, result, packets: this.packets[i], amount: this.amounts[i] })
      }
    }
    return rows
  }

  /** Every cell that has counted something. */
  rows(): CounterRow[] {
    const rows: CounterRow[] = []
    for (let account = 0; account < this.accounts; account++) {
      for (let direction = 0; direction < DIRECTIONS.length; direction++) {
        for (let result = 0; result < RESULTS.length; result++) {
          const i = this.cell(account, direction, result)
          if (this.packets[i] > 0) rows.push({ account, direction, result, packets: this.packets[i], amount: this.amounts[i] })
        }
      }
    }
    return rows
  }

  /** Answers dropped, per account and reason (index into DROP_REASONS), where any were. */
  dropRows(): { account: number; reason: number; answers: number }[] {
    const rows: { account: number; reason: number; answers: number }[] = []
    for (let account = 0; account < this.accounts; account++) {
      for (let reason = 0; reason < SHARD_DROP_REASONS; reason++) {
        const answers = this.drops[account * SHARD_DROP_REASONS + reason]
        if (answers > 0) rows.push({ account, reason, answers })
      }
    }
    return rows
  }

  /** Non-cumulative counts per bucket (the last is above every bound), the sum in seconds, the count. */
  commits(): { buckets: number[]; seconds: number; count: number } {
    return { buckets: Array.from(this.commitBuckets), seconds: this.commitTotals[0], count: this.commitTotals[1] }
  }
}

export function ioCountersBytes(ioThreads: number, accounts: number): number {
  return 8 * ioThreads * (IO_COUNTS.length + accounts)
}

/** An I/O thread's counts (it writes its own row; the main thread reads them all). */
export class IoCounters {
  private readonly counts: Float64Array
  private readonly unknownAnswers: Float64Array

  constructor(sab: SharedArrayBuffer, private readonly io: number, ioThreads: number, accounts: number) {
    this.counts = new Float64Array(sab, 0, ioThreads * IO_COUNTS.length)
    this.unknownAnswers = new Float64Array(sab, 8 * ioThreads * IO_COUNTS.length, ioThreads * accounts)
    this.unknownAnswers = this.unknownAnswers.subarray(io * accounts, (io + 1) * accounts)
  }

  /** A BTP answer from `account` to a request this thread does not know (DROP_REASONS unknown_request). */
  unknownAnswer(account: number): void {
    this.unknownAnswers[account]++
  }

  /** Every thread's unknown answers, summed per account. */
  static readUnknownAnswers(sab: SharedArrayBuffer, ioThreads: number, accounts: number): Float64Array {
    const all = new Float64Array(sab, 8 * ioThreads * IO_COUNTS.length, ioThreads * accounts)
    const sums = new Float64Array(accounts)
    for (let t = 0; t < ioThreads; t++) for (let a = 0; a < accounts; a++) sums[a] += all[t * accounts + a]
    return sums
  }

  toShards(): void {
    this.counts[this.io * IO_COUNTS.length]++
  }

  fromShards(records: number): void {
    this.counts[this.io * IO_COUNTS.length + 1] += records
  }

  static read(sab: SharedArrayBuffer, thread: number): number[] {
    const counts = new Float64Array(sab, 0, (thread + 1) * IO_COUNTS.length)
    return IO_COUNTS.map((_, k) => counts[thread * IO_COUNTS.length + k])
  }
}
