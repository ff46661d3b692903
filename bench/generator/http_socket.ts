// The load generator's end of one keep-alive HTTP/1.1 connection, one request outstanding at a
// time, as cheap as we can make it, so that the server, not the generator, is what a run
// measures: POSTs of a prepare (ILP over HTTP, RFC 35), or GETs (SPSP queries, shop routes).
//
// - The request is encoded once (head and body in one buffer); a POST patches its prepare's last
//   data bytes with a fresh number each time, because ilp-connector answers a prepare it has seen
//   from a cache without forwarding it. The buffer is written again only after the answer to its
//   last write arrived, by which time the server has read every byte of it, so reusing it is safe.
// - Answers are read in place: the status, Content-Length and the body's first byte (for an ILP
//   answer, the packet's type), never a string or a Buffer of their own. An answer split across
//   chunks is the one case that copies.
// - A server that answers chunked (no Content-Length) fails the run: none of the servers the
//   bench loads does.

import { connect, type Socket } from 'node:net'

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1')
const CONTENT_LENGTH = [Buffer.from('\r\nContent-Length:', 'latin1'), Buffer.from('\r\ncontent-length:', 'latin1')]
const SPACE = 0x20
const DIGIT_0 = 0x30

/** Called with each answer's HTTP status and its body's first byte (-1 for an empty body). */
export type AnswerHandler = (status: number, firstByte: number) => void

/** The ILP packet type of a Fulfill (RFC 27), an ILP answer's first byte. */
export const ILP_FULFILL = 13

/** One request, encoded once: `body` (if any) after the head. */
export function encodeRequest(method: 'GET' | 'POST', port: number, path: string, headers: Record<string, string>, body: Uint8Array | null): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)]
  if (body !== null) lines.push(`Content-Length: ${body.length}`)
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1')
  return body === null ? head : Buffer.concat([head, body])
}

export class HttpSocket {
  onAnswer: AnswerHandler = () => {}
  /** Called once if the connection fails or the server closes it. */
  onClose: (reason: string) => void = () => {}
  /** When the outstanding request was written (performance.now()). */
  sentAtMs = 0
  private pending: Buffer | null = null
  private closing = false

  /** `tagOffset`: where send() writes its 8-byte tag in `request`, or -1 for none. */
  private constructor(private readonly socket: Socket, private readonly request: Buffer, private readonly tagOffset: number) {
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', () => {})
    socket.on('close', () => { if (!this.closing) this.onClose('the server closed the connection') })
  }

  /** Connects to 127.0.0.1:`port`, to send `request` (tagged at `tagOffset` unless it is -1). */
  static connect(port: number, request: Buffer, tagOffset: number): Promise<HttpSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port })
      socket.once('error', reject)
      socket.once('connect', () => {
        socket.off('error', reject)
        resolve(new HttpSocket(socket, Buffer.from(request), tagOffset))
      })
    })
  }

  /** Sends the request, its tag (if it has one) set to (`high`, `low`), and notes when. */
  send(high: number, low: number, nowMs: number): void {
    if (this.tagOffset >= 0) {
      this.request.writeUInt32BE(high >>> 0, this.tagOffset)
      this.request.writeUInt32BE(low >>> 0, this.tagOffset + 4)
    }
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
      this.onAnswer(statusOf(buf, at), length > 0 ? buf[bodyAt] : -1)
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
