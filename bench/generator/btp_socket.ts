// The load generator's end of one BTP connection: a WebSocket client on a plain TCP socket that
// costs the generator as little CPU per packet as we can make it, so that the node, not the
// generator, is what a run measures.
//
// - Frames go out pre-encoded: a frame's template holds its WebSocket header and its BTP frame;
//   sending one copies it into an out buffer and patches its BTP request id (4 bytes).
// - The mask key is all zeros, which RFC 6455 allows (§5.3: a client picks any 32-bit key); XOR
//   with zero leaves the payload as is, so nothing is masked on our side.
// - Every frame queued while one chunk of input is handled goes out in one write at its end.
// - Input is parsed in place: the handler gets the chunk and the payload's offset and length,
//   never a Buffer of its own.
//
// Nothing is allocated per packet; per chunk, at most a view for the write and, when a frame is
// split across chunks, one copy of its start.

import type { Socket } from 'node:net'
import { BTP_RESPONSE, encodeMessage } from '../../src/codec/btp_packet'
import { MASK_KEY_BYTES, maskedFrame, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, openWebSocket, readFrames } from '../../src/testing/websocket'

/** Big enough that a batch of thousands of frames fits; loopback writes finish long before the
 * out buffer wraps, and when one has not (see flush) a fresh buffer is taken. */
const OUT_BUFFER_BYTES = 1 << 20

/** Where a masked frame's BTP request id sits (after the type byte of its payload). */
export function requestIdOffset(frame: Buffer): number {
  const len = frame[1] & 0x7f
  return 2 + (len === 126 ? 2 : len === 127 ? 8 : 0) + MASK_KEY_BYTES + 1
}

/**
 * The ILP packet type of a BTP reply at `buf[at, at + length)`: the first byte of its first
 * protocol data entry (`ilp`, as both this node and ilp-plugin-btp send it), 0 if it has none.
 * Read in place: a BTP frame is type, request id, then an OER length-prefixed protocol data with
 * its entry count and entries (name, content type, data).
 */
export function ilpTypeOfReply(buf: Buffer, at: number, length: number): number {
  const end = at + length
  let p = at + 5
  p += lengthPrefixBytes(buf[p])
  p += 1 + buf[p] // the entry count, a var-uint: its length byte, then that many bytes
  p += 1 + buf[p] // the protocol name
  p += 1 // the content type
  p += lengthPrefixBytes(buf[p])
  return p < end ? buf[p] : 0
}

/** The bytes of an OER length prefix starting with `first`. */
function lengthPrefixBytes(first: number): number {
  return first < 0x80 ? 1 : 1 + (first & 0x7f)
}

/** Called with a binary message's payload at `buf[offset, offset + length)`; valid until it returns. */
export type MessageHandler = (buf: Buffer, offset: number, length: number) => void

export class BtpSocket {
  onMessage: MessageHandler = () => {}
  private out = Buffer.allocUnsafe(OUT_BUFFER_BYTES)
  private batchStart = 0
  private outEnd = 0
  private pending: Buffer | null = null

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    // A server stopped mid-run resets the socket: that ends the run, it does not crash the generator.
    socket.on('error', () => {})
  }

  /** Opens the WebSocket and authenticates as `user`; rejects if the upgrade or the auth is refused. */
  static async connect(port: number, user: string, token: string): Promise<BtpSocket> {
    // The server speaks only after our auth, so nothing follows its handshake yet.
    const { socket } = await openWebSocket(port)
    const ws = new BtpSocket(socket)
    await ws.authenticate(user, token)
    return ws
  }

  private authenticate(user: string, token: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.onMessage = (buf, offset) => {
        this.onMessage = () => {}
        if (buf[offset] === BTP_RESPONSE) resolve()
        else reject(new Error(`auth refused for ${user}`))
      }
      this.socket.once('close', () => reject(new Error(`connection closed during auth of ${user}`)))
      this.socket.write(maskedFrame(encodeMessage(1, [
        { protocolName: 'auth', contentType: 0, data: Buffer.alloc(0) },
        { protocolName: 'auth_username', contentType: 1, data: Buffer.from(user) },
        { protocolName: 'auth_token', contentType: 1, data: Buffer.from(token) },
      ])))
    })
  }

  /** Queues `template` (a maskedFrame) with its request id set to `requestId`; flush() sends the batch. */
  queue(template: Buffer, idOffset: number, requestId: number): void {
    if (this.outEnd + template.length > this.out.length) this.wrap()
    template.copy(this.out, this.outEnd)
    this.out.writeUInt32BE(requestId >>> 0, this.outEnd + idOffset)
    this.outEnd += template.length
  }

  /** Sends every frame queued since the last flush in one write. */
  flush(): void {
    if (this.outEnd === this.batchStart) return
    this.socket.write(this.out.subarray(this.batchStart, this.outEnd))
    this.batchStart = this.outEnd
  }

  /** Starts over at the out buffer's beginning, or in a fresh one if the kernel has not taken all
   * that was written (its bytes are still referenced by the pending write). */
  private wrap(): void {
    this.flush()
    if (this.socket.writableLength > 0) this.out = Buffer.allocUnsafe(OUT_BUFFER_BYTES)
    this.batchStart = 0
    this.outEnd = 0
  }

  private onData(chunk: Buffer): void {
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk])
    const read = readFrames(buf, this.onFrame)
    this.pending = read === buf.length ? null : Buffer.from(buf.subarray(read))
    this.flush()
  }

  /** One frame, read in place (its offset and length, no object: nothing allocated per packet). */
  private readonly onFrame = (opcode: number, buf: Buffer, at: number, length: number): void => {
    if (opcode === OP_BINARY) this.onMessage(buf, at, length)
    else if (opcode === OP_PING) this.control(OP_PONG, buf.subarray(at, at + length))
    else if (opcode === OP_CLOSE) this.socket.end()
  }

  private control(opcode: number, payload: Uint8Array): void {
    this.socket.write(maskedFrame(payload, opcode))
  }

  close(): void {
    this.flush()
    this.control(OP_CLOSE, Buffer.from([0x03, 0xe8]))
    this.socket.end()
  }
}
