// Exchange between accounts' assets, with the node's fee: what the next hop gets for a prepare.
//
//   destination = floor(amount × rate(to) / rate(from) × 10^(scale(to) − scale(from)) × (1 − spread))
//
// rate(X) is units of asset X per unit of the rate source's base asset; spread is the sending
// account's (accounts.<id>.spread) or the node's. Every factor is an exact fraction of bigints
// (codec/decimal.ts), so the one rounding is the floor at the end, in the node's favour. For a
// pair of accounts the factor is worked out once and kept until the rates or the accounts
// change, so a prepare costs one map lookup and, unless the pair is same-asset with no fee,
// one multiplication and one division.
//
// The rates arrive as snapshots from the main thread's rate feed (control/rates/rate_feed.ts), as the
// routing table does; a snapshot of fetched rates carries when they were fetched, and a pair
// that needs them is refused once they are older than rates.maxAgeMs.

import { divide, multiply, parseDecimal, reduce, type Fraction } from '../codec/decimal'
import { UINT64_MAX } from '../codec/oer'
import type { AccountTable } from '../config/account_table'
import type { Config, RateBackend } from '../config/schema'

/** The rates as the feed has them now: what the shards convert with, and what the admin API shows. */
export interface RateSnapshot {
  readonly backend: RateBackend
  /** Where the rates come from: "config", or the URL they are fetched from. */
  readonly source: string
  readonly base: string | null
  /** Units of each asset code per unit of the base, as decimal text. */
  readonly rates: Readonly<Record<string, string>>
  /** When the rates were last fetched (ms since the epoch); 0: not yet. */
  readonly fetchedAtMs: number
  /** Fetched rates older than this are stale; null: the rates never go stale (config). */
  readonly maxAgeMs: number | null
  /** ecb: the day the rates are for, as published. */
  readonly day: string | null
  /** Why the last fetch failed; null when it did not. */
  readonly lastError: string | null
  /** The node's spread (config `spread`), decimal text. */
  readonly spread: string
}

/** The rates as the config gives them: all of them (one-to-one, static), or none yet (ecb). */
export function configuredRates(config: Config, nowMs: number): RateSnapshot {
  const r = config.rates
  return Object.freeze({
    backend: r.backend,
    source: r.backend === 'ecb' ? r.url! : 'config',
    base: r.base,
    rates: r.table,
    fetchedAtMs: r.backend === 'ecb' ? 0 : nowMs,
    maxAgeMs: r.maxAgeMs,
    day: null,
    lastError: null,
    spread: config.spread,
  })
}

/** convert()'s answers that are not an amount. */
export const NO_RATE = -1n
export const STALE_RATE = -2n
export const TOO_LARGE = -3n

const enum PairKind {
  /** Same asset and scale, no fee: the amount as it is. */
  Same,
  /** amount × num / den, with rates that never go stale (or none needed). */
  Fixed,
  /** amount × num / den, with fetched rates that must be fresh. */
  Fetched,
  NoRate,
}

interface Pair {
  readonly kind: PairKind
  readonly num: bigint
  readonly den: bigint
}

const ONE: Fraction = { num: 1n, den: 1n }

export class Exchange {
  private readonly pairs = new Map<number, Pair>()
  /** The last pair converted (traffic comes in runs of one sender to one next hop): no lookup. */
  private lastKey = -1
  private lastPair: Pair | null = null
  private snapshot!: RateSnapshot
  private rates = new Map<string, Fraction>()
  private spread: Fraction = ONE

  constructor(private readonly accounts: AccountTable, snapshot: RateSnapshot) {
    this.setRates(snapshot)
  }

  setRates(snapshot: RateSnapshot): void {
    this.snapshot = snapshot
    this.rates = new Map()
    for (const [code, text] of Object.entries(snapshot.rates)) {
      const f = parseDecimal(text)
      if (f !== null && f.num > 0n) this.rates.set(code, f)
    }
    this.spread = keptShare(snapshot.spread)
    this.accountsChanged()
  }

  /** An account's asset or spread may have changed (admin API, reload). */
  accountsChanged(): void {
    this.pairs.clear()
    this.lastKey = -1
    this.lastPair = null
  }

  /** What `to` gets for `amount` from `from`: an amount, or NO_RATE, STALE_RATE or TOO_LARGE. */
  convert(amount: bigint, from: number, to: number, nowMs: number): bigint {
    const key = from * this.accounts.capacity + to
    let pair = key === this.lastKey ? this.lastPair! : this.pairs.get(key)
    if (pair === undefined) {
      pair = this.pairOf(from, to)
      this.pairs.set(key, pair)
    }
    this.lastKey = key
    this.lastPair = pair
    if (pair.kind === PairKind.Same) return amount
    if (pair.kind === PairKind.NoRate) return NO_RATE
    if (pair.kind === PairKind.Fetched && this.isStale(nowMs)) return STALE_RATE
    const converted = (amount * pair.num) / pair.den
    return converted > UINT64_MAX ? TOO_LARGE : converted
  }

  /** The largest amount from `from` whose conversion to `to` still fits in 64 bits. */
  largestAmount(from: number, to: number): bigint {
    const pair = this.pairOf(from, to)
    if (pair.num === 0n) return UINT64_MAX
    const largest = ((UINT64_MAX + 1n) * pair.den - 1n) / pair.num
    return largest > UINT64_MAX ? UINT64_MAX : largest
  }

  /** Why convert() answered `result`, for the reject's message (not on the hot path). */
  explain(result: bigint, from: number, to: number, nowMs: number): string {
    const a = this.accounts.get(from)
    const b = this.accounts.get(to)
    const s = this.snapshot
    if (result === NO_RATE) {
      if (s.backend === 'one-to-one') return `no exchange from ${a.assetCode} to ${b.assetCode}: rates.backend one-to-one trades an asset only for itself`
      const missing = this.rates.has(a.assetCode) ? b.assetCode : a.assetCode
      return `the node does not trade ${missing} (no ${s.backend} rate for it)`
    }
    if (result === STALE_RATE) {
      const why = s.lastError === null ? '' : `; last fetch: ${s.lastError}`
      if (s.fetchedAtMs === 0) return `exchange rates from ${s.backend} are not loaded yet${why}`
      return `exchange rates from ${s.backend} are stale: fetched ${((nowMs - s.fetchedAtMs) / 1000).toFixed(1)} s ago, rates.maxAgeMs is ${s.maxAgeMs}${why}`
    }
    return 'the amount converted for the next hop exceeds 64 bits'
  }

  private isStale(nowMs: number): boolean {
    const s = this.snapshot
    return s.fetchedAtMs === 0 || nowMs - s.fetchedAtMs > s.maxAgeMs!
  }

  private pairOf(from: number, to: number): Pair {
    const a = this.accounts.get(from)
    const b = this.accounts.get(to)
    const kept = a.spread === null ? this.spread : keptShare(a.spread)
    const scale = b.assetScale >= a.assetScale ? { num: 10n ** BigInt(b.assetScale - a.assetScale), den: 1n } : { num: 1n, den: 10n ** BigInt(a.assetScale - b.assetScale) }
    if (a.assetCode === b.assetCode) {
      if (a.assetScale === b.assetScale && kept.num === kept.den) return { kind: PairKind.Same, num: 1n, den: 1n }
      const f = multiply(scale, kept)
      return { kind: PairKind.Fixed, num: f.num, den: f.den }
    }
    const rateFrom = this.rates.get(a.assetCode)
    const rateTo = this.rates.get(b.assetCode)
    if (this.snapshot.backend === 'one-to-one' || rateFrom === undefined || rateTo === undefined) return { kind: PairKind.NoRate, num: 0n, den: 1n }
    const f = multiply(multiply(divide(rateTo, rateFrom), scale), kept)
    return { kind: this.snapshot.maxAgeMs === null ? PairKind.Fixed : PairKind.Fetched, num: f.num, den: f.den }
  }
}

/** 1 − spread: the share of a packet's value the next hop gets. */
function keptShare(spread: string): Fraction {
  const f = parseDecimal(spread) ?? { num: 0n, den: 1n }
  return reduce(f.den - f.num, f.den)
}
