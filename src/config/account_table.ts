// The accounts of the node, numbered in configuration order, and the shard that owns each one.
// Main and every shard build the same table from the same config, so an account index means the
// same account on both sides of a ring.

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

export class AccountTable {
  readonly accounts: readonly AccountConfig[]
  readonly ownerShard: Int32Array
  private readonly indexById = new Map<string, number>()

  constructor(config: Config) {
    this.accounts = config.accounts
    this.ownerShard = new Int32Array(config.accounts.length)
    config.accounts.forEach((account, i) => {
      this.indexById.set(account.id, i)
      this.ownerShard[i] = shardOfAccount(account.id, config.shards)
    })
  }

  get size(): number {
    return this.accounts.length
  }

  indexOf(id: string): number {
    return this.indexById.get(id) ?? -1
  }

  /** The address a child account is given by IL-DCP and routed at. */
  static childAddress(config: Config, account: AccountConfig): string {
    return `${config.ilpAddress}.${account.id}`
  }
}
