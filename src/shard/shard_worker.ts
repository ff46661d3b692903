// A shard as a piscina task: piscina starts one worker thread per shard and runs `runShard` on
// it once; the task lasts as long as the shard. Its loop is synchronous: it drains, commits and
// publishes, and when there is nothing to do it blocks on its doorbell (ring/doorbell.ts; a worker
// may block; the main thread never does). Control messages (stop) arrive on a MessagePort and
// are polled with receiveMessageOnPort between turns, after a doorbell wake.
//
// An exception here ends the task with an error: a shard whose state or store failed must not
// keep forwarding money. The main thread's supervisor then restarts every shard from LMDB (as a
// restart of the process would), or stops the node if the shards had not started yet.

import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads'
import type { AccountSlots } from '../config/account_table'
import type { Config } from '../config/schema'
import type { AdjustmentEntry } from '../store/balance_store'
import type { Shard } from './shard'
import type { RateSnapshot } from './exchange'
import { configureLog, logger, setLogSink } from '../log'
import { Doorbell } from '../ring/doorbell'
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

/** Messages on a shard's control port (the main thread wakes the shard after posting one). */
export type ShardControl =
  | { type: 'stop' }
  | { type: 'routes'; entries: [string, number][] }
  | { type: 'rates'; snapshot: RateSnapshot }
  | { type: 'accounts'; id: number; slots: AccountSlots }
  | { type: 'adjust'; id: number; account: number; amount: bigint; key: string; reason: string }

/** What a shard posts back: ready once, then the answer to each numbered request. */
export type ShardAnswer =
  | { type: 'ready' }
  | { type: 'done'; id: number; adjustment?: { entry: AdjustmentEntry; replayed: boolean }; error?: string; errorCode?: string }

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

/**
 * A numbered request of the main thread, between turns. A failed adjustment is answered with
 * its error (nothing of it was written); the shard goes on.
 */
export function handleRequest(shard: Shard, m: Extract<ShardControl, { id: number }>): ShardAnswer {
  if (m.type === 'accounts') {
    shard.applyAccounts(m.slots)
    return { type: 'done', id: m.id }
  }
  try {
    return { type: 'done', id: m.id, adjustment: shard.adjust(m.account, m.amount, m.key, m.reason, Date.now()) }
  } catch (err) {
    const code = (err as { code?: unknown }).code
    return { type: 'done', id: m.id, error: (err as Error).message, errorCode: typeof code === 'string' ? code : undefined }
  }
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
    const answer = (a: ShardAnswer) => control.postMessage(a)
    answer({ type: 'ready' })
    for (;;) {
      const worked = loop.turn(Date.now())
      let stop = false
      for (let m = receiveMessageOnPort(control); m !== undefined; m = receiveMessageOnPort(control)) {
        const message = m.message as ShardControl
        if (message.type === 'stop') stop = true
        else if (message.type === 'routes') loop.shard.setRoutes(message.entries)
        else if (message.type === 'rates') loop.shard.setRates(message.snapshot)
        else answer(handleRequest(loop.shard, message))
      }
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
