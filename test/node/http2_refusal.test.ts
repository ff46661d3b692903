// Goal: an HTTP/2 client with prior knowledge (RFC 7540 section 3.4) is refused at once, on the
// node's port and on the admin port, with the server preface and a GOAWAY HTTP_1_1_REQUIRED
// (section 7), and the connection closed; uWebSockets.js alone says nothing until its 10 s idle
// timeout. HTTP/1.1 and BTP on the same port are unaffected, a request body in a read of its own
// included. With IO_THREADS=2 each I/O thread installs the refusal on its own app: several
// connections, spread over the threads by the kernel, are each refused.

import assert from 'node:assert/strict'
import { connect as connectHttp2, constants as http2 } from 'node:http2'
import { connect as connectTcp } from 'node:net'
import { before, describe, it } from 'node:test'
import {
  ADMIN_TOKEN, asFulfill, fulfillmentPair, IlpPacket, layoutName, NODE_ADDRESS, prepare, sleep, testConfigJson, withNode,
} from '../support/helpers'

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
/** Well under uWebSockets.js's 10 s idle timeout, and generous for a loaded machine. */
const PROMPT_MS = 2000

function config(): Record<string, unknown> {
  const json = testConfigJson()
  const accounts = json.accounts as Record<string, unknown>
  accounts.carol = { relation: 'child', assetCode: 'USD', assetScale: 9, http: { incomingToken: 'carol-token' } }
  return { ...json, adminToken: ADMIN_TOKEN, adminHost: '127.0.0.1', adminPort: 0 }
}

interface Refusal {
  ms: number
  goaway: { code: number; lastStreamId: number; debug: string } | null
  errors: string[]
}

/** One node:http2 session with one request: what it heard, and how long until the session closed. */
function http2Request(port: number): Promise<Refusal> {
  const started = performance.now()
  return new Promise((resolve) => {
    const result: Refusal = { ms: 0, goaway: null, errors: [] }
    const session = connectHttp2(`http://127.0.0.1:${port}`)
    session.on('goaway', (code, lastStreamId, data) => { result.goaway = { code, lastStreamId, debug: data?.toString() ?? '' } })
    session.on('error', (err) => result.errors.push(err.message))
    session.on('close', () => resolve({ ...result, ms: performance.now() - started }))
    const request = session.request({ ':path': '/health' })
    request.on('error', (err) => result.errors.push(err.message))
    request.end()
  })
}

/** Writes `chunks` to a fresh connection, `gapMs` apart; resolves with all it read and when the server closed. */
function rawExchange(port: number, chunks: Buffer[], gapMs = 0): Promise<{ bytes: Buffer; ms: number }> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const got: Buffer[] = []
    const socket = connectTcp(port, '127.0.0.1', async () => {
      for (const [i, chunk] of chunks.entries()) {
        if (i > 0) await sleep(gapMs)
        socket.write(chunk)
      }
    })
    const timer = setTimeout(() => socket.destroy(new Error('no close within 5 s')), 5000)
    socket.on('data', (data) => got.push(data))
    socket.on('error', reject)
    socket.on('close', () => {
      clearTimeout(timer)
      resolve({ bytes: Buffer.concat(got), ms: performance.now() - started })
    })
  })
}

/** The frames in `bytes` (RFC 7540 section 4.1). */
function frames(bytes: Buffer): Array<{ type: number; flags: number; stream: number; payload: Buffer }> {
  const out = []
  for (let at = 0; at < bytes.length;) {
    assert.ok(at + 9 <= bytes.length, 'a frame header cut short')
    const length = bytes.readUIntBE(at, 3)
    out.push({ type: bytes[at + 3], flags: bytes[at + 4], stream: bytes.readUInt32BE(at + 5) & 0x7fffffff, payload: bytes.subarray(at + 9, at + 9 + length) })
    at += 9 + length
  }
  return out
}

function assertRefused(refusal: Refusal): void {
  assert.ok(refusal.ms < PROMPT_MS, `refused after ${Math.round(refusal.ms)} ms`)
  assert.deepEqual(refusal.goaway && { code: refusal.goaway.code, lastStreamId: refusal.goaway.lastStreamId }, { code: http2.NGHTTP2_HTTP_1_1_REQUIRED, lastStreamId: 0 })
  assert.match(refusal.goaway!.debug, /HTTP\/1\.1/)
  assert.ok(refusal.errors.some((message) => message.includes('error code 13')), refusal.errors.join('; '))
}

/** An HTTP/1.1 response's status and body (the connection asked to close after it). */
function parseResponse(bytes: Buffer): { status: number; body: Buffer } {
  const end = bytes.indexOf('\r\n\r\n')
  assert.ok(end > 0, `no HTTP/1.1 response: ${JSON.stringify(bytes.toString('latin1'))}`)
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(bytes.subarray(0, end).toString('latin1'))?.[1]), body: bytes.subarray(end + 4) }
}

describe(`HTTP/2 prior knowledge refused (${layoutName(0)})`, () => {
  const fixture = withNode(0, config(), ['alice', 'bob'])
  // bob fulfils what is sent him with the fulfillment of the test's condition.
  let fulfillment: Buffer = Buffer.alloc(32)
  before(() => fixture.clients.bob.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })))

  it('a node:http2 client gets GOAWAY HTTP_1_1_REQUIRED at once, on every I/O thread', async (t) => {
    // Sixteen connections: with IO_THREADS=2 the kernel spreads them over both threads' listeners.
    const refusals = await Promise.all(Array.from({ length: 16 }, () => http2Request(fixture.node.port)))
    for (const refusal of refusals) assertRefused(refusal)
    const slowest = Math.max(...refusals.map((r) => r.ms))
    t.diagnostic(`h2c refused: slowest of 16 after ${slowest.toFixed(1)} ms; "${refusals[0].errors[0]}"; debug "${refusals[0].goaway!.debug}"`)
  })

  it('the admin listener refuses it too', async () => {
    assertRefused(await http2Request(fixture.node.adminPort!))
  })

  it('a raw client gets an empty SETTINGS, then the GOAWAY, then the close', async () => {
    // A client's preface is followed by its own SETTINGS (section 3.5); both in one write.
    const { bytes, ms } = await rawExchange(fixture.node.port, [Buffer.concat([PREFACE, Buffer.from('000000040000000000', 'hex')])])
    assert.ok(ms < PROMPT_MS, `closed after ${Math.round(ms)} ms`)
    const [settings, goaway, ...more] = frames(bytes)
    assert.deepEqual({ ...settings, payload: settings.payload.length }, { type: 0x4, flags: 0, stream: 0, payload: 0 })
    assert.deepEqual([goaway.type, goaway.flags, goaway.stream], [0x7, 0, 0])
    assert.equal(goaway.payload.readUInt32BE(0), 0, 'last-stream-id')
    assert.equal(goaway.payload.readUInt32BE(4), 0xd, 'HTTP_1_1_REQUIRED')
    assert.match(goaway.payload.subarray(8).toString('utf8'), /HTTP\/1\.1 .*WebSocket/)
    assert.deepEqual(more, [])
  })

  it('HTTP/1.1 and BTP still work on the same port after refusals', async () => {
    const { node, clients } = fixture
    const health = await fetch(`http://127.0.0.1:${node.port}/health`)
    assert.equal(health.status, 200)
    await health.arrayBuffer()
    const pair = fulfillmentPair()
    fulfillment = pair.fulfillment
    const res = await fetch(`http://127.0.0.1:${node.port}/ilp`, {
      method: 'POST',
      headers: { Authorization: 'Bearer carol-token', 'Content-Type': 'application/octet-stream' },
      body: prepare({ destination: `${NODE_ADDRESS}.bob`, executionCondition: pair.condition }),
    })
    assert.equal(res.status, 200)
    assert.deepEqual(asFulfill(Buffer.from(await res.arrayBuffer())).fulfillment, pair.fulfillment)
    const overBtp = await clients.alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, executionCondition: pair.condition }))
    assert.deepEqual(asFulfill(overBtp).fulfillment, pair.fulfillment)
  })

  it('a POST whose body comes in a later read is answered as before', async () => {
    const pair = fulfillmentPair()
    fulfillment = pair.fulfillment
    const body = prepare({ destination: `${NODE_ADDRESS}.bob`, executionCondition: pair.condition })
    const head = Buffer.from(
      'POST /ilp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer carol-token\r\nContent-Type: application/octet-stream\r\n' +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`, 'latin1')
    // 50 ms apart: the body is a read of its own.
    const { bytes } = await rawExchange(fixture.node.port, [head, body], 50)
    const response = parseResponse(bytes)
    assert.equal(response.status, 200)
    assert.deepEqual(asFulfill(response.body).fulfillment, pair.fulfillment)
  })
})
