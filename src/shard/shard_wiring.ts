// The shared memory of a run, made once by the main thread and handed to every shard:
//   mainToShard[i], shardToMain[i]   one ring pair per shard
//   shardToShard[i][j]               credits from shard i to shard j (i ≠ j)
//   doorbells[i] per shard, mainDoorbell for the main thread

import type { Config } from '../config/schema'
import { createDoorbell } from '../ring/doorbell'
import { createRing } from '../ring/ring'

export interface ShardWiring {
  shardCount: number
  mainToShard: SharedArrayBuffer[]
  shardToMain: SharedArrayBuffer[]
  shardToShard: (SharedArrayBuffer | null)[][]
  doorbells: SharedArrayBuffer[]
  mainDoorbell: SharedArrayBuffer
}

/** Credits are small fixed records; their rings need far less room than the packet rings. */
const CREDIT_RING_BYTES = 256 * 1024

export function createWiring(config: Config): ShardWiring {
  const n = Math.max(1, config.shards)
  const wiring: ShardWiring = {
    shardCount: n,
    mainToShard: [],
    shardToMain: [],
    shardToShard: [],
    doorbells: [],
    mainDoorbell: createDoorbell(),
  }
  for (let i = 0; i < n; i++) {
    wiring.mainToShard.push(createRing(config.ringBytes))
    wiring.shardToMain.push(createRing(config.ringBytes))
    wiring.doorbells.push(createDoorbell())
    wiring.shardToShard.push(Array.from({ length: n }, (_, j) => (i === j ? null : createRing(CREDIT_RING_BYTES))))
  }
  return wiring
}
