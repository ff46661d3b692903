// An I/O thread's side of the shards: the data-plane port its transports talk to. It writes
// records into this thread's ring to each shard and drains the shards' rings to this thread. It
// never blocks. With worker shards, its work comes in turns: a turn runs after the socket
// callbacks of one pass of the event loop (setImmediate), or when a shard rings this thread's
// doorbell, and does three things in order: publish what the callbacks wrote (one atomic store
// per ring, one wake-up per sleeping shard for the whole burst), drain what the shards wrote
// back, and announce the sleep, re-checking the rings last (ring/doorbell.ts). While a turn is
// pending the thread counts as awake, so shards that publish meanwhile do not wake it again: the
// turn will see their records. With the inline shard (SHARDS=0) the shard's own turn drains it.
//
// Back-pressure: a prepare that finds its shard's ring full is refused (the caller rejects it
// T03). A reply from a next hop is never dropped: if the ring is full it waits in a small
// per-shard overflow queue (bounded by the shard's pending table, one reply per pending prepare)
// and goes in at the next drain.

import { T00_INTERNAL_ERROR, T03_CONNECTOR_BUSY, type SendFailure } from '../codec/ilp_errors'
import { encodeReject } from '../codec/ilp_packet'
import type { AccountTable } from '../config/account_table'
import type { Logger } from '../log'
import { Doorbell, DoorbellWatch } from '../ring/doorbell'
import { pendingIdHigh, pendingIdLow, pendingIdOf, RecordKind, type SettleAnswer } from '../ring/records'
import { RingReader, RingWriter } from '../ring/ring'
import type { IoCounters } from '../shared/packet_counters'
import type { Wiring } from '../ring/wiring'
import { STORAGE_UNAVAILABLE, StorageHealth } from '../store/storage_health'

export interface PortOutputs {
  /** A fulfill or reject to send back on (connId, requestId). The bytes are valid during the call. */
  reply(connId: number, requestId: number, account: number, ilp: Uint8Array): void
  /**
   * A prepare to send to `account`'s next hop, expiring at `expiresAtS` (seconds, rounded down);
   * answer later with submitReply / submitSendFailure.
   */
  forward(shard: number, account: number, pendingId: number, expiresAtS: number, ilp: Uint8Array): void
  /** A CCP prepare or JSON route broadcast for the control plane; answered on (connId, requestId). */
  control(connId: number, requestId: number, account: number, prepare: Uint8Array): void
  /** A settlement (id ‖ amount) for `account`'s peer, from the shard that owns it. */
  settle(shard: number, account: number, settlement: Uint8Array): void
  /** The shard's answer to a peer's settlement (TransferAnswer ‖ code ‖ message). */
  transferAnswer(connId: number, requestId: number, account: number, answer: Uint8Array): void
  /** End of a drain: send what reply() and forward() queued. */
  flush(): void
}

interface QueuedReply {
  kind: RecordKind.ReplyIn | RecordKind.SendFailed
  pendingId: number
  /** REPLY_IN: the account that answered; SEND_FAILED: the SendFailure. */
  detail: number
  payload: Uint8Array | null
}

/** Retry interval while replies wait in the overflow queue for ring room. */
const OVERFLOW_RETRY_MS = 10
/** Drains in one turn while the shards keep publishing, before the loop polls the sockets again. */
const DRAINS_PER_TURN = 4

export class ShardPort {
  private toShard: RingWriter[] = []
  private fromShard: RingReader[] = []
  private shardDoorbells: Doorbell[] = []
  private doorbell: Doorbell | null = null
  private watch: DoorbellWatch | null = null
  private overflow: QueuedReply[][] = []
  /** Set for the inline shard: a record for it schedules its turn instead of ringing a doorbell. */
  private inlineKick: (() => void) | null = null
  /** Shards with records written since the last publish (see kick). */
  private unpublished: Uint8Array = new Uint8Array(0)
  private readonly unpublishedShards: number[] = []
  private turnScheduled = false
  private overflowTimer: NodeJS.Timeout | null = null
  /** No rings while the shards restart: prepares are refused and replies dropped meanwhile. */
  private attached = false
  /** Bumped at each shard restart; work started before it (a pending HTTP request) must not reach the new shards. */
  incarnation = 0
  private draining = false
  private readonly refusals: { shuttingDown: Buffer; restarting: Buffer; busy: Buffer; storage: Buffer }
  /** Whether the node can write (store/storage_health.ts); from the first attach on. */
  private health: StorageHealth | null = null

  constructor(
    readonly io: number,
    private readonly accounts: AccountTable,
    private readonly outputs: PortOutputs,
    private readonly log: Logger,
    ilpAddress: string,
    private readonly counters: IoCounters | null = null,
  ) {
    this.refusals = {
      shuttingDown: encodeReject(T00_INTERNAL_ERROR, ilpAddress, 'the node is shutting down; try again elsewhere or later'),
      restarting: encodeReject(T03_CONNECTOR_BUSY, ilpAddress, 'the node is restarting its shards; try again'),
      busy: encodeReject(T03_CONNECTOR_BUSY, ilpAddress, 'connector is busy'),
      storage: encodeReject(T00_INTERNAL_ERROR, ilpAddress, STORAGE_UNAVAILABLE),
    }
  }

  /** Takes this thread's rings of a (new) wiring; `inlineKick` when the one shard runs on this thread. */
  attach(wiring: Wiring, inlineKick: (() => void) | null): void {
    this.toShard = wiring.ioToShard[this.io].map((sab) => new RingWriter(sab))
    this.fromShard = wiring.shardToIo.map((rings) => new RingReader(rings[this.io]))
    this.shardDoorbells = wiring.shardDoorbells.map((d) => new Doorbell(d))
    this.overflow = this.toShard.map(() => [])
    this.unpublished = new Uint8Array(this.toShard.length)
    this.unpublishedShards.length = 0
    this.inlineKick = inlineKick
    this.health = new StorageHealth(wiring.health)
    this.attached = true
    this.watch?.close()
    this.watch = null
    if (inlineKick === null) {
      this.doorbell = new Doorbell(wiring.ioDoorbells[this.io])
      this.watch = new DoorbellWatch(this.doorbell, this.scheduleTurn, (err) => this.log.error('doorbell pipe failed', { error: err.message }))
      this.scheduleTurn()
    }
  }

  /**
   * The shards are being restarted: whatever they held is gone. Nothing more goes into the old
   * rings, and the drain loop on them ends; `attach` starts over on the new ones.
   */
  detach(): void {
    this.attached = false
    this.incarnation++
    this.watch?.close()
    this.watch = null
  }

  /**
   * Hands a prepare from `account` to its shard. Null when it was taken; otherwise the reject to
   * answer it with at once: T00 while the node drains for shutdown, T03 while the shards restart
   * or the shard's ring is full.
   */
  submitPrepare(account: number, connId: number, requestId: number, ilp: Uint8Array): Uint8Array | null {
    if (this.draining) return this.refusals.shuttingDown
    if (!this.attached) return this.refusals.restarting
    // Fail closed: nothing new while the node cannot write (the shard checks again).
    if (!this.health!.ok) return this.refusals.storage
    if (this.submitToOwner(RecordKind.PrepareIn, account, connId, requestId, ilp)) return null
    this.log.warn('shard ring full; rejecting prepare', { account: this.accounts.get(account).id })
    return this.refusals.busy
  }

  /**
   * The node is shutting down: prepares from now on are refused (T00) while those already taken
   * finish; their replies still come in and go out.
   */
  refuseNewPrepares(): void {
    this.draining = true
  }

  /** Asks the shop's shard to spend `price` of a pay token's balance; false if it cannot take it now. */
  submitSpend(shop: number, connId: number, requestId: number, request: Uint8Array): boolean {
    return this.storageOk && this.submitToOwner(RecordKind.SpendIn, shop, connId, requestId, request)
  }

  /** True while the node can write its books (store/storage_health.ts). */
  get storageOk(): boolean {
    return this.health === null || this.health.ok
  }

  /** Why the node takes no new work now (for /health), or null when it does. */
  unavailable(): string | null {
    if (this.health === null) return 'starting'
    return this.health.reason()
  }

  /** A peer's settlement (amount ‖ id) to the shard that owns `account`; false if it cannot take it now. */
  submitTransfer(account: number, connId: number, requestId: number, transfer: Uint8Array): boolean {
    return this.submitToOwner(RecordKind.TransferIn, account, connId, requestId, transfer)
  }

  /**
   * The peer's answer (id ‖ reason) to a settlement `shard` sent. Dropped while the ring is full
   * or the shards restart: the shard sends the settlement again, and the peer answers again.
   */
  submitSettleAnswer(shard: number, account: number, answer: SettleAnswer, payload: Uint8Array): void {
    if (!this.attached || shard >= this.toShard.length) return
    if (this.overflow[shard].length === 0 && this.toShard[shard].tryWrite(RecordKind.SettleAnswer, account, answer, 0, 0, payload)) return this.kick(shard)
    this.log.debug('dropped the answer to a settlement (ring full); the shard sends it again', { account: this.accounts.get(account).id })
  }

  /**
   * A request to the shard that owns `account`, answered later on (connId, requestId); false (the
   * caller refuses it) while that ring is full, has replies waiting, or the shards restart.
   */
  private submitToOwner(kind: RecordKind, account: number, connId: number, requestId: number, payload: Uint8Array): boolean {
    if (!this.attached) return false
    const shard = this.accounts.ownerShard[account]
    if (this.overflow[shard].length > 0) return false
    if (!this.toShard[shard].tryWrite(kind, account, connId, requestId, 0, payload)) return false
    this.counters?.toShards()
    this.kick(shard)
    return true
  }

  /** A BTP answer from `account` to a request this thread does not know: counted for /metrics. */
  countUnknownAnswer(account: number): void {
    this.counters?.unknownAnswer(account)
  }

  /** Hands `from`'s reply to the shard that forwarded the prepare to it. Never dropped. */
  submitReply(shard: number, pendingId: number, from: number, ilp: Uint8Array): void {
    if (!this.attached) return // the prepare it answers died with its shard
    const queue = this.overflow[shard]
    this.counters?.toShards()
    if (queue.length === 0 && writeAnswer(this.toShard[shard], RecordKind.ReplyIn, pendingId, from, ilp)) return this.kick(shard)
    queue.push({ kind: RecordKind.ReplyIn, pendingId, detail: from, payload: Uint8Array.prototype.slice.call(ilp) })
  }

  submitSendFailure(shard: number, pendingId: number, reason: SendFailure): void {
    if (!this.attached) return
    const queue = this.overflow[shard]
    this.counters?.toShards()
    if (queue.length === 0 && writeAnswer(this.toShard[shard], RecordKind.SendFailed, pendingId, reason, null)) return this.kick(shard)
    queue.push({ kind: RecordKind.SendFailed, pendingId, detail: reason, payload: null })
  }

  // A record reaches its shard at the next flush of the ring, in this thread's turn; the inline
  // shard's records go at once, and its turn is scheduled instead.
  private kick(shard: number): void {
    if (this.inlineKick !== null) {
      this.toShard[shard].flush()
      return this.inlineKick()
    }
    if (this.unpublished[shard] === 0) {
      this.unpublished[shard] = 1
      this.unpublishedShards.push(shard)
    }
    this.scheduleTurn()
  }

  private readonly scheduleTurn = (): void => {
    if (this.turnScheduled || !this.attached || this.inlineKick !== null) return
    this.turnScheduled = true
    this.doorbell!.cancelSleep()
    setImmediate(this.turn)
  }

  private readonly turn = (): void => {
    this.turnScheduled = false
    if (!this.attached) return
    this.publish()
    for (let i = 0; i < DRAINS_PER_TURN && this.drain(); i++) {
      this.flushOverflow()
      this.publish()
    }
    this.flushOverflow()
    this.publish()
    this.doorbell!.prepareToSleep()
    if (this.hasInput()) return this.scheduleTurn()
    if (this.overflowTimer === null && this.overflow.some((q) => q.length > 0)) {
      this.overflowTimer = setTimeout(() => {
        this.overflowTimer = null
        this.scheduleTurn()
      }, OVERFLOW_RETRY_MS)
    }
  }

  private publish(): void {
    for (const shard of this.unpublishedShards) {
      this.unpublished[shard] = 0
      if (this.toShard[shard].flush()) this.shardDoorbells[shard].ring()
    }
    this.unpublishedShards.length = 0
  }

  private hasInput(): boolean {
    for (const ring of this.fromShard) if (ring.hasData()) return true
    return false
  }

  flushOverflow(): void {
    for (let shard = 0; shard < this.overflow.length; shard++) {
      const queue = this.overflow[shard]
      if (queue.length === 0) continue
      let sent = 0
      for (const q of queue) {
        if (!writeAnswer(this.toShard[shard], q.kind, q.pendingId, q.detail, q.payload)) break
        sent++
      }
      if (sent > 0) {
        queue.splice(0, sent)
        this.kick(shard)
      }
    }
  }

  /** Delivers every record the shards have published for this thread; true if there were any. */
  drain(): boolean {
    if (!this.attached) return false
    let any = false
    for (let shard = 0; shard < this.fromShard.length; shard++) {
      const ring = this.fromShard[shard]
      if (!ring.hasData()) continue
      any = true
      ring.beginBatch()
      let records = 0
      while (ring.next()) {
        records++
        const ilp = ring.data.subarray(ring.payloadOffset, ring.payloadOffset + ring.payloadLength)
        if (ring.kind === RecordKind.ReplyOut) this.outputs.reply(ring.a, ring.b, ring.c, ilp)
        else if (ring.kind === RecordKind.PrepareOut) this.outputs.forward(shard, ring.a, pendingIdOf(ring.b, ring.d), ring.c, ilp)
        else if (ring.kind === RecordKind.ControlOut) this.outputs.control(ring.a, ring.b, ring.c, ilp)
        else if (ring.kind === RecordKind.SettleOut) this.outputs.settle(shard, ring.a, ilp)
        else if (ring.kind === RecordKind.TransferReply) this.outputs.transferAnswer(ring.a, ring.b, ring.c, ilp)
        else this.log.error('unexpected record from shard', { shard, kind: ring.kind })
      }
      ring.endBatch()
      this.counters?.fromShards(records)
    }
    if (any) this.outputs.flush()
    return any
  }

  stop(): void {
    this.attached = false
    this.watch?.close()
    this.watch = null
    if (this.overflowTimer !== null) clearTimeout(this.overflowTimer)
    this.overflowTimer = null
  }
}

/** An answer to a forwarded prepare as its record (ring/records.ts: REPLY_IN, SEND_FAILED). */
function writeAnswer(ring: RingWriter, kind: RecordKind.ReplyIn | RecordKind.SendFailed, pendingId: number, detail: number, payload: Uint8Array | null): boolean {
  const low = pendingIdLow(pendingId)
  const high = pendingIdHigh(pendingId)
  return kind === RecordKind.ReplyIn ? ring.tryWrite(kind, low, high, detail, 0, payload) : ring.tryWrite(kind, low, detail, high, 0, payload)
}
