// The main thread's side of the shards: it starts them (worker threads, or one inline shard for
// SHARDS=0), writes records into their rings, and drains what they hand back. It never blocks:
// it waits for shards with Atomics.waitAsync on its doorbell.
//
// Back-pressure: a prepare that finds its shard's ring full is refused (the caller rejects it
// T03). A reply from a next hop is never dropped: if the ring is full it waits in a small
// per-shard overflow queue (bounded by the shard's pending table, one reply per pending prepare)
// and goes in at the next drain.

import { join } from 'node:path'
import { MessageChannel, type MessagePort } from 'node:worker_threads'
import Piscina from 'piscina'
import type { Config } from '../config/schema'
import type { SendFailure } from '../codec/ilp_errors'
import type { Logger } from '../log'
import { Doorbell } from '../ring/doorbell'
import { RingReader, RingWriter } from '../ring/ring'
import { recoverOnStart, type Store } from '../store/balance_store'
import { AccountTable, shardOfAccount } from './account_table'
import { PendingTable } from './pending_table'
import { RecordKind } from './records'
import { createShardLoop } from './shard_runtime'
import type { ShardLoop } from './shard_loop'
import { createWiring, type ShardWiring } from './shard_wiring'
import type { ShardControl, ShardTask } from './shard_worker'

export interface ShardOutputs {
  /** A fulfill or reject to send back on (connId, requestId). The bytes are valid during the call. */
  reply(connId: number, requestId: number, account: number, ilp: Uint8Array): void
  /** A prepare to send to `account`'s next hop; answer later with submitReply / submitSendFailure. */
  forward(shard: number, account: number, pendingId: number, ilp: Uint8Array): void
  /** A CCP prepare for the route manager; answer it on (connId, requestId). */
  control(connId: number, requestId: number, account: number, prepare: Uint8Array): void
  /** End of a drain: send what reply() and forward() queued. */
  flush(): void
  /** A shard could not be started: the node cannot run and must stop. */
  fatal(reason: string): void
  /**
   * A shard worker died and every shard is being restarted from LMDB: whatever the shards held
   * is gone, so every request waiting on them must be answered now (T00), and replies to
   * prepares they forwarded must be dropped.
   */
  restarting(): void
}

interface QueuedReply {
  kind: RecordKind
  pendingId: number
  reason: number
  payload: Uint8Array | null
}

const MAIN_IDLE_WAIT_MS = 1000
const INLINE_TICK_MS = PendingTable.TICK_MS

export class ShardSet {
  private wiring: ShardWiring
  private readonly accounts: AccountTable
  private toShard: RingWriter[]
  private fromShard: RingReader[]
  private shardDoorbells: Doorbell[]
  private mainDoorbell: Doorbell
  private overflow: QueuedReply[][]
  private pool: Piscina | null = null
  private tasks: { done: Promise<unknown>; control: MessagePort }[] = []
  private inline: ShardLoop | null = null
  private inlineScheduled = false
  private inlineTicker: NodeJS.Timeout | null = null
  private running = true
  private stopping = false
  /** True while a dead shard's set is being replaced: nothing goes into the rings meanwhile. */
  private restartingNow = false
  private routes: [string, number][] = []
  /** Bumped at each restart; work started before it (a pending HTTP request) must not reach the new shards. */
  incarnation = 0
  /** Restarts after a shard worker died, since start. */
  restarts = 0
  /** The first start completed (later deaths restart the shards; earlier ones stop the node). */
  private started = false

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly outputs: ShardOutputs,
    private readonly log: Logger,
  ) {
    this.accounts = new AccountTable(config)
    this.wiring = createWiring(config)
    this.toShard = this.wiring.mainToShard.map((sab) => new RingWriter(sab))
    this.fromShard = this.wiring.shardToMain.map((sab) => new RingReader(sab))
    this.shardDoorbells = this.wiring.doorbells.map((sab) => new Doorbell(sab))
    this.mainDoorbell = new Doorbell(this.wiring.mainDoorbell)
    this.overflow = this.wiring.mainToShard.map(() => [])
  }

  /** Fresh rings and doorbells (a restart must not inherit half-read batches or stale credits). */
  private rewire(): void {
    this.wiring = createWiring(this.config)
    this.toShard = this.wiring.mainToShard.map((sab) => new RingWriter(sab))
    this.fromShard = this.wiring.shardToMain.map((sab) => new RingReader(sab))
    this.shardDoorbells = this.wiring.doorbells.map((sab) => new Doorbell(sab))
    this.mainDoorbell = new Doorbell(this.wiring.mainDoorbell)
    this.overflow = this.wiring.mainToShard.map(() => [])
  }

  get count(): number {
    return this.wiring.shardCount
  }

  async start(routes: [string, number][]): Promise<void> {
    this.routes = routes
    if (this.config.shards === 0) {
      this.inline = createShardLoop(this.config, this.wiring, 0, this.store, routes, this.log, true)
      this.inlineTicker = setInterval(() => this.scheduleInline(), INLINE_TICK_MS)
      this.inlineTicker.unref()
      return
    }
    await this.startWorkers(routes)
  }

  private async startWorkers(routes: [string, number][]): Promise<void> {
    // piscina owns the threads: one per shard, each running one long task (the shard's loop).
    const n = this.config.shards
    const pool = new Piscina({
      filename: join(__dirname, 'shard_worker.js'),
      name: 'runShard',
      minThreads: n,
      maxThreads: n,
      concurrentTasksPerWorker: 1,
      idleTimeout: Infinity,
      maxQueue: n,
      atomics: 'disabled',
    })
    this.pool = pool
    this.tasks = []
    const incarnation = this.incarnation
    const ready: Promise<void>[] = []
    for (let index = 0; index < n; index++) {
      const { port1, port2 } = new MessageChannel()
      const task: ShardTask = { config: this.config, wiring: this.wiring, routes, index, control: port2 }
      const done = pool.run(task, { transferList: [port2] })
      this.tasks.push({ done, control: port1 })
      ready.push(new Promise((resolve, reject) => {
        port1.once('message', () => resolve())
        done.then(() => reject(new Error(`shard ${index} ended during start-up`)), reject)
      }))
      const died = (reason: string) => {
        if (this.stopping || this.incarnation !== incarnation) return
        // Before the first start completed there is nothing to restart to: start() fails instead.
        if (!this.started) return this.outputs.fatal(reason)
        void this.restart(reason)
      }
      done.then(
        () => died(`shard ${index} ended unexpectedly`),
        (err: Error) => {
          if (!this.stopping && this.incarnation === incarnation) this.log.error('shard worker died', { shard: index, error: err.stack })
          died(`shard ${index} failed: ${err.message}`)
        },
      )
    }
    await Promise.all(ready)
    this.started = true
    void this.drainLoop(this.incarnation)
  }

  /**
   * A shard worker died. Its in-memory state (holds, prepares in flight) died with it and the
   * other shards' views of its accounts can no longer be trusted, so every shard is restarted
   * from LMDB, as after a crash of the process: the other workers are terminated, the records
   * are folded and the in-flight journal released (recoverOnStart), main answers everything that
   * was waiting on the shards, and new workers start on fresh rings. Committed balances are
   * untouched: a shard publishes nothing before its commit.
   */
  private async restart(reason: string): Promise<void> {
    if (this.restartingNow) return
    this.restartingNow = true
    this.incarnation++
    this.restarts++
    this.log.error('a shard died; restarting every shard from LMDB', { reason, restart: this.restarts })
    this.mainDoorbell.wake()
    const oldPool = this.pool
    const oldTasks = this.tasks
    await oldPool?.destroy()
    for (const { control } of oldTasks) control.close()
    const report = recoverOnStart(this.store, (id) => shardOfAccount(id, this.config.shards))
    this.log.warn('shards restarting: holds of prepares in flight released', { holds: report.releasedHolds })
    this.outputs.restarting()
    this.rewire()
    try {
      await this.startWorkers(this.routes)
      this.log.info('shards restarted', { restart: this.restarts })
    } catch (err) {
      this.outputs.fatal(`shards could not be restarted: ${(err as Error).message}`)
    } finally {
      this.restartingNow = false
    }
  }

  /** Fault injection for tests: terminates shard `index`'s worker thread, as a crash would. */
  async terminateShard(index: number): Promise<void> {
    const thread = this.pool?.threads[index]
    if (thread === undefined) throw new Error(`no shard worker ${index}`)
    await thread.terminate()
  }

  shardOf(account: number): number {
    return this.accounts.ownerShard[account]
  }

  /** Hands a prepare from `account` to its shard; false if the shard's ring is full (T03). */
  submitPrepare(account: number, connId: number, requestId: number, ilp: Uint8Array): boolean {
    return this.submitToOwner(RecordKind.PrepareIn, account, connId, requestId, ilp)
  }

  /** Hands a prepare for a payee to the payee's shard; false if its ring is full. */
  submitDeliver(payee: number, connId: number, requestId: number, ilp: Uint8Array): boolean {
    return this.submitToOwner(RecordKind.DeliverIn, payee, connId, requestId, ilp)
  }

  /** Asks the shop's shard to spend `price` of a pay token's balance; false if its ring is full. */
  submitSpend(shop: number, connId: number, requestId: number, request: Uint8Array): boolean {
    return this.submitToOwner(RecordKind.SpendIn, shop, connId, requestId, request)
  }

  /**
   * A request from main to the shard that owns `account`, answered later on (connId, requestId);
   * false (the caller refuses it) while that ring is full, has replies waiting, or shards restart.
   */
  private submitToOwner(kind: RecordKind, account: number, connId: number, requestId: number, payload: Uint8Array): boolean {
    if (this.restartingNow) return false
    const shard = this.accounts.ownerShard[account]
    if (this.overflow[shard].length > 0) return false
    if (!this.toShard[shard].tryWrite(kind, account, connId, requestId, 0, payload)) return false
    this.kick(shard)
    return true
  }

  /** Hands the next hop's reply to the shard that forwarded the prepare. Never dropped. */
  submitReply(shard: number, pendingId: number, ilp: Uint8Array): void {
    if (this.restartingNow) return // the prepare it answers died with its shard
    const queue = this.overflow[shard]
    if (queue.length === 0 && this.toShard[shard].tryWrite(RecordKind.ReplyIn, pendingId, 0, 0, 0, ilp)) {
      this.kick(shard)
      return
    }
    queue.push({ kind: RecordKind.ReplyIn, pendingId, reason: 0, payload: Uint8Array.prototype.slice.call(ilp) })
  }

  submitSendFailure(shard: number, pendingId: number, reason: SendFailure): void {
    if (this.restartingNow) return
    const queue = this.overflow[shard]
    if (queue.length === 0 && this.toShard[shard].tryWrite(RecordKind.SendFailed, pendingId, reason, 0, 0, null)) {
      this.kick(shard)
      return
    }
    queue.push({ kind: RecordKind.SendFailed, pendingId, reason, payload: null })
  }

  private kick(shard: number): void {
    this.toShard[shard].flush()
    if (this.inline !== null) this.scheduleInline()
    else this.shardDoorbells[shard].ring()
  }

  private flushOverflow(): void {
    for (let shard = 0; shard < this.overflow.length; shard++) {
      const queue = this.overflow[shard]
      if (queue.length === 0) continue
      let sent = 0
      for (const q of queue) {
        if (!this.toShard[shard].tryWrite(q.kind, q.pendingId, q.reason, 0, 0, q.payload)) break
        sent++
      }
      if (sent > 0) {
        queue.splice(0, sent)
        this.kick(shard)
      }
    }
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
    if (!this.running || this.inline === null) return
    this.inline.turn(Date.now())
    this.drainShards()
    this.flushOverflow()
    if (this.inline.hasInput()) this.scheduleInline()
  }

  // Worker shards: wait on the main doorbell without blocking the event loop.
  private async drainLoop(incarnation: number): Promise<void> {
    while (this.running && this.incarnation === incarnation) {
      const drained = this.drainShards()
      this.flushOverflow()
      if (drained) {
        await new Promise<void>((resolve) => setImmediate(resolve))
        continue
      }
      const seen = this.mainDoorbell.prepareToSleep()
      if (this.anyShardHasData()) {
        this.mainDoorbell.cancelSleep()
        continue
      }
      const wait = this.mainDoorbell.sleepAsync(seen, this.overflowPending() ? INLINE_TICK_MS : MAIN_IDLE_WAIT_MS)
      if (wait !== null) await wait
    }
  }

  private overflowPending(): boolean {
    return this.overflow.some((q) => q.length > 0)
  }

  private anyShardHasData(): boolean {
    return this.fromShard.some((r) => r.hasData())
  }

  /** Delivers every record the shards have published; true if there were any. */
  drainShards(): boolean {
    let any = false
    for (let shard = 0; shard < this.fromShard.length; shard++) {
      const ring = this.fromShard[shard]
      if (!ring.hasData()) continue
      any = true
      ring.beginBatch()
      while (ring.next()) {
        const ilp = ring.data.subarray(ring.payloadOffset, ring.payloadOffset + ring.payloadLength)
        if (ring.kind === RecordKind.ReplyOut) this.outputs.reply(ring.a, ring.b, ring.c, ilp)
        else if (ring.kind === RecordKind.PrepareOut) this.outputs.forward(shard, ring.a, ring.b, ilp)
        else if (ring.kind === RecordKind.ControlOut) this.outputs.control(ring.a, ring.b, ring.c, ilp)
        else this.log.error('unexpected record from shard', { shard, kind: ring.kind })
      }
      ring.endBatch()
    }
    if (any) this.outputs.flush()
    return any
  }

  /** Hands every shard a new routing table (a snapshot; each swaps it in between batches). */
  setRoutes(entries: [string, number][]): void {
    this.routes = entries
    if (this.restartingNow) return // the restarted shards start with this table
    if (this.inline !== null) return this.inline.shard.setRoutes(entries)
    const message: ShardControl = { type: 'routes', entries }
    this.tasks.forEach(({ control }, index) => {
      control.postMessage(message)
      this.shardDoorbells[index].wake()
    })
  }

  async stop(): Promise<void> {
    this.stopping = true
    this.running = false
    if (this.inlineTicker !== null) clearInterval(this.inlineTicker)
    if (this.inline !== null) {
      this.inline.turn(Date.now())
      this.inline = null
      return
    }
    this.mainDoorbell.wake()
    this.tasks.forEach(({ control }, index) => {
      control.postMessage({ type: 'stop' } satisfies ShardControl)
      this.shardDoorbells[index].wake()
    })
    await Promise.allSettled(this.tasks.map(({ done }) => done))
    for (const { control } of this.tasks) control.close()
    await this.pool?.destroy()
  }
}
