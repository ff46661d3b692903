// A single-producer / single-consumer byte ring in a SharedArrayBuffer. It knows nothing of ILP.
//
//   SAB layout (each counter on its own 64-byte line, so producer and consumer never share one):
//     [0]    Int32 written   bytes published by the writer, free-running (wraps at 2^31)
//     [64]   Int32 read      bytes released by the reader, free-running
//     [192]  data           capacity bytes, a power of two
//
//   Record (8-byte aligned, never split across the end; a PAD record fills the tail instead):
//     u32 length   header + payload, unpadded
//     u16 kind     0 = PAD; the rest are the caller's
//     u16 flags
//     u32 a, b, c, d   four small fields whose meaning depends on kind
//     payload
//
// Ordering: the writer fills a record with plain stores, then publishes it with Atomics.store of
// `written`; the reader Atomics.loads `written` before reading, and releases space with
// Atomics.store of `read` only when it is done with the records. Atomics are sequentially
// consistent in JS, so no other fence is needed. `used = (written - read) | 0` stays right
// across the Int32 wrap while capacity < 2^31.

const RING_HEADER_BYTES = 192
const RECORD_HEADER_BYTES = 24
const WRITTEN = 0
const READ = 16 // Int32 index of byte 64
const KIND_PAD = 0

export function ringBytes(capacity: number): number {
  if (capacity < 1024 || (capacity & (capacity - 1)) !== 0 || capacity > 2 ** 30) {
    throw new RangeError(`ring capacity must be a power of two between 1 KiB and 1 GiB, got ${capacity}`)
  }
  return RING_HEADER_BYTES + capacity
}

/** Bytes published and not yet released in a ring, read from outside (a drain's check that it is empty). */
export function ringUsedBytes(sab: SharedArrayBuffer): number {
  const counters = new Int32Array(sab, 0, RING_HEADER_BYTES / 4)
  return (Atomics.load(counters, WRITTEN) - Atomics.load(counters, READ)) | 0
}

export function createRing(capacity: number): SharedArrayBuffer {
  return new SharedArrayBuffer(ringBytes(capacity))
}

function align8(n: number): number {
  return (n + 7) & ~7
}

class RingView {
  protected readonly counters: Int32Array
  readonly data: Uint8Array
  protected readonly view: DataView
  protected readonly mask: number
  readonly capacity: number

  constructor(readonly sab: SharedArrayBuffer) {
    this.counters = new Int32Array(sab, 0, RING_HEADER_BYTES / 4)
    this.capacity = sab.byteLength - RING_HEADER_BYTES
    this.data = new Uint8Array(sab, RING_HEADER_BYTES, this.capacity)
    this.view = new DataView(sab, RING_HEADER_BYTES, this.capacity)
    this.mask = this.capacity - 1
  }

  /** Bytes published and not yet released (for stats and tests). */
  usedBytes(): number {
    return (Atomics.load(this.counters, WRITTEN) - Atomics.load(this.counters, READ)) | 0
  }
}

export class RingWriter extends RingView {
  private written: number
  private readCache: number
  private pendingOffset = -1
  private pendingAdvance = 0

  constructor(sab: SharedArrayBuffer) {
    super(sab)
    this.written = Atomics.load(this.counters, WRITTEN)
    this.readCache = Atomics.load(this.counters, READ)
  }

  /** The largest payload a record can carry in this ring. */
  maxPayload(): number {
    return (this.capacity >>> 1) - RECORD_HEADER_BYTES
  }

  /** True if a record with this payload fits now (re-reads the reader's position if needed). */
  hasRoomFor(payloadLength: number): boolean {
    const needed = 2 * align8(RECORD_HEADER_BYTES + payloadLength)
    if (this.free() >= needed) return true
    this.readCache = Atomics.load(this.counters, READ)
    return this.free() >= needed
  }

  private free(): number {
    return this.capacity - ((this.written - this.readCache) | 0)
  }

  /**
   * Reserves a record with room for `payloadLength` bytes and fills its header. Returns the offset
   * of the payload in `data`, or -1 if the ring is full (back-pressure: nothing is dropped).
   * The record becomes visible to the reader only after `commit()` and `flush()`.
   */
  reserve(kind: number, payloadLength: number, a: number, b: number, c: number, d: number): number {
    if (payloadLength > this.maxPayload()) throw new RangeError(`record payload ${payloadLength} exceeds ${this.maxPayload()}`)
    const recordBytes = align8(RECORD_HEADER_BYTES + payloadLength)
    const pos = this.written & this.mask
    const tail = this.capacity - pos
    const needed = tail < recordBytes ? tail + recordBytes : recordBytes
    if (this.free() < needed) {
      this.readCache = Atomics.load(this.counters, READ)
      if (this.free() < needed) return -1
    }
    let at = pos
    if (tail < recordBytes) {
      this.view.setUint32(pos, tail, true)
      this.view.setUint16(pos + 4, KIND_PAD, true)
      at = 0
    }
    const v = this.view
    v.setUint32(at, RECORD_HEADER_BYTES + payloadLength, true)
    v.setUint16(at + 4, kind, true)
    v.setUint16(at + 6, 0, true)
    v.setUint32(at + 8, a, true)
    v.setUint32(at + 12, b, true)
    v.setUint32(at + 16, c, true)
    v.setUint32(at + 20, d, true)
    this.pendingOffset = at
    this.pendingAdvance = needed
    return at + RECORD_HEADER_BYTES
  }

  /** Shrinks the reserved record's payload to what was actually written (≤ the reservation). */
  setPayloadLength(payloadLength: number): void {
    this.view.setUint32(this.pendingOffset, RECORD_HEADER_BYTES + payloadLength, true)
  }

  /**
   * Ends the reserved record. It reaches the reader at the next `flush()`, so a producer can
   * hand over a whole batch with one atomic store (and a shard can hold its replies back until
   * the batch's transaction has committed).
   */
  commit(): void {
    this.written = (this.written + this.pendingAdvance) | 0
    this.pendingOffset = -1
  }

  /** Publishes every committed record; true if there was anything new. */
  flush(): boolean {
    if (Atomics.load(this.counters, WRITTEN) === this.written) return false
    Atomics.store(this.counters, WRITTEN, this.written)
    return true
  }

  /** Reserve, copy and commit in one call (not yet flushed); false when the ring is full. */
  tryWrite(kind: number, a: number, b: number, c: number, d: number, payload: Uint8Array | null): boolean {
    const at = this.reserve(kind, payload === null ? 0 : payload.length, a, b, c, d)
    if (at < 0) return false
    if (payload !== null) this.data.set(payload, at)
    this.commit()
    return true
  }
}

/** Fields of the record the reader is on; valid until `endBatch()`. */
export class RingReader extends RingView {
  private read: number
  private batchEnd = 0
  kind = 0
  a = 0
  b = 0
  c = 0
  d = 0
  payloadOffset = 0
  payloadLength = 0

  constructor(sab: SharedArrayBuffer) {
    super(sab)
    this.read = Atomics.load(this.counters, READ)
  }

  /** True if the writer has published records that this reader has not consumed. */
  hasData(): boolean {
    return Atomics.load(this.counters, WRITTEN) !== this.read
  }

  /** Snapshots what is published; `next()` then walks it without further atomics. */
  beginBatch(): void {
    this.batchEnd = Atomics.load(this.counters, WRITTEN)
  }

  /** Moves to the next record of the batch; false when the batch is done. */
  next(): boolean {
    const v = this.view
    while (this.read !== this.batchEnd) {
      const pos = this.read & this.mask
      const length = v.getUint32(pos, true)
      const kind = v.getUint16(pos + 4, true)
      if (kind === KIND_PAD) {
        this.read = (this.read + length) | 0
        continue
      }
      this.kind = kind
      this.a = v.getUint32(pos + 8, true)
      this.b = v.getUint32(pos + 12, true)
      this.c = v.getUint32(pos + 16, true)
      this.d = v.getUint32(pos + 20, true)
      this.payloadOffset = pos + RECORD_HEADER_BYTES
      this.payloadLength = length - RECORD_HEADER_BYTES
      this.read = (this.read + align8(length)) | 0
      return true
    }
    return false
  }

  payload(): Uint8Array {
    return this.data.subarray(this.payloadOffset, this.payloadOffset + this.payloadLength)
  }

  /** Releases every record walked so far back to the writer. */
  endBatch(): void {
    Atomics.store(this.counters, READ, this.read)
  }
}
