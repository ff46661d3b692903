// Starts the shard threads (SHARDS > 0), and restarts them all from LMDB when one dies. Shards run
// as piscina tasks, one long task per worker thread (shard/shard_worker.ts). The main thread talks
// to each over a RequestPort (ring/request_port.ts), waking the shard after each message; the I/O
// threads reach the shards through their own ports (io/shard_port.ts): the supervisor only hands
// them rings, and tells them when the rings are replaced.
//
// When the shards go away (one died and all restart, or the node stops), every shard's port
// closes in one place (closeAll), and what was asked of them settles by one rule (ThreadGone):
//   1. new accounts   count as applied: the shards that start next start with them
//   2. an adjustment  rejects: it committed or it did not, and its Idempotency-Key tells on a retry
//   3. snapshots      (routes, rates) need no answer: restarted shards are handed the newest
// While the restart runs, accounts and snapshots wait for the new shards and adjustments are
// refused; after a stop or a failed restart nothing more is asked.

import { join } from 'node:path'
import { MessageChannel } from 'node:worker_threads'
import type Piscina from 'piscina'
import { threadPerTaskPool } from './thread_pool'
import { ShardLogs } from './shard_logs'
import { configForThreads, shardOfAccount, SlotsForNewThreads, type AccountChange } from '../../config/account_table'
import type { Config } from '../../config/schema'
import { errorFields, errorLine, type Logger } from '../../log'
import { Doorbell, WakeUps } from '../../ring/doorbell'
import { RequestFailed, RequestPort, ThreadGone } from '../../ring/request_port'
import { createWiring, type Wiring } from '../../ring/wiring'
import { recoverOnStart, type AdjustmentEntry, type Store } from '../../store/balance_store'
import type { RateSnapshot } from '../../shard/exchange'
import type { FromShard, ShardTask, ToShard } from '../../shard/shard_worker'
import { oneLine, StorageHealth, StorageUnavailableError } from '../../store/storage_health'
import { AdjustmentOutOfRangeError } from '../../shard/shard'
import { inFlightOn, shardCounters, type DataPlane, type IoSide } from './data_plane'

/** Restarts that follow the last one within this window wait first: RESTART_DELAY_MS, doubling up to the maximum. */
const RESTART_WINDOW_MS = 60_000
const RESTART_DELAY_MS = 1000
const RESTART_DELAY_MAX_MS = 60_000

type ShardThreadPort = RequestPort<ToShard, FromShard>

export class ThreadedDataPlane implements DataPlane {
  private wiring: Wiring
  private readonly wakeUps: WakeUps
  /** Each shard's packet counters (shared/packet_counters.ts); null with metrics off. */
  private readonly counters: SharedArrayBuffer[] | null
  /** The shard threads' log lines, relayed by this thread. */
  private readonly logs: ShardLogs
  private pool: Piscina | null = null
  private tasks: { done: Promise<unknown>; port: ShardThreadPort }[] = []
  private stopping = false
  private restartingNow = false
  /** Resolves when the restart under way has ended (its shards run, or the node is stopping). */
  private restartDone: Promise<void> = Promise.resolve()
  /** A restart failed: the node is stopping itself, and nothing more is asked of the shards. */
  private restartFailed = false
  /** The routing table as the shards have it (prefix → account; -1: none), for shards started later. */
  private readonly routes = new Map<string, number>()
  private rates!: RateSnapshot
  /** The accounts the shards run with (control/ops/reconfigure.ts changes them while they run). */
  private readonly slots: SlotsForNewThreads
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
    private readonly io: Pick<IoSide, 'attach' | 'detach'>,
    private readonly fatal: (reason: string) => void,
    private readonly log: Logger,
    /** How threads wake each other this run (ring/doorbell.ts). */
    wakeUps: 'native' | 'atomics',
    /** Whether the node can write (store/storage_health.ts), shared with every thread. */
    health: SharedArrayBuffer,
  ) {
    this.wakeUps = new WakeUps(config.ioThreads, wakeUps === 'native')
    this.counters = shardCounters(config)
    this.logs = new ShardLogs(config.shards)
    this.health = new StorageHealth(health)
    this.wiring = createWiring(config, this.wakeUps, this.counters, health)
    this.slots = new SlotsForNewThreads({ accounts: config.accounts, live: config.accounts.map(() => true) })
  }

  /** The rings of the current shards (the I/O threads start on them). */
  currentWiring(): Wiring {
    return this.wiring
  }

  async start(routes: [string, number][], rates: RateSnapshot): Promise<void> {
    for (const [prefix, account] of routes) this.routes.set(prefix, account)
    this.rates = rates
    await this.startWorkers([...this.routes])
    this.io.attach(this.wiring)
  }

  private async startWorkers(routes: [string, number][]): Promise<void> {
    const n = this.config.shards
    const pool = threadPerTaskPool(join(__dirname, '..', '..', 'shard', 'shard_worker.js'), 'runShard', n)
    this.pool = pool
    this.tasks = []
    const incarnation = this.incarnation
    const ready: Promise<void>[] = []
    for (let index = 0; index < n; index++) {
      const { port1, port2 } = new MessageChannel()
      const task: ShardTask = { config: configForThreads(this.config), slots: this.slots.snapshot(), wiring: this.wiring, links: this.links, routes, rates: this.rates, index, control: port2, logRing: this.logs.rings[index] }
      const done = pool.run(task, { transferList: [port2] })
      ready.push(new Promise((resolve, reject) => {
        this.tasks.push({ done, port: new RequestPort<ToShard, FromShard>(port1, { requests: {}, notices: { ready: () => resolve() } }, 'events') })
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
    this.restartingNow = true
    let done: () => void = () => {}
    this.restartDone = new Promise((resolve) => { done = resolve })
    this.incarnation++
    this.restarts++
    const delayMs = this.nextRestartDelay()
    this.log.error('a thread of the data plane died; restarting every shard from LMDB', { reason, restart: this.restarts, delayMs })
    this.health.shardsDown()
    this.io.detach()
    this.closeAll('the shards restarted')
    await this.pool?.destroy()
    this.logs.relayLeftovers()
    try {
      await this.recoverForRestart(delayMs)
      if (this.stopping) return
      this.wiring = createWiring(this.config, this.wakeUps, this.counters, this.wiring.health)
      await this.startWorkers([...this.routes])
      this.io.attach(this.wiring)
      this.health.shardsUp()
      this.log.info('shards restarted', { restart: this.restarts })
    } catch (err) {
      this.restartFailed = true
      this.closeAll('the shards could not be restarted')
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

  /**
   * Prepares the shards have taken and not yet answered, plus every record still in a ring
   * (bytes): zero once the data plane is idle. Read while the node drains for shutdown.
   */
  inFlight(): number {
    return inFlightOn(this.wiring)
  }

  /**
   * Hands every shard the routes that changed (or with `replace` the whole table); each takes
   * them between batches. After a restart the shards get the whole table again.
   */
  setRoutes(entries: [string, number][], replace: boolean): void {
    if (replace) this.routes.clear()
    for (const [prefix, account] of entries) this.routes.set(prefix, account)
    this.toEveryShard(() => this.setRoutes([...this.routes], true), { type: 'routes', entries, replace })
  }

  /** Hands every shard new exchange rates (control/rates/rate_feed.ts), as setRoutes does routes. */
  setRates(snapshot: RateSnapshot): void {
    this.rates = snapshot
    this.toEveryShard(() => this.setRates(this.rates), { type: 'rates', snapshot })
  }

  /**
   * A snapshot for every shard, which each takes between batches. During a restart it waits: the
   * restarted shards may have been given an older one, so `again` hands them the newest once they run.
   */
  private toEveryShard(again: () => void, notice: ToShard['notices']): void {
    if (this.restartingNow) return void this.restartDone.then(again)
    this.tasks.forEach(({ port }) => port.notify(notice))
    this.wakeShards()
  }

  /**
   * Every shard takes the new accounts between two of its turns; resolves when all have (a
   * prepare after that sees them). Shards started later start with them.
   */
  async applyAccounts(changes: readonly AccountChange[]): Promise<void> {
    this.slots.apply(changes)
    // As for routes: shards that started during this call get every slot once they run (those
    // they have already change nothing).
    if (this.restartingNow) return this.restartDone.then(() => this.applyAccounts(this.slots.everySlot()))
    if (this.restartFailed || this.stopping) return
    await Promise.all(this.tasks.map((_, shard) => this.request(shard, { type: 'accounts', changes }).catch((err: unknown) => {
      if (!(err instanceof ThreadGone)) throw err // rule 1: a shard that is gone counts as applied
    })))
  }

  async adjust(owner: number, account: number, amount: bigint, key: string, reason: string): Promise<{ entry: AdjustmentEntry; replayed: boolean }> {
    if (this.restartingNow || this.restartFailed || this.stopping) throw new Error('the shards are restarting or stopped')
    try {
      return await this.request(owner, { type: 'adjust', account, amount, key, reason })
    } catch (err) {
      // Rule 2: a ThreadGone rejects as it is. A refusal comes back as the class the shard threw.
      throw err instanceof RequestFailed ? adjustmentError(err.message, err.code) : err
    }
  }

  private request<R extends ToShard['requests']>(shard: number, body: R): Promise<ToShard['answers'][R['type']]> {
    const answer = this.tasks[shard].port.request(body)
    new Doorbell(this.wiring.shardDoorbells[shard]).wake()
    return answer
  }

  /** The shards' threads are gone or going (a restart, a stop): what was asked of them settles by the rules above. */
  private closeAll(why: string): void {
    for (const { port } of this.tasks) port.close(why)
  }

  private wakeShards(): void {
    for (const d of this.wiring.shardDoorbells) new Doorbell(d).wake()
  }

  async stop(): Promise<void> {
    this.stopping = true
    this.tasks.forEach(({ port }) => port.notify({ type: 'stop' }))
    this.wakeShards()
    await Promise.allSettled(this.tasks.map(({ done }) => done))
    this.closeAll('the node stopped')
    await this.pool?.destroy()
    this.logs.close()
    // Every writer of the I/O threads' pipes (the shards) has ended, and the I/O threads stopped first.
    this.wakeUps.close()
  }
}

/** A shard's refusal of an adjustment, as the same error class the inline shard throws (the admin API maps them). */
function adjustmentError(message: string, code: string | null): Error {
  if (code === 'ILP_NODE_STORAGE_UNAVAILABLE') return new StorageUnavailableError(message)
  if (code === 'ILP_NODE_ADJUSTMENT_OUT_OF_RANGE') return new AdjustmentOutOfRangeError(message)
  return new Error(message)
}
