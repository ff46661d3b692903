// Receiver addresses of the payee role: `<payeeAddress>.psk2.<token>` (PSK2) and
// `<payeeAddress>.stream.<token>` (STREAM). SPSP answers and the shop's Pay header hand them out
// (I/O threads); the payee's shard reads the token back out of a prepare's destination and derives
// the same shared secret from it, so nothing is stored per query.

import { randomBytes } from 'node:crypto'
import { sharedSecretFor } from './psk2'
import { streamSharedSecretFor } from './stream'

/** The token in a receiver address: 18 bytes, base64url (24 characters). */
const TOKEN_BYTES = 18
export const TOKEN_CHARS = 24
export type ReceiverKind = 'psk2' | 'stream'
export const SEGMENTS: Record<ReceiverKind, string> = { psk2: '.psk2.', stream: '.stream.' }

/** A fresh receiving address under a payee and the shared secret that goes with it. */
export function newReceiverAddress(kind: ReceiverKind, payeeAddress: string, receiveSecret: Uint8Array): { destination: string; sharedSecret: Buffer } {
  const token = randomBytes(TOKEN_BYTES)
  const sharedSecret = kind === 'psk2' ? sharedSecretFor(receiveSecret, token) : streamSharedSecretFor(receiveSecret, token)
  return { destination: `${payeeAddress}${SEGMENTS[kind]}${token.toString('base64url')}`, sharedSecret }
}
