// One turn of a shard: drain the rings into the shard, expire what is due, commit, publish.
// The only loop body in the shard; the worker (shard_worker.ts) and the inline host on the main
// thread differ only in how they wait for the next turn.

import { errorFields, type Logger } from '../log'
import type { Doorbell } from '../ring/doorbell'
import type { RingReader, RingWriter } from '../ring/ring'
import { T00_INTERNAL_ERROR } from '../codec/ilp_errors'
import { encodeReject } from '../codec/ilp_packet'
import { ioThreadOf, OUTPUT_SLACK_BYTES, pendingIdOf, RecordKind, type SettleAnswer } from '../ring/records'
import { OutputRingFull, type Shard } from './shard'
import type { SendFailure } from '../codec/ilp_errors'

/** Records taken from one ring per turn, so a busy ring cannot starve the others or the commit. */
const BATCH_RECORDS_MAX = 256

export interface ShardLoopOptions {
  shard: Shard
  fromIo: RingReader[]
  toIo: RingWriter[]
  fromShards: (RingReader | null)[]
  toShards: (RingWriter | null)[]
  /** Null inline: the main thread runs the loop itself and needs no wake-ups. */
  ioDoorbells: Doorbell[] | null
  shardDoorbells: (Doorbell | null)[]
  /** Wiring.inFlight, and this shard's cell in it. */
  inFlight: Int32Array
  shardIndex: number
  /** Output room needed before taking an input: the largest frame plus a reject. */
  outputReserveBytes: number
  ilpAddress: string
  log: Logger
}

export class ShardLoop {
  private readonly o: ShardLoopOptions

  constructor(o: ShardLoopOptions) {
    this.o = o
  }

  get shard(): Shard {
    return this.o.shard
  }

  /** Runs one turn; true if it consumed any input. */
  turn(nowMs: number): boolean {
    const { shard, fromIo, fromShards } = this.o
    let worked = false
    // Other shards first: a credit for a fulfill is published before that fulfill can reach its
    // sender, so a peer.balance asked after it (arriving from an I/O thread) must see it.
    for (const ring of fromShards) if (ring !== null && this.drain(ring, nowMs)) worked = true
    for (const ring of fromIo) if (this.drain(ring, nowMs)) worked = true
    shard.expire(nowMs)
    // A failed commit holds the turn's outputs back (they stay unpublished in the rings, in
    // order): nothing that depends on it leaves, and the next turns try it again. Its answers
    // count as in flight meanwhile, so that a drain at shutdown waits for them.
    const committed = shard.commit(nowMs)
    // Holds and the in-flight count before the records they go with: whoever has seen a fulfill
    // (the admin API, a drain) then sees its hold released.
    Atomics.store(this.o.inFlight, this.o.shardIndex, shard.pending.count + (committed ? 0 : 1))
    shard.publishHolds()
    if (committed) this.publish()
    return worked
  }

  hasInput(): boolean {
    for (const ring of this.o.fromIo) if (ring.hasData()) return true
    for (const ring of this.o.fromShards) if (ring !== null && ring.hasData()) return true
    return false
  }

  /** True while the shard has timers or queued credits that need a turn without input. */
  needsTicks(): boolean {
    return this.o.shard.pending.count > 0 || this.o.shard.hasUnsentCredits() || this.o.shard.hasSettlementWork() || this.o.shard.hasCommitOwed()
  }

  private drain(ring: RingReader, nowMs: number): boolean {
    if (!ring.hasData()) return false
    const { shard } = this.o
    ring.beginBatch()
    let n = 0
    while (n < BATCH_RECORDS_MAX && this.outputsHaveRoom() && ring.next()) {
      n++
      const start = ring.payloadOffset
      const end = start + ring.payloadLength
      try {
        switch (ring.kind) {
          case RecordKind.PrepareIn:
            shard.handlePrepare(ring.a, ring.b, ring.c, ring.data, start, end, nowMs)
            break
          case RecordKind.DeliverIn:
            shard.handleDeliver(ring.a, pendingIdOf(ring.b, ring.d), ring.c, ring.data, start, end, nowMs)
            break
          case RecordKind.DeliveryReply:
            shard.handleReply(pendingIdOf(ring.a, ring.b), ring.c, ring.data, start, end, nowMs)
            break
          case RecordKind.SpendIn:
            shard.handleSpend(ring.a, ring.b, ring.c, ring.data, start, end)
            break
          case RecordKind.ReplyIn:
            shard.handleReply(pendingIdOf(ring.a, ring.b), ring.c, ring.data, start, end, nowMs)
            break
          case RecordKind.SendFailed:
            shard.handleSendFailed(pendingIdOf(ring.a, ring.c), ring.b as SendFailure)
            break
          case RecordKind.SettleAnswer:
            shard.handleSettleAnswer(ring.a, ring.b as SettleAnswer, ring.data, start, end, nowMs)
            break
          case RecordKind.TransferIn:
            shard.handleTransferIn(ring.a, ring.b, ring.c, ring.data, start, nowMs)
            break
          case RecordKind.Credit:
            shard.handleCredit(ring.a, (BigInt(ring.b) << 32n) | BigInt(ring.c))
            break
          default:
            throw new Error(`unexpected record kind ${ring.kind}`)
        }
      } catch (err) {
        if (err instanceof OutputRingFull) throw err
        this.o.log.error('shard failed to handle a record', { kind: ring.kind, ...errorFields(err) })
        const reject = encodeReject(T00_INTERNAL_ERROR, this.o.ilpAddress, 'internal error')
        if (ring.kind === RecordKind.PrepareIn) this.o.toIo[ioThreadOf(ring.b)].tryWrite(RecordKind.ReplyOut, ring.b, ring.c, ring.a, 0, reject)
        else if (ring.kind === RecordKind.DeliverIn) this.o.toShards[ring.c]?.tryWrite(RecordKind.DeliveryReply, ring.b, ring.d, ring.a, 0, reject)
      }
    }
    ring.endBatch()
    return n > 0
  }

  /**
   * Room for the largest answer in every output ring: an input's output may go to any I/O
   * thread, or (a payment to a payee, or the payee's answer) to any other shard.
   */
  private outputsHaveRoom(): boolean {
    const { toIo, toShards, outputReserveBytes } = this.o
    for (let i = 0; i < toIo.length; i++) if (!toIo[i].hasRoomFor(outputReserveBytes)) return false
    for (let i = 0; i < toShards.length; i++) if (toShards[i]?.hasRoomFor(outputReserveBytes) === false) return false
    return true
  }

  private publish(): void {
    const { toIo, toShards, ioDoorbells, shardDoorbells } = this.o
    // Credits before the fulfills that caused them (see turn).
    for (let i = 0; i < toShards.length; i++) {
      const ring = toShards[i]
      if (ring !== null && ring.flush()) shardDoorbells[i]?.ring()
    }
    for (let i = 0; i < toIo.length; i++) if (toIo[i].flush() && ioDoorbells !== null) ioDoorbells[i].ring()
  }
}

export function outputReserveBytes(maxFrameBytes: number): number {
  return maxFrameBytes + OUTPUT_SLACK_BYTES
}
