// `npm run bench` — how this node compares with the reference connector and how it scales, on
// the machine it runs on. Ratios measured in one run are the figures that hold on a shared
// machine, so every comparison alternates the servers within one run.
//
//   1. Side by side: this node, ilp-connector@23 and a bare uWebSockets.js relay (the transport's
//      ceiling) under the same load generator and the same receiver: BTP alice → server → bob,
//      W = 1, 10, 100, 1000 outstanding prepares, bob fulfilling each; runs alternate per W.
//   2. Layouts: the node with IO_THREADS × SHARDS = 1×0, 1×1, 2×2, 4×4, 8 senders each paying its
//      own receiver at W=100 in all; CPU per thread (main, io-n, shard-n, other), a projection of
//      packets/s on 4, 8 and 16 cores, and the project's targets for 2×2 and 4×4 against 1×0.
//   3. ILP over HTTP: autocannon POSTs prepares (RFC 35) to this node and to ilp-connector with
//      ilp-plugin-http accounts; both forward them over HTTP to the same bob, who fulfills.
//   4. Pay a payee: PSK2 requests (draft 2, as ilp-fetch and koa-ilp send them) to a payee of the
//      node, alone and while forwarding runs at W=100 beside it.
//   5. The shop: autocannon on a paid route (a pre-funded Pay-Token) and on the same route free.
//   6. Micro-benchmarks: codecs (ours and the libraries'), routing, hashing, the ring, PSK2.
//
// Writes bench/results/<date>.json and .md, and SVG charts beside them (also copied to
// bench/results/latest*.{md,svg}). `--quick` shortens every run (under 2 minutes in all).
// `--only grid` (or side, http, payee, shop, micro; several with commas) runs only those sections;
// `--grid 1x0,2x2` measures other layouts in section 2. Only a full run of every section updates
// latest*. Every load run is bounded by a packet count and a duration.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { runLoad, type LoadOptions, type LoadResult } from './btp_load'
import { GRID_ACCOUNTS, writeGridConfig } from './grid_config'
import { createHash, randomBytes } from 'node:crypto'
import { request } from 'undici'
import { encodePrepare } from '../src/codec/ilp_packet'
import { encrypt, psk2Fulfillment, psk2Keys, serializeDraft2, TYPE_REQUEST } from '../src/codec/psk2'
import { benchPrepare, runHttpLoad, runGetLoad, startHttpReceiver, type GetRunResult, type HttpRunResult } from './http_load'
import { runCodecBenchmarks, runRingBenchmark, type MicroResult, type RingResult } from './micro'
import { startNodeProcess, type NodeProcess } from './node_process'
import { fmt, lineChart, markdownTable } from './report'
import { busiestThread, project, threadUsage, type Projection, type ThreadSnapshot, type ThreadUsage } from './threads'
import { defaultShardCount } from '../src/config/load'

interface Run extends LoadResult {
  server: string
  shards: number | null
  serverCpuUsPerPacket: number
  serverCoresBusy: number
}

interface Timing {
  warmupMs: number
  durationMs: number
  maxPackets: number
}

const WINDOWS = [1, 10, 100, 1000]
const HTTP_CONNECTIONS = [10, 100]

interface HttpRun extends HttpRunResult {
  server: string
  shards: number | null
  serverCpuUsPerRequest: number
}

interface Layout {
  ioThreads: number
  shards: number
}

/** Section 2's layouts: the inline shard (the targets' baseline), one shard worker, and I/O
 * threads with as many shards. */
const LAYOUT_GRID: Layout[] = [{ ioThreads: 1, shards: 0 }, { ioThreads: 1, shards: 1 }, { ioThreads: 2, shards: 2 }, { ioThreads: 4, shards: 4 }]
/** Senders, and as many receivers: 16 connections for the kernel to spread over the I/O threads. */
/** Over all senders: section 1's W=100, so the layouts and the targets compare with it. */
const GRID_WINDOW = 100
const PROJECTION_CORES = [4, 8, 16]

interface LayoutRun extends Run {
  ioThreads: number
  shards: number
  threads: ThreadUsage[]
  /** Threads that exited mid-run: their CPU is in serverCpuUsPerPacket but in no thread row. */
  vanishedThreads: number
  busiest: ThreadUsage
  projections: Projection[]
}

/** A target of the project: a layout's µs per packet (its busiest thread's or the whole node's)
 * over the whole node's µs per packet in the inline layout, at most `limit`. */
interface Target {
  layout: Layout
  of: 'busiest thread' | 'whole node'
  limit: number
}

const BASELINE: Layout = { ioThreads: 1, shards: 0 }
const TARGETS: Target[] = [
  { layout: { ioThreads: 2, shards: 2 }, of: 'busiest thread', limit: 0.5 },
  { layout: { ioThreads: 2, shards: 2 }, of: 'whole node', limit: 1.3 },
  { layout: { ioThreads: 4, shards: 4 }, of: 'busiest thread', limit: 0.3 },
]

interface TargetResult {
  what: string
  /** null when the grid lacks the layout or the baseline. */
  ratio: number | null
  limit: number
}

interface LayoutGrid {
  runs: LayoutRun[]
  targets: TargetResult[]
}

function log(line: string): void {
  process.stdout.write(line)
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

type MeasureOptions = Pick<LoadOptions, 'bobPort' | 'senders' | 'receivers' | 'prepare' | 'receiver' | 'onMeasureStart' | 'onMeasureEnd'>

async function measure(server: NodeProcess, label: string, shards: number | null, window: number, t: Timing, extra: MeasureOptions = {}): Promise<Run> {
  let cpuStart = 0
  let cpuEnd = 0
  const result = await runLoad({
    ...extra,
    port: server.port,
    destination: 'test.ilpnode.bob',
    window,
    durationMs: t.durationMs,
    maxPackets: t.maxPackets,
    warmupMs: t.warmupMs,
    // The extra hooks sample right after the process's CPU, over the same interval.
    onMeasureStart: () => {
      cpuStart = server.cpuMicros()
      extra.onMeasureStart?.()
    },
    onMeasureEnd: () => {
      cpuEnd = server.cpuMicros()
      extra.onMeasureEnd?.()
    },
  })
  if (result.packets === 0) throw new Error(`${label} W=${window}: no packet completed`)
  if (result.rejected > 0) throw new Error(`${label} W=${window}: ${result.rejected} prepares were rejected`)
  const cpu = cpuEnd - cpuStart
  return {
    server: label,
    shards,
    ...result,
    serverCpuUsPerPacket: cpu / result.packets,
    serverCoresBusy: cpu / 1e6 / result.seconds,
  }
}

function describe(r: Run): string {
  return `${fmt(r.packetsPerSecond)} packets/s, p50 ${fmt(r.p50Us)} µs, p99 ${fmt(r.p99Us)} µs, server CPU ${r.serverCpuUsPerPacket.toFixed(1)} µs/packet\n`
}

async function sideBySide(t: Timing, nodeShards: number): Promise<Run[]> {
  log(`\n1. Side by side: node (SHARDS=${nodeShards}), ilp-connector@23, bare uWS relay; alternating per W\n`)
  const alicePort = await freePort()
  const bobPort = await freePort()
  const servers: { label: string; shards: number | null; proc: NodeProcess; bobPort?: number }[] = []
  try {
    servers.push({ label: 'node', shards: nodeShards, proc: await startNodeProcess({ SHARDS: String(nodeShards) }) })
    servers.push({
      label: 'ilp-connector',
      shards: null,
      proc: await startNodeProcess({ ALICE_PORT: String(alicePort), BOB_PORT: String(bobPort) }, join(__dirname, 'reference_connector.js')),
      bobPort,
    })
    servers.push({ label: 'relay', shards: null, proc: await startNodeProcess({}, join(__dirname, 'uws_relay.js')) })
    const runs: Run[] = []
    let i = 0
    for (const window of WINDOWS) {
      for (const s of servers) {
        log(`  [${++i}/${WINDOWS.length * servers.length}] ${s.label.padEnd(13)} W=${String(window).padEnd(4)} … `)
        const run = await measure(s.proc, s.label, s.shards, window, t, { bobPort: s.bobPort })
        runs.push(run)
        log(describe(run))
      }
    }
    return runs
  } finally {
    for (const s of servers) await s.proc.stop()
  }
}

function layoutName(l: Layout): string {
  return `${l.ioThreads}×${l.shards}`
}

function findLayout(runs: LayoutRun[], l: Layout): LayoutRun | undefined {
  return runs.find((r) => r.ioThreads === l.ioThreads && r.shards === l.shards)
}

/** One layout's run, with the node's threads sampled over the measured interval. */
async function measureLayout(node: NodeProcess, layout: Layout, t: Timing, accounts: ReturnType<typeof writeGridConfig>): Promise<LayoutRun> {
  const snapshots: ThreadSnapshot[] = []
  const sample = () => { snapshots.push(node.threads()) }
  const run = await measure(node, 'node', layout.shards, GRID_WINDOW, t, { ...accounts, onMeasureStart: sample, onMeasureEnd: sample })
  const { usage, vanished } = threadUsage(snapshots[0], snapshots[1], run.packets)
  return {
    ...run,
    ...layout,
    threads: usage,
    vanishedThreads: vanished,
    busiest: busiestThread(usage),
    projections: PROJECTION_CORES.map((cores) => project(usage, run.serverCpuUsPerPacket, cores)),
  }
}

function describeProjection(p: Projection): string {
  return p.packetsPerSecond === null ? 'needs more cores' : `${fmt(p.packetsPerSecond)} (${p.limitedBy})`
}

function describeLayout(r: LayoutRun): string {
  const threads = r.threads.map((u) => `${u.role}${u.role === 'other' ? ` (${u.threads})` : ''} ${u.busyPercent.toFixed(0)} % ${u.cpuUsPerPacket.toFixed(1)}`)
  const vanished = r.vanishedThreads > 0 ? `      ${r.vanishedThreads} thread(s) exited mid-run: in the node's total, in no row\n` : ''
  return describe(r) +
    `      threads (% busy, µs/packet): ${threads.join(', ')}; busiest ${r.busiest.role}\n${vanished}` +
    `      projected packets/s: ${r.projections.map((p) => `C=${p.cores}: ${describeProjection(p)}`).join(', ')}\n`
}

function targetResults(runs: LayoutRun[]): TargetResult[] {
  const base = findLayout(runs, BASELINE)
  return TARGETS.map((t) => {
    const what = `${t.of} at ${layoutName(t.layout)} / whole node at ${layoutName(BASELINE)} (µs per packet)`
    const run = findLayout(runs, t.layout)
    if (base === undefined || run === undefined) return { what, ratio: null, limit: t.limit }
    const us = t.of === 'whole node' ? run.serverCpuUsPerPacket : run.busiest.cpuUsPerPacket
    return { what, ratio: us / base.serverCpuUsPerPacket, limit: t.limit }
  })
}

function targetMark(t: TargetResult): string {
  if (t.ratio === null) return 'not measured (layout not in the grid)'
  return t.ratio <= t.limit ? '✓ pass' : '✗ fail'
}

async function layoutGrid(t: Timing, grid: Layout[]): Promise<LayoutGrid> {
  log(`\n2. Layouts IO_THREADS×SHARDS ${grid.map(layoutName).join(', ')}: ${GRID_ACCOUNTS} senders → ${GRID_ACCOUNTS} receivers, W=${GRID_WINDOW} in all\n`)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const runs: LayoutRun[] = []
  try {
    const configPath = join(dir, 'config.json')
    const accounts = writeGridConfig(configPath)
    for (const layout of grid) {
      log(`  ${layoutName(layout)} … `)
      const node = await startNodeProcess({ IO_THREADS: String(layout.ioThreads), SHARDS: String(layout.shards), CONFIG: configPath })
      try {
        const run = await measureLayout(node, layout, t, accounts)
        runs.push(run)
        log(describeLayout(run))
      } finally {
        await node.stop()
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return { runs, targets: targetResults(runs) }
}

async function httpForwarding(t: Timing, nodeShards: number): Promise<HttpRun[]> {
  log(`\n3. ILP over HTTP: autocannon → server → bob (HTTP), node (SHARDS=${nodeShards}) and ilp-connector@23 alternating\n`)
  const bob = await startHttpReceiver('bob-token')
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const servers: { label: string; shards: number | null; proc: NodeProcess }[] = []
  try {
    const configPath = join(dir, 'config.json')
    writeFileSync(configPath, JSON.stringify({
      ilpAddress: 'test.ilpnode',
      accounts: {
        alice: { relation: 'child', assetCode: 'USD', assetScale: 9, http: { incomingToken: 'alice-token' } },
        bob: { relation: 'child', assetCode: 'USD', assetScale: 9, http: { url: `http://127.0.0.1:${bob.port}/`, outgoingToken: 'bob-token' } },
      },
    }))
    servers.push({ label: 'node', shards: nodeShards, proc: await startNodeProcess({ SHARDS: String(nodeShards), CONFIG: configPath }) })
    const refEnv = { TRANSPORT: 'http', ALICE_PORT: String(await freePort()), BOB_PORT: String(await freePort()), BOB_URL: `http://127.0.0.1:${bob.port}/` }
    servers.push({ label: 'ilp-connector', shards: null, proc: await startNodeProcess(refEnv, join(__dirname, 'reference_connector.js')) })
    const body = benchPrepare('test.ilpnode.bob')
    const runs: HttpRun[] = []
    let i = 0
    for (const connections of HTTP_CONNECTIONS) {
      for (const s of servers) {
        log(`  [${++i}/${HTTP_CONNECTIONS.length * servers.length}] ${s.label.padEnd(13)} connections=${String(connections).padEnd(4)} … `)
        let cpuStart = 0
        let cpuEnd = 0
        const r = await runHttpLoad({
          url: `http://127.0.0.1:${s.proc.port}/ilp`,
          token: 'alice-token',
          connections,
          durationMs: t.durationMs,
          maxRequests: t.maxPackets,
          warmupMs: t.warmupMs,
          body,
          onMeasureStart: () => { cpuStart = s.proc.cpuMicros() },
          onMeasureEnd: () => { cpuEnd = s.proc.cpuMicros() },
        }, bob)
        const run = { server: s.label, shards: s.shards, ...r, serverCpuUsPerRequest: (cpuEnd - cpuStart) / r.requests }
        runs.push(run)
        log(`${fmt(run.requestsPerSecond)} requests/s, latency mean ${run.latencyMs.mean.toFixed(2)} ms, p99 ${run.latencyMs.p99} ms, server CPU ${run.serverCpuUsPerRequest.toFixed(1)} µs/request\n`)
      }
    }
    return runs
  } finally {
    for (const s of servers) await s.proc.stop()
    bob.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

interface PayeeRuns {
  alone: Run[]
  duringForwarding: { forwarding: Run; payee: Run }
  spsp: GetRunResult
}

/** A PSK2 request (draft 2) for 10 units to the payee at `url`, from a fresh SPSP query. */
async function payeePrepare(url: string, t: Timing): Promise<Buffer> {
  const res = await request(url, { headers: { accept: 'application/spsp+json' } })
  if (res.statusCode !== 200) throw new Error(`SPSP query to ${url} answered ${res.statusCode}`)
  const spsp = await res.body.json() as { destination_account: string; shared_secret: string }
  return psk2Request(spsp.destination_account, spsp.shared_secret, 10n, Buffer.alloc(0), Date.now() + t.warmupMs + t.durationMs + 60_000)
}

/** A PSK2 draft-2 request prepare (what ilp-fetch and koa-ilp send), fulfillable by the receiver. */
function psk2Request(destination: string, sharedSecret: string, amount: bigint, data: Buffer, expiresAtMs: number): Buffer {
  const keys = psk2Keys(Buffer.from(sharedSecret, 'base64'))
  const encrypted = encrypt(keys.encryption, serializeDraft2(TYPE_REQUEST, 1, 0n, data))
  const condition = createHash('sha256').update(psk2Fulfillment(keys, encrypted)).digest()
  return encodePrepare({ amount, expiresAtMs, executionCondition: condition, destination, data: encrypted })
}

async function payPayee(t: Timing, nodeShards: number): Promise<PayeeRuns> {
  log(`\n4. Pay a payee: PSK2 requests carol → node (SHARDS=${nodeShards}) → payee shop, alone and beside forwarding\n`)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const child = (token: string) => ({ relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token } })
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify({
    ilpAddress: 'test.ilpnode',
    accounts: { alice: child('alice-token'), bob: child('bob-token'), carol: child('carol-token') },
    payees: { shop: {} },
  }))
  const node = await startNodeProcess({ SHARDS: String(nodeShards), CONFIG: configPath })
  try {
    const url = `http://127.0.0.1:${node.port}/shop`
    const carol = [{ user: 'carol', token: 'carol-token' }]
    const alone: Run[] = []
    for (const window of [1, 100]) {
      log(`  payee alone, W=${window} … `)
      const run = await measure(node, 'node', nodeShards, window, t, { senders: carol, prepare: await payeePrepare(url, t), receiver: false })
      alone.push(run)
      log(describe(run))
    }
    log('  forwarding W=100 and the payee W=10 at once … ')
    const prepare = await payeePrepare(url, t)
    const [forwarding, payee] = await Promise.all([
      measure(node, 'node', nodeShards, 100, t),
      measure(node, 'node', nodeShards, 10, t, { senders: carol, prepare, receiver: false }),
    ])
    log(`forwarding ${fmt(forwarding.packetsPerSecond)} packets/s (p99 ${fmt(forwarding.p99Us)} µs), payee ${fmt(payee.packetsPerSecond)} payments/s (p99 ${fmt(payee.p99Us)} µs)\n`)
    log('  SPSP queries, autocannon, 10 connections … ')
    const spsp = await runGetLoad(url, { accept: 'application/spsp+json' }, 10, t.durationMs, t.maxPackets)
    log(`${fmt(spsp.requestsPerSecond)} queries/s, mean ${spsp.latencyMs.mean.toFixed(2)} ms, p99 ${spsp.latencyMs.p99} ms\n`)
    return { alone, duringForwarding: { forwarding, payee }, spsp }
  } finally {
    await node.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

interface ShopRun extends GetRunResult {
  route: 'paid' | 'free'
  serverCpuUsPerRequest: number
}

async function shopRoutes(t: Timing, nodeShards: number): Promise<ShopRun[]> {
  log(`\n5. The shop: autocannon on a paid route (token pre-funded) and the same route free, node SHARDS=${nodeShards}\n`)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify({
    ilpAddress: 'test.ilpnode',
    accounts: { carol: { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'carol-token' } } },
    shop: { routes: [{ method: 'GET', path: '/paid', price: '1', response: 'ok\n' }, { method: 'GET', path: '/free', price: '0', response: 'ok\n' }] },
  }))
  const node = await startNodeProcess({ SHARDS: String(nodeShards), CONFIG: configPath })
  try {
    const token = randomBytes(16)
    await fundToken(node.port, `http://127.0.0.1:${node.port}/paid`, token, 1_000_000_000_000n)
    const runs: ShopRun[] = []
    for (const route of ['paid', 'free'] as const) {
      log(`  GET /${route}, 10 connections … `)
      const cpuStart = node.cpuMicros()
      const r = await runGetLoad(`http://127.0.0.1:${node.port}/${route}`, route === 'paid' ? { 'pay-token': token.toString('base64url') } : {}, 10, t.durationMs, t.maxPackets)
      const run: ShopRun = { route, ...r, serverCpuUsPerRequest: (node.cpuMicros() - cpuStart) / r.requests }
      runs.push(run)
      log(`${fmt(run.requestsPerSecond)} requests/s, mean ${run.latencyMs.mean.toFixed(2)} ms, p99 ${run.latencyMs.p99} ms, node CPU ${run.serverCpuUsPerRequest.toFixed(1)} µs/request\n`)
    }
    return runs
  } finally {
    await node.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Pays `amount` to the shop for `token`, as ilp-fetch would (a PSK2 request with the token as data). */
async function fundToken(port: number, url: string, token: Buffer, amount: bigint): Promise<void> {
  const probe = await request(url, { method: 'OPTIONS' })
  await probe.body.dump()
  const [, destination, secret] = String(probe.headers.pay).split(' ')
  const prepare = psk2Request(destination, secret, amount, token, Date.now() + 30_000)
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const BtpPlugin = require('ilp-plugin-btp') as new (o: { server: string }) => { connect(): Promise<void>; sendData(d: Buffer): Promise<Buffer>; disconnect(): Promise<void> }
  const carol = new BtpPlugin({ server: `btp+ws://carol:carol-token@127.0.0.1:${port}` })
  await carol.connect()
  const reply = await carol.sendData(prepare)
  await carol.disconnect()
  if (reply[0] !== 13) throw new Error('funding the bench\'s pay token was rejected')
}

async function micro(quick: boolean): Promise<{ codecs: MicroResult[]; ring: RingResult }> {
  log('\n6. Micro-benchmarks (benchmark.js)\n')
  const codecs = runCodecBenchmarks(quick ? 0.25 : 1)
  log('  ring between two threads (100-byte records) … ')
  const ring = await runRingBenchmark(quick ? 200_000 : 1_000_000)
  log(`${fmt(ring.oneWayRecordsPerSecond)} records/s; round trip p50 ${ring.roundTrip.map((r) => `${r.batch}: ${r.p50Us.toFixed(1)} µs`).join(', ')}\n`)
  return { codecs, ring }
}

function byServer(runs: Run[], server: string, window: number): Run | undefined {
  return runs.find((r) => r.server === server && r.window === window)
}

type Machine = { cores: number; cpu: string | undefined; memoryBytes: number; node: string; platform: string }

/** Every section's results, under the names the JSON file gives them; a section not run is absent. */
interface Results {
  sideBySide?: Run[]
  layoutGrid?: LayoutGrid
  httpForwarding?: HttpRun[]
  payPayee?: PayeeRuns
  shop?: ShopRun[]
  micro?: { codecs: MicroResult[]; ring: RingResult }
}

function sideBySideMarkdown(side: Run[], stamp: string): string[] {
  return [
    '## Side by side: BTP alice → server → bob', '',
    markdownTable(
      ['server', 'W', 'packets/s', 'p50 µs', 'p90 µs', 'p99 µs', 'server CPU µs/packet', 'generator CPU µs/packet'],
      side.map((r) => [r.server === 'node' ? `node (SHARDS=${r.shards})` : r.server, r.window, fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p90Us), fmt(r.p99Us), r.serverCpuUsPerPacket.toFixed(1), r.generatorCpuUsPerPacket.toFixed(1)]),
    ), '',
    ...nodeVsReferenceMarkdown(side),
    `![throughput](${stamp}-throughput.svg)`, '', `![latency](${stamp}-latency.svg)`, '',
  ]
}

function nodeVsReferenceMarkdown(side: Run[]): string[] {
  return [
    '### Node / ilp-connector', '',
    markdownTable(
      ['W', 'packets/s ratio', 'CPU per packet ratio', 'p50 ratio', 'share of relay packets/s'],
      WINDOWS.map((w) => {
        const n = byServer(side, 'node', w)!
        const ref = byServer(side, 'ilp-connector', w)!
        const relay = byServer(side, 'relay', w)!
        return [w, `${(n.packetsPerSecond / ref.packetsPerSecond).toFixed(1)}×`, `1/${(ref.serverCpuUsPerPacket / n.serverCpuUsPerPacket).toFixed(1)}`,
          (n.p50Us / ref.p50Us).toFixed(2), `${((100 * n.packetsPerSecond) / relay.packetsPerSecond).toFixed(0)} %`]
      }),
    ), '',
  ]
}

function layoutGridMarkdown(grid: LayoutGrid, machine: Machine): string[] {
  const lines: string[] = []
  lines.push(`## Layouts IO_THREADS × SHARDS: ${GRID_ACCOUNTS} senders → ${GRID_ACCOUNTS} receivers, W=${GRID_WINDOW}`, '')
  lines.push(markdownTable(
    ['IO_THREADS×SHARDS', 'packets/s', 'p50 µs', 'p99 µs', 'node CPU µs/packet', 'node cores busy', 'busiest thread', 'its µs/packet'],
    grid.runs.map((r) => [layoutName(r), fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p99Us), r.serverCpuUsPerPacket.toFixed(1), r.serverCoresBusy.toFixed(2),
      r.busiest.role, r.busiest.cpuUsPerPacket.toFixed(1)]),
  ), '')
  lines.push('### CPU per thread', '')
  lines.push(markdownTable(
    ['IO_THREADS×SHARDS', 'thread', '% busy', 'CPU µs/packet'],
    grid.runs.flatMap((r) => r.threads.map((u) => [layoutName(r), u.role === 'other' ? `other (${u.threads} threads)` : u.role, u.busyPercent.toFixed(0), u.cpuUsPerPacket.toFixed(1)])),
  ), '')
  lines.push('Threads by the names the node gives them in /proc: main is the control plane (with IO_THREADS=1 also all socket I/O, ' +
    'with SHARDS=0 also the inline shard), io-n a socket I/O thread, shard-n a shard worker; other is every unnamed thread together ' +
    '(V8 platform workers, the libuv pool, GC helpers). % busy is CPU time (utime + stime) over wall time, in % of one core. ' +
    'A layout with IO_THREADS > 1 but no io rows ran its sockets on the main thread (a node without I/O threads).', '')
  for (const r of grid.runs.filter((x) => x.vanishedThreads > 0)) {
    lines.push(`${layoutName(r)}: ${r.vanishedThreads} thread(s) exited mid-run; their CPU is in the node's figures but in no thread row.`, '')
  }
  lines.push('### Projection: packets/s on C cores', '')
  lines.push(markdownTable(
    ['IO_THREADS×SHARDS', 'named threads', ...PROJECTION_CORES.map((c) => `C=${c}`)],
    grid.runs.map((r) => [layoutName(r), r.threads.filter((u) => u.role !== 'other').length, ...r.projections.map(describeProjection)]),
  ), '')
  lines.push('Model: each named thread (main, io-n, shard-n) gets a core of its own; a thread\'s ceiling is 1e6 / its µs per packet; ' +
    'the node\'s projected packets/s is the lowest ceiling of its named threads, capped at C × 1e6 / the whole node\'s µs per packet ' +
    '(all threads, the unnamed too, share the C cores). In brackets: what caps it (a thread, or the cores). A layout with more named ' +
    'threads than C needs more cores. **This assumes a thread\'s cost per packet stays the same when it gets its own core** ' +
    `(here all threads and the load generator share ${machine.cores} cores, so wake-ups, spinning and cache effects differ), ` +
    '**and that the load generator runs elsewhere**.', '')
  lines.push(...targetsMarkdown(grid.targets))
  return lines
}

function targetsMarkdown(targets: TargetResult[]): string[] {
  return [
    '### Targets', '',
    markdownTable(
      ['ratio', 'measured', 'target', 'result'],
      targets.map((t) => [t.what, t.ratio === null ? '–' : t.ratio.toFixed(2), `≤ ${t.limit}`, targetMark(t)]),
    ), '',
  ]
}

function httpMarkdown(http: HttpRun[]): string[] {
  return [
    '## ILP over HTTP: autocannon → server → bob (HTTP)', '',
    markdownTable(
      ['server', 'connections', 'requests/s', 'mean ms', 'p50 ms', 'p90 ms', 'p99 ms', 'server CPU µs/request', 'ratio node / reference'],
      http.map((r) => {
        const ref = http.find((x) => x.server === 'ilp-connector' && x.connections === r.connections)
        const ratio = r.server === 'node' && ref !== undefined ? `${(r.requestsPerSecond / ref.requestsPerSecond).toFixed(1)}× req/s, 1/${(ref.serverCpuUsPerRequest / r.serverCpuUsPerRequest).toFixed(1)} CPU` : ''
        return [r.server === 'node' ? `node (SHARDS=${r.shards})` : r.server, r.connections, fmt(r.requestsPerSecond), r.latencyMs.mean.toFixed(2), r.latencyMs.p50, r.latencyMs.p90, r.latencyMs.p99,
          r.serverCpuUsPerRequest.toFixed(1), ratio]
      }),
    ), '',
    'Each request is one prepare; the server forwards it over its keep-alive HTTP connections to bob. ' +
      'autocannon (in the bench process, with bob) shares the machine and measures latency in whole milliseconds.', '',
  ]
}

function payeeMarkdown(payee: PayeeRuns): string[] {
  const rows = [
    ...payee.alone.map((r) => [`payee alone, W=${r.window}`, r]),
    ['payee (W=10) beside forwarding', payee.duringForwarding.payee],
    ['forwarding (W=100) beside the payee', payee.duringForwarding.forwarding],
  ] as [string, Run][]
  return [
    '## Pay a payee: PSK2 requests (draft 2) carol → node → payee', '',
    markdownTable(
      ['run', 'packets/s', 'p50 µs', 'p99 µs', 'node CPU µs/packet'],
      rows.map(([name, r]) => [name, fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p99Us), name.includes('beside') ? 'shared' : r.serverCpuUsPerPacket.toFixed(1)]),
    ), '',
    `SPSP queries (autocannon, ${payee.spsp.connections} connections, GET with Accept: application/spsp+json): ` +
      `${fmt(payee.spsp.requestsPerSecond)} queries/s, mean ${payee.spsp.latencyMs.mean.toFixed(2)} ms, p99 ${payee.spsp.latencyMs.p99} ms.`, '',
    'Each payment: the sender\'s hold, AES-GCM decryption and HMACs in the payee\'s shard, an encrypted answer, ' +
      'and the credit committed to LMDB.', '',
  ]
}

function shopMarkdown(shop: ShopRun[]): string[] {
  return [
    '## The shop: a paid route (pre-funded Pay-Token) and the same route free', '',
    markdownTable(
      ['route', 'requests/s', 'mean ms', 'p99 ms', 'node CPU µs/request'],
      shop.map((r) => [r.route === 'paid' ? 'GET /paid (price 1, Pay-Token)' : 'GET /free (price 0)', fmt(r.requestsPerSecond), r.latencyMs.mean.toFixed(2), r.latencyMs.p99, r.serverCpuUsPerRequest.toFixed(1)]),
    ), '',
    'A paid request adds the token check, one message to the shop\'s shard and back, and the spend committed to LMDB before the answer.', '',
  ]
}

function microMarkdown(m: { codecs: MicroResult[]; ring: RingResult }): string[] {
  return [
    '## Micro-benchmarks', '',
    markdownTable(['case', 'ops/s', '±%'], m.codecs.map((c) => [c.name, fmt(c.opsPerSecond), c.rme.toFixed(1)])), '',
    `Ring between two threads, 100-byte records: ${fmt(m.ring.oneWayRecordsPerSecond)} records/s one way (with echo); ` +
      `round trip p50/p99: ${m.ring.roundTrip.map((r) => `batch ${r.batch}: ${r.p50Us.toFixed(1)}/${r.p99Us.toFixed(1)} µs`).join('; ')}.`, '',
  ]
}

function markdown(date: string, quick: boolean, machine: Machine, r: Results, stamp: string): string {
  return [
    `# ilp-node bench, ${date}${quick ? ' (quick)' : ''}`, '',
    `Machine: ${machine.cores} cores (${machine.cpu}), ${machine.node}. Load generator on the same machine.`, '',
    ...(r.sideBySide ? sideBySideMarkdown(r.sideBySide, stamp) : []),
    ...(r.layoutGrid ? layoutGridMarkdown(r.layoutGrid, machine) : []),
    ...(r.httpForwarding ? httpMarkdown(r.httpForwarding) : []),
    ...(r.payPayee ? payeeMarkdown(r.payPayee) : []),
    ...(r.shop ? shopMarkdown(r.shop) : []),
    ...(r.micro ? microMarkdown(r.micro) : []),
  ].join('\n')
}

const COLORS: Record<string, string> = { node: '#1f77b4', 'ilp-connector': '#d62728', relay: '#7f7f7f' }

function charts(side: Run[]): { throughput: string; latency: string } {
  const servers = ['node', 'ilp-connector', 'relay']
  const name = (s: string) => (s === 'relay' ? 'bare uWS relay' : s === 'node' ? `ilp-node (SHARDS=${side.find((r) => r.server === 'node')?.shards})` : 'ilp-connector@23')
  const throughput = lineChart({
    title: 'BTP forwarding throughput by window',
    xLabel: 'prepares outstanding (W)',
    yLabel: 'packets per second',
    xLog: true,
    series: servers.map((s) => ({ name: name(s), color: COLORS[s], points: side.filter((r) => r.server === s).map((r) => [r.window, r.packetsPerSecond] as [number, number]) })),
  })
  const latency = lineChart({
    title: 'Latency distribution at W=100 (alice send → fulfill)',
    xLabel: 'latency (µs, log scale)',
    yLabel: 'percentile',
    xLog: true,
    series: servers.map((s) => {
      const r = byServer(side, s, 100)
      return { name: name(s), color: COLORS[s], points: (r?.latencyPercentilesUs ?? []).map((us, p) => [Math.max(us, 1), p] as [number, number]) }
    }),
  })
  return { throughput, latency }
}

const SECTIONS = ['side', 'grid', 'http', 'payee', 'shop', 'micro'] as const
type Section = (typeof SECTIONS)[number]

/** The value after `--name` on the command line, if the flag is there. */
function argValue(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`)
  if (at < 0) return undefined
  const value = process.argv[at + 1]
  if (value === undefined || value.startsWith('--')) throw new Error(`--${name} needs a value`)
  return value
}

function parseSections(list: string | undefined): Set<Section> {
  if (list === undefined) return new Set(SECTIONS)
  const names = list.split(',')
  const unknown = names.filter((n) => !(SECTIONS as readonly string[]).includes(n))
  if (unknown.length > 0) throw new Error(`--only: unknown section ${unknown.join(', ')} (sections: ${SECTIONS.join(', ')})`)
  return new Set(names as Section[])
}

function parseGrid(list: string | undefined): Layout[] {
  if (list === undefined) return LAYOUT_GRID
  return list.split(',').map((item) => {
    const m = /^(\d+)x(\d+)$/.exec(item)
    if (m === null) throw new Error(`--grid: "${item}" is not IO_THREADSxSHARDS (e.g. 2x2)`)
    return { ioThreads: Number(m[1]), shards: Number(m[2]) }
  })
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick')
  const only = argValue('only')
  const sections = parseSections(only)
  const grid = parseGrid(argValue('grid'))
  const started = Date.now()
  const timing: Timing = quick ? { warmupMs: 300, durationMs: 1200, maxPackets: 2_000_000 } : { warmupMs: 1000, durationMs: 5000, maxPackets: 5_000_000 }
  const machine: Machine = { cores: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem(), node: `Node ${process.version}`, platform: process.platform }
  log(`ilp-node bench (${quick ? 'quick' : 'full'}${only === undefined ? '' : `, only ${only}`}): ${machine.cores} cores, ${machine.node}\n`)
  const nodeShards = defaultShardCount()
  const r: Results = {}
  if (sections.has('side')) r.sideBySide = await sideBySide(timing, nodeShards)
  if (sections.has('grid')) r.layoutGrid = await layoutGrid(timing, grid)
  if (sections.has('http')) r.httpForwarding = await httpForwarding(timing, nodeShards)
  if (sections.has('payee')) r.payPayee = await payPayee(timing, nodeShards)
  if (sections.has('shop')) r.shop = await shopRoutes(timing, nodeShards)
  if (sections.has('micro')) r.micro = await micro(quick)

  const date = new Date().toISOString()
  // A partial run names its sections in the file names, and never stands in for latest*.
  const stamp = `${date.replace(/[:.]/g, '-')}${only === undefined ? '' : `-${[...sections].join('+')}`}${quick ? '-quick' : ''}`
  const dir = join(__dirname, '..', '..', 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  const md = markdown(date, quick, machine, r, stamp)
  writeFileSync(join(dir, `${stamp}.json`), JSON.stringify({ date, mode: quick ? 'quick' : 'full', machine, ...r }, null, 2) + '\n')
  writeFileSync(join(dir, `${stamp}.md`), md)
  const svg = r.sideBySide ? charts(r.sideBySide) : null
  if (svg !== null) {
    writeFileSync(join(dir, `${stamp}-throughput.svg`), svg.throughput)
    writeFileSync(join(dir, `${stamp}-latency.svg`), svg.latency)
  }
  if (!quick && only === undefined && svg !== null) {
    writeFileSync(join(dir, 'latest.md'), md.replaceAll(`${stamp}-`, 'latest-'))
    writeFileSync(join(dir, 'latest-throughput.svg'), svg.throughput)
    writeFileSync(join(dir, 'latest-latency.svg'), svg.latency)
  }

  const summary = [...(r.sideBySide ? nodeVsReferenceMarkdown(r.sideBySide) : []), ...(r.layoutGrid ? targetsMarkdown(r.layoutGrid.targets) : [])]
  log(`\n${summary.join('\n')}`)
  log(`\nwrote ${join(dir, stamp)}.{json,md}${svg !== null ? ' and -{throughput,latency}.svg' : ''} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
}

main().catch((err: Error) => {
  process.stderr.write(`\nbench failed: ${err.message}\n`)
  process.exit(1)
})
