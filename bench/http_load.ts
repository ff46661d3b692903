// HTTP load: our generator (generator/, in processes of its own) POSTs one pre-encoded Prepare
// (ILP over HTTP, RFC 35) again and again to a server, which forwards each to bob; bob is an HTTP
// server in this process that fulfills every prepare with the same fulfillment and counts them.
// The same generator GETs SPSP and shop routes. Every run is bounded by a duration and a request
// count.

import { createHash } from 'node:crypto'
import { encodeFulfill, encodePrepare } from '../src/codec/ilp_packet'
import { loadUws } from '../src/io/uws'
import { runLoad } from './generator/load'

export interface HttpRunResult {
  connections: number
  requests: number
  seconds: number
  requestsPerSecond: number
  /**
   * Latency in ms: the mean from Little's law (connections ÷ requests/s, exact for a closed loop),
   * the percentiles from the generator's histogram (within 1 %).
   */
  latencyMs: { mean: number; p50: number; p90: number; p99: number }
  /** The generator's processes, all their threads, per request. */
  generatorCpuUsPerRequest: number
  generatorBusiestThreadPercent: number
  /** A generator thread was busy enough that it, not the server, may have set the pace. */
  generatorLimited: boolean
}

export interface HttpRunOptions {
  url: string
  token: string
  connections: number
  durationMs: number
  maxRequests: number
  warmupMs: number
  body: Buffer
  /** Generator processes to share the connections out over (default 1). */
  generatorProcs?: number
  /** Sampled when measurement starts and ends (the server's CPU over the same span). */
  onMeasureStart?: () => void
  onMeasureEnd?: () => void
}

const FULFILLMENT = Buffer.alloc(32, 7)
const CONDITION = createHash('sha256').update(FULFILLMENT).digest()

/**
 * The prepare a request carries: fixed condition, an expiry far enough out for any run, and an
 * 8-byte tag as data, which the generator sets afresh for each request, because ilp-connector
 * answers identical prepares from a cache (its deduplicate middleware) without forwarding them.
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

/**
 * One bounded run of our generator (generator/load.ts) over ILP over HTTP: `connections`
 * keep-alive connections, one request outstanding each. Fails unless every answer was a Fulfill
 * and bob saw at least as many requests, so a server that rejects cannot pass for a fast one.
 */
export async function runHttpLoad(opts: HttpRunOptions, bob: HttpReceiver): Promise<HttpRunResult> {
  const url = new URL(opts.url)
  const servedBefore = bob.served()
  const r = await runLoad({
    port: Number(url.port), destination: '', window: opts.connections, durationMs: opts.durationMs, maxPackets: opts.maxRequests,
    warmupMs: opts.warmupMs, procs: opts.generatorProcs ?? 1, prepare: opts.body,
    http: {
      method: 'POST', path: url.pathname, connections: opts.connections,
      headers: { Authorization: `Bearer ${opts.token}`, 'Content-Type': 'application/octet-stream', Accept: 'application/octet-stream' },
    },
    onMeasureStart: opts.onMeasureStart, onMeasureEnd: opts.onMeasureEnd,
  })
  if (r.packets === 0) throw new Error('no request answered')
  if (r.rejected > 0) throw new Error(`${r.rejected} of ${r.packets} requests were not fulfilled`)
  // The warm-up's requests reached bob too: he must have seen at least the measured ones.
  const served = bob.served() - servedBefore
  if (served < r.fulfilled) throw new Error(`${r.fulfilled - served} of ${r.fulfilled} fulfilled requests never reached bob`)
  return {
    connections: opts.connections,
    requests: r.packets,
    seconds: r.seconds,
    requestsPerSecond: r.packetsPerSecond,
    latencyMs: { mean: (1000 * opts.connections * r.seconds) / r.packets, p50: r.p50Us / 1000, p90: r.p90Us / 1000, p99: r.p99Us / 1000 },
    generatorCpuUsPerRequest: r.generatorCpuUsPerPacket,
    generatorBusiestThreadPercent: r.generatorBusiestThreadPercent,
    generatorLimited: r.generatorLimited,
  }
}

export interface GetRunResult {
  connections: number
  requests: number
  requestsPerSecond: number
  /** The mean from Little's law, the p99 from the generator's histogram (within 1 %). */
  latencyMs: { mean: number; p99: number }
  generatorCpuUsPerRequest: number
}

/**
 * Our generator GETs `url` with `headers` (an SPSP endpoint, a shop route) on `connections`
 * keep-alive connections; every answer must be a 2xx, so a run that starts answering 402 (a token
 * run dry) fails instead of looking fast. `onMeasureStart`/`onMeasureEnd` sample the server's CPU
 * over the measured span.
 */
export async function runGetLoad(url: string, headers: Record<string, string>, connections: number, durationMs: number, maxRequests: number,
  hooks: { onMeasureStart?: () => void; onMeasureEnd?: () => void } = {}): Promise<GetRunResult> {
  const { port, pathname } = new URL(url)
  const r = await runLoad({
    port: Number(port), destination: '', window: connections, durationMs, maxPackets: maxRequests, warmupMs: 0,
    http: { method: 'GET', path: pathname, headers, connections }, ...hooks,
  })
  if (r.packets === 0 || r.rejected > 0) throw new Error(`GET ${url}: ${r.packets} answered, ${r.rejected} of them not 2xx`)
  return {
    connections,
    requests: r.packets,
    requestsPerSecond: r.packetsPerSecond,
    latencyMs: { mean: (1000 * connections * r.seconds) / r.packets, p99: r.p99Us / 1000 },
    generatorCpuUsPerRequest: r.generatorCpuUsPerPacket,
  }
}
