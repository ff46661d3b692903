// Builds a shard and its loop from the shared wiring: the same code for a worker thread and for
// the inline shard (SHARDS=0) on the main thread.

import type { AccountSlots } from '../config/account_table'
import type { Config } from '../config/schema'
import type { Logger } from '../log'
import { Doorbell } from '../ring/doorbell'
import { LinkTable } from '../shared/link_table'
import { RingReader, RingWriter } from '../ring/ring'
import type { Wiring } from '../ring/wiring'
import type { Store } from '../store/balance_store'
import { Shard } from './shard'
import { StorageReserve } from '../store/storage_health'
import type { RateSnapshot } from './exchange'
import { outputReserveBytes, ShardLoop } from './shard_loop'

export function createShardLoop(
  config: Config, slots: AccountSlots, wiring: Wiring, links: SharedArrayBuffer, index: number, store: Store, routes: [string, number][], rates: RateSnapshot,
  log: Logger, inline: boolean,
  /** Where settlement ids come from (random by default; the simulation gives a seeded source). */
  settlementIds?: () => Uint8Array,
): ShardLoop {
  const n = wiring.shardCount
  const toIo = wiring.shardToIo[index].map((sab) => new RingWriter(sab))
  const toShards = Array.from({ length: n }, (_, j) => (j === index ? null : new RingWriter(wiring.shardToShard[index][j]!)))
  const fromShards = Array.from({ length: n }, (_, j) => (j === index ? null : new RingReader(wiring.shardToShard[j][index]!)))
  const linkTable = new LinkTable(links, config.maxAccounts, wiring.ioCount)
  const shard = new Shard({
    config, slots, shardIndex: index, shardCount: n, store, toIo, links: linkTable, toShards, routes, rates, log, counters: wiring.counters?.[index] ?? null,
    holds: wiring.holds[index],
    creditRoom: wiring.creditRoom,
    health: wiring.health,
    reserve: new StorageReserve(config.dataDir, config.storageReserveBytes),
    settlementIds,
  })
  return new ShardLoop({
    shard,
    fromIo: wiring.ioToShard.map((rings) => new RingReader(rings[index])),
    toIo,
    fromShards,
    toShards,
    ioDoorbells: inline ? null : wiring.ioDoorbells.map((d) => new Doorbell(d)),
    shardDoorbells: wiring.shardDoorbells.map((d, j) => (j === index ? null : new Doorbell(d))),
    inFlight: new Int32Array(wiring.inFlight),
    shardIndex: index,
    outputReserveBytes: outputReserveBytes(config.maxFrameBytes),
    ilpAddress: config.ilpAddress,
    log,
  })
}
