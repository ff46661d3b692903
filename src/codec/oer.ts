// OER primitives shared by ILP, BTP and the peer protocols (RFC 30).
//
// Length determinant:  0x00..0x7f            short form, the length itself
//                      0x80|n, n bytes BE     long form; canonical only (no n = 0, no leading
//                                             zero byte, no value that fits the short form)
// Readers work on a Uint8Array window [pos, end) and never allocate; a malformed field makes
// a read return -1 so callers can turn it into the right error (F01, a BTP error, a 400).

/** A cursor over one buffer; reused so that parsing a packet allocates nothing. */
export class OerReader {
  buf: Uint8Array = new Uint8Array(0)
  pos = 0
  end = 0

  reset(buf: Uint8Array, pos: number, end: number): this {
    this.buf = buf
    this.pos = pos
    this.end = end
    return this
  }

  /** Reads a length determinant; -1 if truncated or not canonical. */
  readLength(): number {
    const { buf, end } = this
    let pos = this.pos
    if (pos >= end) return -1
    const first = buf[pos++]
    if (first < 0x80) {
      this.pos = pos
      return first
    }
    const n = first & 0x7f
    // Four bytes cover every length a 32-bit platform buffer can hold.
    if (n === 0 || n > 4 || pos + n > end) return -1
    if (buf[pos] === 0) return -1
    let length = 0
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos + i]
    if (n === 1 && length < 0x80) return -1
    this.pos = pos + n
    return length
  }

  /** Reads a var-octet-string header; returns its content offset or -1. Advances past it. */
  readVarOctetString(): number {
    const length = this.readLength()
    if (length < 0 || this.pos + length > this.end) return -1
    const start = this.pos
    this.pos += length
    return start
  }

  /** Reads a VarUInt that fits in a JS number (≤ 6 bytes); -1 if malformed. */
  readVarUIntSmall(): number {
    const length = this.readLength()
    if (length < 1 || length > 6 || this.pos + length > this.end) return -1
    let value = 0
    for (let i = 0; i < length; i++) value = value * 256 + this.buf[this.pos + i]
    this.pos += length
    return value
  }

  readUInt8(): number {
    if (this.pos >= this.end) return -1
    return this.buf[this.pos++]
  }

  readUInt32(): number {
    if (this.pos + 4 > this.end) return -1
    const b = this.buf
    const p = this.pos
    this.pos = p + 4
    return ((b[p] << 24) >>> 0) + (b[p + 1] << 16) + (b[p + 2] << 8) + b[p + 3]
  }
}

/** Bytes a length determinant for `length` takes. */
export function lengthPrefixSize(length: number): number {
  if (length < 0x80) return 1
  if (length < 0x100) return 2
  if (length < 0x10000) return 3
  if (length < 0x1000000) return 4
  return 5
}

/** Writes a canonical length determinant at `pos`; returns the position after it. */
export function writeLength(buf: Uint8Array, pos: number, length: number): number {
  if (length < 0x80) {
    buf[pos] = length
    return pos + 1
  }
  const n = lengthPrefixSize(length) - 1
  buf[pos++] = 0x80 | n
  for (let i = n - 1; i >= 0; i--) {
    buf[pos + i] = length & 0xff
    length = Math.floor(length / 256)
  }
  return pos + n
}

/** Writes a var-octet-string (length determinant + bytes); returns the position after it. */
export function writeUInt32(buf: Uint8Array, pos: number, value: number): number {
  buf[pos] = value >>> 24
  buf[pos + 1] = (value >>> 16) & 0xff
  buf[pos + 2] = (value >>> 8) & 0xff
  buf[pos + 3] = value & 0xff
  return pos + 4
}

export function readUInt64(buf: Uint8Array, pos: number): bigint {
  const hi = ((buf[pos] << 24) >>> 0) + (buf[pos + 1] << 16) + (buf[pos + 2] << 8) + buf[pos + 3]
  const lo = ((buf[pos + 4] << 24) >>> 0) + (buf[pos + 5] << 16) + (buf[pos + 6] << 8) + buf[pos + 7]
  return (BigInt(hi) << 32n) | BigInt(lo)
}

export function writeUInt64(buf: Uint8Array, pos: number, value: bigint): number {
  const hi = Number(value >> 32n)
  const lo = Number(value & 0xffffffffn)
  writeUInt32(buf, pos, hi)
  writeUInt32(buf, pos + 4, lo)
  return pos + 8
}

/** Signed 64-bit two's complement, big-endian (il-balance). */
export function writeInt64(buf: Uint8Array, pos: number, value: bigint): number {
  return writeUInt64(buf, pos, BigInt.asUintN(64, value))
}

export const UINT64_MAX = 0xffffffffffffffffn
export const INT64_MAX = 0x7fffffffffffffffn
export const INT64_MIN = -0x8000000000000000n
