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

export class AccountTable {
  /** By index, up to `size`; a deleted account keeps its last config (see `live`). */
  accounts: readonly AccountConfig[]
  /** 1 for an account of the current config, 0 for one deleted while the node runs. */
  readonly live: Uint8Array
  readonly ownerShard: Int32Array
  /** Indices there is room for in this run: shared tables are sized for it (limits.maxAccounts). */
  readonly capacity: number
  private readonly indexById = new Map<string, number>()

  constructor(private readonly config: Config, slots: AccountSlots = { accounts: config.accounts, live: config.accounts.map(() => true) }) {
    this.capacity = config.maxAccounts
    this.accounts = []
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
      const before = this.accounts[i]
      const live = slots.live[i] ? 1 : 0
      if (before !== undefined && before.id !== account.id) throw new Error(`account index ${i} changed from ${before.id} to ${account.id}`)
      if (before !== undefined && this.live[i] === live && sameAccount(before, account)) return
      this.live[i] = live
      this.indexById.set(account.id, i)
      this.ownerShard[i] = shardOfAccount(account.id, this.config.shards)
      changed.push(i)
    })
    this.accounts = slots.accounts
    return changed
  }

  /** The table as it is now, to hand to another thread. */
  slots(): AccountSlots {
    return { accounts: this.accounts, live: Array.from(this.live.subarray(0, this.size), (l) => l === 1) }
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
