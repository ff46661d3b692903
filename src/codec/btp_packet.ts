// BTP/2.0 frames (RFC 23). One frame per binary WebSocket message:
//
//   type u8 | requestId u32 | var-oct contents
//   Response 1 / Message 6:  protocolData
//   Error 2:                 code 3 ASCII | name var-oct | triggeredAt var-oct | data var-oct | protocolData
//   Transfer 7:              amount u64 | protocolData
//   protocolData:            VarUInt count | { name var-oct | contentType u8 | data var-oct } ...
//
// The reader fills preallocated offset arrays, so reading a frame allocates nothing; an I/O
// thread copies only the `ilp` entry's bytes, straight into a shard's ring.

import { OerReader, lengthPrefixSize, readUInt64, writeLength, writeUInt32, writeUInt64 } from './oer'
import { generalizedTime } from './ilp_time'

export const BTP_RESPONSE = 1
export const BTP_ERROR = 2
export const BTP_MESSAGE = 6
export const BTP_TRANSFER = 7

export const CONTENT_OCTET_STREAM = 0
export const CONTENT_TEXT_PLAIN = 1

/** More entries than this in one frame is treated as malformed. */
const MAX_PROTOCOL_ENTRIES = 16

const ILP_NAME = Buffer.from('ilp', 'latin1')

export class BtpFrame {
  buf: Uint8Array = new Uint8Array(0)
  type = 0
  requestId = 0
  amount = 0n
  errorCode = ''
  errorName = ''
  errorData = ''
  entryCount = 0
  readonly nameOffset = new Int32Array(MAX_PROTOCOL_ENTRIES)
  readonly nameLength = new Int32Array(MAX_PROTOCOL_ENTRIES)
  readonly contentType = new Uint8Array(MAX_PROTOCOL_ENTRIES)
  readonly dataOffset = new Int32Array(MAX_PROTOCOL_ENTRIES)
  readonly dataLength = new Int32Array(MAX_PROTOCOL_ENTRIES)
  /** Why the last parse failed, for the BTP error and the log. */
  error = ''
  private readonly reader = new OerReader()

  parse(buf: Uint8Array): boolean {
    this.buf = buf
    this.entryCount = 0
    const r = this.reader.reset(buf, 0, buf.length)
    this.type = r.readUInt8()
    this.requestId = r.readUInt32()
    if (this.requestId < 0) return this.fail('frame too short')
    const contentLength = r.readLength()
    if (contentLength < 0 || r.pos + contentLength > buf.length) return this.fail('bad contents length')
    r.end = r.pos + contentLength
    switch (this.type) {
      case BTP_RESPONSE:
      case BTP_MESSAGE:
        return this.parseProtocolData(r)
      case BTP_TRANSFER:
        if (r.pos + 8 > r.end) return this.fail('transfer too short')
        this.amount = readUInt64(buf, r.pos)
        r.pos += 8
        return this.parseProtocolData(r)
      case BTP_ERROR: {
        if (r.pos + 3 > r.end) return this.fail('error too short')
        this.errorCode = Buffer.from(buf.buffer, buf.byteOffset + r.pos, 3).toString('latin1')
        r.pos += 3
        const name = this.readString(r)
        const triggeredAt = this.readString(r)
        const data = this.readString(r)
        if (name === null || triggeredAt === null || data === null) return this.fail('bad error fields')
        this.errorName = name
        this.errorData = data
        return this.parseProtocolData(r)
      }
      default:
        return this.fail(`unknown BTP packet type ${this.type}`)
    }
  }

  private readString(r: OerReader): string | null {
    const start = r.readVarOctetString()
    if (start < 0) return null
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + start, r.pos - start).toString('utf8')
  }

  private parseProtocolData(r: OerReader): boolean {
    const count = r.readVarUIntSmall()
    if (count < 0) return this.fail('bad protocol data count')
    if (count > MAX_PROTOCOL_ENTRIES) return this.fail('too many protocol data entries')
    for (let i = 0; i < count; i++) {
      const nameOffset = r.readVarOctetString()
      if (nameOffset < 0) return this.fail('bad protocol name')
      this.nameOffset[i] = nameOffset
      this.nameLength[i] = r.pos - nameOffset
      const contentType = r.readUInt8()
      if (contentType < 0) return this.fail('missing content type')
      this.contentType[i] = contentType
      const dataOffset = r.readVarOctetString()
      if (dataOffset < 0) return this.fail('bad protocol data')
      this.dataOffset[i] = dataOffset
      this.dataLength[i] = r.pos - dataOffset
    }
    this.entryCount = count
    this.error = ''
    return true
  }

  private fail(reason: string): false {
    this.error = reason
    return false
  }

  nameIs(i: number, name: Uint8Array): boolean {
    if (this.nameLength[i] !== name.length) return false
    const at = this.nameOffset[i]
    for (let k = 0; k < name.length; k++) if (this.buf[at + k] !== name[k]) return false
    return true
  }

  /** Index of the first entry called `name`, or -1. */
  findEntry(name: Uint8Array): number {
    for (let i = 0; i < this.entryCount; i++) if (this.nameIs(i, name)) return i
    return -1
  }

  entryName(i: number): string {
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + this.nameOffset[i], this.nameLength[i]).toString('latin1')
  }

  entryText(i: number): string {
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + this.dataOffset[i], this.dataLength[i]).toString('utf8')
  }

  entryData(i: number): Uint8Array {
    return this.buf.subarray(this.dataOffset[i], this.dataOffset[i] + this.dataLength[i])
  }
}

// A frame whose only entry is `ilp` (octet-stream): the shape of every packet on the data path.
//   type | requestId | len | 01 01 | 03 'ilp' | 00 | len | ilp bytes
function ilpFrameContentLength(ilpLength: number): number {
  return 2 + 1 + ILP_NAME.length + 1 + lengthPrefixSize(ilpLength) + ilpLength
}

export function ilpFrameLength(ilpLength: number): number {
  const contentLength = ilpFrameContentLength(ilpLength)
  return 5 + lengthPrefixSize(contentLength) + contentLength
}

/** Writes a Message or Response carrying one `ilp` entry; returns the frame length. */
export function writeIlpFrame(out: Uint8Array, type: number, requestId: number, ilp: Uint8Array): number {
  out[0] = type
  writeUInt32(out, 1, requestId)
  let pos = writeLength(out, 5, ilpFrameContentLength(ilp.length))
  out[pos++] = 1 // VarUInt count: length 1,
  out[pos++] = 1 // value 1
  pos = writeLength(out, pos, ILP_NAME.length)
  out.set(ILP_NAME, pos)
  pos += ILP_NAME.length
  out[pos++] = CONTENT_OCTET_STREAM
  pos = writeLength(out, pos, ilp.length)
  out.set(ilp, pos)
  return pos + ilp.length
}

export interface ProtocolDataEntry {
  protocolName: string
  contentType: number
  data: Uint8Array
}

function protocolDataLength(entries: ProtocolDataEntry[]): number {
  let length = 2
  for (const e of entries) {
    length += lengthPrefixSize(e.protocolName.length) + e.protocolName.length + 1 + lengthPrefixSize(e.data.length) + e.data.length
  }
  return length
}

function writeProtocolData(out: Uint8Array, pos: number, entries: ProtocolDataEntry[]): number {
  out[pos++] = 1
  out[pos++] = entries.length
  for (const e of entries) {
    const name = Buffer.from(e.protocolName, 'latin1')
    pos = writeLength(out, pos, name.length)
    out.set(name, pos)
    pos += name.length
    out[pos++] = e.contentType
    pos = writeLength(out, pos, e.data.length)
    out.set(e.data, pos)
    pos += e.data.length
  }
  return pos
}

function frame(type: number, requestId: number, head: Uint8Array, entries: ProtocolDataEntry[]): Buffer {
  if (entries.length > 255) throw new RangeError('too many protocol data entries')
  const contentLength = head.length + protocolDataLength(entries)
  const out = Buffer.allocUnsafe(5 + lengthPrefixSize(contentLength) + contentLength)
  out[0] = type
  writeUInt32(out, 1, requestId)
  let pos = writeLength(out, 5, contentLength)
  out.set(head, pos)
  pos = writeProtocolData(out, pos + head.length, entries)
  return out.subarray(0, pos)
}

export function encodeMessage(requestId: number, entries: ProtocolDataEntry[]): Buffer {
  return frame(BTP_MESSAGE, requestId, new Uint8Array(0), entries)
}

export function encodeResponse(requestId: number, entries: ProtocolDataEntry[] = []): Buffer {
  return frame(BTP_RESPONSE, requestId, new Uint8Array(0), entries)
}

export function encodeTransfer(requestId: number, amount: bigint, entries: ProtocolDataEntry[]): Buffer {
  const head = Buffer.allocUnsafe(8)
  writeUInt64(head, 0, amount)
  return frame(BTP_TRANSFER, requestId, head, entries)
}

export function encodeError(requestId: number, code: string, name: string, data: string, nowMs = Date.now(), entries: ProtocolDataEntry[] = []): Buffer {
  const fields = [Buffer.from(name, 'utf8'), Buffer.from(generalizedTime(nowMs), 'latin1'), Buffer.from(data, 'utf8')]
  let length = 3
  for (const f of fields) length += lengthPrefixSize(f.length) + f.length
  const head = Buffer.allocUnsafe(length)
  head.write(code, 0, 3, 'latin1')
  let pos = 3
  for (const f of fields) {
    pos = writeLength(head, pos, f.length)
    head.set(f, pos)
    pos += f.length
  }
  return frame(BTP_ERROR, requestId, head, entries)
}
