// The ILP-over-HTTP ceiling: a bare relay with no ILP logic. A uWebSockets.js server takes each
// POST, sends its body on to the upstream (bob) with the node's own HTTP/1.1 client
// (src/io/http/http1_pool.ts, as the node's outgoing ILP over HTTP uses it) and answers with the
// upstream's status and body. No token check, no parsing, no balances: what is left is the HTTP
// work each forwarded request costs any server. Run as a child process by the bench, in the place
// of the node (like bench/uws_relay.ts for BTP).
//
// Env: PORT (0: any free port), UPSTREAM_URL (http://host:port/path the bodies go to),
// UPSTREAM_TOKEN (sent as Authorization: Bearer <token>). Prints the node's "listening … port=" line.

import type { HttpResponse } from 'uWebSockets.js'
import { loadUws } from '../src/io/uws'
import { Http1Pool, requestBytes } from '../src/io/http/http1_pool'
import type { Http1Request } from '../src/io/http/http1_connection'

const port = Number(process.env.PORT ?? 0)
const upstream = new URL(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:9/')
const head = Buffer.from(`POST ${upstream.pathname}${upstream.search} HTTP/1.1\r\nHost: ${upstream.host}\r\n` +
  `Authorization: Bearer ${process.env.UPSTREAM_TOKEN ?? ''}\r\nContent-Type: application/octet-stream\r\nContent-Length: `, 'latin1')
/** As the node: 32 connections to the upstream, no pipelining, bodies up to 40 KiB. */
const pool = new Http1Pool({
  host: upstream.hostname.replace(/^\[(.*)\]$/, '$1'),
  port: upstream.port === '' ? 80 : Number(upstream.port),
  connectionsMax: 32,
  pipelining: 1,
  queuedMax: 8192,
  bodyBytesMax: 40960,
  idleMs: 4000,
  connectTimeoutMs: 10_000,
})
setInterval(() => pool.sweep(Date.now()), 500).unref()

class Relayed implements Http1Request {
  aborted = false
  readonly deadlineMs = Date.now() + 30_000

  constructor(readonly res: HttpResponse, readonly bytes: Buffer) {}

  answered(status: number, body: Uint8Array): void {
    if (this.aborted) return
    const res = this.res
    res.cork(() => { res.writeStatus(status === 200 ? '200 OK' : `${status} Upstream`).writeHeader('Content-Type', 'application/octet-stream').end(body) })
  }

  failed(code: string): void {
    if (this.aborted) return
    const res = this.res
    res.cork(() => { res.writeStatus('502 Bad Gateway').end(`${code}\n`) })
  }
}

function relay(res: HttpResponse, body: Buffer): void {
  const request = new Relayed(res, requestBytes(head, body))
  res.onAborted(() => { request.aborted = true })
  if (!pool.send(request)) return void res.cork(() => { res.writeStatus('503 Service Unavailable').end() })
  pool.dispatch()
}

// Exit through process.exit on SIGTERM (the bench's stop) so that --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0))

const uws = loadUws()
uws.App().post('/*', (res) => {
  const parts: Buffer[] = []
  let aborted = false
  res.onAborted(() => { aborted = true })
  res.onData((chunk, isLast) => {
    // The chunk is only valid during this callback.
    parts.push(Buffer.from(new Uint8Array(chunk)))
    if (isLast && !aborted) relay(res, parts.length === 1 ? parts[0] : Buffer.concat(parts))
  })
}).listen('127.0.0.1', port, (socket) => {
  if (socket === false) throw new Error(`cannot listen on ${port}`)
  console.log(`ilp-node listening http-relay port=${uws.us_socket_local_port(socket as never)}`)
})
