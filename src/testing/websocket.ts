// The client side of a WebSocket (RFC 6455) on a plain TCP socket, for the test and bench clients
// that load the node (the `ws` package costs tens of microseconds per message, CPU a 2-core
// machine takes from the node). The opening handshake (§4.1); frames the client sends (§5.2),
// masked with the all-zero key (valid, and XOR with zero leaves the payload as is); and the
// server's unmasked frames read in place: the header is 2 bytes, then a 16-bit length when the
// 7-bit length is 126, a 64-bit one when 127, and a frame is handed on as its opcode, offset and
// length, never as an object, so that a reader allocates nothing per frame. No TLS, no
// extensions, no fragmentation. The node's own sockets are framed by uWebSockets.js.

import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'

export const OP_BINARY = 0x2
export const OP_CLOSE = 0x8
export const OP_PING = 0x9
export const OP_PONG = 0xa
/** A client frame's mask key (zero) follows its length. */
export const MASK_KEY_BYTES = 4

/**
 * Opens a TCP connection to `host:port` and upgrades it to a WebSocket at `path`; resolves with
 * the socket and any bytes that came after the server's handshake. `localAddress`: the loopback
 * address to connect from (127.0.0.2, …), to play several clients.
 */
export function openWebSocket(port: number, host = '127.0.0.1', path = '/', localAddress?: string): Promise<{ socket: Socket; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host, noDelay: true, localAddress })
    socket.once('error', reject)
    socket.once('connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
      let head = Buffer.alloc(0)
      const onHead = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk])
        const end = head.indexOf('\r\n\r\n')
        if (end < 0) return
        socket.off('data', onHead)
        socket.off('error', reject)
        if (!head.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) {
          socket.destroy()
          return reject(new Error(`upgrade refused: ${head.subarray(0, end).toString()}`))
        }
        resolve({ socket, rest: head.subarray(end + 4) })
      }
      socket.on('data', onHead)
    })
  })
}

/** A final frame of `opcode` carrying `payload`, masked with the zero key. */
export function maskedFrame(payload: Uint8Array, opcode = OP_BINARY): Buffer {
  const length = payload.length
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8
  const header = 2 + lengthBytes + MASK_KEY_BYTES
  const frame = Buffer.alloc(header + length) // the mask key stays zero
  frame[0] = 0x80 | opcode
  if (lengthBytes === 0) frame[1] = 0x80 | length
  else if (lengthBytes === 2) { frame[1] = 0x80 | 126; frame.writeUInt16BE(length, 2) }
  else { frame[1] = 0x80 | 127; frame.writeBigUInt64BE(BigInt(length), 2) }
  frame.set(payload, header)
  return frame
}

/** What a reader does with one whole frame: its payload is `buf[at, at + length)`. */
export type FrameHandler = (opcode: number, buf: Buffer, at: number, length: number) => void

/** The header's length of the frame at `pos` (2, 4 or 10), or 0 while `buf` holds only part of it. */
export function frameHeaderLength(buf: Uint8Array, pos: number): number {
  if (buf.length - pos < 2) return 0
  const short = buf[pos + 1] & 0x7f
  const header = short === 126 ? 4 : short === 127 ? 10 : 2
  return buf.length - pos < header ? 0 : header
}

/** The payload's length of the frame at `pos`, whose header `buf` holds whole. */
export function framePayloadLength(buf: Buffer, pos: number): number {
  const short = buf[pos + 1] & 0x7f
  if (short === 126) return buf.readUInt16BE(pos + 2)
  if (short === 127) return Number(buf.readBigUInt64BE(pos + 2))
  return short
}

/** Hands each whole frame of `buf` to `onFrame`, in order; the bytes read (a partial frame's are not). */
export function readFrames(buf: Buffer, onFrame: FrameHandler): number {
  let pos = 0
  for (;;) {
    const header = frameHeaderLength(buf, pos)
    if (header === 0) return pos
    const length = framePayloadLength(buf, pos)
    const end = pos + header + length
    if (end > buf.length) return pos
    onFrame(buf[pos] & 0x0f, buf, pos + header, length)
    pos = end
  }
}
