// STREAM (RFC 29) for the node's payees: keys, and the packet codec a receive-only
// server needs. The envelope is PSK2's (AES-256-GCM, IV ‖ tag ‖ ciphertext) under other keys.
//
//   packet   version u8 = 1 · ilpPacketType u8 (12/13/14) · sequence VarUInt · prepareAmount
//            VarUInt · frames: VarUInt count, then each type u8 · contents var-oct · junk
//   frames we read: 0x01 ConnectionClose, 0x02 ConnectionNewAddress, 0x07 ConnectionAssetDetails,
//            0x10 StreamClose, 0x11 StreamMoney; others are skipped (their lengths say how far)

import { OerReader, lengthPrefixSize, writeLength } from './oer'
import { hmac, type EnvelopeKeys } from './psk2'

export const STREAM_VERSION = 1
export const FRAME_CONNECTION_CLOSE = 0x01
export const FRAME_CONNECTION_NEW_ADDRESS = 0x02
export const FRAME_CONNECTION_ASSET_DETAILS = 0x07
export const FRAME_STREAM_CLOSE = 0x10
const ERROR_NO_ERROR = 0x01

/** A connection's shared secret, from the payee's secret and the token in its address. */
export function streamSharedSecretFor(receiveSecret: Uint8Array, token: Uint8Array): Buffer {
  return hmac(hmac(receiveSecret, 'ilp_stream_shared_secret'), token)
}

export function streamKeys(sharedSecret: Uint8Array): EnvelopeKeys {
  return { encryption: hmac(sharedSecret, 'ilp_stream_encryption'), fulfillment: hmac(sharedSecret, 'ilp_stream_fulfillment') }
}

export interface StreamFrame {
  type: number
  contents: Buffer
}

export interface StreamPacket {
  ilpPacketType: number
  sequence: bigint
  prepareAmount: bigint
  frames: StreamFrame[]
}

/** Reads a packet; null if it is malformed or of another version. Trailing junk is allowed. */
export function parseStreamPacket(p: Buffer): StreamPacket | null {
  const r = new OerReader().reset(p, 0, p.length)
  if (r.readUInt8() !== STREAM_VERSION) return null
  const ilpPacketType = r.readUInt8()
  const sequence = readVarUInt(r)
  const prepareAmount = readVarUInt(r)
  const count = readVarUInt(r)
  if (ilpPacketType < 0 || sequence < 0n || prepareAmount < 0n || count < 0n || count > BigInt(p.length)) return null
  const frames: StreamFrame[] = []
  for (let i = 0n; i < count; i++) {
    const type = r.readUInt8()
    const at = r.readVarOctetString()
    if (type < 0 || at < 0) return null
    frames.push({ type, contents: p.subarray(at, r.pos) })
  }
  return { ilpPacketType, sequence, prepareAmount, frames }
}

export function serializeStreamPacket(packet: StreamPacket): Buffer {
  const parts: Buffer[] = [Buffer.from([STREAM_VERSION, packet.ilpPacketType]), varUInt(packet.sequence), varUInt(packet.prepareAmount), varUInt(BigInt(packet.frames.length))]
  for (const frame of packet.frames) {
    const header = Buffer.alloc(1 + lengthPrefixSize(frame.contents.length))
    header[0] = frame.type
    writeLength(header, 1, frame.contents.length)
    parts.push(header, frame.contents)
  }
  return Buffer.concat(parts)
}

export function assetDetailsFrame(code: string, scale: number): StreamFrame {
  const text = Buffer.from(code, 'utf8')
  const contents = Buffer.alloc(lengthPrefixSize(text.length) + text.length + 1)
  const at = writeLength(contents, 0, text.length)
  text.copy(contents, at)
  contents[at + text.length] = scale
  return { type: FRAME_CONNECTION_ASSET_DETAILS, contents }
}

/** StreamClose for `streamId` with NoError: the answer to a sender's StreamClose. */
export function streamCloseFrame(streamId: bigint): StreamFrame {
  return { type: FRAME_STREAM_CLOSE, contents: Buffer.concat([varUInt(streamId), Buffer.from([ERROR_NO_ERROR, 0])]) }
}

/** The stream id a StreamMoney or StreamClose frame is about; -1n if malformed. */
export function frameStreamId(frame: StreamFrame): bigint {
  return readVarUInt(new OerReader().reset(frame.contents, 0, frame.contents.length))
}

/** An OER VarUInt up to 64 bits; -1n if malformed. */
function readVarUInt(r: OerReader): bigint {
  const length = r.readLength()
  if (length < 1 || length > 8 || r.pos + length > r.end) return -1n
  let value = 0n
  for (let i = 0; i < length; i++) value = (value << 8n) | BigInt(r.buf[r.pos + i])
  r.pos += length
  return value
}

function varUInt(value: bigint): Buffer {
  const bytes: number[] = []
  let v = value
  do {
    bytes.unshift(Number(v & 0xffn))
    v >>= 8n
  } while (v > 0n)
  return Buffer.from([bytes.length, ...bytes])
}
