// The load generator's end of one keep-alive HTTP/1.1 connection, one request outstanding at a
// time, as cheap as we can make it, so that the server, not the generator, is what a run
// measures: POSTs of a prepare (ILP over HTTP, RFC 35), or GETs (SPSP queries, shop routes).
//
// - The request is encoded once (head and body in one buffer); a POST patches its prepare's last
//   data bytes with a fresh number each time, because ilp-connector answers a prepare it has seen
//   from a cache without forwarding it. The buffer is written again only after the answer to its
//   last write arrived, by which time the server has read every byte of it, so reusing it is safe.
// - Answers are read by the node's own HTTP/1.1 response parser (src/io/http): a whole answer in
//   one read is a view of it, not a copy. Only its status and its body's first byte (for an ILP
//   answer, the packet's type) are looked at. A malformed answer fails the run.

import { connect, type Socket } from 'node:net'
import { Http1ResponseParser, type Http1Response } from '../../src/io/http/http1_response_parser'

/** Bodies larger than this fail the run (no server the bench loads sends one). */
const BODY_BYTES_MAX = 1 << 20

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
  private readonly parser = new Http1ResponseParser(BODY_BYTES_MAX)
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
    try {
      this.parser.feed(chunk, this.onResponse)
    } catch (err) {
      this.closing = true
      this.socket.destroy()
      this.onClose(`a malformed answer: ${(err as Error).message}`)
    }
  }

  private readonly onResponse = (response: Http1Response): void => {
    this.onAnswer(response.status, response.body.length > 0 ? response.body[0] : -1)
  }
}
