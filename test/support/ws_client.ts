// A minimal WebSocket client for tests and audits that load the node (src/testing/websocket.ts
// says why not `ws`): one message at a time, for the crash audit, the end-to-end fuzzer and a few
// tests (the bench's generator batches frames in bench/generator/).

import type { Socket } from 'node:net'
import { maskedFrame, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, openWebSocket, readFrames } from '../../src/testing/websocket'

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
  static async open(port: number, host = '127.0.0.1', path = '/', localAddress?: string): Promise<BenchWebSocket> {
    const { socket, rest } = await openWebSocket(port, host, path, localAddress)
    const client = new BenchWebSocket(socket)
    if (rest.length > 0) client.onData(rest)
    return client
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
    this.socket.write(maskedFrame(payload, opcode))
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
