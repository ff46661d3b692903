// ILP over HTTP, incoming (RFC 35, and the 2018 http-oer and http-head drafts), on the node's one port. One endpoint serves three forms:
//   RFC 35 (sync)  POST, body = OER prepare, Authorization: Bearer <token>; reply 200, body = OER
//                  fulfill or reject (every ILP answer is a 200)
//   http-oer       the same exchange (the 2018 form), accepted on `/` and `/ilp[/…]`
//   http-head      POST with ILP-Destination/-Condition/-Expiry/-Amount headers, body = data;
//                  the answer in headers (codec/http_head.ts)
// HTTP errors: 401 bad or missing token (held back after repeated bad tokens from one address,
// client_gate.ts), 429 while the address waits after failed authentications, 503 over limits.maxConnections, 415 a content type that is not an octet stream, 413 a
// body over limits.maxHttpBodyBytes, 400 malformed http-head headers. Everything at the ILP level
// (including T03 when the node is busy, T00 while it shuts down) is an ILP reject. `GET /ilp` answers OK, like ilp-plugin-http.

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js'
import { headReplyFromPacket, prepareFromHead, type HttpHeadFields } from '../../codec/http_head'
import type { Config } from '../../config/schema'
import type { AccountTable } from '../../config/account_table'
import type { ShardPort } from '../shard_port'
import { bearerToken, TokenIndex } from '../auth'
import { retryAfterSeconds, type ClientGate } from '../client_gate'
import type { Connections, ReplyTarget } from '../connections'

const EMPTY_BODY = Buffer.alloc(0)

/**
 * True for the media types a prepare may come as (or none). Compared as strings, not looked up in
 * a Set: each request's header value is a new string, and a Set lookup would hash it every time.
 */
function isOctetStream(type: string): boolean {
  return type === 'application/octet-stream' || type === '' || type === 'application/ilp+octet-stream'
}

/** The media type of a Content-Type value, lower case; the common exact values pass as they are. */
function mediaType(contentType: string): string {
  if (isOctetStream(contentType)) return contentType
  return contentType.split(';')[0].trim().toLowerCase()
}

/**
 * The answer `answer` writes inside res.cork: one function for every answer rather than a closure
 * each (cork calls it at once, so the two fields are set just for that call). uWebSockets.js
 * writes `200 OK` when no status is set.
 */
const corked: { res: HttpResponse | null; ilp: Uint8Array | null } = { res: null, ilp: null }
function writeCorkedAnswer(): void {
  corked.res!.writeHeader('Content-Type', 'application/octet-stream').end(corked.ilp!)
}

class HttpExchange implements ReplyTarget {
  readonly transport = 'http'
  aborted = false
  answered = false
  connId = 0

  constructor(readonly server: IlpHttpServer, readonly res: HttpResponse, readonly head: boolean) {}

  sendReply(_requestId: number, ilp: Uint8Array): void {
    this.server.answer(this, ilp)
  }

  abandon(reject: Uint8Array): void {
    this.server.answer(this, reject)
  }
}

export class IlpHttpServer {
  private readonly tokens: TokenIndex

  constructor(
    private readonly config: Config,
    accounts: AccountTable,
    private readonly shards: ShardPort,
    private readonly connections: Connections,
    private readonly gate: ClientGate,
  ) {
    this.tokens = new TokenIndex(accounts, (i) => accounts.get(i).httpIncomingToken)
  }

  /** The accounts changed: each request's token is looked up in the new ones. */
  accountsChanged(): void {
    this.tokens.rebuild()
  }

  register(app: TemplatedApp): void {
    const handler = (res: HttpResponse, req: HttpRequest) => this.onPost(res, req)
    app.post('/', handler)
    app.post('/ilp', handler)
    app.post('/ilp/*', handler)
    app.get('/ilp', (res) => { res.writeStatus('200 OK').writeHeader('Content-Type', 'text/plain').end('OK') })
  }

  private onPost(res: HttpResponse, req: HttpRequest): void {
    // Everything needed from the request is read now: uWS invalidates `req` after this call.
    const authorization = req.getHeader('authorization')
    const contentType = mediaType(req.getHeader('content-type'))
    const contentLength = req.getHeader('content-length')
    const head: HttpHeadFields | null = req.getHeader('ilp-condition') === '' ? null : {
      destination: req.getHeader('ilp-destination'),
      condition: req.getHeader('ilp-condition'),
      expiry: req.getHeader('ilp-expiry'),
      amount: req.getHeader('ilp-amount'),
    }
    const exchange = new HttpExchange(this, res, head !== null)
    res.onAborted(() => {
      exchange.aborted = true
      if (exchange.connId !== 0) this.connections.remove(exchange.connId)
    })

    if (this.connections.size >= this.config.maxConnections) {
      this.gate.refused('(any)', 'connection limit reached; ILP-over-HTTP request refused', { limit: this.config.maxConnections })
      return this.fail(exchange, '503 Service Unavailable', 'too many requests in progress', [['Retry-After', '1']])
    }
    const token = bearerToken(authorization)
    if (token === '') return this.fail(exchange, '401 Unauthorized', 'missing Authorization: Bearer <token>', [['WWW-Authenticate', 'Bearer']])
    const account = this.authorize(exchange, res, req, token)
    if (account < 0) return
    if (head === null && !isOctetStream(contentType)) {
      return this.fail(exchange, '415 Unsupported Media Type', `Content-Type must be application/octet-stream or application/ilp+octet-stream, not ${JSON.stringify(contentType.slice(0, 64))}`)
    }
    const max = this.config.maxHttpBodyBytes
    const declared = contentLength === '' ? -1 : Number(contentLength)
    if (declared > max) return this.fail(exchange, '413 Payload Too Large', `body over ${max} bytes`)

    let body: Buffer = EMPTY_BODY
    let length = 0
    res.onData((chunk, isLast) => {
      if (exchange.answered) return
      if (length + chunk.byteLength > max) return this.fail(exchange, '413 Payload Too Large', `body over ${max} bytes`)
      // The whole body in one chunk (the common case): the shard's ring copies it, no copy here.
      if (isLast && length === 0) return this.submit(exchange, account, head, new Uint8Array(chunk))
      if (length + chunk.byteLength > body.length) {
        const grown = Buffer.allocUnsafe(Math.min(max, Math.max(body.length * 2, declared, 4096, length + chunk.byteLength)))
        body.copy(grown, 0, 0, length)
        body = grown
      }
      // The chunk is only valid during this callback: this copy is the one the data path needs.
      body.set(new Uint8Array(chunk), length)
      length += chunk.byteLength
      if (isLast) this.submit(exchange, account, head, body.subarray(0, length))
    })
  }

  /** The account a token names, or -1 with the refusal under way (held while the address waits). */
  private authorize(exchange: HttpExchange, res: HttpResponse, req: HttpRequest, token: string): number {
    // The client is found only while some address waits, or for a wrong token: a packet with a
    // right token, in the common case, pays nothing for the gate but one load.
    if (this.gate.anyoneWaits()) {
      const admission = this.gate.admit(this.gate.clientOf(res, req), 'http')
      if (!admission.ok) {
        const retryAfter = retryAfterSeconds(admission.waitMs)
        this.gate.hold(admission.waitMs, () => exchange.aborted, () => this.fail(exchange, '429 Too Many Requests', 'too many failed authentications from this address; try again later', [['Retry-After', retryAfter]]))
        return -1
      }
    }
    const account = this.tokens.authenticate(token)
    if (account >= 0) return account
    const waitMs = this.gate.failed(this.gate.clientOf(res, req), 'http', 'invalid bearer token')
    this.gate.hold(waitMs, () => exchange.aborted, () => this.fail(exchange, '401 Unauthorized', 'invalid bearer token', [['WWW-Authenticate', 'Bearer']]))
    return -1
  }

  /** `body` may be uWebSockets.js's chunk, valid during this call only: it is copied before it returns. */
  private submit(exchange: HttpExchange, account: number, head: HttpHeadFields | null, body: Uint8Array): void {
    let prepare: Uint8Array = body
    if (head !== null) {
      try {
        prepare = prepareFromHead(head, body)
      } catch (err) {
        return this.fail(exchange, '400 Bad Request', (err as Error).message, [['ILP-Error-Code', 'F01'], ['ILP-Error-Name', 'Invalid Packet']])
      }
    }
    exchange.connId = this.connections.add(exchange)
    const refusal = this.shards.submitPrepare(account, exchange.connId, 0, prepare)
    if (refusal !== null) this.answer(exchange, refusal)
  }

  /** Writes the ILP answer (called from the shards' drain, outside uWS handlers: hence cork). */
  answer(exchange: HttpExchange, ilp: Uint8Array): void {
    this.connections.remove(exchange.connId)
    if (exchange.aborted || exchange.answered) return
    exchange.answered = true
    const res = exchange.res
    if (!exchange.head) {
      corked.res = res
      corked.ilp = ilp
      res.cork(writeCorkedAnswer)
      corked.res = null
      corked.ilp = null
      return
    }
    const reply = headReplyFromPacket(ilp)
    res.cork(() => {
      res.writeStatus(reply.status).writeHeader('Content-Type', 'application/octet-stream')
      for (const [name, value] of reply.headers) res.writeHeader(name, value)
      res.end(reply.body)
    })
  }

  private fail(exchange: HttpExchange, status: string, message: string, headers: [string, string][] = []): void {
    if (exchange.aborted || exchange.answered) return
    exchange.answered = true
    const res = exchange.res
    res.cork(() => {
      res.writeStatus(status).writeHeader('Content-Type', 'text/plain')
      for (const [name, value] of headers) res.writeHeader(name, value)
      res.end(`${message}\n`, true)
    })
  }
}
