// The one place that reads the thread layout (SHARDS, IO_THREADS): it picks the I/O side and the
// shards' data plane (control/threads/data_plane.ts) once, at start. The rest of the node talks to them
// through their interfaces, whichever they are.

import type { Config } from '../../config/schema'
import { IoFront, type ControlPlane } from '../../io/io_front'
import type { UwsModule } from '../../io/uws'
import { logger } from '../../log'
import { nativeWake, nativeWakeUnavailable } from '../../ring/native_wake'
import type { Store } from '../../store/balance_store'
import type { DataPlane, IoSide } from './data_plane'
import { InlineDataPlane, MainThreadIo } from './inline_data_plane'
import { IoThreads } from './io_threads'
import { ThreadedDataPlane } from './threaded_data_plane'

/** What both sides share, made by node.ts before either. */
export interface LayoutParts {
  config: Config
  store: Store
  uws: UwsModule
  /** The link table (shared/link_table.ts), whether each HTTP peer answers (shared/peer_reach.ts), the shared limits, the I/O counters. */
  links: SharedArrayBuffer
  reach: SharedArrayBuffer
  limits: SharedArrayBuffer
  ioCounters: SharedArrayBuffer | null
  /** Whether the node can write (store/storage_health.ts). */
  health: SharedArrayBuffer
  /** What the I/O side asks of the main thread. */
  plane: ControlPlane
  /** Stops the node (its data plane cannot go on). */
  fatal: (reason: string) => void
}

export function chooseLayout(p: LayoutParts): { io: IoSide; shards: DataPlane } {
  const { config, store, links, health, fatal } = p
  const native = config.nativeWake && nativeWake !== null
  const wakeUps = native ? 'native' : 'atomics'
  // Sockets on the main thread (IO_THREADS=1), or on I/O worker threads.
  const front = config.ioThreads === 1 ? new IoFront(config, 0, links, p.reach, p.limits, p.ioCounters, store, p.uws, p.plane) : null
  const io = front !== null
    ? new MainThreadIo(config, front)
    : new IoThreads(config, links, p.reach, p.limits, p.ioCounters, p.plane, async (reason) => {
      // An I/O thread died: its requests and holds died with it, so the data plane restarts from
      // LMDB, and its replacement starts on the new rings.
      await shards.restart(reason)
      return shards.currentWiring()
    }, fatal, logger('io'))
  // The one shard on the main thread (SHARDS=0; it runs in the main thread's turns, so the
  // sockets must be there too), or shard threads.
  let shards: DataPlane
  if (config.shards === 0) {
    if (front === null) throw new Error('the inline shard needs the I/O port of the main thread')
    shards = new InlineDataPlane(config, store, links, front.port, fatal, logger('shards'), wakeUps, health)
  } else {
    if (!native) {
      logger('node').warn('native wake-ups unavailable: threads wake each other through Atomics, which costs more per wake-up (run npm run build with a C compiler)', {
        reason: config.nativeWake ? nativeWakeUnavailable : 'turned off by ILP_NODE_NATIVE_WAKE=0',
      })
    }
    shards = new ThreadedDataPlane(config, store, links, io, fatal, logger('shards'), wakeUps, health)
  }
  return { io, shards }
}
