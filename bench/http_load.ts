// HTTP load: autocannon POSTs one pre-encoded Prepare (ILP over HTTP, RFC 35) again and again to
// a server, which forwards each to bob; bob is an HTTP server in this process that fulfills every
// prepare with the same fulfillment and counts them. A run fails unless bob saw every request
// autocannon counted as answered, so a server that rejects cannot pass for a fast one.
// Every run is bounded by a duration and a request count.

import { createHash } from 'node:crypto'
import autocannon from 'autocannon'
import { encodeFulfill, encodePrepare } from '../src/codec/ilp_packet'
import { loadUws } from '../src/io/uws'

export interface HttpRunResult {
  connections: number
  requests: number
  seconds: number
  requestsPerSecond: number
  /**
   * Latency in ms: the mean from Little's law (connections ÷ requests/s, exact for a closed loop),
   * the percentiles from autocannon, whose histogram counts whole milliseconds.
   */
  latencyMs: { mean: number; p50: number; p90: number; p99: number }
  non2xx: number
  errors: number
}

export interface HttpRunOptions {
  url: string
  token: string
  connections: number
  durationMs: number
  maxRequests: number
  warmupMs: number
  body: Buffer
  /** Sampled when measurement starts and ends (the server's CPU over the same span). */
  onMeasureStart?: () => void
  onMeasureEnd?: () => void
}

const FULFILLMENT = Buffer.alloc(32, 7)
const CONDITION = createHash('sha256').update(FULFILLMENT).digest()

/**
 * The prepare a request carries: fixed condition, an expiry far enough out for any run, and an
 * 8-byte counter as data. Each request gets the next counter, because ilp-connector answers
 * identical prepares from a cache (its deduplicate middleware) without forwarding them.
 */
export function benchPrepare(destination: string): Buffer {
  return encodePrepare({
    amount: 10n,
    expiresAtMs: Date.now() + 3_600_000,
    executionCondition: CONDITION,
    destination,
    data: Buffer.alloc(8),
  })
}

function nextBody(template: Buffer, counter: bigint): Buffer {
  const body = Buffer.from(template)
  body.writeBigUInt64BE(counter, body.length - 8)
  return body
}

export interface HttpReceiver {
  port: number
  served(): number
  close(): void
}

/** bob: answers every POST with the fulfill for the bench's condition. */
export async function startHttpReceiver(token: string): Promise<HttpReceiver> {
  const uws = loadUws()
  const fulfill = encodeFulfill(FULFILLMENT, Buffer.alloc(0))
  const expected = `Bearer ${token}`
  let served = 0
  const app = uws.App().post('/*', (res, req) => {
    const authorized = req.getHeader('authorization') === expected
    res.onAborted(() => {})
    // The body must be read before answering; its bytes are not needed.
    res.onData((_chunk, isLast) => {
      if (!isLast) return
      res.cork(() => {
        if (!authorized) {
          res.writeStatus('401 Unauthorized').end()
          return
        }
        served++
        res.writeHeader('Content-Type', 'application/octet-stream').end(fulfill)
      })
    })
  })
  const socket = await new Promise<unknown>((resolve, reject) => {
    app.listen('127.0.0.1', 0, (s) => (s === false ? reject(new Error('bob could not listen')) : resolve(s)))
  })
  return {
    port: uws.us_socket_local_port(socket as never),
    served: () => served,
    close: () => uws.us_listen_socket_close(socket as never),
  }
}

let counter = 0n

function cannon(opts: HttpRunOptions, durationMs: number, amount: number): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon({
      url: opts.url,
      method: 'POST',
      connections: opts.connections,
      pipelining: 1,
      // `amount` would override the duration; this bounds the count and keeps the duration.
      duration: durationMs / 1000,
      maxOverallRequests: amount,
      headers: { authorization: `Bearer ${opts.token}`, 'content-type': 'application/octet-stream' },
      body: opts.body,
      requests: [{ setupRequest: (req) => ({ ...req, body: nextBody(opts.body, ++counter) }) }],
      timeout: 10,
    }, (err, result) => (err ? reject(err) : resolve(result)))
  })
}

export async function runHttpLoad(opts: HttpRunOptions, bob: HttpReceiver): Promise<HttpRunResult> {
  if (opts.warmupMs > 0) await cannon(opts, opts.warmupMs, opts.maxRequests)
  const servedBefore = bob.served()
  opts.onMeasureStart?.()
  const started = process.hrtime.bigint()
  const result = await cannon(opts, opts.durationMs, opts.maxRequests)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  opts.onMeasureEnd?.()
  const served = bob.served() - servedBefore
  const answered = result['2xx']
  if (answered === 0) throw new Error(`no request answered (errors ${result.errors}, non-2xx ${result.non2xx})`)
  // A 200 may carry a Reject; bob counts what was really forwarded and fulfilled.
  if (served < answered) throw new Error(`${answered - served} of ${answered} requests were not forwarded to bob (rejected?)`)
  return {
    connections: opts.connections,
    requests: answered,
    seconds,
    requestsPerSecond: answered / seconds,
    latencyMs: { mean: (1000 * opts.connections * seconds) / answered, p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99 },
    non2xx: result.non2xx,
    errors: result.errors,
  }
}

export interface GetRunResult {
  connections: number
  requests: number
  requestsPerSecond: number
  latencyMs: { mean: number; p99: number }
  non2xx: number
}

/**
 * autocannon GETs `url` with `headers` (an SPSP endpoint, a shop route); every answer must be a
 * 2xx, so a run that starts answering 402 (a token run dry) fails instead of looking fast.
 */
export async function runGetLoad(url: string, headers: Record<string, string>, connections: number, durationMs: number, maxRequests: number): Promise<GetRunResult> {
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    autocannon({
      url, method: 'GET', connections, pipelining: 1, duration: durationMs / 1000, maxOverallRequests: maxRequests, headers, timeout: 10,
    }, (err, r) => (err ? reject(err) : resolve(r)))
  })
  const answered = result['2xx']
  if (answered === 0 || result.non2xx > 0) throw new Error(`GET ${url}: ${answered} answered, ${result.non2xx} non-2xx, ${result.errors} errors`)
  const seconds = result.duration
  return {
    connections,
    requests: answered,
    requestsPerSecond: answered / seconds,
    latencyMs: { mean: (1000 * connections * seconds) / answered, p99: result.latency.p99 },
    non2xx: result.non2xx,
  }
}
