// The load generator's end of one keep-alive HTTP/1.1 connection that POSTs prepares (ILP over
// HTTP, RFC 35), one request outstanding at a time, as cheaply as we can make it, so that the
// server, not the generator, is what a run measures.
//
// - The request is encoded once (head and body in one buffer); each post patches the prepare's
//   last data bytes with a fresh number, because ilp-connector answers a prepare it has seen
//   from a cache without forwarding it. The buffer is written again only after the answer to its
//   last write arrived, by which time the server has read every byte of it, so reusing it is safe.
// - Answers are read in place: the status, Content-Length and the body's first byte (the ILP
//   packet's type), never a string or a Buffer of their own. An answer split across chunks is
//   the one case that copies.
// - A server that answers chunked (no Content-Length) fails the run: none of the servers the
//   bench loads does.

import { connect, type Socket } from 'node:net'

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1')
const CONTENT_LENGTH = [Buffer.from('\r\nContent-Length:', 'latin1'), Buffer.from('\r\ncontent-length:', 'latin1')]
const ILP_FULFILL = 13
const SPACE = 0x20
const DIGIT_0 = 0x30

/** Called with each answer's HTTP status and whether its body is an ILP Fulfill. */
export type AnswerHandler = (status: number, fulfilled: boolean) => void

export class HttpSocket {
  onAnswer: AnswerHandler = () => {}
  /** Called once if the connection fails or the server closes it. */
  onClose: (reason: string) => void = () => {}
  /** When the outstanding request was written (performance.now()). */
  sentAtMs = 0
  private pending: Buffer | null = null
  private closing = false

  private constructor(private readonly socket: Socket, private readonly request: Buffer, private readonly tagOffset: number) {
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', () => {})
    socket.on('close', () => { if (!this.closing) this.onClose('the server closed the connection') })
  }

  /** Connects to 127.0.0.1:`port`; `prepare`'s last 8 bytes (its data) are each post's tag. */
  static connect(port: number, path: string, token: string, prepare: Uint8Array): Promise<HttpSocket> {
    const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\n` +
      `Content-Type: application/octet-stream\r\nAccept: application/octet-stream\r\nContent-Length: ${prepare.length}\r\n\r\n`
    const request = Buffer.concat([Buffer.from(head, 'latin1'), prepare])
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port })
      socket.once('error', reject)
      socket.once('connect', () => {
        socket.off('error', reject)
        resolve(new HttpSocket(socket, request, request.length - 8))
      })
    })
  }

  /** Sends the request, its data set to (`high`, `low`), and notes when. */
  post(high: number, low: number, nowMs: number): void {
    this.request.writeUInt32BE(high >>> 0, this.tagOffset)
    this.request.writeUInt32BE(low >>> 0, this.tagOffset + 4)
    this.sentAtMs = nowMs
    this.socket.write(this.request)
  }

  close(): void {
    this.closing = true
    this.socket.end()
  }

  private onData(chunk: Buffer): void {
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk])
    let at = 0
    while (at < buf.length) {
      const headEnd = buf.indexOf(HEAD_END, at)
      if (headEnd < 0) break
      const length = contentLength(buf, at, headEnd)
      if (length < 0) {
        this.closing = true
        this.socket.destroy()
        return this.onClose('an answer without Content-Length')
      }
      const bodyAt = headEnd + HEAD_END.length
      if (bodyAt + length > buf.length) break
      const status = statusOf(buf, at)
      this.onAnswer(status, status === 200 && length > 0 && buf[bodyAt] === ILP_FULFILL)
      at = bodyAt + length
    }
    this.pending = at === buf.length ? null : Buffer.from(buf.subarray(at))
  }
}

/** The status code of the status line at `at` ("HTTP/1.1 200 OK"). */
function statusOf(buf: Buffer, at: number): number {
  const p = buf.indexOf(SPACE, at) + 1
  return (buf[p] - DIGIT_0) * 100 + (buf[p + 1] - DIGIT_0) * 10 + (buf[p + 2] - DIGIT_0)
}

/** The Content-Length of the head at `buf[at, headEnd)`, or -1 if it has none. */
function contentLength(buf: Buffer, at: number, headEnd: number): number {
  for (const name of CONTENT_LENGTH) {
    const found = buf.indexOf(name, at)
    if (found < 0 || found >= headEnd) continue
    let p = found + name.length
    while (buf[p] === SPACE) p++
    let n = 0
    for (; p < headEnd && buf[p] >= DIGIT_0 && buf[p] <= DIGIT_0 + 9; p++) n = n * 10 + buf[p] - DIGIT_0
    return n
  }
  return -1
}
