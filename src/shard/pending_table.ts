// The prepares a shard has forwarded and not yet seen answered: a fixed-capacity table allocated
// once, plus a timing wheel so that expiry costs O(1) per packet.
//
//   pendingId = generation × 2^slotBits + slot     a JS integer below 2^47 (PENDING_ID_LIMIT)
//   slotBits is the fewest bits that hold the capacity (16 for the default 65,536 slots, at most
//   20); the generation takes the other 47 − slotBits bits (31 by default, at least 27) and moves
//   on each time the slot is taken.
//
//   Wheel: WHEEL_SLOTS buckets of TICK_MS each; a slot sits in the bucket of its expiry, on an
//   intrusive doubly linked list (next/prev arrays), so removal on reply is O(1). The wheel spans
//   WHEEL_SLOTS * TICK_MS = 131 s, more than any allowed hold time, so one lap never aliases.
//
// Why an answer can only settle the prepare it answers. An answer reaches the shard only through
// the I/O thread that sent the prepare, which keeps (its request → pendingId) until the first
// answer takes it (a second answer to the same request is unknown there and dropped), until the
// link fails, or until it forgets it: between limits.maxHoldTimeMs + 1 s and twice that after
// sending (io/btp/btp_endpoint.ts; over HTTP, io/http/http_ilp_client.ts, within 1.5 s after the
// prepare's expiry, itself within limits.maxHoldTimeMs of sending), so never more than 242 s. A
// slot's id changes at every allocation and comes back only after 2^(47 − slotBits) ≥ 2^27
// allocations of that same slot; meanwhile a live slot is never handed out again. For an answer
// still held by an I/O thread to find its id reused, one slot would have to be taken 2^27 times
// in 242 s: 550,000 prepares a second through a single slot (at the default capacity, 8.9
// million), several times what a whole shard forwards. So find() answers -1 for a late answer
// (its prepare expired, R00, or was answered) and the shard drops it (counted, never applied);
// the shard also checks that the answer came from the account the prepare was sent to. The ids
// start over when the shards restart: the I/O threads forget every request of the shards they
// detach from first (io/io_front.ts shardsRestarting), so no answer of before reaches them.

import { PENDING_ID_LIMIT } from '../ring/records'

const SLOT_BITS_MAX = 20
const TICK_MS = 32
const WHEEL_SLOTS = 4096
const NONE = -1

export class PendingTable {
  readonly capacity: number
  private readonly slotCount: number
  private readonly slotMask: number
  private readonly generations: number
  readonly generation: Uint32Array
  readonly sourceAccount: Int32Array
  readonly destinationAccount: Int32Array
  readonly connId: Uint32Array
  readonly requestId: Uint32Array
  readonly expiresAtMs: Float64Array
  readonly condition: Uint8Array
  readonly sourceAmount: bigint[]
  readonly destinationAmount: bigint[]
  private readonly live: Uint8Array
  private readonly freeSlots: Int32Array
  private freeCount: number
  private readonly next: Int32Array
  private readonly prev: Int32Array
  private readonly bucketOf: Int32Array
  private readonly heads: Int32Array
  private wheelTick = -1
  count = 0

  constructor(capacity: number) {
    if (capacity < 1 || capacity > 2 ** SLOT_BITS_MAX) throw new RangeError(`pending capacity ${capacity} is not between 1 and ${2 ** SLOT_BITS_MAX}`)
    this.capacity = capacity
    const slotBits = Math.max(1, Math.ceil(Math.log2(capacity)))
    this.slotCount = 2 ** slotBits
    this.slotMask = this.slotCount - 1
    this.generations = PENDING_ID_LIMIT / this.slotCount
    this.generation = new Uint32Array(capacity)
    this.sourceAccount = new Int32Array(capacity)
    this.destinationAccount = new Int32Array(capacity)
    this.connId = new Uint32Array(capacity)
    this.requestId = new Uint32Array(capacity)
    this.expiresAtMs = new Float64Array(capacity)
    this.condition = new Uint8Array(capacity * 32)
    this.sourceAmount = new Array<bigint>(capacity).fill(0n)
    this.destinationAmount = new Array<bigint>(capacity).fill(0n)
    this.live = new Uint8Array(capacity)
    this.freeSlots = new Int32Array(capacity)
    for (let i = 0; i < capacity; i++) this.freeSlots[i] = capacity - 1 - i
    this.freeCount = capacity
    this.next = new Int32Array(capacity).fill(NONE)
    this.prev = new Int32Array(capacity).fill(NONE)
    this.bucketOf = new Int32Array(capacity).fill(NONE)
    this.heads = new Int32Array(WHEEL_SLOTS).fill(NONE)
  }

  /** Takes a free slot (or -1 when full) and files it under its expiry. Caller fills the fields. */
  allocate(expiresAtMs: number, nowMs: number): number {
    if (this.freeCount === 0) return -1
    const slot = this.freeSlots[--this.freeCount]
    this.generation[slot] = (this.generation[slot] + 1) % this.generations
    this.live[slot] = 1
    this.expiresAtMs[slot] = expiresAtMs
    if (this.wheelTick < 0) this.wheelTick = Math.floor(nowMs / TICK_MS)
    const bucket = Math.floor(expiresAtMs / TICK_MS) & (WHEEL_SLOTS - 1)
    this.bucketOf[slot] = bucket
    const head = this.heads[bucket]
    this.next[slot] = head
    this.prev[slot] = NONE
    if (head !== NONE) this.prev[head] = slot
    this.heads[bucket] = slot
    this.count++
    return slot
  }

  idOf(slot: number): number {
    return this.generation[slot] * this.slotCount + slot
  }

  /** The slot a pendingId names, or -1 if it is unknown, finished, or from another generation. */
  find(pendingId: number): number {
    // `&` reads the low 32 bits of the integer, which hold the slot.
    const slot = pendingId & this.slotMask
    if (slot >= this.capacity || this.live[slot] === 0) return -1
    if (this.generation[slot] * this.slotCount + slot !== pendingId) return -1
    return slot
  }

  release(slot: number): void {
    const bucket = this.bucketOf[slot]
    const next = this.next[slot]
    const prev = this.prev[slot]
    if (prev !== NONE) this.next[prev] = next
    else this.heads[bucket] = next
    if (next !== NONE) this.prev[next] = prev
    this.live[slot] = 0
    this.freeSlots[this.freeCount++] = slot
    this.count--
  }

  /**
   * Calls `onExpired(slot)` for every live slot whose expiry is ≤ now; the callback releases it,
   * or returns false to stop (no room to answer now); the same slots come up again next call.
   */
  expire(nowMs: number, onExpired: (slot: number) => boolean): void {
    if (this.wheelTick < 0) return
    const nowTick = Math.floor(nowMs / TICK_MS)
    // Each bucket between the last visit and now; the current bucket may hold later expiries.
    const from = this.count === 0 ? nowTick : this.wheelTick
    for (let tick = from; tick <= nowTick; tick++) {
      let slot = this.heads[tick & (WHEEL_SLOTS - 1)]
      while (slot !== NONE) {
        const next = this.next[slot]
        if (this.expiresAtMs[slot] <= nowMs && !onExpired(slot)) {
          this.wheelTick = tick
          return
        }
        slot = next
      }
      if (tick - from > WHEEL_SLOTS) break
    }
    this.wheelTick = nowTick
  }

  /** Milliseconds until the next wheel tick that may hold an expiry (for the shard's sleep). */
  static readonly TICK_MS = TICK_MS
}
