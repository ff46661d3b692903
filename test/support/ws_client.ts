// A minimal WebSocket client for tests and audits that load the node, on a plain TCP socket. The
// `ws` package costs tens of microseconds per message in JS, which on a 2-core machine takes CPU
// from the node and adds to every round trip. This client sends binary frames with the all-zero mask key (valid per
// RFC 6455, and XOR with zero leaves the payload as is) and parses the server's unmasked frames
// in place. For the crash audit, the end-to-end fuzzer and a few tests only (the bench has its own
// generator in bench/generator/): no TLS, no extensions, no fragmentation.

import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { readFrames } from '../../src/codec/ws_frame'

const OP_BINARY = 0x2
const OP_CLOSE = 0x8
const OP_PING = 0x9
const OP_PONG = 0xa

export class BenchWebSocket {
  private pending: Buffer | null = null
  onMessage: (data: Buffer) => void = () => {}
  /** Called once when the connection ends (closed, reset, or the server went away). */
  onClose: () => void = () => {}
  closed = false

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    // A server killed mid-run resets the socket: that is an end, not a crash of the client.
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      this.onClose()
    })
  }

  /** `localAddress`: the loopback address to connect from (127.0.0.2, …), to play several clients. */
  static open(port: number, host = '127.0.0.1', path = '/', localAddress?: string): Promise<BenchWebSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host, noDelay: true, localAddress })
      socket.once('error', reject)
      socket.once('connect', () => {
        const key = randomBytes(16).toString('base64')
        socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
        let head = Buffer.alloc(0)
        const onHead = (chunk: Buffer) => {
          head = Buffer.concat([head, chunk])
          const end = head.indexOf('\r\n\r\n')
          if (end < 0) return
          socket.off('data', onHead)
          if (!head.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) {
            reject(new Error(`upgrade refused: ${head.subarray(0, end).toString()}`))
            socket.destroy()
            return
          }
          const client = new BenchWebSocket(socket)
          resolve(client)
          if (head.length > end + 4) client.onData(head.subarray(end + 4))
        }
        socket.on('data', onHead)
      })
    })
  }

  /** Stops reading from the socket (a peer that does not keep up); resume() starts again. */
  pause(): void {
    this.socket.pause()
  }

  resume(): void {
    this.socket.resume()
  }

  /** Sends one binary message. The payload may be reused once this returns (it is copied). */
  send(payload: Uint8Array): void {
    if (this.closed) return
    this.writeFrame(OP_BINARY, payload)
  }

  private writeFrame(opcode: number, payload: Uint8Array): void {
    const length = payload.length
    const headerLength = length < 126 ? 6 : length < 65536 ? 8 : 14
    const frame = Buffer.allocUnsafe(headerLength + length)
    frame[0] = 0x80 | opcode
    if (length < 126) {
      frame[1] = 0x80 | length
    } else if (length < 65536) {
      frame[1] = 0x80 | 126
      frame.writeUInt16BE(length, 2)
    } else {
      frame[1] = 0x80 | 127
      frame.writeBigUInt64BE(BigInt(length), 2)
    }
    frame.writeUInt32BE(0, headerLength - 4) // the mask key: zero
    frame.set(payload, headerLength)
    this.socket.write(frame)
  }

  private onData(chunk: Buffer): void {
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk])
    const read = readFrames(buf, this.onFrame)
    this.pending = read === buf.length ? null : buf.subarray(read)
  }

  private readonly onFrame = (opcode: number, buf: Buffer, at: number, length: number): void => {
    const payload = buf.subarray(at, at + length)
    if (opcode === OP_BINARY) this.onMessage(payload)
    else if (opcode === OP_PING) this.writeFrame(OP_PONG, payload)
    else if (opcode === OP_CLOSE) this.socket.end()
  }

  close(): void {
    if (this.closed) return
    this.writeFrame(OP_CLOSE, Buffer.from([0x03, 0xe8]))
    this.socket.end()
  }
}
