// A shard as a piscina task: piscina starts one worker thread per shard and runs `runShard` on
// it once; the task lasts as long as the shard. Its loop is synchronous: it drains, commits and
// publishes, and when there is nothing to do it blocks on its doorbell (ring/doorbell.ts; a worker
// may block; the main thread never does). Control messages (snapshots, requests, stop) arrive on
// a RequestPort (ring/request_port.ts), polled between turns, after a doorbell wake.
//
// An exception here ends the task with an error: a shard whose state or store failed must not
// keep forwarding money. The main thread's supervisor then restarts every shard from LMDB (as a
// restart of the process would), or stops the node if the shards had not started yet.

import type { MessagePort } from 'node:worker_threads'
import type { AccountChange, AccountSlots } from '../config/account_table'
import type { Config } from '../config/schema'
import type { AdjustmentEntry } from '../store/balance_store'
import type { RateSnapshot } from './exchange'
import { configureLog, logger, setLogSink } from '../log'
import { Doorbell } from '../ring/doorbell'
import { RequestPort } from '../ring/request_port'
import { LogRingWriter, type LogRing } from '../ring/log_ring'
import { openStore } from '../store/balance_store'
import { PendingTable } from './pending_table'
import { createShardLoop } from './shard_runtime'
import { nameThisThread } from '../thread_name'
import type { Wiring } from '../ring/wiring'

export interface ShardTask {
  config: Config
  /** The accounts now (the config's, or as changed since start by the admin API or a reload). */
  slots: AccountSlots
  wiring: Wiring
  links: SharedArrayBuffer
  routes: [string, number][]
  rates: RateSnapshot
  index: number
  control: MessagePort
  /** Where this thread's log lines go (the main thread writes them out). */
  logRing: LogRing
}

/** The main thread to a shard (it wakes the shard after each): snapshots, and requests answered between turns. */
export interface ToShard {
  requests:
    | { type: 'accounts'; changes: readonly AccountChange[] }
    | { type: 'adjust'; account: number; amount: bigint; key: string; reason: string }
  answers: { accounts: void; adjust: { entry: AdjustmentEntry; replayed: boolean } }
  notices:
    | { type: 'stop' }
    | { type: 'routes'; entries: [string, number][]; replace: boolean }
    | { type: 'rates'; snapshot: RateSnapshot }
}

/** A shard to the main thread: ready, once. */
export interface FromShard {
  requests: never
  answers: Record<string, never>
  notices: { type: 'ready' }
}

/** Longest sleep with nothing in flight; bounds how long a stop request can wait. */
const IDLE_SLEEP_MS = 1000

/**
 * After a turn with no input, the shard polls its rings for `limits.shardSpinMicros` before it
 * sleeps: a futex wake-up costs tens of microseconds on a small VM, and at low load the next
 * record (often the reply to the prepare just forwarded) tends to arrive within that time.
 */
function spinUntilInput(loop: { hasInput(): boolean }, microseconds: number): boolean {
  if (microseconds <= 0) return false
  const deadline = performance.now() + microseconds / 1000
  do {
    if (loop.hasInput()) return true
  } while (performance.now() < deadline)
  return false
}

export function runShard({ config, slots, wiring, links, routes, rates, index, control, logRing }: ShardTask): string {
  configureLog(config.logLevel, config.logFormat)
  // process.stdout would hold the lines until the loop below ended: it never yields to the event loop.
  setLogSink(new LogRingWriter(logRing).write)
  nameThisThread(`ilp-shard-${index}`)
  const log = logger(`shard ${index}`)
  const store = openStore(config.dataDir, config.durability)
  try {
    const loop = createShardLoop(config, slots, wiring, links, index, store, routes, rates, log, false)
    const doorbell = new Doorbell(wiring.shardDoorbells[index])
    let stop = false
    // New accounts that do not apply leave the shard in a state it must not forward from: the
    // port closes (nothing more is read or answered) and the error ends the thread, as an error
    // in a turn would; the main thread counts the accounts as applied (control/threads/threaded_data_plane.ts).
    let broken: unknown = null
    const port: RequestPort<FromShard, ToShard> = new RequestPort(control, {
      requests: {
        accounts: ({ changes }) => {
          try {
            loop.shard.applyAccounts(changes)
          } catch (err) {
            broken = err
            port.close('the shard failed')
          }
        },
        // A refused adjustment is answered with its error (nothing of it was written); the shard goes on.
        adjust: ({ account, amount, key, reason }) => loop.shard.adjust(account, amount, key, reason, Date.now()),
      },
      notices: {
        stop: () => { stop = true },
        routes: ({ entries, replace }) => loop.shard.setRoutes(entries, replace),
        rates: ({ snapshot }) => loop.shard.setRates(snapshot),
      },
    }, 'poll')
    port.notify({ type: 'ready' })
    for (;;) {
      const worked = loop.turn(Date.now())
      port.poll()
      if (broken !== null) throw broken
      if (stop) break
      if (worked) continue
      if (spinUntilInput(loop, config.shardSpinMicros)) continue
      const seen = doorbell.prepareToSleep()
      if (loop.hasInput()) {
        doorbell.cancelSleep()
        continue
      }
      doorbell.sleep(seen, loop.needsTicks() ? PendingTable.TICK_MS : IDLE_SLEEP_MS)
    }
    loop.turn(Date.now())
    return 'stopped'
  } finally {
    void store.root.close()
    control.close()
  }
}
