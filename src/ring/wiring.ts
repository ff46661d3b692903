// The shared memory of a run, made by the main thread and handed to every I/O thread and shard.
// Packets cross threads only here (never by postMessage):
//
//   ioToShard[t][s]   prepares and next-hop replies from I/O thread t to shard s
//   shardToIo[s][t]   replies and forwarded prepares from shard s to I/O thread t
//   shardToShard[i][j] credits, and payments to payees, from shard i to shard j (i ≠ j)
//   inFlight[s]       Int32: the prepares shard s has forwarded and not yet seen answered,
//                     stored after each of its turns (the drain at shutdown waits for zero)
//   creditRoom        BigInt64 per account: how far its balance may still fall (credit_room.ts)
//   health            whether the node can write (store/storage_health.ts); kept across restarts
//   shardDoorbells[s], ioDoorbells[t]   one per consumer thread (ring/doorbell.ts); an I/O
//                     thread's keeps its pipe across restarts (WakeUps)
//
// Every ring has one writer thread and one reader thread (ring/ring.ts is single-producer,
// single-consumer), so no packet waits on a lock. A shard restart replaces all of it (fresh
// rings cannot hold half-read batches); the link table (shared/link_table.ts) is not part of it.

import type { Config } from '../config/schema'
import type { DoorbellWiring, WakeUps } from './doorbell'
import { holdsBytes } from '../shared/holds'
import { creditRoomBytes } from '../shared/credit_room'
import { createRing } from './ring'

export interface Wiring {
  ioCount: number
  shardCount: number
  ioToShard: SharedArrayBuffer[][]
  shardToIo: SharedArrayBuffer[][]
  shardToShard: (SharedArrayBuffer | null)[][]
  inFlight: SharedArrayBuffer
  /** Each shard's packet counters (packet_counters.ts), the same blocks across restarts; null with metrics off. */
  counters: SharedArrayBuffer[] | null
  /** Each shard's holds per account (shard/books.ts), for the admin API; fresh at each restart. */
  holds: SharedArrayBuffer[]
  /** Each account's room above its floor (credit_room.ts), fresh at each restart like the holds. */
  creditRoom: SharedArrayBuffer
  /** Whether the node can write (store/storage_health.ts), the same block across restarts. */
  health: SharedArrayBuffer
  shardDoorbells: DoorbellWiring[]
  ioDoorbells: DoorbellWiring[]
}

export function createWiring(config: Config, wakeUps: WakeUps, counters: SharedArrayBuffer[] | null, health: SharedArrayBuffer): Wiring {
  const shards = Math.max(1, config.shards) // the inline shard (SHARDS=0) is shard 0
  const io = config.ioThreads
  // limits.ringBytes per ring: the memory is touched only as far as the ring has been filled.
  const ringBytes = config.ringBytes
  return {
    ioCount: io,
    shardCount: shards,
    ioToShard: Array.from({ length: io }, () => Array.from({ length: shards }, () => createRing(ringBytes))),
    shardToIo: Array.from({ length: shards }, () => Array.from({ length: io }, () => createRing(ringBytes))),
    shardToShard: Array.from({ length: shards }, (_, i) => Array.from({ length: shards }, (_, j) => (i === j ? null : createRing(ringBytes)))),
    inFlight: new SharedArrayBuffer(4 * shards),
    counters,
    holds: Array.from({ length: shards }, () => new SharedArrayBuffer(holdsBytes(config.maxAccounts))),
    creditRoom: new SharedArrayBuffer(creditRoomBytes(config.maxAccounts)),
    health,
    shardDoorbells: Array.from({ length: shards }, () => wakeUps.shardDoorbell()),
    ioDoorbells: Array.from({ length: io }, (_, t) => wakeUps.ioDoorbell(t)),
  }
}
