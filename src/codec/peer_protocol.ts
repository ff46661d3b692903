// Peer protocols over ILP (`peer.*`: RFC 31's IL-DCP, il-balance, CCP): IL-DCP, il-balance and CCP requests are
// prepares of amount 0 whose condition is SHA-256 of 32 zero bytes, fulfilled with those zeros.

import { encodePrepare } from './ilp_packet'

export const PEER_PROTOCOL_FULFILLMENT = Buffer.alloc(32)
export const PEER_PROTOCOL_CONDITION = Buffer.from('66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925', 'hex')
/** How long a peer-protocol request is valid (ilp-protocol-ildcp and -ccp use 60 s). */
const PEER_REQUEST_EXPIRY_MS = 60_000

export function peerProtocolPrepare(destination: string, data: Uint8Array, nowMs = Date.now()): Buffer {
  return encodePrepare({ amount: 0n, expiresAtMs: nowMs + PEER_REQUEST_EXPIRY_MS, executionCondition: PEER_PROTOCOL_CONDITION, destination, data })
}
