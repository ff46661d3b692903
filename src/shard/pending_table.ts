// The prepares a shard has forwarded and not yet seen answered: a fixed-capacity table allocated
// once, plus a timing wheel so that expiry costs O(1) per packet.
//
//   pendingId (u32) = generation (high 12 bits) | slot (low 20 bits)
//   A reply names its pendingId; a stale id (slot reused since) fails the generation check, so a
//   late fulfill after an R00 can never settle someone else's prepare.
//
//   Wheel: WHEEL_SLOTS buckets of TICK_MS each; a slot sits in the bucket of its expiry, on an
//   intrusive doubly linked list (next/prev arrays), so removal on reply is O(1). The wheel spans
//   WHEEL_SLOTS * TICK_MS = 131 s, more than any allowed hold time, so one lap never aliases.

const SLOT_BITS = 20
const SLOT_MASK = (1 << SLOT_BITS) - 1
const GENERATION_MASK = 0xfff
const TICK_MS = 32
const WHEEL_SLOTS = 4096
const NONE = -1

export class PendingTable {
  readonly capacity: number
  readonly generation: Uint16Array
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
    if (capacity > SLOT_MASK + 1) throw new RangeError(`pending capacity ${capacity} exceeds ${SLOT_MASK + 1}`)
    this.capacity = capacity
    this.generation = new Uint16Array(capacity)
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
    this.generation[slot] = (this.generation[slot] + 1) & GENERATION_MASK
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
    return ((this.generation[slot] << SLOT_BITS) | slot) >>> 0
  }

  /** The slot a pendingId names, or -1 if it is unknown, finished, or from an older generation. */
  find(pendingId: number): number {
    const slot = pendingId & SLOT_MASK
    if (slot >= this.capacity || this.live[slot] === 0) return -1
    if (this.generation[slot] !== pendingId >>> SLOT_BITS) return -1
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
