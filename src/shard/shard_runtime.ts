// Builds a shard and its loop from the shared wiring: the same code for a worker thread and for
// the inline shard (SHARDS=0) on the main thread.

import type { Config } from '../config/schema'
import type { Logger } from '../log'
import { Doorbell } from '../ring/doorbell'
import { RingReader, RingWriter } from '../ring/ring'
import type { Store } from '../store/balance_store'
import { Shard } from './shard'
import { outputReserveBytes, ShardLoop } from './shard_loop'
import type { ShardWiring } from './shard_wiring'

export function createShardLoop(
  config: Config, wiring: ShardWiring, index: number, store: Store, routes: [string, number][], log: Logger, inline: boolean,
): ShardLoop {
  const n = wiring.shardCount
  const toMain = new RingWriter(wiring.shardToMain[index])
  const toShards = Array.from({ length: n }, (_, j) => (j === index ? null : new RingWriter(wiring.shardToShard[index][j]!)))
  const fromShards = Array.from({ length: n }, (_, j) => (j === index ? null : new RingReader(wiring.shardToShard[j][index]!)))
  const shard = new Shard({ config, shardIndex: index, shardCount: n, store, toMain, toShards, routes, log })
  return new ShardLoop({
    shard,
    fromMain: new RingReader(wiring.mainToShard[index]),
    toMain,
    fromShards,
    toShards,
    // Inline, the main thread runs the loop itself and needs no wake-ups.
    mainDoorbell: inline ? null : new Doorbell(wiring.mainDoorbell),
    shardDoorbells: wiring.doorbells.map((sab, j) => (j === index ? null : new Doorbell(sab))),
    outputReserveBytes: outputReserveBytes(config.maxFrameBytes),
    ilpAddress: config.ilpAddress,
    log,
  })
}
