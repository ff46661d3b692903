// ILP over HTTP, outgoing: prepares for an account with `http.url` are POSTed there (RFC 35 sync,
// as ilp-plugin-http@1.x speaks it), over keep-alive connections per origin. A 200 answer's body
// goes back to the shard as the reply; any other status fails the prepare T00 upstream, no answer
// (refused, reset, closed mid-way) T01, too many waiting for the peer T02, all via the shard's one
// reject table (codec/ilp_errors.ts). Whether the peer answered, whatever the status, goes to
// shared memory for the admin API (shared/peer_reach.ts).
//
// http:// URLs use the node's own HTTP/1.1 client (http1_pool.ts): RFC 35's requests have one
// shape, so each endpoint's request line and headers are built once, and a request is one buffer
// and one write. https:// URLs keep undici: there TLS costs more than the HTTP framing, and undici
// brings certificate checks, session reuse and ALPN that a lean client would have to redo.
//
// Answers are taken by the rules the shards need (shard/pending_table.ts): one that comes after
// the shards restarted belongs to a prepare that died with them (dropped); one that comes more
// than a second after its prepare's expiry finds the shard has answered R00 already (dropped,
// counted). A request unanswered by then has failed: its connection closes (http1_pool.ts).

import { Pool, type Dispatcher } from 'undici'
import { SendFailure } from '../../codec/ilp_errors'
import type { Config } from '../../config/schema'
import { LogOncePer, type Logger } from '../../log'
import type { AccountTable } from '../../config/account_table'
import type { ShardPort } from '../shard_port'
import { failureOf, type PeerReach } from '../../shared/peer_reach'
import { Http1Pool, requestBytes } from './http1_pool'
import type { Http1Request } from './http1_connection'

interface Endpoint {
  url: string
  /** http://: the node's client; https://: undici's. */
  http1: Http1Pool | null
  undici: Pool | null
  path: string
  authorization: string
  /** http://: the request line and headers up to the value of Content-Length. */
  head: Buffer
}

/** Connections kept open per origin. */
const CONNECTIONS_PER_ORIGIN = 32
/**
 * Requests waiting for a connection per origin; more are refused T02. It only binds when the peer
 * answers far slower than prepares come (each waits for one of its 32 connections to free).
 */
const QUEUED_PER_ORIGIN_MAX = 8192
/**
 * An idle connection closes after 4 s (undici's default), before a node:http server's 5 s
 * keep-alive closes it under a request in flight; sooner if the server announces less.
 */
const IDLE_MS = 4000
/** A connection not made in 10 s (undici's default connect timeout) is given up. */
const CONNECT_TIMEOUT_MS = 10_000
/** How often deadlines and idle connections are checked. */
const SWEEP_MS = 500
/** Errors that mean no connection was made: the prepare was never sent. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH'])

export class IlpHttpClient {
  private readonly endpoints: (Endpoint | null)[]
  private readonly http1Pools = new Map<string, Http1Pool>()
  private readonly undiciPools = new Map<string, Pool>()
  private readonly lateAnswers: LogOncePer
  private sweepTimer: NodeJS.Timeout | null = null
  /** Pools with requests queued since the last flush. */
  private readonly toDispatch = new Set<Http1Pool>()

  constructor(
    private readonly config: Config,
    private readonly accounts: AccountTable,
    readonly shards: ShardPort,
    readonly reach: PeerReach,
    private readonly log: Logger,
  ) {
    this.endpoints = accounts.accounts.map((_, i) => this.endpoint(i))
    this.lateAnswers = new LogOncePer(log, 'info', 60_000)
  }

  private endpoint(account: number): Endpoint | null {
    const a = this.accounts.get(account)
    if (a.httpUrl === null || !this.accounts.isLive(account)) return null
    const url = new URL(a.httpUrl)
    const path = `${url.pathname}${url.search}`
    const authorization = `Bearer ${a.httpOutgoingToken ?? ''}`
    if (url.protocol === 'https:') return { url: a.httpUrl, http1: null, undici: this.undiciPool(url, a.httpPipelining), path, authorization, head: Buffer.alloc(0) }
    const head = Buffer.from(`POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: ${authorization}\r\n` +
      `Content-Type: application/octet-stream\r\nAccept: application/octet-stream\r\nILP-Peer-Name: ${this.config.ilpAddress}\r\nContent-Length: `, 'latin1')
    return { url: a.httpUrl, http1: this.http1Pool(url, a.httpPipelining), undici: null, path, authorization, head }
  }

  /** The pool for an origin, one per pipelining depth (accounts at one origin may set different ones). */
  private http1Pool(url: URL, pipelining: number): Http1Pool {
    const key = `${url.origin} ${pipelining}`
    let pool = this.http1Pools.get(key)
    if (pool !== undefined) return pool
    pool = new Http1Pool({
      // URL.hostname keeps an IPv6 address in brackets; the socket wants it bare.
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port === '' ? 80 : Number(url.port),
      connectionsMax: CONNECTIONS_PER_ORIGIN,
      pipelining,
      queuedMax: QUEUED_PER_ORIGIN_MAX,
      bodyBytesMax: this.config.maxHttpBodyBytes,
      idleMs: IDLE_MS,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
    })
    this.http1Pools.set(key, pool)
    if (this.sweepTimer === null) {
      this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS)
      this.sweepTimer.unref()
    }
    return pool
  }

  private undiciPool(url: URL, pipelining: number): Pool {
    const key = `${url.origin} ${pipelining}`
    let pool = this.undiciPools.get(key)
    if (pool === undefined) {
      pool = new Pool(url.origin, {
        connections: CONNECTIONS_PER_ORIGIN,
        pipelining,
        keepAliveTimeout: IDLE_MS,
        headersTimeout: this.config.maxHoldTimeMs,
        bodyTimeout: this.config.maxHoldTimeMs,
        maxResponseSize: this.config.maxHttpBodyBytes,
      })
      this.undiciPools.set(key, pool)
    }
    return pool
  }

  /** `account` changed (admin API, reload): its next prepare goes where its new config says. */
  accountChanged(account: number): void {
    const before = this.endpoints[account]
    this.endpoints[account] = this.endpoint(account)
    if (before?.url !== this.endpoints[account]?.url) this.reach.forget(account)
  }

  /** True if `account` sends its prepares over HTTP. */
  serves(account: number): boolean {
    return this.endpoints[account] !== null
  }

  forward(shard: number, account: number, pendingId: number, expiresAtS: number, ilp: Uint8Array): void {
    const endpoint = this.endpoints[account]
    // Deleted, or moved to BTP, since the shard routed the prepare here.
    if (endpoint === null || endpoint === undefined) return this.shards.submitSendFailure(shard, pendingId, SendFailure.PeerNotConnected)
    if (endpoint.http1 === null) return this.forwardWithUndici(endpoint, shard, account, pendingId, expiresAtS, ilp)
    // The ring's bytes are reused after this call: the request is copied out of them here.
    const request = new ForwardedPrepare(this, requestBytes(endpoint.head, ilp), shard, account, pendingId, expiresAtS, this.shards.incarnation)
    if (!endpoint.http1.send(request)) return this.shards.submitSendFailure(shard, pendingId, SendFailure.PeerBusy)
    this.toDispatch.add(endpoint.http1)
  }

  /** End of a drain of the shards' rings: what forward() queued goes out, a write per connection. */
  flush(): void {
    if (this.toDispatch.size === 0) return
    for (const pool of this.toDispatch) pool.dispatch()
    this.toDispatch.clear()
  }

  /**
   * The shards are restarting: forwarded prepares still waiting for a connection are never sent.
   * Their prepares were answered T00 and are gone with the old shards, so a fulfill the peer sent
   * for one could not be booked; unsent, the peer has nothing to fulfill. (Those already sent are
   * answered into the void: their answers carry the old incarnation.)
   */
  shardsRestarting(): void {
    for (const pool of this.http1Pools.values()) pool.dropQueued((r) => r instanceof ForwardedPrepare)
  }

  /** A forwarded prepare's answer (ForwardedPrepare.answered). */
  prepareAnswered(p: ForwardedPrepare, status: number, body: Uint8Array, nowMs: number): void {
    this.reach.answered(p.account, nowMs)
    if (p.incarnation !== this.shards.incarnation) return
    // After its prepare expired (the shard has answered it R00): dropped, never applied.
    if (nowMs > p.deadlineMs) return this.lateAnswer(p.account, status, nowMs)
    if (status !== 200) {
      this.log.info('next hop answered ILP-over-HTTP with an error status', { account: this.accounts.get(p.account).id, status })
      return this.shards.submitSendFailure(p.shard, p.pendingId, SendFailure.PeerHttpStatus)
    }
    this.shards.submitReply(p.shard, p.pendingId, p.account, body)
  }

  /** A forwarded prepare got no (whole) answer (ForwardedPrepare.failed). */
  prepareFailed(p: ForwardedPrepare, code: string, headRead: boolean, nowMs: number): void {
    // A body that fails after its head still came from a reachable peer.
    if (headRead) this.reach.answered(p.account, nowMs)
    else this.reach.failed(p.account, failureOf({ code }), nowMs)
    if (p.incarnation !== this.shards.incarnation) return
    // Past its expiry the shard has answered it R00 already.
    if (nowMs > p.deadlineMs) return
    this.log.info('ILP-over-HTTP request to next hop failed', { account: this.accounts.get(p.account).id, error: code })
    this.shards.submitSendFailure(p.shard, p.pendingId, NOT_CONNECTED.has(code) ? SendFailure.PeerNotConnected : SendFailure.PeerDisconnected)
  }

  private lateAnswer(account: number, status: number, nowMs: number): void {
    this.shards.countUnknownAnswer(account)
    const id = this.accounts.get(account).id
    this.lateAnswers.event(id, 'dropped ILP-over-HTTP answers that came after their prepare expired', { account: id, status }, nowMs)
  }

  private forwardWithUndici(endpoint: Endpoint, shard: number, account: number, pendingId: number, expiresAtS: number, ilp: Uint8Array): void {
    // The ring's bytes are reused after this call; the request body needs its own copy.
    const body = Buffer.from(ilp)
    const incarnation = this.shards.incarnation
    const deadlineMs = answerDeadlineMs(expiresAtS)
    endpoint.undici!.request({
      path: endpoint.path,
      method: 'POST',
      headers: {
        authorization: endpoint.authorization,
        'content-type': 'application/octet-stream',
        accept: 'application/octet-stream',
        'ilp-peer-name': this.config.ilpAddress,
      },
      body,
    }).then(async ({ statusCode, body: response }) => {
      this.reach.answered(account, Date.now())
      // The whole answer is read before anything is decided: its body may come long after its
      // head, and by then the shards may have restarted (pendingIds start over) or the prepare
      // expired; either way the answer is not for them.
      const answer = statusCode === 200 ? new Uint8Array(await response.arrayBuffer()) : null
      if (answer === null) await response.dump()
      const now = Date.now()
      if (incarnation !== this.shards.incarnation) return
      if (now > deadlineMs) return this.lateAnswer(account, statusCode, now)
      if (answer === null) {
        this.log.info('next hop answered ILP-over-HTTP with an error status', { account: this.accounts.get(account).id, status: statusCode })
        return this.shards.submitSendFailure(shard, pendingId, SendFailure.PeerHttpStatus)
      }
      this.shards.submitReply(shard, pendingId, account, answer)
    }, (err: Error) => {
      // No answer at all; a body that fails after its head still came from a reachable peer.
      this.reach.failed(account, failureOf(err), Date.now())
      throw err
    }).catch((err: Error) => {
      if (incarnation !== this.shards.incarnation) return
      this.log.info('ILP-over-HTTP request to next hop failed', { account: this.accounts.get(account).id, error: err.message })
      this.shards.submitSendFailure(shard, pendingId, SendFailure.PeerNotConnected)
    })
  }

  /** Sends a control-plane prepare (CCP) to `account` and resolves with its ILP answer. */
  sendControl(account: number, prepare: Uint8Array): Promise<Uint8Array> {
    const endpoint = this.endpoints[account]
    if (endpoint === null || endpoint === undefined) return Promise.reject(new Error('not connected'))
    if (endpoint.http1 === null) return this.sendControlWithUndici(endpoint, account, prepare)
    const pool = endpoint.http1
    return new Promise((resolve, reject) => {
      const request = new ControlRequest(this.reach, account, requestBytes(endpoint.head, prepare), Date.now() + this.config.maxHoldTimeMs, resolve, reject)
      if (!pool.send(request)) return reject(new Error('next hop is not accepting more data'))
      pool.dispatch()
    })
  }

  private async sendControlWithUndici(endpoint: Endpoint, account: number, prepare: Uint8Array): Promise<Uint8Array> {
    let answer: Dispatcher.ResponseData
    try {
      answer = await endpoint.undici!.request({
        path: endpoint.path,
        method: 'POST',
        headers: { authorization: endpoint.authorization, 'content-type': 'application/octet-stream', 'ilp-peer-name': this.config.ilpAddress },
        body: Buffer.from(prepare),
      })
    } catch (err) {
      // Route updates keep the admin API's view of an idle peer current.
      this.reach.failed(account, failureOf(err), Date.now())
      throw err
    }
    this.reach.answered(account, Date.now())
    const { statusCode, body } = answer
    if (statusCode !== 200) {
      await body.dump()
      throw new Error(`HTTP ${statusCode}`)
    }
    return new Uint8Array(await body.arrayBuffer())
  }

  private sweep(): void {
    const nowMs = Date.now()
    for (const pool of this.http1Pools.values()) pool.sweep(nowMs)
  }

  async close(): Promise<void> {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer)
    this.sweepTimer = null
    await Promise.all([...[...this.http1Pools.values()].map((p) => p.close()), ...[...this.undiciPools.values()].map((p) => p.close())])
  }
}

/**
 * The late-answer line of a prepare forwarded with expiry `expiresAtS` (whole seconds, rounded
 * down): past it the shard has answered R00, and no answer can count.
 */
function answerDeadlineMs(expiresAtS: number): number {
  return (expiresAtS + 1) * 1000
}

/** A prepare on its way to the next hop: what its answer needs to find the shard's pending prepare. */
class ForwardedPrepare implements Http1Request {
  readonly deadlineMs: number

  constructor(
    private readonly client: IlpHttpClient,
    readonly bytes: Buffer,
    readonly shard: number,
    readonly account: number,
    readonly pendingId: number,
    expiresAtS: number,
    /** The shards' incarnation when it was sent (ShardPort.incarnation). */
    readonly incarnation: number,
  ) {
    this.deadlineMs = answerDeadlineMs(expiresAtS)
  }

  answered(status: number, body: Uint8Array, nowMs: number): void {
    this.client.prepareAnswered(this, status, body, nowMs)
  }

  failed(code: string, headRead: boolean, nowMs: number): void {
    this.client.prepareFailed(this, code, headRead, nowMs)
  }
}

/** A control-plane prepare (CCP): its answer settles a promise. */
class ControlRequest implements Http1Request {
  constructor(
    private readonly reach: PeerReach,
    private readonly account: number,
    readonly bytes: Buffer,
    readonly deadlineMs: number,
    private readonly resolve: (answer: Uint8Array) => void,
    private readonly reject: (err: Error) => void,
  ) {}

  answered(status: number, body: Uint8Array, nowMs: number): void {
    this.reach.answered(this.account, nowMs)
    if (status !== 200) return this.reject(new Error(`HTTP ${status}`))
    // The body is a view of the socket's read buffer: the answer gets its own copy.
    this.resolve(Uint8Array.prototype.slice.call(body))
  }

  failed(code: string, headRead: boolean, nowMs: number): void {
    // Route updates keep the admin API's view of an idle peer current.
    if (headRead) this.reach.answered(this.account, nowMs)
    else this.reach.failed(this.account, failureOf({ code }), nowMs)
    this.reject(Object.assign(new Error(`ILP-over-HTTP request failed: ${code}`), { code }))
  }
}
