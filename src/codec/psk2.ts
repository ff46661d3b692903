// PSK2 (RFC 25, drafts 1 and 2): keys, the AES-256-GCM envelope, and the two plaintext formats real senders
// mix. Key strings are the library's (ilp_psk2_encryption), not the drafts' (ilp_psk_encryption).
//
//   envelope    IV(12) ‖ tag(16) ‖ ciphertext                      (the ILP data)
//   draft 1     type u8 · paymentId 16 · sequence u32 · paymentAmount u64 · chunkAmount u64 ·
//               applicationData var-oct · extensions u8 · junk      types 0 chunk, 1 last chunk,
//                                                                  2 fulfill reply, 3 reject reply
//   draft 2     type u8 · requestId u32 · amount u64 · data var-oct · junk
//                                                                  types 4 request, 5 fulfill reply,
//                                                                  6 reject reply

import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'
import { OerReader, readUInt64, writeLength, writeUInt32, writeUInt64, lengthPrefixSize } from './oer'

const IV_LENGTH = 12
const TAG_LENGTH = 16
const ENCRYPTION_STRING = 'ilp_psk2_encryption'
const FULFILLMENT_STRING = 'ilp_psk2_fulfillment'
const GENERATION_STRING = 'ilp_psk2_generation'

export const TYPE_CHUNK = 0
export const TYPE_LAST_CHUNK = 1
export const TYPE_FULFILL = 2
export const TYPE_ERROR = 3
export const TYPE_REQUEST = 4
export const TYPE_RESPONSE = 5
export const TYPE_REQUEST_ERROR = 6

export function hmac(key: Uint8Array, message: Uint8Array | string): Buffer {
  return createHmac('sha256', key).update(message).digest()
}

/** The receiver's scheme: a payee secret and a token from the address make the shared secret. */
export function sharedSecretFor(receiveSecret: Uint8Array, token: Uint8Array): Buffer {
  return hmac(hmac(receiveSecret, GENERATION_STRING), token)
}

/** The two keys of a shared secret, for the AES-GCM envelope and the fulfillment (PSK2 and STREAM). */
export interface EnvelopeKeys {
  encryption: Buffer
  fulfillment: Buffer
}

export function psk2Keys(sharedSecret: Uint8Array): EnvelopeKeys {
  return { encryption: hmac(sharedSecret, ENCRYPTION_STRING), fulfillment: hmac(sharedSecret, FULFILLMENT_STRING) }
}

/** The fulfillment for a packet whose ILP data (the envelope as sent) is `data`. */
export function psk2Fulfillment(keys: EnvelopeKeys, data: Uint8Array): Buffer {
  return hmac(keys.fulfillment, data)
}

/** Opens the envelope; null if it is too short or does not authenticate (wrong key, tampered). */
export function decrypt(key: Uint8Array, data: Uint8Array): Buffer | null {
  if (data.length < IV_LENGTH + TAG_LENGTH) return null
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_LENGTH))
    decipher.setAuthTag(data.subarray(IV_LENGTH, IV_LENGTH + TAG_LENGTH))
    return Buffer.concat([decipher.update(data.subarray(IV_LENGTH + TAG_LENGTH)), decipher.final()])
  } catch {
    return null
  }
}

export function encrypt(key: Uint8Array, plaintext: Uint8Array, iv: Uint8Array = randomBytes(IV_LENGTH)): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return Buffer.concat([iv, cipher.getAuthTag(), ciphertext])
}

export interface Draft1Packet {
  type: number
  paymentId: Buffer
  sequence: number
  paymentAmount: bigint
  chunkAmount: bigint
  applicationData: Buffer
}

export interface Draft2Packet {
  type: number
  requestId: number
  amount: bigint
  data: Buffer
}

/** Reads a draft-1 plaintext; null if it is malformed. Trailing junk is allowed. */
export function parseDraft1(p: Buffer): Draft1Packet | null {
  if (p.length < 1 + 16 + 4 + 8 + 8 + 1) return null
  const r = new OerReader().reset(p, 1 + 16 + 4 + 16, p.length)
  const dataAt = r.readVarOctetString()
  if (dataAt < 0) return null
  const dataEnd = r.pos
  if (r.readUInt8() < 0) return null // the extensions byte must be there
  return {
    type: p[0],
    paymentId: p.subarray(1, 17),
    sequence: p.readUInt32BE(17),
    paymentAmount: readUInt64(p, 21),
    chunkAmount: readUInt64(p, 29),
    applicationData: p.subarray(dataAt, dataEnd),
  }
}

/** Reads a draft-2 plaintext; null if it is malformed. Trailing junk is allowed. */
export function parseDraft2(p: Buffer): Draft2Packet | null {
  if (p.length < 1 + 4 + 8 + 1) return null
  const r = new OerReader().reset(p, 13, p.length)
  const dataAt = r.readVarOctetString()
  if (dataAt < 0) return null
  return { type: p[0], requestId: p.readUInt32BE(1), amount: readUInt64(p, 5), data: p.subarray(dataAt, r.pos) }
}

export function serializeDraft1(type: number, paymentId: Uint8Array, sequence: number, paymentAmount: bigint, chunkAmount: bigint): Buffer {
  const out = Buffer.alloc(1 + 16 + 4 + 8 + 8 + 1 + 1)
  out[0] = type
  out.set(paymentId, 1)
  writeUInt32(out, 17, sequence)
  writeUInt64(out, 21, paymentAmount)
  writeUInt64(out, 29, chunkAmount)
  // applicationData (empty) and extensions (none): both 0x00, already zero.
  return out
}

export function serializeDraft2(type: number, requestId: number, amount: bigint, data: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(1 + 4 + 8 + lengthPrefixSize(data.length) + data.length)
  out[0] = type
  writeUInt32(out, 1, requestId)
  writeUInt64(out, 5, amount)
  const at = writeLength(out, 13, data.length)
  out.set(data, at)
  return out
}
