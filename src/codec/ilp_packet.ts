// ILPv4 packets (RFC 27). The prepare is parsed once into a view of offsets over the
// wire bytes; a connector changes only amount and expiry, so those are patched in place and the
// same bytes go to the next hop.
//
//   Prepare 0x0C: len | amount u64 | expiresAt 17 ASCII | condition 32 | destination var-oct | data var-oct
//   Fulfill 0x0D: len | fulfillment 32 | data var-oct
//   Reject  0x0E: len | code 3 ASCII | triggeredBy var-oct | message var-oct | data var-oct
// Trailing bytes after the last field are ignored (RFC 30, extensibility).

import { hash } from 'node:crypto'
import { OerReader, lengthPrefixSize, readUInt64, writeLength, writeUInt64 } from './oer'
import { ILP_TIMESTAMP_LENGTH, readIlpTimestamp, writeIlpTimestamp } from './ilp_time'
import type { IlpErrorCode } from './ilp_errors'

export const TYPE_PREPARE = 12
export const TYPE_FULFILL = 13
export const TYPE_REJECT = 14

export const MAX_DATA_LENGTH = 32767
const MAX_ADDRESS_LENGTH = 1023

// Byte classes allowed in an ILP address (RFC 15): segment characters and the '.' separator.
const ADDRESS_BYTE = new Uint8Array(256)
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_~-.') ADDRESS_BYTE[c.charCodeAt(0)] = 1
const DOT = 0x2e
const SCHEMES = ['g', 'private', 'example', 'peer', 'self', 'test', 'test1', 'test2', 'test3', 'local']

/** RFC 15's address pattern, as a byte loop: a scheme, then one or more non-empty segments. */
function isValidAddressBytes(buf: Uint8Array, pos: number, length: number): boolean {
  if (length < 3 || length > MAX_ADDRESS_LENGTH) return false
  let firstDot = -1
  let prev = DOT
  for (let i = 0; i < length; i++) {
    const b = buf[pos + i]
    if (ADDRESS_BYTE[b] === 0) return false
    if (b === DOT) {
      if (prev === DOT) return false
      if (firstDot < 0) firstDot = i
    }
    prev = b
  }
  if (prev === DOT || firstDot < 1) return false
  return isScheme(buf, pos, firstDot)
}

function isScheme(buf: Uint8Array, pos: number, length: number): boolean {
  outer: for (const scheme of SCHEMES) {
    if (scheme.length !== length) continue
    for (let i = 0; i < length; i++) if (scheme.charCodeAt(i) !== buf[pos + i]) continue outer
    return true
  }
  return false
}

export function isValidAddress(address: string): boolean {
  const bytes = Buffer.from(address, 'latin1')
  return bytes.length === address.length && isValidAddressBytes(bytes, 0, bytes.length)
}

/**
 * True if SHA-256(`fulfillment`) equals the 32 bytes of `condition` at `offset` (RFC 27's
 * fulfillment check). The digest comes back as a 'binary' (latin1) string, one character per byte: on
 * Node 20, crypto.hash returns a string in less than half the time it takes to return a Buffer.
 */
export function digestMatches(fulfillment: Uint8Array, condition: Uint8Array, offset: number): boolean {
  const digest = hash('sha256', fulfillment, 'binary')
  if (digest.length !== 32) return false
  for (let i = 0; i < 32; i++) if (digest.charCodeAt(i) !== condition[offset + i]) return false
  return true
}

/** Offsets and decoded numbers of one prepare; reused across packets by its owner. */
export class PrepareView {
  buf: Uint8Array = new Uint8Array(0)
  /** Where the packet starts in `buf`. */
  packetOffset = 0
  /** Total length of the packet including trailing junk inside the envelope. */
  packetLength = 0
  amountOffset = 0
  expiresAtOffset = 0
  conditionOffset = 0
  destinationOffset = 0
  destinationLength = 0
  dataOffset = 0
  dataLength = 0
  amount = 0n
  expiresAtMs = 0
  /** Why the last parse failed, for the F01 reject message and the log. */
  error = ''
  private readonly reader = new OerReader()

  /** Parses `buf[pos, end)`; false (with `error` set) when it is not a well-formed prepare. */
  parse(buf: Uint8Array, pos: number, end: number): boolean {
    this.buf = buf
    const r = this.reader.reset(buf, pos, end)
    if (r.readUInt8() !== TYPE_PREPARE) return this.fail('not an ILP prepare')
    const contentLength = r.readLength()
    if (contentLength < 0 || r.pos + contentLength > end) return this.fail('bad packet length')
    const contentEnd = r.pos + contentLength
    r.end = contentEnd
    const fixedStart = r.pos
    if (fixedStart + 8 + ILP_TIMESTAMP_LENGTH + 32 > contentEnd) return this.fail('prepare too short')
    this.amountOffset = fixedStart
    this.expiresAtOffset = fixedStart + 8
    this.conditionOffset = fixedStart + 8 + ILP_TIMESTAMP_LENGTH
    r.pos = this.conditionOffset + 32
    const destinationOffset = r.readVarOctetString()
    if (destinationOffset < 0) return this.fail('bad destination length')
    this.destinationOffset = destinationOffset
    this.destinationLength = r.pos - destinationOffset
    const dataOffset = r.readVarOctetString()
    if (dataOffset < 0) return this.fail('bad data length')
    this.dataOffset = dataOffset
    this.dataLength = r.pos - dataOffset
    if (this.dataLength > MAX_DATA_LENGTH) return this.fail('data too long')
    if (!isValidAddressBytes(buf, destinationOffset, this.destinationLength)) return this.fail('invalid destination address')
    this.expiresAtMs = readIlpTimestamp(buf, this.expiresAtOffset)
    if (Number.isNaN(this.expiresAtMs)) return this.fail('invalid expiresAt timestamp')
    this.amount = readUInt64(buf, this.amountOffset)
    this.packetOffset = pos
    this.packetLength = contentEnd - pos
    this.error = ''
    return true
  }

  private fail(reason: string): false {
    this.error = reason
    return false
  }

  destination(): string {
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + this.destinationOffset, this.destinationLength).toString('latin1')
  }

  destinationEquals(ascii: Uint8Array): boolean {
    if (ascii.length !== this.destinationLength) return false
    const { buf, destinationOffset } = this
    for (let i = 0; i < ascii.length; i++) if (buf[destinationOffset + i] !== ascii[i]) return false
    return true
  }

  destinationStartsWith(ascii: Uint8Array): boolean {
    if (ascii.length > this.destinationLength) return false
    const { buf, destinationOffset } = this
    for (let i = 0; i < ascii.length; i++) if (buf[destinationOffset + i] !== ascii[i]) return false
    return true
  }

  /** True if SHA-256(fulfillment) is this prepare's condition. */
  conditionMatches(fulfillment: Uint8Array): boolean {
    return digestMatches(fulfillment, this.buf, this.conditionOffset)
  }

  setAmount(amount: bigint): void {
    writeUInt64(this.buf, this.amountOffset, amount)
    this.amount = amount
  }

  setExpiresAt(epochMs: number): void {
    writeIlpTimestamp(this.buf, this.expiresAtOffset, epochMs)
    this.expiresAtMs = epochMs
  }
}

/** The kind of a reply from the next hop and, for a fulfill, where its fulfillment is. */
export const enum ReplyKind {
  Malformed = 0,
  Fulfill = 1,
  Reject = 2,
}

const replyReader = new OerReader()
export let lastFulfillmentOffset = 0
/** Where the 3-byte code of the last reject classifyReply saw starts. */
export let lastRejectCodeOffset = 0
/**
 * Where the last reply classifyReply saw ends: the end of its envelope, which bytes a peer
 * appended after it (an HTTP body or a BTP entry longer than the packet) do not move. Only the
 * packet is relayed, so a padded answer reaches the sender as the packet it is.
 */
export let lastReplyEnd = 0

/** Classifies a reply packet; sets `lastReplyEnd` and `lastFulfillmentOffset` or `lastRejectCodeOffset`. Validates the structure. */
export function classifyReply(buf: Uint8Array, pos: number, end: number): ReplyKind {
  const r = replyReader.reset(buf, pos, end)
  const type = r.readUInt8()
  const contentLength = r.readLength()
  if (contentLength < 0 || r.pos + contentLength > end) return ReplyKind.Malformed
  r.end = r.pos + contentLength
  lastReplyEnd = r.end
  if (type === TYPE_FULFILL) {
    if (r.pos + 32 > r.end) return ReplyKind.Malformed
    lastFulfillmentOffset = r.pos
    r.pos += 32
    const data = r.readVarOctetString()
    if (data < 0 || r.pos - data > MAX_DATA_LENGTH) return ReplyKind.Malformed
    return ReplyKind.Fulfill
  }
  if (type === TYPE_REJECT) {
    if (r.pos + 3 > r.end) return ReplyKind.Malformed
    lastRejectCodeOffset = r.pos
    r.pos += 3
    if (r.readVarOctetString() < 0 || r.readVarOctetString() < 0 || r.readVarOctetString() < 0) return ReplyKind.Malformed
    return ReplyKind.Reject
  }
  return ReplyKind.Malformed
}

function writeEnvelopeHeader(out: Uint8Array, pos: number, type: number, contentLength: number): number {
  out[pos] = type
  return writeLength(out, pos + 1, contentLength)
}

/** Writes a fulfill into `out` at `pos`; returns the end position. */
export function writeFulfill(out: Uint8Array, pos: number, fulfillment: Uint8Array, data: Uint8Array): number {
  const contentLength = 32 + lengthPrefixSize(data.length) + data.length
  pos = writeEnvelopeHeader(out, pos, TYPE_FULFILL, contentLength)
  out.set(fulfillment, pos)
  pos = writeLength(out, pos + 32, data.length)
  out.set(data, pos)
  return pos + data.length
}

export function fulfillLength(dataLength: number): number {
  const contentLength = 32 + lengthPrefixSize(dataLength) + dataLength
  return 1 + lengthPrefixSize(contentLength) + contentLength
}

export interface RejectFields {
  code: IlpErrorCode
  triggeredBy: Uint8Array
  message: Uint8Array
  data: Uint8Array
}

function rejectContentLength(f: RejectFields): number {
  return (
    3 +
    lengthPrefixSize(f.triggeredBy.length) + f.triggeredBy.length +
    lengthPrefixSize(f.message.length) + f.message.length +
    lengthPrefixSize(f.data.length) + f.data.length
  )
}

export function rejectLength(f: RejectFields): number {
  const contentLength = rejectContentLength(f)
  return 1 + lengthPrefixSize(contentLength) + contentLength
}

/** Writes a reject into `out` at `pos`; returns the end position. `out` must hold rejectLength(f). */
export function writeReject(out: Uint8Array, pos: number, f: RejectFields): number {
  pos = writeEnvelopeHeader(out, pos, TYPE_REJECT, rejectContentLength(f))
  out[pos] = f.code.charCodeAt(0)
  out[pos + 1] = f.code.charCodeAt(1)
  out[pos + 2] = f.code.charCodeAt(2)
  pos += 3
  for (const field of [f.triggeredBy, f.message, f.data]) {
    pos = writeLength(out, pos, field.length)
    out.set(field, pos)
    pos += field.length
  }
  return pos
}

export interface PrepareFields {
  amount: bigint
  expiresAtMs: number
  executionCondition: Uint8Array
  destination: string
  data: Uint8Array
}

/** Serializes a prepare (used where the node originates packets, and by tests and benches). */
export function encodePrepare(p: PrepareFields): Buffer {
  const destination = Buffer.from(p.destination, 'latin1')
  const contentLength =
    8 + ILP_TIMESTAMP_LENGTH + 32 +
    lengthPrefixSize(destination.length) + destination.length +
    lengthPrefixSize(p.data.length) + p.data.length
  const out = Buffer.allocUnsafe(1 + lengthPrefixSize(contentLength) + contentLength)
  let pos = writeEnvelopeHeader(out, 0, TYPE_PREPARE, contentLength)
  pos = writeUInt64(out, pos, p.amount)
  writeIlpTimestamp(out, pos, p.expiresAtMs)
  pos += ILP_TIMESTAMP_LENGTH
  out.set(p.executionCondition, pos)
  pos = writeLength(out, pos + 32, destination.length)
  out.set(destination, pos)
  pos = writeLength(out, pos + destination.length, p.data.length)
  out.set(p.data, pos)
  return out
}

export function encodeFulfill(fulfillment: Uint8Array, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(fulfillLength(data.length))
  writeFulfill(out, 0, fulfillment, data)
  return out
}

export function encodeReject(code: IlpErrorCode, triggeredBy: string, message: string, data: Uint8Array = new Uint8Array(0)): Buffer {
  const f: RejectFields = { code, triggeredBy: Buffer.from(triggeredBy, 'latin1'), message: Buffer.from(message, 'utf8'), data }
  const out = Buffer.allocUnsafe(rejectLength(f))
  writeReject(out, 0, f)
  return out
}
