// One keep-alive HTTP/1.1 connection of an Http1Pool (http1_pool.ts): a TCP socket, the requests
// written on it and not yet answered, oldest first, and the parser of its responses. A response
// answers the oldest request (RFC 9112 §9.3.2: responses come in request order). Each request
// leaves `outstanding` before its callback runs, so it is answered or failed exactly once: when
// the connection dies, every request still on it fails, once, and nothing on it can answer later.

import { connect, type Socket } from 'node:net'
import { Http1ResponseParser, ProtocolError, type Http1Response } from './http1_response_parser'

/** A request as the pool carries it: its bytes, its deadline, and where its outcome goes. */
export interface Http1Request {
  /** Request line, headers and body, ready to write. */
  readonly bytes: Buffer
  /** Unanswered at this time (Date.now() ms), the request has failed: its connection closes. */
  readonly deadlineMs: number
  /** The peer answered. `body` is valid during the call only. */
  answered(status: number, body: Uint8Array, nowMs: number): void
  /**
   * No answer will come. `code` says why (an errno like ECONNREFUSED, or REQUEST_TIMEOUT,
   * HTTP_PROTOCOL_ERROR, CONNECTION_CLOSED); `headRead`: the response's head had come.
   */
  failed(code: string, headRead: boolean, nowMs: number): void
}

/** What the connection tells its pool. */
export interface Http1ConnectionOwner {
  /** The connection has connected: it can take requests. */
  opened(connection: Http1Connection): void
  /** A response freed a place on the connection. */
  ready(connection: Http1Connection): void
  /** The connection has closed; `code` is why, if it failed (null: closed cleanly). */
  closed(connection: Http1Connection, code: string | null, wasConnected: boolean): void
}

/** Why a connection ended that has no errno of its own. */
export const CONNECTION_CLOSED = 'CONNECTION_CLOSED'
export const REQUEST_TIMEOUT = 'REQUEST_TIMEOUT'

/**
 * Where every connection of the thread reads into (node's `onread`: no buffer allocated and no
 * stream event per read). One buffer serves them all: a read is parsed before the next one, and
 * what outlives it (a partial response, a body kept) is copied out (http1_response_parser.ts).
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024)

export class Http1Connection {
  readonly outstanding: Http1Request[] = []
  connected = false
  /** The server said it closes after a response (Connection: close): no new requests go here. */
  closing = false
  isClosed = false
  /** When it last had no outstanding request (Date.now() ms), for the idle timeout. */
  idleSinceMs: number
  /** When it began connecting (Date.now() ms), for the connect timeout. */
  readonly openedAtMs: number
  /** The server's Keep-Alive timeout, in ms; -1 when it gave none. */
  keepAliveMs = -1
  private readonly socket: Socket
  private readonly parser: Http1ResponseParser
  /** The first failure's code: the reason every outstanding request fails with. */
  private failure: string | null = null

  constructor(private readonly owner: Http1ConnectionOwner, host: string, port: number, bodyBytesMax: number, nowMs: number) {
    this.idleSinceMs = nowMs
    this.openedAtMs = nowMs
    this.parser = new Http1ResponseParser(bodyBytesMax)
    this.socket = connect({ host, port, noDelay: true, onread: { buffer: READ_BUFFER, callback: this.onRead } })
    this.socket.on('connect', () => {
      this.connected = true
      this.owner.opened(this)
    })
    this.socket.on('end', () => this.onEnd())
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      // It closes next: nothing more is written on it meanwhile.
      this.closing = true
      this.failure ??= err.code ?? 'ECONNRESET'
    })
    this.socket.on('close', () => this.onClose())
  }

  /** Requests it may still take, with `depth` at most outstanding at once. */
  room(depth: number): number {
    return this.connected && !this.closing && !this.isClosed ? depth - this.outstanding.length : 0
  }

  write(request: Http1Request): void {
    this.outstanding.push(request)
    this.socket.write(request.bytes)
  }

  /** Writes that follow go out together at `uncork` (one system call for a batch). */
  cork(): void {
    this.socket.cork()
  }

  uncork(): void {
    this.socket.uncork()
  }

  /** Closes the connection; its outstanding requests fail with `code` (when it closes, once). */
  destroy(code: string): void {
    this.failure ??= code
    this.socket.destroy()
  }

  private readonly onRead = (bytes: number, buffer: Uint8Array): boolean => {
    try {
      this.parser.feed((buffer as Buffer).subarray(0, bytes), this.onResponse)
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err
      this.destroy(err.code)
    }
    return true
  }

  private readonly onResponse = (response: Http1Response): void => {
    const request = this.outstanding.shift()
    // An answer to nothing: the peer is not speaking HTTP/1.1 as we do; nothing on it is trusted.
    if (request === undefined) return this.destroy('HTTP_PROTOCOL_ERROR')
    const nowMs = Date.now()
    if (response.keepAliveMs >= 0) this.keepAliveMs = response.keepAliveMs
    if (response.closes) this.closing = true
    if (this.outstanding.length === 0) this.idleSinceMs = nowMs
    request.answered(response.status, response.body, nowMs)
    if (this.closing) {
      // Requests written after the one it answered last will not be read (RFC 9112 §9.6).
      if (this.outstanding.length === 0) this.socket.end()
      else this.destroy(CONNECTION_CLOSED)
      return
    }
    if (!this.isClosed) this.owner.ready(this)
  }

  private onEnd(): void {
    // The server closed its side: a body read until close is complete; the rest fail at close.
    this.parser.end(this.onResponse)
    this.closing = true
    this.socket.end()
  }

  private onClose(): void {
    if (this.isClosed) return
    this.isClosed = true
    const headRead = this.parser.headRead
    const requests = this.outstanding.splice(0)
    const code = requests.length > 0 ? this.failure ?? CONNECTION_CLOSED : this.failure
    const nowMs = Date.now()
    requests.forEach((r, i) => r.failed(code!, i === 0 && headRead, nowMs))
    this.owner.closed(this, code, this.connected)
  }
}
