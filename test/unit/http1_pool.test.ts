// Goal: the node's outgoing HTTP/1.1 client (src/io/http/http1_pool.ts, http1_connection.ts,
// http1_response_parser.ts) answers every request exactly once, with the answer that is its own,
// against the servers ILP peers run and against peers that misbehave.
// Method: real servers on loopback: uWebSockets.js (the node's own server, which cannot take
// pipelining), node:http, and ilp-plugin-http@1.6.1's server; plus raw TCP servers that close
// between and during requests, answer slowly, never, in chunks, or byte by byte. Each request is
// a TestRequest that records its outcome and fails the test if it gets a second one.

import assert from 'node:assert/strict'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net'
import { after, describe, it } from 'node:test'
import PluginHttp from 'ilp-plugin-http'
import { Http1Pool, type Http1PoolOptions } from '../../src/io/http/http1_pool'
import { REQUEST_TIMEOUT, type Http1Request } from '../../src/io/http/http1_connection'
import { Http1ResponseParser, type Http1Response } from '../../src/io/http/http1_response_parser'
import { loadUws } from '../../src/io/uws'
import { freePort, sleep } from '../support/helpers'

type Outcome = { status: number; body: string } | { failed: string; headRead: boolean }

class TestRequest implements Http1Request {
  readonly bytes: Buffer
  readonly outcome: Promise<Outcome>
  private settle!: (o: Outcome) => void
  private settled = false

  constructor(body: string, readonly deadlineMs = Date.now() + 10_000, path = '/') {
    this.bytes = Buffer.from(`POST ${path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer t\r\nContent-Type: application/octet-stream\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
    this.outcome = new Promise((resolve) => { this.settle = resolve })
  }

  answered(status: number, body: Uint8Array): void {
    assert.equal(this.settled, false, 'a request was answered twice')
    this.settled = true
    this.settle({ status, body: Buffer.from(body).toString() })
  }

  failed(code: string, headRead: boolean): void {
    assert.equal(this.settled, false, 'a request was answered twice')
    this.settled = true
    this.settle({ failed: code, headRead })
  }
}

function pool(port: number, o: Partial<Http1PoolOptions> = {}): Http1Pool {
  return new Http1Pool({ host: '127.0.0.1', port, connectionsMax: 4, pipelining: 1, queuedMax: 1000, bodyBytesMax: 40960, idleMs: 4000, connectTimeoutMs: 10_000, ...o })
}

/** Queues the requests and dispatches them, as the client does at the end of a drain. */
async function send(p: Http1Pool, ...requests: TestRequest[]): Promise<Outcome[]> {
  for (const r of requests) assert.ok(p.send(r))
  p.dispatch()
  return Promise.all(requests.map((r) => r.outcome))
}

const closers: (() => unknown)[] = []
after(async () => { for (const close of closers.splice(0)) await close() })

/** A uWebSockets.js server answering `reply:<body>` after `delayMs(body)`, counting connections by remote port. */
async function uwsServer(delayMs: (body: string) => number = () => 0): Promise<{ port: number; aborted: () => number }> {
  const uws = loadUws()
  let aborted = 0
  const app = uws.App().post('/*', (res) => {
    let gone = false
    res.onAborted(() => { gone = true; aborted++ })
    const parts: Buffer[] = []
    res.onData((chunk, isLast) => {
      parts.push(Buffer.from(new Uint8Array(chunk)))
      if (!isLast) return
      const body = Buffer.concat(parts).toString()
      const answer = () => { if (!gone) res.cork(() => { res.writeStatus(body.startsWith('fail') ? '503 Service Unavailable' : '200 OK').end(`reply:${body}`) }) }
      const delay = delayMs(body)
      if (delay === 0) answer()
      else setTimeout(answer, delay)
    })
  })
  const socket = await new Promise<unknown>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s === false ? reject(new Error('listen')) : resolve(s))))
  closers.push(() => uws.us_listen_socket_close(socket as never))
  return { port: uws.us_socket_local_port(socket as never), aborted: () => aborted }
}

/** A node:http server answering `reply:<body>` after `delayMs(body)`; counts its connections. */
async function nodeHttpServer(delayMs: (body: string) => number = () => 0): Promise<{ port: number; connections: () => number; server: HttpServer }> {
  let connections = 0
  const server = createHttpServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (c: Buffer) => parts.push(c))
    req.on('end', () => {
      const body = Buffer.concat(parts).toString()
      setTimeout(() => {
        res.statusCode = body.startsWith('fail') ? 500 : 200
        res.end(`reply:${body}`)
      }, delayMs(body))
    })
  })
  server.on('connection', () => connections++)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closers.push(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve) }))
  return { port: (server.address() as AddressInfo).port, connections: () => connections, server }
}

/** A raw TCP server: `onRequest` gets each socket and the text of each request's head. */
async function tcpServer(onRequest: (socket: Socket, head: string, body: string) => void): Promise<{ port: number; connections: () => number; server: TcpServer }> {
  let connections = 0
  const server = createTcpServer((socket) => {
    connections++
    let buffered = ''
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1')
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = buffered.slice(0, end)
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0)
        if (buffered.length < end + 4 + length) return
        const body = buffered.slice(end + 4, end + 4 + length)
        buffered = buffered.slice(end + 4 + length)
        onRequest(socket, head, body)
      }
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closers.push(() => new Promise((resolve) => server.close(resolve)))
  return { port: (server.address() as AddressInfo).port, connections: () => connections, server }
}

const ok = (socket: Socket, body: string, extra = '') => socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`)

describe('HTTP/1.1 client: the servers ILP peers run', () => {
  for (const [name, start] of [['uWebSockets.js', uwsServer], ['node:http', nodeHttpServer]] as const) {
    it(`${name}: 50 sequential requests over one keep-alive connection, each with its own answer`, async () => {
      const server = await start()
      const p = pool(server.port)
      for (let i = 0; i < 50; i++) assert.deepEqual(await send(p, new TestRequest(`n${i}`)), [{ status: 200, body: `reply:n${i}` }])
      assert.equal(p.size, 1)
      if ('connections' in server) assert.equal(server.connections(), 1)
      await p.close()
    })
  }

  it('ilp-plugin-http: sequential prepares over one connection, the plugin\'s answer each time', async () => {
    const port = await freePort()
    const plugin = new PluginHttp({ incoming: { port, staticToken: 't' }, outgoing: { url: 'http://127.0.0.1:9/unused', staticToken: 'x' } })
    let seen = 0
    plugin.registerDataHandler(async (data: Buffer) => { seen++; return Buffer.concat([Buffer.from('answer:'), data]) })
    await plugin.connect()
    closers.push(() => plugin.disconnect())
    const p = pool(port)
    for (let i = 0; i < 20; i++) assert.deepEqual(await send(p, new TestRequest(`prepare${i}`)), [{ status: 200, body: `answer:prepare${i}` }])
    assert.equal(seen, 20)
    assert.equal(p.size, 1)
    await p.close()
  })

  it('uWebSockets.js: 200 at once without pipelining: each answered once with its own body, none aborted, within connectionsMax', async () => {
    const server = await uwsServer((b) => Number(b.slice(1)) % 3)
    const p = pool(server.port, { connectionsMax: 8 })
    const requests = Array.from({ length: 200 }, (_, i) => new TestRequest(`n${i}`))
    const outcomes = await send(p, ...requests)
    outcomes.forEach((o, i) => assert.deepEqual(o, { status: 200, body: `reply:n${i}` }))
    assert.equal(server.aborted(), 0)
    assert.ok(p.size <= 8)
    await p.close()
  })

  it('why pipelining is off by default: uWebSockets.js (the node\'s own server) aborts pipelined requests it answers later, and each fails once', async () => {
    const server = await uwsServer(() => 5)
    const p = pool(server.port, { connectionsMax: 1, pipelining: 4 })
    const outcomes = await send(p, ...['a', 'b', 'c', 'd'].map((b) => new TestRequest(b)))
    assert.ok(server.aborted() > 0)
    assert.ok(outcomes.some((o) => 'failed' in o), JSON.stringify(outcomes))
    await p.close()
  })

  it('node:http with pipelining: 200 at once on 2 connections, answers matched to requests in order', async () => {
    // Later requests answer sooner: node:http still answers in order, and so must the client.
    const server = await nodeHttpServer((b) => 20 - (Number(b.slice(1)) % 20))
    const p = pool(server.port, { connectionsMax: 2, pipelining: 16 })
    const requests = Array.from({ length: 200 }, (_, i) => new TestRequest(`n${i}`))
    const outcomes = await send(p, ...requests)
    outcomes.forEach((o, i) => assert.deepEqual(o, { status: 200, body: `reply:n${i}` }))
    assert.equal(server.connections(), 2)
    await p.close()
  })

  it('a 5xx answer is an answer: its status and body reach the caller', async () => {
    const server = await uwsServer()
    const p = pool(server.port)
    assert.deepEqual(await send(p, new TestRequest('fail-please')), [{ status: 503, body: 'reply:fail-please' }])
    await p.close()
  })
})

describe('HTTP/1.1 client: peers that misbehave', () => {
  it('a peer that closes between requests (Connection: close, or silently): the next request goes on a new connection', async () => {
    let n = 0
    const server = await tcpServer((socket, _head, body) => {
      n++
      if (n === 1) return void ok(socket, `a:${body}`, 'Connection: close\r\n')
      ok(socket, `b:${body}`)
      // The third answer is followed by a silent close.
      if (n === 3) socket.end()
    })
    const p = pool(server.port)
    assert.deepEqual(await send(p, new TestRequest('1')), [{ status: 200, body: 'a:1' }])
    assert.deepEqual(await send(p, new TestRequest('2')), [{ status: 200, body: 'b:2' }])
    assert.deepEqual(await send(p, new TestRequest('3')), [{ status: 200, body: 'b:3' }])
    await sleep(50)
    assert.deepEqual(await send(p, new TestRequest('4')), [{ status: 200, body: 'b:4' }])
    assert.equal(server.connections(), 3)
    await p.close()
  })

  it('a peer that closes during a request: that request fails once, the others are answered', async () => {
    const server = await tcpServer((socket, _head, body) => {
      if (body === 'die') return void socket.destroy()
      setTimeout(() => ok(socket, `ok:${body}`), 20)
    })
    const p = pool(server.port)
    const outcomes = await send(p, new TestRequest('a'), new TestRequest('die'), new TestRequest('b'))
    assert.deepEqual(outcomes[0], { status: 200, body: 'ok:a' })
    assert.ok('failed' in outcomes[1] && outcomes[1].headRead === false, JSON.stringify(outcomes[1]))
    assert.deepEqual(outcomes[2], { status: 200, body: 'ok:b' })
    await p.close()
  })

  it('a peer that dies with pipelined requests outstanding fails every one of them exactly once', async () => {
    let seen = 0
    const server = await tcpServer((socket, _head, body) => {
      // Answers the first two, then closes with three more outstanding, the next half-answered.
      if (++seen <= 2) return void ok(socket, `ok:${body}`)
      if (seen === 5) {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial')
        setTimeout(() => socket.destroy(), 20)
      }
    })
    const p = pool(server.port, { connectionsMax: 1, pipelining: 8 })
    const outcomes = await send(p, ...['1', '2', '3', '4', '5'].map((b) => new TestRequest(b)))
    assert.deepEqual(outcomes.slice(0, 2), [{ status: 200, body: 'ok:1' }, { status: 200, body: 'ok:2' }])
    // The third's head came (a reachable peer); its body never completed.
    assert.deepEqual(outcomes.slice(2).map((o) => 'failed' in o && o.headRead), [true, false, false])
    await p.close()
  })

  it('a slow peer holds only the connection it answers on: other requests go on other connections', async () => {
    const server = await uwsServer((b) => (b === 'slow' ? 400 : 1))
    const p = pool(server.port, { connectionsMax: 4 })
    const slow = new TestRequest('slow')
    void send(p, slow)
    await sleep(20)
    const started = Date.now()
    assert.deepEqual(await send(p, new TestRequest('quick1'), new TestRequest('quick2')), [{ status: 200, body: 'reply:quick1' }, { status: 200, body: 'reply:quick2' }])
    assert.ok(Date.now() - started < 300, 'the quick requests waited for the slow one')
    assert.deepEqual(await slow.outcome, { status: 200, body: 'reply:slow' })
    await p.close()
  })

  it('a peer that never answers: the request fails at its deadline, its connection closes, the next gets a new one', async () => {
    let n = 0
    const server = await tcpServer((socket, _head, body) => { if (++n > 1) ok(socket, `ok:${body}`) })
    const p = pool(server.port)
    const silent = new TestRequest('silent', Date.now() + 100)
    assert.ok(p.send(silent))
    p.dispatch()
    await sleep(150)
    p.sweep(Date.now())
    assert.deepEqual(await silent.outcome, { failed: REQUEST_TIMEOUT, headRead: false })
    assert.deepEqual(await send(p, new TestRequest('next')), [{ status: 200, body: 'ok:next' }])
    assert.equal(server.connections(), 2)
    await p.close()
  })

  it('a request that waits past its deadline for a connection fails without being sent', async () => {
    const server = await tcpServer(() => {})
    const p = pool(server.port, { connectionsMax: 1 })
    const first = new TestRequest('first', Date.now() + 60_000)
    const waiting = new TestRequest('waiting', Date.now() + 50)
    assert.ok(p.send(first) && p.send(waiting))
    p.dispatch()
    await sleep(100)
    p.sweep(Date.now())
    assert.deepEqual(await waiting.outcome, { failed: REQUEST_TIMEOUT, headRead: false })
    assert.equal(p.queued, 0)
    await p.close()
    assert.ok('failed' in (await first.outcome))
  })

  it('nothing listening: queued requests fail ECONNREFUSED once; queuedMax bounds what waits', async () => {
    const p = pool(await freePort(), { queuedMax: 2 })
    const a = new TestRequest('a')
    const b = new TestRequest('b')
    assert.ok(p.send(a) && p.send(b))
    assert.equal(p.send(new TestRequest('c')), false)
    p.dispatch()
    assert.deepEqual(await Promise.all([a.outcome, b.outcome]), [{ failed: 'ECONNREFUSED', headRead: false }, { failed: 'ECONNREFUSED', headRead: false }])
    await p.close()
  })

  it('a connection not made by connectTimeoutMs is given up: what waits for it fails ETIMEDOUT once', async () => {
    const server = await tcpServer((socket, _head, body) => ok(socket, body))
    const p = pool(server.port, { connectTimeoutMs: 0 })
    const waiting = new TestRequest('w')
    assert.ok(p.send(waiting))
    p.dispatch()
    // Connecting is asynchronous: at this sweep the connection cannot have been made yet.
    p.sweep(Date.now())
    assert.deepEqual(await waiting.outcome, { failed: 'ETIMEDOUT', headRead: false })
    await p.close()
  })

  it('chunked bodies, interim 100 answers and answers written byte by byte are read whole', async () => {
    const server = await tcpServer((socket, _head, body) => {
      const text = body === 'chunked'
        ? 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n'
        : `HTTP/1.1 200 OK\r\nContent-Length: ${body.length + 3}\r\nKeep-Alive: timeout=5\r\n\r\nok:${body}`
      const bytes = Buffer.from(text, 'latin1')
      let i = 0
      const drip = () => { if (i < bytes.length) { socket.write(bytes.subarray(i, ++i)); setImmediate(drip) } }
      drip()
    })
    const p = pool(server.port)
    assert.deepEqual(await send(p, new TestRequest('chunked')), [{ status: 200, body: 'abcdefg' }])
    assert.deepEqual(await send(p, new TestRequest('dripped')), [{ status: 200, body: 'ok:dripped' }])
    assert.equal(server.connections(), 1)
    await p.close()
  })

  it('a malformed answer or one over bodyBytesMax fails its request and closes the connection', async () => {
    const server = await tcpServer((socket, _head, body) => {
      socket.write(body === 'big' ? 'HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\n' : 'HTTP/1.1 2xx what\r\n\r\n')
    })
    const p = pool(server.port)
    assert.deepEqual(await send(p, new TestRequest('big')), [{ failed: 'HTTP_PROTOCOL_ERROR', headRead: false }])
    assert.deepEqual(await send(p, new TestRequest('garbage')), [{ failed: 'HTTP_PROTOCOL_ERROR', headRead: false }])
    assert.equal(server.connections(), 2)
    await p.close()
  })
})

describe('HTTP/1.1 response parser', () => {
  it('reads pipelined responses from any split of the bytes, in order', () => {
    const wire = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabHTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n' +
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n', 'latin1')
    for (let split = 1; split < wire.length; split++) {
      const got: string[] = []
      const parser = new Http1ResponseParser(1024)
      const collect = (r: Http1Response) => got.push(`${r.status}:${Buffer.from(r.body).toString()}:${r.closes}`)
      parser.feed(wire.subarray(0, split), collect)
      parser.feed(wire.subarray(split), collect)
      assert.deepEqual(got, ['200:ab:false', '503::false', '200:x:false', '204::true'], `split at ${split}`)
      assert.equal(parser.midResponse, false)
    }
  })

  it('refuses conflicting lengths, bad chunk sizes and unknown transfer codings', () => {
    for (const head of ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'HTTP/2 200\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n']) {
      assert.throws(() => new Http1ResponseParser(1024).feed(Buffer.from(head, 'latin1'), () => {}), { code: 'HTTP_PROTOCOL_ERROR' }, head)
    }
  })
})
