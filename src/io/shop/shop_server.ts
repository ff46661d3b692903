// The shop: paid HTTP routes with HTTP-ILP draft 3 (RFC 14), as koa-ilp serves them and
// ilp-fetch pays them.
//
//   OPTIONS <path>                 204, Pay: interledger-psk2 <address> <secret> <price>, Pay-Balance
//   <method> <path>, no Pay-Token  402 with Pay and Pay-Balance: 0
//   bad Pay-Token                  400 (empty, not base64url, not 16 or 32 bytes)
//   balance < price                402 with Pay and Pay-Balance
//   otherwise                      the price is spent, then the built-in answer or the upstream's,
//                                  with Pay-Balance (what is left)
//   a route priced 0               served without payment (the bench's "same route unpaid")
// A PSK2 payment to the address in Pay credits the token in its data (shard/payee/receiver.ts). The
// shard that owns the shop's payee holds every token's balance, so spending is one message to it
// and two requests can never spend the same balance; the I/O thread only asks.

import { STATUS_CODES } from 'node:http'
import type { Readable } from 'node:stream'
import { Pool } from 'undici'
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js'
import { SHOP_ACCOUNT } from '../../config/names'
import type { Config, ShopRoute } from '../../config/schema'
import type { Logger } from '../../log'
import { newReceiverAddress } from '../../codec/receiver_address'
import type { AccountTable } from '../../config/account_table'
import type { ShardPort } from '../shard_port'
import { readTokenBalance, type Store } from '../../store/balance_store'
import type { Connections, ReplyTarget } from '../connections'

/**
 * Largest request body a paid request may carry to the upstream. It is read whole before the
 * price is spent (the spend must not wait on a slow client), so it is bounded; the upstream's
 * answer is streamed and is not.
 */
const MAX_BODY_BYTES = 1 << 20
/** Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), plus our own. */
const NOT_FORWARDED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host', 'content-length', 'pay-token'])

/** A paid request waiting for the shop's shard to say whether its token could pay. */
class PaidRequest implements ReplyTarget {
  readonly transport = 'shop'
  aborted = false
  connId = 0
  /** The upstream's answer while it is being relayed (destroyed if the client goes away). */
  upstreamBody: Readable | null = null
  constructor(
    readonly server: ShopServer,
    readonly res: HttpResponse,
    readonly route: ShopRoute,
    readonly token: string,
    readonly url: string,
    readonly headers: Record<string, string>,
    readonly body: Buffer,
  ) {}

  sendReply(_requestId: number, answer: Uint8Array): void {
    this.server.spent(this, answer[0] === 1, Buffer.from(answer.buffer, answer.byteOffset, answer.byteLength).readBigUInt64BE(1))
  }

  abandon(): void {
    this.server.unavailable(this)
  }
}

export class ShopServer {
  private readonly shop: number
  private readonly address: string
  private readonly secret: Uint8Array
  private readonly pools = new Map<string, Pool>()

  constructor(
    private readonly config: Config,
    accounts: AccountTable,
    private readonly shards: ShardPort,
    private readonly connections: Connections,
    private readonly store: Store,
    private readonly log: Logger,
  ) {
    this.shop = accounts.indexOfLive(SHOP_ACCOUNT)
    this.address = `${config.ilpAddress}.${SHOP_ACCOUNT}`
    this.secret = accounts.get(this.shop).payee!.secret!
  }

  register(app: TemplatedApp): void {
    for (const route of this.config.shop!.routes) {
      app.options(route.path, (res, req) => this.options(res, req, route))
      const handler = (res: HttpResponse, req: HttpRequest) => this.paid(res, req, route)
      switch (route.method) {
        case 'GET': app.get(route.path, handler); break
        case 'POST': app.post(route.path, handler); break
        case 'PUT': app.put(route.path, handler); break
        case 'PATCH': app.patch(route.path, handler); break
        case 'DELETE': app.del(route.path, handler); break
      }
    }
  }

  /** Lets proxied requests finish for up to `graceMs`, then cuts what is left (a stuck upstream must not stop a shutdown). */
  async close(graceMs = 5000): Promise<void> {
    await Promise.all([...this.pools.values()].map(async (pool) => {
      const cut = setTimeout(() => { pool.destroy().catch(() => {}) }, graceMs)
      try {
        await pool.close()
      } finally {
        clearTimeout(cut)
      }
    }))
  }

  /** `Pay` for a route: a fresh address and shared secret each time, as koa-ilp does. */
  private payHeader(route: ShopRoute): string {
    const { destination, sharedSecret } = newReceiverAddress('psk2', this.address, this.secret)
    return `interledger-psk2 ${destination} ${sharedSecret.toString('base64')} ${route.price}`
  }

  private options(res: HttpResponse, req: HttpRequest, route: ShopRoute): void {
    const token = req.getHeader('pay-token')
    const problem = token === '' ? null : tokenProblem(token)
    if (problem !== null) return this.badToken(res, problem)
    const balance = token === '' ? 0n : readTokenBalance(this.store, token)
    res.writeStatus('204 No Content').writeHeader('Pay', this.payHeader(route)).writeHeader('Pay-Balance', balance.toString()).end()
  }

  private paid(res: HttpResponse, req: HttpRequest, route: ShopRoute): void {
    // Everything needed from `req` is read now: uWS invalidates it when this call returns.
    const hasToken = req.getHeader('pay-token') !== '' || hasHeader(req, 'pay-token')
    const token = req.getHeader('pay-token')
    const query = req.getQuery()
    const url = query === undefined || query === '' ? req.getUrl() : `${req.getUrl()}?${query}`
    // Keyed by the client's header names: no prototype, so `constructor` is a header like any other.
    const headers = Object.create(null) as Record<string, string>
    req.forEach((name, value) => {
      if (!NOT_FORWARDED.has(name)) headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
    })
    let aborted = false
    res.onAborted(() => { aborted = true })

    const free = route.price === 0n
    if (!free && !hasToken) return this.paymentRequired(res, route, 0n)
    const problem = free ? null : tokenProblem(token)
    if (problem !== null) return this.badToken(res, problem)

    const chunks: Buffer[] = []
    let length = 0
    res.onData((chunk, isLast) => {
      if (aborted || length < 0) return
      length += chunk.byteLength
      if (length > MAX_BODY_BYTES) {
        length = -1
        res.cork(() => { res.writeStatus('413 Payload Too Large').writeHeader('Content-Type', 'text/plain').end(`body over ${MAX_BODY_BYTES} bytes\n`, true) })
        return
      }
      chunks.push(Buffer.from(new Uint8Array(chunk)))
      if (!isLast) return
      const request = new PaidRequest(this, res, route, token, url, headers, Buffer.concat(chunks))
      res.onAborted(() => {
        request.aborted = true
        if (request.connId !== 0) this.connections.remove(request.connId)
        request.upstreamBody?.destroy()
      })
      if (aborted) request.aborted = true
      if (free) this.serve(request, null)
      else this.spend(request)
    })
  }

  private spend(request: PaidRequest): void {
    request.connId = this.connections.add(request)
    const ask = Buffer.alloc(8 + request.token.length)
    ask.writeBigUInt64BE(request.route.price, 0)
    ask.write(request.token, 8, 'latin1')
    if (!this.shards.submitSpend(this.shop, request.connId, 0, ask)) {
      this.connections.remove(request.connId)
      this.log.warn('shop shard is busy; paid request refused', { path: request.route.path })
      if (!request.aborted) {
        request.res.cork(() => { request.res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', '1').end('busy, try again\n') })
      }
    }
  }

  /** The shop's shard restarted before it answered: nothing was spent that we know of; try again. */
  unavailable(request: PaidRequest): void {
    this.connections.remove(request.connId)
    if (request.aborted) return
    request.res.cork(() => { request.res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', '1').end('restarting, try again\n') })
  }

  /** The shard's answer: the price was spent (serve the request) or the balance is short (402). */
  spent(request: PaidRequest, ok: boolean, balance: bigint): void {
    this.connections.remove(request.connId)
    if (request.aborted) {
      if (ok) this.log.info('paid request went away after its price was spent', { path: request.route.path, price: request.route.price })
      return
    }
    const { res, route } = request
    if (!ok) {
      res.cork(() => this.paymentRequired(res, route, balance))
      return
    }
    this.log.debug('paid request served', { path: route.path, price: route.price, balance })
    this.serve(request, balance)
  }

  /** Answers a request that has paid (balance: what its token has left) or needs no payment (null). */
  private serve(request: PaidRequest, balance: bigint | null): void {
    const { res, route } = request
    const withBalance = (r: HttpResponse): HttpResponse => (balance === null ? r : r.writeHeader('Pay-Balance', balance.toString()))
    if (route.upstream === null) {
      res.cork(() => { withBalance(res.writeStatus('200 OK').writeHeader('Content-Type', 'text/plain')).end(route.response) })
      return
    }
    this.proxy(request, withBalance)
  }

  private proxy(request: PaidRequest, withBalance: (r: HttpResponse) => HttpResponse): void {
    const { res, route } = request
    const pool = this.pool(route.upstream!)
    pool.request({
      path: request.url,
      method: route.method as 'GET',
      headers: request.headers,
      body: request.body.length > 0 ? request.body : undefined,
    }).then((answer) => {
      if (request.aborted) {
        answer.body.destroy()
        return
      }
      request.upstreamBody = answer.body
      res.cork(() => {
        res.writeStatus(statusLine(answer.statusCode))
        for (const [name, value] of Object.entries(answer.headers)) {
          if (NOT_FORWARDED.has(name) || value === undefined) continue
          for (const v of Array.isArray(value) ? value : [value]) res.writeHeader(name, v)
        }
        withBalance(res)
      })
      this.relayBody(request, answer.body)
    }, (err: Error) => {
      // The price stays spent: the request reached us paid, and whether the upstream did the
      // work before it failed cannot be known here.
      this.log.warn('upstream of a paid route failed', { path: route.path, upstream: route.upstream, error: err.message })
      if (request.aborted) return
      res.cork(() => {
        withBalance(res.writeStatus('502 Bad Gateway').writeHeader('Content-Type', 'text/plain')).end('upstream failed\n')
      })
    })
  }

  /**
   * Streams the upstream's answer to the client as it arrives, pausing the upstream while the
   * client's socket is backed up, so a large or slow answer holds no more than a socket buffer.
   */
  private relayBody(request: PaidRequest, body: Readable): void {
    const { res, route } = request
    body.on('data', (chunk: Buffer) => {
      if (request.aborted) return
      let drained = true
      res.cork(() => { drained = res.write(chunk) })
      if (drained) return
      body.pause()
      // uWS keeps what it could not send yet; resume once the socket has taken it.
      res.onWritable(() => {
        body.resume()
        return true
      })
    })
    body.on('end', () => {
      request.upstreamBody = null
      if (!request.aborted) res.cork(() => { res.end() })
    })
    body.on('error', (err: Error) => {
      request.upstreamBody = null
      if (request.aborted) return
      // The status line is sent: cut the connection so the client cannot take a truncated answer
      // for a whole one.
      this.log.warn('upstream of a paid route failed while sending its answer', { path: route.path, upstream: route.upstream, error: err.message })
      request.aborted = true
      res.close()
    })
  }

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin)
    if (pool === undefined) {
      const timeout = this.config.shop!.upstreamTimeoutMs
      pool = new Pool(origin, { connections: 64, keepAliveTimeout: 30_000, headersTimeout: timeout, bodyTimeout: timeout })
      this.pools.set(origin, pool)
    }
    return pool
  }

  private paymentRequired(res: HttpResponse, route: ShopRoute, balance: bigint): void {
    res.writeStatus('402 Payment Required')
      .writeHeader('Pay', this.payHeader(route))
      .writeHeader('Pay-Balance', balance.toString())
      .writeHeader('Content-Type', 'text/plain')
      .end(`this request costs ${route.price}; pay to the address in the Pay header with your Pay-Token as the data\n`)
  }

  private badToken(res: HttpResponse, problem: string): void {
    res.writeStatus('400 Bad Request').writeHeader('Content-Type', 'text/plain').end(`invalid Pay-Token: ${problem}\n`)
  }
}

/** Why a Pay-Token cannot be one, or null: 16 or 32 bytes in base64url without padding. */
export function tokenProblem(token: string): string | null {
  if (token.trim() === '') return 'it is empty'
  if (token.length > 43) return `it is ${token.length} characters; a token is 16 or 32 bytes, 22 or 43 characters of base64url`
  if (!/^[A-Za-z0-9_-]+$/.test(token)) return 'it is not base64url (A-Z a-z 0-9 - _, no padding)'
  if (token.length !== 22 && token.length !== 43) return `it is ${token.length} characters; a token is 16 or 32 bytes, 22 or 43 characters of base64url`
  return null
}

/** `201 Created`: the upstream's status with its standard reason phrase (the code alone when it has none). */
function statusLine(code: number): string {
  const reason = STATUS_CODES[code]
  return reason === undefined ? String(code) : `${code} ${reason}`
}

function hasHeader(req: HttpRequest, name: string): boolean {
  let found = false
  req.forEach((key) => { if (key === name) found = true })
  return found
}
