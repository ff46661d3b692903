// Keep-alive HTTP/1.1 connections to one origin (http://host:port), for ILP over HTTP's one
// request shape (RFC 35: a POST whose answer is a status and a small body). Requests wait in a
// queue until `dispatch` (the I/O thread calls it once per drain of the shards' rings, so a
// burst goes out together) hands them to connections:
//
//   1. an idle connection (no request outstanding), newest first;
//   2. else a new connection, up to `connectionsMax` (the request waits for the first connection
//      that can take it, new or freed);
//   3. else, with pipelining, the least busy connection under `pipelining` requests outstanding.
//
// Pipelining (RFC 9112 §9.3.2) is off unless the account says the peer takes it (`http.pipelining`):
// it cannot be detected safely, and a peer that cannot take it may drop or abort requests it has
// already acted on (uWebSockets.js aborts a second request on a connection while the first is
// unanswered). Limits: connections per origin, requests waiting (`queuedMax`; more are refused),
// and a deadline per request: a request unanswered at its deadline closes its connection (the only
// way to give up on an HTTP/1.1 request), which fails the others on it too. A request that waits
// past its deadline for a connection fails without being sent. A slow peer thus holds at most its
// own pool; other origins have theirs.

import { CONNECTION_CLOSED, Http1Connection, REQUEST_TIMEOUT, type Http1ConnectionOwner, type Http1Request } from './http1_connection'

export interface Http1PoolOptions {
  host: string
  port: number
  connectionsMax: number
  /** Requests outstanding per connection at most: 1 means no pipelining. */
  pipelining: number
  /** Requests waiting for a connection at most; `send` refuses more. */
  queuedMax: number
  /** Largest response body taken; a larger one fails the request and closes its connection. */
  bodyBytesMax: number
  /** An idle connection closes after this long, or 1 s before the server's Keep-Alive timeout. */
  idleMs: number
  /** A connection not made in this long is given up (ETIMEDOUT): what waits for it fails. */
  connectTimeoutMs: number
}

/** Margin before the server's announced Keep-Alive timeout: a request must not race its close. */
const KEEP_ALIVE_MARGIN_MS = 1000

export class Http1Pool implements Http1ConnectionOwner {
  private readonly connections = new Set<Http1Connection>()
  /** Connected, nothing outstanding, not closing: the first choice, newest last. */
  private readonly idle: Http1Connection[] = []
  private queue: Http1Request[] = []
  private connecting = 0
  private isClosed = false
  private closedWaiters: (() => void)[] = []

  constructor(private readonly options: Http1PoolOptions) {}

  /** Queues a request for the next `dispatch`; false (not queued) when `queuedMax` wait already. */
  send(request: Http1Request): boolean {
    if (this.isClosed || this.queue.length >= this.options.queuedMax) return false
    this.queue.push(request)
    return true
  }

  /** Hands queued requests to connections, opening new ones as needed. */
  dispatch(): void {
    if (this.queue.length === 0) return
    let taken = 0
    const queue = this.queue
    while (taken < queue.length) {
      const connection = this.idle.pop() ?? this.pipelined()
      if (connection === null) break
      taken += this.fill(connection, queue, taken)
    }
    if (taken > 0) queue.splice(0, taken)
    this.openFor(queue.length)
  }

  /** Connections open or opening (for tests and the admin view). */
  get size(): number {
    return this.connections.size
  }

  get queued(): number {
    return this.queue.length
  }

  /**
   * The timers' work, every sweep: requests past their deadline fail (a connection carrying one
   * closes), connections not made in time are given up, idle ones past their keep-alive close.
   */
  sweep(nowMs: number): void {
    if (this.queue.some((r) => r.deadlineMs <= nowMs)) {
      const expired = this.queue.filter((r) => r.deadlineMs <= nowMs)
      this.queue = this.queue.filter((r) => r.deadlineMs > nowMs)
      for (const r of expired) r.failed(REQUEST_TIMEOUT, false, nowMs)
    }
    for (const c of this.connections) {
      if (!c.connected && nowMs - c.openedAtMs >= this.options.connectTimeoutMs) c.destroy('ETIMEDOUT')
      else if (c.outstanding.some((r) => r.deadlineMs <= nowMs)) c.destroy(REQUEST_TIMEOUT)
      else if (c.outstanding.length === 0 && nowMs - c.idleSinceMs >= this.idleLimitMs(c)) c.destroy(CONNECTION_CLOSED)
    }
  }

  /** Forgets the requests still waiting for a connection that `unwanted` picks: they are never sent. */
  dropQueued(unwanted: (request: Http1Request) => boolean): void {
    this.queue = this.queue.filter((r) => !unwanted(r))
  }

  /** Fails what waits, closes every connection (their requests fail), resolves when all have closed. */
  close(): Promise<void> {
    this.isClosed = true
    const nowMs = Date.now()
    for (const r of this.queue.splice(0)) r.failed(CONNECTION_CLOSED, false, nowMs)
    for (const c of this.connections) c.destroy(CONNECTION_CLOSED)
    if (this.connections.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.closedWaiters.push(resolve))
  }

  opened(connection: Http1Connection): void {
    this.connecting--
    this.ready(connection)
  }

  ready(connection: Http1Connection): void {
    const taken = this.fill(connection, this.queue, 0)
    if (taken > 0) this.queue.splice(0, taken)
    if (connection.outstanding.length === 0 && connection.room(1) > 0 && !this.idle.includes(connection)) this.idle.push(connection)
  }

  closed(connection: Http1Connection, code: string | null, wasConnected: boolean): void {
    this.connections.delete(connection)
    const i = this.idle.indexOf(connection)
    if (i >= 0) this.idle.splice(i, 1)
    if (!wasConnected) {
      this.connecting--
      // The origin cannot be reached: what waits would only wait for the next failure.
      if (code !== null && this.connectedCount() === 0) {
        const nowMs = Date.now()
        for (const r of this.queue.splice(0)) r.failed(code, false, nowMs)
      }
    }
    if (this.isClosed) {
      if (this.connections.size === 0) for (const resolve of this.closedWaiters.splice(0)) resolve()
      return
    }
    // A failed connect is not retried at once (no loop against a refusing origin): the requests
    // wait for the connections that work, or for the next dispatch.
    if (wasConnected) this.openFor(this.queue.length)
  }

  /** Takes requests from `queue` at `from` onto `connection` as far as it has room; returns how many. */
  private fill(connection: Http1Connection, queue: Http1Request[], from: number): number {
    const room = Math.min(connection.room(this.options.pipelining), queue.length - from)
    if (room <= 0) return 0
    const wasIdle = this.idle.indexOf(connection)
    if (wasIdle >= 0) this.idle.splice(wasIdle, 1)
    if (room === 1) {
      connection.write(queue[from])
      return 1
    }
    connection.cork()
    for (let i = 0; i < room; i++) connection.write(queue[from + i])
    connection.uncork()
    return room
  }

  /** With pipelining: the connected connection with the fewest requests outstanding and room left. */
  private pipelined(): Http1Connection | null {
    if (this.options.pipelining <= 1 || this.connections.size + this.connecting < this.options.connectionsMax) return null
    let best: Http1Connection | null = null
    for (const c of this.connections) {
      if (c.room(this.options.pipelining) > 0 && (best === null || c.outstanding.length < best.outstanding.length)) best = c
    }
    return best
  }

  /** Opens connections for `waiting` requests: at most one per request, within connectionsMax. */
  private openFor(waiting: number): void {
    const { host, port, connectionsMax, bodyBytesMax } = this.options
    while (!this.isClosed && this.connecting < waiting && this.connections.size < connectionsMax) {
      this.connecting++
      this.connections.add(new Http1Connection(this, host, port, bodyBytesMax, Date.now()))
    }
  }

  private connectedCount(): number {
    let n = 0
    for (const c of this.connections) if (c.connected) n++
    return n
  }

  private idleLimitMs(c: Http1Connection): number {
    return c.keepAliveMs < 0 ? this.options.idleMs : Math.min(this.options.idleMs, c.keepAliveMs - KEEP_ALIVE_MARGIN_MS)
  }
}

/** A request's pre-built head (up to the value of Content-Length), the body's length, and the body, in one buffer (one write). */
export function requestBytes(head: Buffer, body: Uint8Array): Buffer {
  const length = `${body.length}\r\n\r\n`
  const bytes = Buffer.allocUnsafe(head.length + length.length + body.length)
  head.copy(bytes, 0)
  bytes.write(length, head.length, 'latin1')
  bytes.set(body, head.length + length.length)
  return bytes
}
