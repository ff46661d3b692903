// The node's outgoing HTTP/1.1 client (src/io/http/http1_pool.ts) against undici's Pool, as the
// node used it before: the same RFC 35 POSTs (a 60-byte prepare, the headers the node sends) to the
// same server in a child process, `concurrency` requests kept outstanding, runs alternating. Each
// row gives requests/s and this process's CPU per request (process.cpuUsage: the client side only,
// the server's CPU is the child's). Servers: bob as the HTTP section runs him (uWebSockets.js,
// which cannot take pipelining), and node:http (which can: the rows with pipelining use it).
//
//   npm run build && node dist/bench/http_client.js [seconds per run, default 2] [concurrency, default 100]
//
// benchHttpClients() is what the micro section can call.

import { spawn, type ChildProcess } from 'node:child_process'
import { Pool } from 'undici'
import { Http1Pool } from '../src/io/http/http1_pool'
import type { Http1Request } from '../src/io/http/http1_connection'
import { benchPrepare } from './http_load'

export interface HttpClientRow {
  client: 'node' | 'undici'
  server: 'uWebSockets.js' | 'node:http'
  pipelining: number
  requestsPerSecond: number
  cpuUsPerRequest: number
}

export interface HttpClientOptions {
  secondsPerRun: number
  concurrency: number
  /** Runs of each client on each setting, alternating (the first of each pair is a warm-up when 2+). */
  rounds: number
}

const CONNECTIONS = 32

/** Starts a server in a child process; resolves with its port once it listens. */
function startServer(kind: HttpClientRow['server']): Promise<{ port: number; child: ChildProcess }> {
  const script = kind === 'uWebSockets.js'
    ? `require(${JSON.stringify(`${__dirname}/http_load.js`)}).startHttpReceiver('bob-token').then((b) => console.log('port=' + b.port))`
    : `const s = require('node:http').createServer((q, r) => { q.on('data', () => {}); q.on('end', () => r.end(Buffer.alloc(40, 1))) });
       s.keepAliveTimeout = 60000; s.listen(0, '127.0.0.1', () => console.log('port=' + s.address().port))`
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /port=(\d+)/.exec(out)
      if (m) resolve({ port: Number(m[1]), child })
    })
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)))
  })
}

/** Keeps `concurrency` requests outstanding through `send` for `seconds`; returns requests done. */
function closedLoop(send: (done: () => void) => void, concurrency: number, seconds: number): Promise<number> {
  return new Promise((resolve) => {
    let done = 0
    let open = 0
    let stopped = false
    setTimeout(() => { stopped = true }, seconds * 1000)
    const next = (): void => {
      done++
      open--
      if (!stopped) return start()
      if (open === 0) resolve(done)
    }
    const start = (): void => {
      open++
      send(next)
    }
    for (let i = 0; i < concurrency; i++) start()
  })
}

class BenchRequest implements Http1Request {
  readonly deadlineMs = Date.now() + 60_000
  constructor(readonly bytes: Buffer, private readonly done: () => void) {}
  answered(status: number): void {
    if (status !== 200) throw new Error(`status ${status}`)
    this.done()
  }

  failed(code: string): void {
    throw new Error(`request failed: ${code}`)
  }
}

async function runNode(port: number, pipelining: number, o: HttpClientOptions): Promise<number> {
  const pool = new Http1Pool({ host: '127.0.0.1', port, connectionsMax: CONNECTIONS, pipelining, queuedMax: 1 << 20, bodyBytesMax: 40960, idleMs: 60_000, connectTimeoutMs: 10_000 })
  const body = benchPrepare('test.bench.bob')
  const head = Buffer.from(`POST / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer bob-token\r\nContent-Type: application/octet-stream\r\n` +
    `Accept: application/octet-stream\r\nILP-Peer-Name: test.bench\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1')
  // As the node: a request is sent in a later turn than the answer that freed its place (the shard's drain).
  let scheduled = false
  const dispatch = () => { scheduled = false; pool.dispatch() }
  const done = await closedLoop((next) => {
    pool.send(new BenchRequest(Buffer.concat([head, body]), next))
    if (!scheduled) { scheduled = true; setImmediate(dispatch) }
  }, o.concurrency, o.secondsPerRun)
  await pool.close()
  return done
}

async function runUndici(port: number, pipelining: number, o: HttpClientOptions): Promise<number> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS, pipelining, keepAliveTimeout: 60_000 })
  const body = benchPrepare('test.bench.bob')
  const headers = { authorization: 'Bearer bob-token', 'content-type': 'application/octet-stream', accept: 'application/octet-stream', 'ilp-peer-name': 'test.bench' }
  const done = await closedLoop((next) => {
    void pool.request({ path: '/', method: 'POST', headers, body: Buffer.from(body) }).then(async ({ statusCode, body: response }) => {
      if (statusCode !== 200) throw new Error(`status ${statusCode}`)
      await response.arrayBuffer()
      next()
    })
  }, o.concurrency, o.secondsPerRun)
  await pool.close()
  return done
}

async function measure(client: HttpClientRow['client'], server: HttpClientRow['server'], port: number, pipelining: number, o: HttpClientOptions): Promise<HttpClientRow> {
  const cpu = process.cpuUsage()
  const started = process.hrtime.bigint()
  const done = await (client === 'node' ? runNode : runUndici)(port, pipelining, o)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const used = process.cpuUsage(cpu)
  return { client, server, pipelining, requestsPerSecond: done / seconds, cpuUsPerRequest: (used.user + used.system) / done }
}

/** Both clients on each setting, alternating, `rounds` times; every run's row. */
export async function benchHttpClients(o: HttpClientOptions): Promise<HttpClientRow[]> {
  const rows: HttpClientRow[] = []
  const settings: [HttpClientRow['server'], number][] = [['uWebSockets.js', 1], ['node:http', 1], ['node:http', 8]]
  for (const [server, pipelining] of settings) {
    const { port, child } = await startServer(server)
    try {
      for (let round = 0; round < o.rounds; round++) {
        for (const client of round % 2 === 0 ? ['node', 'undici'] as const : ['undici', 'node'] as const) {
          rows.push(await measure(client, server, port, pipelining, o))
        }
      }
    } finally {
      child.kill()
    }
  }
  return rows
}

async function main(): Promise<void> {
  const [seconds = 2, concurrency = 100] = process.argv.slice(2).map(Number)
  const rows = await benchHttpClients({ secondsPerRun: seconds, concurrency, rounds: 4 })
  console.log(`client   server           pipelining  requests/s  client CPU µs/request   (concurrency ${concurrency}, ${CONNECTIONS} connections, ${seconds} s a run)`)
  for (const r of rows) {
    console.log(`${r.client.padEnd(8)} ${r.server.padEnd(16)} ${String(r.pipelining).padStart(10)}  ${Math.round(r.requestsPerSecond).toLocaleString('en-US').padStart(10)}  ${r.cpuUsPerRequest.toFixed(1).padStart(21)}`)
  }
}

if (require.main === module) void main()
