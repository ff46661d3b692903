// Shared test fixtures: a node on 127.0.0.1 with a temporary LMDB directory, real BTP clients,
// and packet helpers. Packets are built and read with the ilp-packet library, an independent
// implementation, so the tests check the node's bytes against it.

import { createHash, randomBytes } from 'node:crypto'
import { after, before } from 'node:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import assert from 'node:assert/strict'
import BtpPlugin from 'ilp-plugin-btp'
import * as IlpPacket from 'ilp-packet'
import { parseConfig } from '../../src/config/parse'
import type { Config } from '../../src/config/schema'
import { startNode, type RunningNode } from '../../src/node'

export const NODE_ADDRESS = 'test.node'

/** Defaults as on a 2-core machine, whatever machine runs the tests. */
export const MACHINE = { cores: 2, shards: 0 }

export function tempDir(prefix = 'ilp-node-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}

/** The example config, plus carl (routed, usually not connected) and a peer route. */
export function testConfigJson(): Record<string, unknown> {
  return {
    ilpAddress: NODE_ADDRESS,
    accounts: {
      alice: {
        relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'alice-token' },
        balance: { minimum: '-1000000000', maximum: '1000000000' }, maxPacketAmount: '1000000',
      },
      bob: { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'bob-token' } },
      carl: { relation: 'peer', assetCode: 'USD', assetScale: 9, btp: { token: 'carl-token' } },
    },
    routes: [
      { targetPrefix: 'test.elsewhere', peerId: 'bob' },
      { targetPrefix: 'test.carl', peerId: 'carl' },
    ],
  }
}

/**
 * The thread layout a test node runs in: the test's own shard count, unless the suite runs in a
 * given layout (`npm test` runs it once as is and once with IO_THREADS=2 SHARDS=2 set).
 */
export function testLayout(shards: number): { shards: number; ioThreads: number } {
  const env = process.env
  return {
    shards: env.SHARDS !== undefined && env.SHARDS !== '' ? Number(env.SHARDS) : shards,
    ioThreads: env.IO_THREADS !== undefined && env.IO_THREADS !== '' ? Number(env.IO_THREADS) : 1,
  }
}

/** How a suite names its layout: `SHARDS=2`, or `IO_THREADS=2 SHARDS=2` when the run sets one. */
export function layoutName(shards: number): string {
  const layout = testLayout(shards)
  return layout.ioThreads === 1 ? `SHARDS=${layout.shards}` : `IO_THREADS=${layout.ioThreads} SHARDS=${layout.shards}`
}

/** A test node's config; a suite that needs one layout whatever the run names it in `json` (ioThreads, shards). */
export function makeConfig(shards: number, dataDir: string, json: Record<string, unknown> = testConfigJson()): Config {
  return parseConfig({ port: 0, ...testLayout(shards), ...json, dataDir, logLevel: process.env.TEST_LOG_LEVEL ?? 'error' }, {}, MACHINE)
}

export async function startTestNode(shards: number, dataDir = tempDir(), json?: Record<string, unknown>): Promise<RunningNode> {
  return startNode(makeConfig(shards, dataDir, json))
}

export interface NodeFixture {
  node: RunningNode
  dir: string
  /** The connected BTP clients, by account. */
  clients: Record<string, BtpPlugin>
}

/**
 * Registers the before and after hooks of a suite that runs one node: a temporary data directory,
 * the node (in the suite's layout, see testLayout), and a BTP client for each account in
 * `clients` (its token is `<account>-token`); all disconnected, stopped and removed after. The
 * fixture's fields are set once the before hook has run. `json` as a function is called in that
 * hook, after the suite's earlier ones (a config that names a port found there).
 */
export function withNode(shards: number, json?: Record<string, unknown> | (() => Record<string, unknown>), clients: string[] = []): NodeFixture {
  const fixture = { clients: {} } as NodeFixture
  before(async () => {
    fixture.dir = tempDir()
    fixture.node = await startTestNode(shards, fixture.dir, typeof json === 'function' ? json() : json)
    // One at a time into the fixture: those connected before a failure are still disconnected after.
    for (const account of clients) fixture.clients[account] = await connectPlugin(fixture.node.port, account, `${account}-token`)
  })
  after(async () => {
    await Promise.all(Object.values(fixture.clients).map((client) => client.disconnect()))
    await fixture.node?.stop()
    if (fixture.dir !== undefined) removeDir(fixture.dir)
  })
  return fixture
}

/**
 * An ilp-plugin-btp client, connected. `responseTimeoutMs`: for a client the node will refuse
 * (its account deleted, its token changed): ilp-plugin-btp redials on its own, the node's auth
 * throttle holds its answers back, and a pending call keeps its timer (default 35 s) even after
 * disconnect, holding the test process that long.
 */
export async function connectPlugin(port: number, account: string, token: string, responseTimeoutMs?: number): Promise<BtpPlugin> {
  const plugin = new BtpPlugin({ server: `btp+ws://${account}:${token}@127.0.0.1:${port}`, responseTimeout: responseTimeoutMs } as ConstructorParameters<typeof BtpPlugin>[0])
  await plugin.connect()
  return plugin
}

/**
 * Waits until `check` holds, asking every 20 ms, or fails after `timeoutMs` with the message
 * `failure` gives then (so it can say what the state was at the end).
 */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, failure: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${failure()} (waited ${timeoutMs} ms)`)
    await sleep(20)
  }
}

/** Clients of a node by account name, each with its test token `<account>-token`, in order. */
export async function connectClients(port: number, ...accounts: string[]): Promise<BtpPlugin[]> {
  const clients: BtpPlugin[] = []
  for (const account of accounts) clients.push(await connectPlugin(port, account, `${account}-token`))
  return clients
}

/**
 * Ends what a suite started by hand, clients first: any may be missing when its start failed
 * halfway, and the directories go last.
 */
export async function stopAll(clients: (BtpPlugin | undefined)[], node: RunningNode | undefined, ...dirs: string[]): Promise<void> {
  for (const client of clients) await client?.disconnect()
  await node?.stop()
  for (const dir of dirs) removeDir(dir)
}

/**
 * Adds to a test config `id`, a peer the node sends prepares to over ILP over HTTP at `url` (no
 * route updates, so the test's prepares are its only requests), and a route to `<node>.<id>`.
 */
export function addHttpPeer(json: Record<string, unknown>, id: string, url: string, fields: Record<string, unknown> = {}, http: Record<string, unknown> = {}): void {
  ;(json.accounts as Record<string, unknown>)[id] = {
    relation: 'peer', assetCode: 'USD', assetScale: 9, sendRoutes: false, receiveRoutes: false, ...fields,
    http: { url, outgoingToken: `node-to-${id}`, ...http },
  }
  json.routes = [...((json.routes as unknown[] | undefined) ?? []), { targetPrefix: `${NODE_ADDRESS}.${id}`, peerId: id }]
}

/** Closes a test's HTTP server and the connections the node keeps open to it. */
export function closeServer(server: import('node:http').Server | null | undefined): void {
  server?.closeAllConnections()
  server?.close()
}

/** A client whose auth the node refuses: connect() fails; the client is closed after. */
export async function assertAuthRefused(port: number, account: string, token: string): Promise<void> {
  const plugin = new BtpPlugin({ server: `btp+ws://${account}:${token}@127.0.0.1:${port}`, responseTimeout: 2000 } as ConstructorParameters<typeof BtpPlugin>[0])
  try {
    await assert.rejects(plugin.connect())
  } finally {
    await plugin.disconnect().catch(() => undefined)
  }
}

/** The admin token of the test configs that turn the admin API on. */
export const ADMIN_TOKEN = 'an-admin-token-for-the-tests'

/**
 * One admin API request: the status and the JSON answer ({ text } for a non-JSON one). `token`
 * null sends no Authorization header; a string `body` goes as is, anything else as JSON.
 */
export async function adminRequest(
  port: number, method: string, path: string, o: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const token = o.token === undefined ? ADMIN_TOKEN : o.token
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(o.body === undefined ? {} : { 'content-type': 'application/json' }), ...o.headers },
    body: o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body),
  })
  const text = await res.text()
  const json = (res.headers.get('content-type') ?? '').startsWith('application/json')
  return { status: res.status, body: json ? JSON.parse(text) as Record<string, unknown> : { text } }
}

export function fulfillmentPair(): { fulfillment: Buffer; condition: Buffer } {
  const fulfillment = randomBytes(32)
  return { fulfillment, condition: createHash('sha256').update(fulfillment).digest() }
}

/**
 * Payments between real clients: receive(plugin) makes a client fulfil every prepare paid through
 * this object, recording the amount it got; pay() sends one with a fresh condition and answers
 * the amount the receiver got (checking the fulfillment came back), or the reject.
 */
export class Payments {
  private readonly fulfillments = new Map<string, Buffer>()
  private readonly got = new Map<BtpPlugin, bigint[]>()

  receive(plugin: BtpPlugin): void {
    const got: bigint[] = []
    this.got.set(plugin, got)
    plugin.registerDataHandler(async (data: Buffer) => {
      const p = IlpPacket.deserializeIlpPrepare(data)
      got.push(BigInt(p.amount))
      return IlpPacket.serializeIlpFulfill({ fulfillment: this.fulfillments.get(p.executionCondition.toString('hex'))!, data: Buffer.alloc(0) })
    })
  }

  /** What `plugin` has received, in order. */
  received(plugin: BtpPlugin): bigint[] {
    return this.got.get(plugin)!
  }

  async pay(from: BtpPlugin, to: BtpPlugin, destination: string, amount: bigint): Promise<bigint | IlpPacket.IlpReject> {
    const { fulfillment, condition } = fulfillmentPair()
    this.fulfillments.set(condition.toString('hex'), fulfillment)
    const got = this.received(to)
    const seen = got.length
    const reply = await from.sendData(prepare({ destination, amount: amount.toString(), executionCondition: condition, expiresAt: new Date(Date.now() + 10000) }))
    if (reply[0] === IlpPacket.Type.TYPE_ILP_REJECT) return asReject(reply)
    assert.deepEqual(asFulfill(reply).fulfillment, fulfillment)
    assert.equal(got.length, seen + 1)
    return got[seen]
  }
}

export function prepare(fields: Partial<IlpPacket.IlpPrepare> & { destination: string }): Buffer {
  return IlpPacket.serializeIlpPrepare({
    amount: '100',
    executionCondition: randomBytes(32),
    expiresAt: new Date(Date.now() + 10_000),
    data: Buffer.alloc(0),
    ...fields,
  })
}

export function asReject(reply: Buffer): IlpPacket.IlpReject {
  assertType(reply, IlpPacket.Type.TYPE_ILP_REJECT)
  return IlpPacket.deserializeIlpReject(reply)
}

export function asFulfill(reply: Buffer): IlpPacket.IlpFulfill {
  assertType(reply, IlpPacket.Type.TYPE_ILP_FULFILL)
  return IlpPacket.deserializeIlpFulfill(reply)
}

function assertType(reply: Buffer, type: number): void {
  if (reply[0] !== type) {
    const detail = reply[0] === IlpPacket.Type.TYPE_ILP_REJECT ? JSON.stringify(IlpPacket.deserializeIlpReject(reply)) : reply.toString('hex')
    throw new Error(`expected ILP packet type ${type}, got ${reply[0]}: ${detail}`)
  }
}

export const PEER_CONDITION = Buffer.from('66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925', 'hex')

/** Asks peer.balance over the plugin; returns the signed balance (positive = node owes us). */
export async function peerBalance(plugin: { sendData(data: Buffer): Promise<Buffer> }): Promise<bigint> {
  const reply = await plugin.sendData(prepare({ destination: 'peer.balance', amount: '0', executionCondition: PEER_CONDITION }))
  const fulfill = asFulfill(reply)
  if (fulfill.data.length !== 8) throw new Error(`peer.balance data is ${fulfill.data.length} bytes`)
  return fulfill.data.readBigInt64BE(0)
}

/** A small seeded PRNG (mulberry32): random test cases that reproduce from their seed. */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A port free on 127.0.0.1 a moment ago (for peers that must know each other's port up front). */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

/** Sends until the answer is not a routing failure (routes take a moment to propagate). */
export async function sendWhenRouted(plugin: { sendData(d: Buffer): Promise<Buffer> }, make: () => Buffer, timeoutMs = 8000): Promise<Buffer> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const reply = await plugin.sendData(make())
    const unrouted = reply[0] === IlpPacket.Type.TYPE_ILP_REJECT && ['F02', 'T01'].includes(asReject(reply).code)
    if (!unrouted || Date.now() > deadline) return reply
    await sleep(100)
  }
}

/** Sends until the answer is F02 (a withdrawal takes a moment to propagate). */
export async function sendUntilUnreachable(plugin: { sendData(d: Buffer): Promise<Buffer> }, make: () => Buffer, timeoutMs = 8000): Promise<Buffer> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const reply = await plugin.sendData(make())
    if ((reply[0] === IlpPacket.Type.TYPE_ILP_REJECT && asReject(reply).code === 'F02') || Date.now() > deadline) return reply
    await sleep(100)
  }
}

export { IlpPacket, BtpPlugin }
