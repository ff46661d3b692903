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
import type { Store } from '../store/balance_store'
import { AccountTable } from './account_table'
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
  /** A shard died: the node can no longer vouch for its state and must stop. */
  fatal(reason: string): void
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
  private readonly wiring: ShardWiring
  private readonly accounts: AccountTable
  private readonly toShard: RingWriter[]
  private readonly fromShard: RingReader[]
  private readonly shardDoorbells: Doorbell[]
  private readonly mainDoorbell: Doorbell
  private readonly overflow: QueuedReply[][]
  private pool: Piscina | null = null
  private readonly tasks: { done: Promise<unknown>; control: MessagePort }[] = []
  private inline: ShardLoop | null = null
  private inlineScheduled = false
  private inlineTicker: NodeJS.Timeout | null = null
  private running = true
  private stopping = false

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly outputs: ShardOutputs,
    private readonly log: Logger,
  ) {
    this.wiring = createWiring(config)
    this.accounts = new AccountTable(config)
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
    if (this.config.shards === 0) {
      this.inline = createShardLoop(this.config, this.wiring, 0, this.store, routes, this.log, true)
      this.inlineTicker = setInterval(() => this.scheduleInline(), INLINE_TICK_MS)
      this.inlineTicker.unref()
      return
    }
    // piscina owns the threads: one per shard, each running one long task (the shard's loop).
    const n = this.config.shards
    this.pool = new Piscina({
      filename: join(__dirname, 'shard_worker.js'),
      name: 'runShard',
      minThreads: n,
      maxThreads: n,
      concurrentTasksPerWorker: 1,
      idleTimeout: Infinity,
      maxQueue: n,
      atomics: 'disabled',
    })
    const ready: Promise<void>[] = []
    for (let index = 0; index < n; index++) {
      const { port1, port2 } = new MessageChannel()
      const task: ShardTask = { config: this.config, wiring: this.wiring, routes, index, control: port2 }
      const done = this.pool.run(task, { transferList: [port2] })
      this.tasks.push({ done, control: port1 })
      ready.push(new Promise((resolve, reject) => {
        port1.once('message', () => resolve())
        done.then(() => reject(new Error(`shard ${index} ended during start-up`)), reject)
      }))
      done.then(
        () => { if (!this.stopping) this.outputs.fatal(`shard ${index} ended unexpectedly`) },
        (err: Error) => {
          this.log.error('shard failed', { shard: index, error: err.stack })
          if (!this.stopping) this.outputs.fatal(`shard ${index} failed: ${err.message}`)
        },
      )
    }
    await Promise.all(ready)
    void this.drainLoop()
  }

  shardOf(account: number): number {
    return this.accounts.ownerShard[account]
  }

  /** Hands a prepare from `account` to its shard; false if the shard's ring is full (T03). */
  submitPrepare(account: number, connId: number, requestId: number, ilp: Uint8Array): boolean {
    const shard = this.accounts.ownerShard[account]
    if (this.overflow[shard].length > 0) return false
    const ring = this.toShard[shard]
    if (!ring.tryWrite(RecordKind.PrepareIn, account, connId, requestId, 0, ilp)) return false
    this.kick(shard)
    return true
  }

  /** Hands a prepare for a payee to the payee's shard; false if its ring is full. */
  submitDeliver(payee: number, connId: number, requestId: number, ilp: Uint8Array): boolean {
    const shard = this.accounts.ownerShard[payee]
    if (this.overflow[shard].length > 0) return false
    if (!this.toShard[shard].tryWrite(RecordKind.DeliverIn, payee, connId, requestId, 0, ilp)) return false
    this.kick(shard)
    return true
  }

  /** Asks the shop's shard to spend `price` of a pay token's balance; false if its ring is full. */
  submitSpend(shop: number, connId: number, requestId: number, request: Uint8Array): boolean {
    const shard = this.accounts.ownerShard[shop]
    if (this.overflow[shard].length > 0) return false
    if (!this.toShard[shard].tryWrite(RecordKind.SpendIn, shop, connId, requestId, 0, request)) return false
    this.kick(shard)
    return true
  }

  /** Hands the next hop's reply to the shard that forwarded the prepare. Never dropped. */
  submitReply(shard: number, pendingId: number, ilp: Uint8Array): void {
    const queue = this.overflow[shard]
    if (queue.length === 0 && this.toShard[shard].tryWrite(RecordKind.ReplyIn, pendingId, 0, 0, 0, ilp)) {
      this.kick(shard)
      return
    }
    queue.push({ kind: RecordKind.ReplyIn, pendingId, reason: 0, payload: Uint8Array.prototype.slice.call(ilp) })
  }

  submitSendFailure(shard: number, pendingId: number, reason: SendFailure): void {
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
  private async drainLoop(): Promise<void> {
    while (this.running) {
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
