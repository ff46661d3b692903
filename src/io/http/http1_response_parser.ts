// HTTP/1.1 responses read off one connection (RFC 9112), as much as ILP over HTTP needs: the
// status line, the headers that frame the body or end the connection (Content-Length,
// Transfer-Encoding: chunked, Connection: close, Keep-Alive: timeout=N), and the body. Responses
// come in the order of the requests (RFC 9112 §9.3.2), so the parser only says "the next one is
// complete"; the connection matches it to its oldest request.
//
//   bytes ─► head (status line + headers, up to \r\n\r\n) ─► body:
//              Content-Length: N      the next N bytes
//              chunked                size line, data, CRLF … until a 0-size chunk, then trailers
//              neither                1xx/204/304: none; otherwise until the connection closes
//
// The fast path is a whole response in one read: the body is then a view of the read buffer, with
// no copy. Bytes that end mid-response wait (copied once) for the next read. A malformed response
// throws ProtocolError: the connection cannot be trusted any more and is closed.

export class ProtocolError extends Error {
  readonly code = 'HTTP_PROTOCOL_ERROR'
}

/** Largest response head (status line and headers) read; a larger one is a protocol error. */
export const HEAD_BYTES_MAX = 16 * 1024

const CR = 13
const LF = 10
const HEAD_END = Buffer.from('\r\n\r\n')
const CRLF = Buffer.from('\r\n')
const EMPTY = Buffer.alloc(0)

export interface Http1Response {
  status: number
  /** Valid until the next call to `feed`: the caller copies what it keeps. */
  body: Uint8Array
  /** The server will close the connection after this response (Connection: close, or HTTP/1.0 without keep-alive). */
  closes: boolean
  /** Keep-Alive: timeout=N from the server, in ms; -1 when it gave none. */
  keepAliveMs: number
}

const enum Stage { Head, Length, ChunkSize, ChunkData, ChunkEnd, Trailers, UntilClose }

export class Http1ResponseParser {
  private stage = Stage.Head
  private rest: Buffer = EMPTY
  private status = 0
  private closes = false
  private keepAliveMs = -1
  private remaining = 0
  /** The body being put together from several reads, or chunks. */
  private parts: Buffer[] = []
  private partsBytes = 0

  /** `bodyBytesMax`: a larger body is a protocol error (the peer is not speaking ILP over HTTP). */
  constructor(private readonly bodyBytesMax: number) {}

  /** True while a response has begun and is not complete. */
  get midResponse(): boolean {
    return this.stage !== Stage.Head || this.rest.length > 0
  }

  /** The status line came for the response being read (a reachable peer), though its body has not. */
  get headRead(): boolean {
    return this.stage !== Stage.Head
  }

  /**
   * Reads `chunk`, calling `onResponse` for each response it completes, in order. Throws
   * ProtocolError on a malformed response (the caller closes the connection).
   */
  feed(chunk: Buffer, onResponse: (response: Http1Response) => void): void {
    let buf = chunk
    if (this.rest.length > 0) {
      buf = Buffer.concat([this.rest, chunk])
      this.rest = EMPTY
    }
    let pos = 0
    while (pos < buf.length) {
      const next = this.step(buf, pos, onResponse)
      if (next < 0) {
        this.rest = Buffer.from(buf.subarray(pos))
        return
      }
      pos = next
    }
  }

  /** The connection ended: a body read until close is complete now; anything else mid-way is lost. */
  end(onResponse: (response: Http1Response) => void): void {
    if (this.stage !== Stage.UntilClose) return
    this.complete(this.takeParts(), onResponse)
  }

  /** One step from `pos`: the position after what it consumed, or -1 when it needs more bytes. */
  private step(buf: Buffer, pos: number, onResponse: (response: Http1Response) => void): number {
    switch (this.stage) {
      case Stage.Head: return this.readHead(buf, pos, onResponse)
      case Stage.Length: return this.readLength(buf, pos, onResponse)
      case Stage.ChunkSize: return this.readChunkSize(buf, pos)
      case Stage.ChunkData: return this.readChunkData(buf, pos)
      case Stage.ChunkEnd: return this.readChunkEnd(buf, pos)
      case Stage.Trailers: return this.readTrailers(buf, pos, onResponse)
      case Stage.UntilClose: this.addPart(buf.subarray(pos)); return buf.length
    }
  }

  private readHead(buf: Buffer, pos: number, onResponse: (response: Http1Response) => void): number {
    const end = buf.indexOf(HEAD_END, pos)
    if (end < 0) {
      if (buf.length - pos > HEAD_BYTES_MAX) throw new ProtocolError(`response head over ${HEAD_BYTES_MAX} bytes`)
      return -1
    }
    if (end - pos > HEAD_BYTES_MAX) throw new ProtocolError(`response head over ${HEAD_BYTES_MAX} bytes`)
    const head = parseHead(buf.toString('latin1', pos, end))
    const bodyStart = end + 4
    // 1xx are interim (RFC 9110 §15.2): the final response follows on the same connection.
    if (head.status < 200) return bodyStart
    this.status = head.status
    this.closes = head.closes
    this.keepAliveMs = head.keepAliveMs
    if (head.status === 204 || head.status === 304) {
      this.complete(EMPTY, onResponse)
      return bodyStart
    }
    if (head.chunked) {
      this.stage = Stage.ChunkSize
      return bodyStart
    }
    if (head.contentLength < 0) {
      // No framing: the body runs until the server closes (RFC 9112 §6.3, item 8).
      this.closes = true
      this.stage = Stage.UntilClose
      return bodyStart
    }
    if (head.contentLength > this.bodyBytesMax) throw new ProtocolError(`response body of ${head.contentLength} bytes, over ${this.bodyBytesMax}`)
    if (buf.length - bodyStart >= head.contentLength) {
      // The whole body is here: the common case, no copy.
      this.complete(buf.subarray(bodyStart, bodyStart + head.contentLength), onResponse)
      return bodyStart + head.contentLength
    }
    this.stage = Stage.Length
    this.remaining = head.contentLength
    return bodyStart
  }

  private readLength(buf: Buffer, pos: number, onResponse: (response: Http1Response) => void): number {
    const take = Math.min(this.remaining, buf.length - pos)
    this.addPart(buf.subarray(pos, pos + take))
    this.remaining -= take
    if (this.remaining === 0) this.complete(this.takeParts(), onResponse)
    return pos + take
  }

  private readChunkSize(buf: Buffer, pos: number): number {
    const end = buf.indexOf(CRLF, pos)
    if (end < 0) {
      if (buf.length - pos > 1024) throw new ProtocolError('chunk size line too long')
      return -1
    }
    // chunk-size [ ; extensions ] (RFC 9112 §7.1)
    const line = buf.toString('latin1', pos, end)
    const semicolon = line.indexOf(';')
    const hex = (semicolon < 0 ? line : line.slice(0, semicolon)).trim()
    if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) throw new ProtocolError(`bad chunk size ${JSON.stringify(hex.slice(0, 16))}`)
    const size = parseInt(hex, 16)
    if (this.partsBytes + size > this.bodyBytesMax) throw new ProtocolError(`response body over ${this.bodyBytesMax} bytes`)
    this.remaining = size
    this.stage = size === 0 ? Stage.Trailers : Stage.ChunkData
    return end + 2
  }

  private readChunkData(buf: Buffer, pos: number): number {
    const take = Math.min(this.remaining, buf.length - pos)
    this.addPart(buf.subarray(pos, pos + take))
    this.remaining -= take
    if (this.remaining === 0) this.stage = Stage.ChunkEnd
    return pos + take
  }

  private readChunkEnd(buf: Buffer, pos: number): number {
    if (buf.length - pos < 2) return -1
    if (buf[pos] !== CR || buf[pos + 1] !== LF) throw new ProtocolError('chunk data not followed by CRLF')
    this.stage = Stage.ChunkSize
    return pos + 2
  }

  private readTrailers(buf: Buffer, pos: number, onResponse: (response: Http1Response) => void): number {
    // Trailer fields end with an empty line; ILP over HTTP uses none, so they are skipped.
    const end = buf.indexOf(CRLF, pos)
    if (end < 0) {
      if (buf.length - pos > HEAD_BYTES_MAX) throw new ProtocolError('trailers too long')
      return -1
    }
    if (end === pos) this.complete(this.takeParts(), onResponse)
    return end + 2
  }

  private addPart(part: Buffer): void {
    if (part.length === 0) return
    if (this.partsBytes + part.length > this.bodyBytesMax) throw new ProtocolError(`response body over ${this.bodyBytesMax} bytes`)
    // The read buffer is the socket's: a part kept past this read is copied.
    this.parts.push(Buffer.from(part))
    this.partsBytes += part.length
  }

  private takeParts(): Buffer {
    const body = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.partsBytes)
    this.parts = []
    this.partsBytes = 0
    return body
  }

  private complete(body: Uint8Array, onResponse: (response: Http1Response) => void): void {
    const response: Http1Response = { status: this.status, body, closes: this.closes, keepAliveMs: this.keepAliveMs }
    this.stage = Stage.Head
    onResponse(response)
  }
}

interface Head {
  status: number
  contentLength: number
  chunked: boolean
  closes: boolean
  keepAliveMs: number
}

/**
 * The status line and the framing headers of a response head (without its final CRLFCRLF). Read
 * with indexOf and lengths rather than split and regular expressions: a response costs a few
 * string views, and headers that do not frame the body (Date, Server, Content-Type…) are passed
 * over by their name's length alone.
 */
export function parseHead(text: string): Head {
  let lineEnd = text.indexOf('\r\n')
  if (lineEnd < 0) lineEnd = text.length
  const status = statusOf(text, lineEnd)
  const head: Head = { status, contentLength: -1, chunked: false, closes: text.charCodeAt(7) === 0x30, keepAliveMs: -1 }
  while (lineEnd < text.length) {
    const start = lineEnd + 2
    lineEnd = text.indexOf('\r\n', start)
    if (lineEnd < 0) lineEnd = text.length
    const colon = text.indexOf(':', start)
    if (colon <= start || colon > lineEnd) throw new ProtocolError(`bad header line ${JSON.stringify(text.slice(start, Math.min(lineEnd, start + 64)))}`)
    const nameLength = colon - start
    // connection, keep-alive (10), content-length (14), transfer-encoding (17).
    if (nameLength !== 10 && nameLength !== 14 && nameLength !== 17) continue
    readHeader(head, text.slice(start, colon).toLowerCase(), text.slice(colon + 1, lineEnd).trim())
  }
  return head
}

/** The status code of a status line `HTTP/1.x NNN reason` (RFC 9112 §4) ending at `end`. */
function statusOf(text: string, end: number): number {
  if (!text.startsWith('HTTP/1.') || (text.charCodeAt(7) !== 0x30 && text.charCodeAt(7) !== 0x31) || text.charCodeAt(8) !== 0x20 ||
    (end > 12 && text.charCodeAt(12) !== 0x20) || end < 12) {
    throw new ProtocolError(`bad status line ${JSON.stringify(text.slice(0, Math.min(end, 64)))}`)
  }
  let status = 0
  for (let i = 9; i < 12; i++) {
    const digit = text.charCodeAt(i) - 0x30
    if (digit < 0 || digit > 9) throw new ProtocolError(`bad status line ${JSON.stringify(text.slice(0, Math.min(end, 64)))}`)
    status = status * 10 + digit
  }
  return status
}

function readHeader(head: Head, name: string, value: string): void {
  switch (name) {
    case 'content-length': {
      // Several equal values are allowed (RFC 9112 §6.3, item 5); different ones are not.
      if (!/^\d{1,15}$/.test(value)) throw new ProtocolError(`bad Content-Length ${JSON.stringify(value.slice(0, 32))}`)
      const n = Number(value)
      if (head.contentLength >= 0 && head.contentLength !== n) throw new ProtocolError('conflicting Content-Length headers')
      head.contentLength = n
      return
    }
    case 'transfer-encoding': {
      const codings = value.toLowerCase().split(',').map((s) => s.trim())
      if (codings[codings.length - 1] !== 'chunked') throw new ProtocolError(`unsupported Transfer-Encoding ${JSON.stringify(value.slice(0, 32))}`)
      head.chunked = true
      return
    }
    case 'connection': {
      const options = value.toLowerCase().split(',').map((s) => s.trim())
      if (options.includes('close')) head.closes = true
      else if (options.includes('keep-alive')) head.closes = false
      return
    }
    case 'keep-alive': {
      const m = /(?:^|,)\s*timeout\s*=\s*(\d+)/i.exec(value)
      if (m !== null) head.keepAliveMs = Number(m[1]) * 1000
      return
    }
  }
}
