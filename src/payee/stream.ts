// STREAM (RFC 29, SPEC.md §12) for the node's payees: key derivation.

import { hmac } from './psk2'

/** A connection's shared secret, from the payee's secret and the token in its address. */
export function streamSharedSecretFor(receiveSecret: Uint8Array, token: Uint8Array): Buffer {
  return hmac(hmac(receiveSecret, 'ilp_stream_shared_secret'), token)
}
