// The accounts of the node by index, and the shard that owns each one. Every thread holds the
// same table: an account index means the same account on both sides of a ring. At start the
// indices follow the configuration's order; an account added while the node runs (admin API,
// reload) takes the next free index, and a deleted one keeps its index, marked not live, until
// the node restarts, so that a reply still on its way finds the account it was for. The main
// thread decides every change (control/ops/reconfigure.ts) and hands each thread the same slots.

import type { AccountConfig, Config } from './schema'

/** FNV-1a over the id: stable across runs and processes, so ownership survives a restart. */
function accountHash(id: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** The shard that owns an account; with 0 shards (inline) everything lives in "shard 0". */
export function shardOfAccount(id: string, shardCount: number): number {
  return shardCount <= 1 ? 0 : accountHash(id) % shardCount
}

/** The table as it crosses threads (structured clone): every slot's account, and whether it is live. */
export interface AccountSlots {
  readonly accounts: readonly AccountConfig[]
  readonly live: readonly boolean[]
}

/**
 * One slot's new account and liveness: what a change sends to every thread, so that a change
 * costs what it changes however many accounts the node has.
 */
export interface AccountChange {
  readonly index: number
  readonly account: AccountConfig
  readonly live: boolean
}

export class AccountTable {
  /** By index, up to `size`; a deleted account keeps its last config (see `live`). */
  get accounts(): readonly AccountConfig[] {
    return this.slotAccounts
  }
  /** Grows with every change taken (apply, applyChanges); see `lastChanged`. */
  version = 0
  /** The indices the newest change touched: a reader that saw `version - 1` needs only these. */
  lastChanged: readonly number[] = []
  /** This table's own array: tables of one thread must not share one, as changes are made in place. */
  private readonly slotAccounts: AccountConfig[] = []
  /** 1 for an account of the current config, 0 for one deleted while the node runs. */
  readonly live: Uint8Array
  readonly ownerShard: Int32Array
  /** Indices there is room for in this run: shared tables are sized for it (limits.maxAccounts). */
  readonly capacity: number
  private readonly indexById = new Map<string, number>()

  constructor(private readonly config: Config, slots: AccountSlots = { accounts: config.accounts, live: config.accounts.map(() => true) }) {
    this.capacity = config.maxAccounts
    this.live = new Uint8Array(this.capacity)
    this.ownerShard = new Int32Array(this.capacity)
    this.apply(slots)
  }

  /** Used indices, live or not. */
  get size(): number {
    return this.accounts.length
  }

  /** Takes the main thread's new slots; returns the indices whose account or liveness changed. */
  apply(slots: AccountSlots): number[] {
    if (slots.accounts.length > this.capacity) throw new Error(`${slots.accounts.length} accounts exceed limits.maxAccounts (${this.capacity})`)
    const changed: number[] = []
    slots.accounts.forEach((account, i) => {
      if (this.take(i, account, slots.live[i])) changed.push(i)
    })
    return this.changed(changed)
  }

  /** Takes the slots a change touched (AccountChange); returns the indices whose account or liveness changed. */
  applyChanges(changes: readonly AccountChange[]): number[] {
    const changed: number[] = []
    for (const { index, account, live } of changes) {
      if (index > this.size) throw new Error(`account index ${index} skips the next free one (${this.size})`)
      if (index >= this.capacity) throw new Error(`account index ${index} exceeds limits.maxAccounts (${this.capacity})`)
      if (this.take(index, account, live)) changed.push(index)
    }
    return this.changed(changed)
  }

  /** Sets one slot; false if it held that account, as live, already. */
  private take(i: number, account: AccountConfig, isLive: boolean): boolean {
    const before = this.slotAccounts[i]
    const live = isLive ? 1 : 0
    if (before !== undefined && before.id !== account.id) throw new Error(`account index ${i} changed from ${before.id} to ${account.id}`)
    if (before !== undefined && this.live[i] === live && sameAccount(before, account)) return false
    this.slotAccounts[i] = account
    this.live[i] = live
    this.indexById.set(account.id, i)
    this.ownerShard[i] = shardOfAccount(account.id, this.config.shards)
    return true
  }

  private changed(indices: number[]): number[] {
    this.version++
    this.lastChanged = indices
    return indices
  }

  /** The table as it is now, to hand to another thread. */
  slots(): AccountSlots {
    return { accounts: this.slotAccounts.slice(), live: Array.from(this.live.subarray(0, this.size), (l) => l === 1) }
  }

  /** The account at an index below `size`, live or deleted (its last config). */
  get(index: number): AccountConfig {
    return this.accounts[index]
  }

  /** Index of a live account, or -1 (a deleted one too is -1). */
  indexOfLive(id: string): number {
    const i = this.indexById.get(id)
    return i === undefined || this.live[i] === 0 ? -1 : i
  }

  /** Index of an account held at any time in this run, live or deleted, or -1. */
  indexOfAny(id: string): number {
    return this.indexById.get(id) ?? -1
  }

  isLive(index: number): boolean {
    return this.live[index] === 1
  }

  /** The address a child account is given by IL-DCP and routed at. */
  static childAddress(config: Config, account: AccountConfig): string {
    return `${config.ilpAddress}.${account.id}`
  }
}

/**
 * By value, nested objects included: a reload parses every block (settlement, payee) afresh, so
 * comparing them by reference would report an unchanged account as updated.
 */
export function sameAccount(a: AccountConfig, b: AccountConfig): boolean {
  return sameValue(a, b)
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true
  // A payee's secret.
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  return keys.every((k) => Object.hasOwn(b, k) && sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

/**
 * The slots a thread that starts later is given (a shard or I/O thread restarted): kept up to
 * date change by change, so a change copies nothing but what it changes.
 */
export class SlotsForNewThreads implements AccountSlots {
  readonly accounts: AccountConfig[]
  readonly live: boolean[]

  constructor(slots: AccountSlots) {
    this.accounts = slots.accounts.slice()
    this.live = slots.live.slice()
  }

  apply(changes: readonly AccountChange[]): void {
    for (const { index, account, live } of changes) {
      this.accounts[index] = account
      this.live[index] = live
    }
  }

  /** A copy to hand to a thread that starts (the pool may post it later, after more changes). */
  snapshot(): AccountSlots {
    return { accounts: this.accounts.slice(), live: this.live.slice() }
  }

  /** Every slot as a change: for threads that may have started with older slots. */
  everySlot(): AccountChange[] {
    return this.accounts.map((account, index) => ({ index, account, live: this.live[index] }))
  }
}

/**
 * The config as a worker thread is given it: its accounts come as slots (AccountSlots), so the
 * config keeps only the payees (the SPSP server's) and not the file it was read from. A hub's
 * 100,000 accounts would otherwise be cloned into every thread three times over.
 */
export function configForThreads(config: Config): Config {
  return Object.freeze({
    ...config,
    accounts: Object.freeze(config.accounts.filter((a) => a.payee !== null)),
    source: Object.freeze({ ...config.source, raw: null }),
  })
}
