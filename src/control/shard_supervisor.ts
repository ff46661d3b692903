// Starts the shards, and restarts them all from LMDB when one dies. Shards run as piscina tasks,
// one long task per worker thread (shard/shard_worker.ts), or inline on the main thread for
// SHARDS=0 (the same loop, run in a setImmediate turn after the socket callbacks that fed it).
// The I/O threads reach the shards through their own ports (io/shard_port.ts); the supervisor
// only hands them rings, and tells them when the rings are replaced.

import { join } from 'node:path'
import { MessageChannel, type MessagePort } from 'node:worker_threads'
import type Piscina from 'piscina'
import { threadPerTaskPool } from './thread_pool'
import { ShardLogs } from './shard_logs'
import { shardOfAccount, type AccountSlots } from '../config/account_table'
import type { Config } from '../config/schema'
import type { ShardPort } from '../io/shard_port'
import { errorFields, errorLine, type Logger } from '../log'
import { Doorbell, WakeUps } from '../ring/doorbell'
import { createWiring, type Wiring } from '../ring/wiring'
import { ringUsedBytes } from '../ring/ring'
import { shardCountersBytes } from '../ring/packet_counters'
import { recoverOnStart, type AdjustmentEntry, type Store } from '../store/balance_store'
import { PendingTable } from '../shard/pending_table'
import type { RateSnapshot } from '../shard/exchange'
import type { ShardLoop } from '../shard/shard_loop'
import { createShardLoop } from '../shard/shard_runtime'
import type { ShardAnswer, ShardControl, ShardTask } from '../shard/shard_worker'
import { oneLine, StorageHealth, StorageUnavailableError } from '../store/storage_health'
import { AdjustmentOutOfRangeError, type Shard } from '../shard/shard'

/** Restarts that follow the last one within this window wait first: RESTART_DELAY_MS, doubling up to the maximum. */
const RESTART_WINDOW_MS = 60_000
const RESTART_DELAY_MS = 1000
const RESTART_DELAY_MAX_MS = 60_000

/** The I/O side as the supervisor sees it: every I/O thread, wherever it runs. */
export interface IoSide {
  /** The shards are going away: stop using their rings and answer everything waiting on them (T00). */
  detach(): void
  /** New shards run on `wiring`: take its rings. */
  attach(wiring: Wiring): void
}

export class ShardSupervisor {
  private wiring: Wiring
  private readonly wakeUps: WakeUps
  /** Each shard's packet counters (ring/packet_counters.ts); null with metrics off. */
  private readonly counters: SharedArrayBuffer[] | null
  /** The shard threads' log lines, relayed by this thread; null for the inline shard, which writes its own. */
  private readonly logs: ShardLogs | null
  private pool: Piscina | null = null
  private tasks: { done: Promise<unknown>; control: MessagePort }[] = []
  private inline: ShardLoop | null = null
  private inlineScheduled = false
  private inlineTicker: NodeJS.Timeout | null = null
  private stopping = false
  private restartingNow = false
  /** Resolves when the restart under way has ended (its shards run, or the node is stopping). */
  private restartDone: Promise<void> = Promise.resolve()
  /** A restart failed: the node is stopping itself, and nothing more is asked of the shards. */
  private restartFailed = false
  private routes: [string, number][] = []
  private rates!: RateSnapshot
  /** The accounts the shards run with (control/reconfigure.ts changes them while they run). */
  private slots: AccountSlots
  private nextRequestId = 0
  /** Numbered requests to the shard workers, until each answers (ShardAnswer 'done'). */
  private readonly requests = new Map<number, { resolve: (a: Extract<ShardAnswer, { type: 'done' }>) => void; reject: (e: Error) => void; accounts: boolean }>()
  private incarnation = 0
  /** The first start completed (later deaths restart the shards; earlier ones stop the node). */
  private started = false
  /** Restarts after a thread died, since start. */
  restarts = 0
  private readonly health: StorageHealth
  private lastRestartAtMs = -Infinity
  private restartDelayMs = 0

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly links: SharedArrayBuffer,
    private readonly io: IoSide,
    /** The main thread's port when SHARDS=0 (the inline shard needs IO_THREADS=1). */
    private readonly inlinePort: ShardPort | null,
    private readonly fatal: (reason: string) => void,
    private readonly log: Logger,
    /** How threads wake each other this run (ring/doorbell.ts). */
    wakeUps: 'native' | 'atomics',
    /** Whether the node can write (store/storage_health.ts), shared with every thread. */
    health: SharedArrayBuffer,
  ) {
    // The inline shard (SHARDS=0) is never woken: it runs in the main thread's turns.
    this.wakeUps = new WakeUps(config.shards === 0 ? 0 : config.ioThreads, wakeUps === 'native')
    // Counters outlive the shards: a restart goes on counting where the dead shard stopped.
    this.counters = config.metrics.enabled
      ? Array.from({ length: Math.max(1, config.shards) }, () => new SharedArrayBuffer(shardCountersBytes(config.maxAccounts)))
      : null
    this.logs = config.shards === 0 ? null : new ShardLogs(config.shards)
    this.health = new StorageHealth(health)
    this.wiring = createWiring(config, this.wakeUps, this.counters, health)
    this.slots = { accounts: config.accounts, live: config.accounts.map(() => true) }
  }

  /** The rings of the current shards (the I/O threads start on them). */
  currentWiring(): Wiring {
    return this.wiring
  }

  async start(routes: [string, number][], rates: RateSnapshot): Promise<void> {
    this.routes = routes
    this.rates = rates
    if (this.config.shards === 0) {
      if (this.inlinePort === null) throw new Error('the inline shard needs the I/O port of the main thread')
      this.inline = createShardLoop(this.config, this.slots, this.wiring, this.links, 0, this.store, routes, rates, this.log, true)
      this.inlinePort.attach(this.wiring, () => this.scheduleInline())
      this.inlineTicker = setInterval(() => this.scheduleInline(), PendingTable.TICK_MS)
      this.inlineTicker.unref()
      this.started = true
      return
    }
    await this.startWorkers(routes)
    this.io.attach(this.wiring)
  }

  private async startWorkers(routes: [string, number][]): Promise<void> {
    const n = this.config.shards
    const pool = threadPerTaskPool(join(__dirname, '..', 'shard', 'shard_worker.js'), 'runShard', n)
    this.pool = pool
    this.tasks = []
    const incarnation = this.incarnation
    const ready: Promise<void>[] = []
    for (let index = 0; index < n; index++) {
      const { port1, port2 } = new MessageChannel()
      const task: ShardTask = { config: this.config, slots: this.slots, wiring: this.wiring, links: this.links, routes, rates: this.rates, index, control: port2, logRing: this.logs!.rings[index] }
      const done = pool.run(task, { transferList: [port2] })
      this.tasks.push({ done, control: port1 })
      ready.push(new Promise((resolve, reject) => {
        port1.on('message', (answer: ShardAnswer) => {
          if (answer.type === 'ready') return resolve()
          const request = this.requests.get(answer.id)
          this.requests.delete(answer.id)
          request?.resolve(answer)
        })
        done.then(() => reject(new Error(`shard ${index} ended during start-up`)), reject)
      }))
      const died = (reason: string) => {
        if (this.stopping || this.incarnation !== incarnation) return
        if (!this.started) return this.fatal(reason)
        void this.restart(reason)
      }
      done.then(
        () => died(`shard ${index} ended unexpectedly`),
        (err: Error) => {
          if (!this.stopping && this.incarnation === incarnation) this.log.error('shard worker died', { shard: index, ...errorFields(err) })
          died(`shard ${index} failed: ${errorLine(err)}`)
        },
      )
    }
    await Promise.all(ready)
    this.started = true
  }

  /**
   * A thread of the data plane died (a shard, or an I/O thread: `reason` says which). Its
   * in-memory state (holds, prepares in flight, the requests it was answering) died with it, and
   * the other shards' views of its accounts can no longer be trusted, so every shard is
   * restarted from LMDB, as after a crash of the process: the I/O threads answer everything that
   * was waiting on the shards (T00), the records are folded and the in-flight journal released
   * (recoverOnStart), and new shards start on fresh rings, which cannot hold half-read batches of
   * the old ones. Committed balances are untouched: a shard publishes nothing before its commit.
   */
  async restart(reason: string): Promise<void> {
    if (this.restartingNow || this.stopping) return
    if (this.inline !== null) return this.fatal(reason) // SHARDS=0: the main thread itself failed
    this.restartingNow = true
    let done: () => void = () => {}
    this.restartDone = new Promise((resolve) => { done = resolve })
    this.incarnation++
    this.restarts++
    const delayMs = this.nextRestartDelay()
    this.log.error('a thread of the data plane died; restarting every shard from LMDB', { reason, restart: this.restarts, delayMs })
    this.health.shardsDown()
    this.io.detach()
    // What was asked of the dead shards is answered now: an adjustment committed or did not (its
    // key tells on a retry); the new shards start with the newest accounts anyway.
    this.settleRequests('the shards restarted')
    await this.pool?.destroy()
    this.logs?.relayLeftovers()
    for (const { control } of this.tasks) control.close()
    try {
      await this.recoverForRestart(delayMs)
      if (this.stopping) return
      this.wiring = createWiring(this.config, this.wakeUps, this.counters, this.wiring.health)
      await this.startWorkers(this.routes)
      this.io.attach(this.wiring)
      this.health.shardsUp()
      this.log.info('shards restarted', { restart: this.restarts })
    } catch (err) {
      this.restartFailed = true
      this.settleRequests('the shards could not be restarted')
      this.fatal(`shards could not be restarted: ${errorLine(err)}`)
    } finally {
      this.restartingNow = false
      done()
    }
  }

  /**
   * No restart loop: a restart within RESTART_WINDOW_MS of the last one waits first, twice as long
   * each time, up to RESTART_DELAY_MAX_MS (a shard that dies at once again is restarted at most
   * once a minute), while /health says the shards are restarting.
   */
  private nextRestartDelay(): number {
    const nowMs = Date.now()
    this.restartDelayMs = nowMs - this.lastRestartAtMs > RESTART_WINDOW_MS ? 0 : Math.min(RESTART_DELAY_MAX_MS, Math.max(RESTART_DELAY_MS, 2 * this.restartDelayMs))
    this.lastRestartAtMs = nowMs + this.restartDelayMs
    return this.restartDelayMs
  }

  /**
   * Waits `delayMs`, then folds the records and releases the journal's holds (recoverOnStart), a
   * write: on a storage that fails it is tried again, backed off, until it succeeds or the node
   * stops, rather than the node dying of it.
   */
  private async recoverForRestart(delayMs: number): Promise<void> {
    let waitMs = delayMs
    for (;;) {
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs))
      if (this.stopping) return
      try {
        const report = recoverOnStart(this.store, (id) => shardOfAccount(id, this.config.shards))
        this.log.warn('shards restarting: holds of prepares in flight released', { holds: report.releasedHolds })
        return
      } catch (err) {
        waitMs = Math.min(RESTART_DELAY_MAX_MS, Math.max(RESTART_DELAY_MS, 2 * waitMs))
        this.log.error('shards cannot restart yet: the store cannot be written; trying again', { error: oneLine(err), retryMs: waitMs })
      }
    }
  }

  /** Fault injection for tests: terminates shard `index`'s worker thread, as a crash would. */
  async terminateShard(index: number): Promise<void> {
    const thread = this.pool?.threads[index]
    if (thread === undefined) throw new Error(`no shard worker ${index}`)
    await thread.terminate()
  }

  // Inline shard (SHARDS=0): a turn runs in setImmediate after the socket callbacks that fed it,
  // so a burst of messages becomes one batch and one commit.
  private scheduleInline(): void {
    if (this.inlineScheduled || this.inline === null) return
    this.inlineScheduled = true
    setImmediate(this.runInline)
  }

  private readonly runInline = (): void => {
    this.inlineScheduled = false
    if (this.stopping || this.inline === null) return
    this.inline.turn(Date.now())
    this.inlinePort!.drain()
    this.inlinePort!.flushOverflow()
    if (this.inline.hasInput()) this.scheduleInline()
  }

  /**
   * Prepares the shards have taken and not yet answered, plus every record still in a ring
   * (bytes): zero once the data plane is idle. Read while the node drains for shutdown.
   */
  inFlight(): number {
    const w = this.wiring
    let n = 0
    const counts = new Int32Array(w.inFlight)
    for (let s = 0; s < w.shardCount; s++) n += Atomics.load(counts, s)
    for (const rings of [...w.ioToShard, ...w.shardToIo, ...w.shardToShard]) for (const sab of rings) if (sab !== null) n += ringUsedBytes(sab)
    return n
  }

  /** Hands every shard a new routing table (a snapshot; each swaps it in between batches). */
  setRoutes(entries: [string, number][]): void {
    this.routes = entries
    this.toEveryShard(() => this.setRoutes(this.routes), (shard) => shard.setRoutes(entries), { type: 'routes', entries })
  }

  /** Hands every shard new exchange rates (control/rate_feed.ts), as setRoutes does routes. */
  setRates(snapshot: RateSnapshot): void {
    this.rates = snapshot
    this.toEveryShard(() => this.setRates(this.rates), (shard) => shard.setRates(snapshot), { type: 'rates', snapshot })
  }

  /**
   * A snapshot for every shard: posted to the workers (each takes it between batches), or given to
   * the inline shard. During a restart it waits: the restarted shards may have been given an older
   * one, so `again` hands them the newest once they run.
   */
  private toEveryShard(again: () => void, inline: (shard: Shard) => void, message: ShardControl): void {
    if (this.restartingNow) return void this.restartDone.then(again)
    if (this.inline !== null) return inline(this.inline.shard)
    this.tasks.forEach(({ control }) => control.postMessage(message))
    this.wakeShards()
  }

  /**
   * Every shard takes the new accounts between two of its turns; resolves when all have (a
   * prepare after that sees them). Shards started later start with them.
   */
  async applyAccounts(slots: AccountSlots): Promise<void> {
    this.slots = slots
    if (this.inline !== null) return this.inline.shard.applyAccounts(slots)
    // As for routes: shards that started during this call get the newest accounts once they run.
    if (this.restartingNow) return this.restartDone.then(() => this.applyAccounts(this.slots))
    if (this.restartFailed || this.stopping) return
    await Promise.all(this.tasks.map((_, shard) => this.request(shard, (id) => ({ type: 'accounts', id, slots }))))
  }

  /** An operator's balance adjustment, made by the shard that owns the account (Shard.adjust). */
  async adjust(owner: number, account: number, amount: bigint, key: string, reason: string): Promise<{ entry: AdjustmentEntry; replayed: boolean }> {
    if (this.inline !== null) return this.inline.shard.adjust(account, amount, key, reason, Date.now())
    if (this.restartingNow || this.restartFailed || this.stopping) throw new Error('the shards are restarting or stopped')
    const answer = await this.request(owner, (id) => ({ type: 'adjust', id, account, amount, key, reason }))
    if (answer.adjustment === undefined) throw adjustmentError(answer.error ?? 'the shard did not adjust the balance', answer.errorCode)
    return answer.adjustment
  }

  private request(shard: number, message: (id: number) => ShardControl): Promise<Extract<ShardAnswer, { type: 'done' }>> {
    const id = this.nextRequestId++
    const m = message(id)
    return new Promise((resolve, reject) => {
      this.requests.set(id, { resolve, reject, accounts: m.type === 'accounts' })
      this.tasks[shard].control.postMessage(m)
      new Doorbell(this.wiring.shardDoorbells[shard]).wake()
    })
  }

  /**
   * The shards asked went away (a restart, a stop): new accounts count as taken (shards that
   * start again start with them); an adjustment's outcome is unknown to the caller.
   */
  private settleRequests(why: string): void {
    for (const [id, request] of this.requests) {
      if (request.accounts) request.resolve({ type: 'done', id })
      else request.reject(new Error(why))
    }
    this.requests.clear()
  }

  private wakeShards(): void {
    for (const d of this.wiring.shardDoorbells) new Doorbell(d).wake()
  }

  async stop(): Promise<void> {
    this.stopping = true
    if (this.inlineTicker !== null) clearInterval(this.inlineTicker)
    if (this.inline !== null) {
      this.inline.turn(Date.now())
      this.inlinePort!.drain()
      this.inline = null
      return
    }
    this.tasks.forEach(({ control }) => control.postMessage({ type: 'stop' } satisfies ShardControl))
    this.wakeShards()
    await Promise.allSettled(this.tasks.map(({ done }) => done))
    this.settleRequests('the node stopped')
    for (const { control } of this.tasks) control.close()
    await this.pool?.destroy()
    this.logs?.close()
    // Every writer of the I/O threads' pipes (the shards) has ended, and the I/O threads stopped first.
    this.wakeUps.close()
  }
}

/** A shard's refusal of an adjustment, as the same error class the inline shard throws (the admin API maps them). */
function adjustmentError(message: string, code: string | undefined): Error {
  if (code === 'ILP_NODE_STORAGE_UNAVAILABLE') return new StorageUnavailableError(message)
  if (code === 'ILP_NODE_ADJUSTMENT_OUT_OF_RANGE') return new AdjustmentOutOfRangeError(message)
  return new Error(message)
}
