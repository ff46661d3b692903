// A lean BTP client for load and audits (the crash audit, the end-to-end fuzzer, a few tests): a
// WebSocket (ws_client.ts) authenticated as an account, with nothing per packet.

import { BTP_RESPONSE, encodeMessage } from '../../src/codec/btp_packet'
import { BenchWebSocket } from './ws_client'

/** A lean BTP client: opens the WebSocket and authenticates; rejects if the auth is refused. */
export async function connectBtp(port: number, username: string, token: string): Promise<BenchWebSocket> {
  const ws = await BenchWebSocket.open(port)
  return new Promise((resolve, reject) => {
    ws.onMessage = (data) => {
      if (data[0] !== BTP_RESPONSE) reject(new Error(`auth refused for ${username}`))
      else resolve(ws)
    }
    ws.send(encodeMessage(1, [
      { protocolName: 'auth', contentType: 0, data: Buffer.alloc(0) },
      { protocolName: 'auth_username', contentType: 1, data: Buffer.from(username) },
      { protocolName: 'auth_token', contentType: 1, data: Buffer.from(token) },
    ]))
  })
}
