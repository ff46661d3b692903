// The data plane as the main thread drives it: the shards (DataPlane) and the I/O side (IoSide),
// each with one implementation on the main thread and one on worker threads. control/threads/layout.ts
// chooses them once, from SHARDS and IO_THREADS; node.ts only assembles what it was given.
//
//   SHARDS=0       InlineDataPlane (control/threads/inline_data_plane.ts): the one shard on the main thread
//   SHARDS>0       ThreadedDataPlane (control/threads/threaded_data_plane.ts): a worker thread per shard
//   IO_THREADS=1   MainThreadIo (control/threads/inline_data_plane.ts): the sockets on the main thread
//   IO_THREADS>1   IoThreads (control/threads/io_threads.ts): a worker thread per I/O thread

import type { AccountChange } from '../../config/account_table'
import type { Config } from '../../config/schema'
import { ringUsedBytes } from '../../ring/ring'
import { shardCountersBytes } from '../../shared/packet_counters'
import type { Wiring } from '../../ring/wiring'
import type { RateSnapshot } from '../../shard/exchange'
import type { AdjustmentEntry } from '../../store/balance_store'

export interface DataPlane {
  /** The rings of the current shards (the I/O threads start on them). */
  currentWiring(): Wiring
  /** Restarts after a thread died, since start. */
  readonly restarts: number
  start(routes: [string, number][], rates: RateSnapshot): Promise<void>
  /** A thread of the data plane died: restart the shards from LMDB (or stop the node, if they cannot be). */
  restart(reason: string): Promise<void>
  /** Prepares taken and not yet answered, plus the bytes still in rings: zero once idle. */
  inFlight(): number
  /** The routes that changed (account -1: none), or with `replace` a whole table, for every shard; each takes them between batches. */
  setRoutes(entries: [string, number][], replace: boolean): void
  /** New exchange rates for every shard (control/rates/rate_feed.ts), as setRoutes does routes. */
  setRates(snapshot: RateSnapshot): void
  /** Every shard takes the new accounts between two turns; resolves when all have. */
  applyAccounts(changes: readonly AccountChange[]): Promise<void>
  /**
   * An operator's balance adjustment, made by the shard that owns the account (Shard.adjust);
   * rejects with the shard's StorageUnavailableError or AdjustmentOutOfRangeError as thrown.
   */
  adjust(owner: number, account: number, amount: bigint, key: string, reason: string): Promise<{ entry: AdjustmentEntry; replayed: boolean }>
  /** Fault injection for tests: ends shard `index`'s thread as a crash would. */
  terminateShard(index: number): Promise<void>
  stop(): Promise<void>
}

/** Every I/O thread, wherever it runs. */
export interface IoSide {
  /** The shards are going away: stop using their rings and answer everything waiting on them (T00). */
  detach(): void
  /** New shards run on `wiring`: take its rings. */
  attach(wiring: Wiring): void
  /** Takes connections on the node's port (config.port; 0: a free one) on `wiring`; resolves with the port. */
  listen(wiring: Wiring): Promise<number>
  /** Every I/O thread takes the new accounts and closes the links of those in `relink`. */
  applyAccounts(changes: readonly AccountChange[], relink: number[]): Promise<void>
  /** Sends a control-plane prepare (CCP) over `account`'s link and resolves with the answer. */
  sendControl(account: number, prepare: Uint8Array, timeoutMs: number): Promise<Uint8Array>
  /** Stops taking connections and prepares (IoFront.drain). */
  drain(): void
  /** Fault injection for tests: an I/O worker thread fails as a bug in it would. */
  crash(index: number): void
  /** Closes every socket (and ends the threads). */
  stop(): Promise<void>
}

/**
 * Each shard's packet counters (shared/packet_counters.ts); null with metrics off. They outlive the
 * shards: a restart goes on counting where the dead shard stopped.
 */
export function shardCounters(config: Config): SharedArrayBuffer[] | null {
  if (!config.metrics.enabled) return null
  return Array.from({ length: Math.max(1, config.shards) }, () => new SharedArrayBuffer(shardCountersBytes(config.maxAccounts)))
}

/** DataPlane.inFlight over `w`: the shards' counts of prepares taken, and every ring's bytes. */
export function inFlightOn(w: Wiring): number {
  let n = 0
  const counts = new Int32Array(w.inFlight)
  for (let s = 0; s < w.shardCount; s++) n += Atomics.load(counts, s)
  for (const rings of [...w.ioToShard, ...w.shardToIo, ...w.shardToShard]) for (const sab of rings) if (sab !== null) n += ringUsedBytes(sab)
  return n
}
