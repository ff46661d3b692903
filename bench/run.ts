// `npm run bench` — how this node compares with the reference connector and how it scales, on
// the machine it runs on. Ratios measured in one run are the figures that hold on a shared
// machine, so every comparison alternates the servers within one run.
//
//   1. Side by side: this node (in the layout it picks by default on this machine), ilp-connector@23
//      and a bare uWebSockets.js relay (the transport's ceiling) under the same load generator and
//      the same receiver: BTP alice → server → bob, W = 1, 10, 100, 1000 outstanding prepares, bob
//      fulfilling each; runs alternate per W.
//   2. Layouts: the node with IO_THREADS × SHARDS = 1×0, 1×1, 2×2, 4×4, 8 senders each paying its
//      own receiver at W=100 in all; CPU per thread (main, io-n, shard-n, other), a projection of
//      packets/s on 4, 8 and 16 cores, the project's targets for 2×2 and 4×4 against 1×0, and
//      which layout the node picks by default here and whether it was the fastest measured.
//   3. ILP over HTTP: autocannon POSTs prepares (RFC 35) to this node (layouts 1×0 and 2×2) and to
//      ilp-connector with ilp-plugin-http accounts; both forward them over HTTP to the same bob,
//      who fulfills; runs alternate per connection count. The node's CPU per thread per request.
//   4. Pay a payee: PSK2 requests (draft 2, as ilp-fetch and koa-ilp send them) to a payee of the
//      node, alone and while forwarding runs at W=100 beside it.
//   5. The shop: autocannon on a paid route (a pre-funded Pay-Token) and on the same route free.
//   6. Micro-benchmarks: codecs (ours and the libraries'), routing, hashing, the ring, PSK2,
//      wake-ups between threads.
//   7. Metrics: forwarding with the /metrics counters on and off, alternating, and the ratio.
//   8. Exchange: forwarding USD → USD and USD → EUR with a static rate and a 0.2 % spread,
//      alternating, and the difference in node CPU per packet.
//
// Writes bench/results/<date>.json and .md, and SVG charts beside them (also copied to
// bench/results/latest*.{md,svg}). `--quick` shortens every run (under 2 minutes in all).
// `--only grid` (or side, http, payee, shop, micro, metrics, exchange; several with commas) runs only those sections;
// `--grid 1x0,2x2` measures other layouts in section 2. Only a full run of every section updates
// latest*. Every load run is bounded by a packet count and a duration.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { runLoad, type LoadOptions, type LoadResult } from './btp_load'
import { GRID_ACCOUNTS, writeGridConfig } from './grid_config'
import { createHash, randomBytes } from 'node:crypto'
import { request } from 'undici'
import { encodePrepare } from '../src/codec/ilp_packet'
import { encrypt, psk2Fulfillment, psk2Keys, serializeDraft2, TYPE_REQUEST } from '../src/codec/psk2'
import { benchPrepare, runHttpLoad, runGetLoad, startHttpReceiver, type GetRunResult, type HttpRunResult } from './http_load'
import { runCodecBenchmarks, runRingBenchmark, runWakeBenchmark, type MicroResult, type RingResult, type WakeResult } from './micro'
import { startNodeProcess, type NodeProcess } from '../test/support/node_process'
import { fmt, lineChart, markdownTable } from './report'
import { defaultLayout, EMBEDDED_DEFAULT_CONFIG } from '../src/config/load'
import { busiestThread, idleThreads, IDLE_BUSY_PERCENT, namedThreads, project, threadUsage, type Projection, type ThreadSnapshot, type ThreadUsage } from './threads'

interface Layout {
  ioThreads: number
  shards: number
}

/** The env that starts the node in `layout`. */
function layoutEnv(layout: Layout): Record<string, string> {
  return { IO_THREADS: String(layout.ioThreads), SHARDS: String(layout.shards) }
}

interface Run extends LoadResult {
  server: string
  /** The node's layout; null for the other servers. */
  ioThreads: number | null
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

/** A thread's share of the node's work in section 3, as ThreadUsage per packet is in section 2. */
interface HttpThreadUsage {
  /** main, io-<n>, shard-<n>, or other (all unnamed threads together). */
  role: string
  threads: number
  busyPercent: number
  cpuUsPerRequest: number
  sleepsPerRequest: number
}

interface HttpRun extends HttpRunResult {
  server: string
  /** The node's layout; null for ilp-connector. */
  ioThreads: number | null
  shards: number | null
  /** The whole process's CPU (all threads, the exited too) per request. */
  serverCpuUsPerRequest: number
  serverCoresBusy: number
  /** The node's threads over the measured interval; null for ilp-connector. */
  threads: HttpThreadUsage[] | null
  /** Threads that exited mid-run: their CPU is in serverCpuUsPerRequest but in no thread row. */
  vanishedThreads: number | null
  busiest: HttpThreadUsage | null
}

/** Section 3's node layouts: the ratios against ilp-connector are the first's (1×0, as before
 * I/O threads, and the default on 2 cores); 2×2 spreads the HTTP connections over I/O threads. */
const HTTP_BASELINE: Layout = { ioThreads: 1, shards: 0 }
const HTTP_LAYOUTS: Layout[] = [HTTP_BASELINE, { ioThreads: 2, shards: 2 }]

/** Section 2's layouts: the inline shard (the targets' baseline), one shard worker, and I/O
 * threads with as many shards. */
const LAYOUT_GRID: Layout[] = [{ ioThreads: 1, shards: 0 }, { ioThreads: 1, shards: 1 }, { ioThreads: 2, shards: 2 }, { ioThreads: 4, shards: 4 }]
/** Over all senders: section 1's W=100, so the layouts and the targets compare with it. */
const GRID_WINDOW = 100
const PROJECTION_CORES = [4, 8, 16]
/**
 * Section 2's warm-up before measuring: every thread of a layout is a V8 isolate that compiles
 * its own hot code on V8's background threads, so a 4×4 node compiles nine times what 1×0 does;
 * with section 1's warm-up that compilation fell in the measured interval ("other").
 */
const GRID_WARMUP_MS = { full: 3000, quick: 1000 }

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

/** The layout the node picks by default on this machine, against the grid's fastest. */
interface DefaultLayoutResult {
  /** os.availableParallelism(), what the node reads. */
  cores: number
  layout: Layout
  /** The grid's layout with the most packets/s, and those packets/s; null for an empty grid. */
  fastest: (Layout & { packetsPerSecond: number }) | null
  /** The default's packets/s in this run; null when the grid did not measure it. */
  packetsPerSecond: number | null
  /** null when the grid did not measure the default. */
  isFastest: boolean | null
}

interface LayoutGrid {
  runs: LayoutRun[]
  targets: TargetResult[]
  defaultLayout: DefaultLayoutResult
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

type MeasureOptions = Pick<LoadOptions, 'bobPort' | 'senders' | 'receivers' | 'prepare' | 'amount' | 'receiver' | 'onMeasureStart' | 'onMeasureEnd'>

async function measure(server: NodeProcess, label: string, layout: Layout | null, window: number, t: Timing, extra: MeasureOptions = {}): Promise<Run> {
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
    ioThreads: layout?.ioThreads ?? null,
    shards: layout?.shards ?? null,
    ...result,
    serverCpuUsPerPacket: cpu / result.packets,
    serverCoresBusy: cpu / 1e6 / result.seconds,
  }
}

function describe(r: Run): string {
  return `${fmt(r.packetsPerSecond)} packets/s, p50 ${fmt(r.p50Us)} µs, p99 ${fmt(r.p99Us)} µs, server CPU ${r.serverCpuUsPerPacket.toFixed(1)} µs/packet\n`
}

async function sideBySide(t: Timing, nodeLayout: Layout): Promise<Run[]> {
  log(`\n1. Side by side: node (${layoutName(nodeLayout)}, its default here), ilp-connector@23, bare uWS relay; alternating per W\n`)
  const alicePort = await freePort()
  const bobPort = await freePort()
  const servers: { label: string; layout: Layout | null; proc: NodeProcess; bobPort?: number }[] = []
  try {
    servers.push({ label: 'node', layout: nodeLayout, proc: await startNodeProcess(layoutEnv(nodeLayout)) })
    servers.push({
      label: 'ilp-connector',
      layout: null,
      proc: await startNodeProcess({ ALICE_PORT: String(alicePort), BOB_PORT: String(bobPort) }, join(__dirname, 'reference_connector.js')),
      bobPort,
    })
    servers.push({ label: 'relay', layout: null, proc: await startNodeProcess({}, join(__dirname, 'uws_relay.js')) })
    const runs: Run[] = []
    let i = 0
    for (const window of WINDOWS) {
      for (const s of servers) {
        log(`  [${++i}/${WINDOWS.length * servers.length}] ${s.label.padEnd(13)} W=${String(window).padEnd(4)} … `)
        const run = await measure(s.proc, s.label, s.layout, window, t, { bobPort: s.bobPort })
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

function sameLayout(a: Layout, b: Layout): boolean {
  return a.ioThreads === b.ioThreads && a.shards === b.shards
}

/** A run's server as the tables name it: the node with its layout, "node (1×0)". */
function serverLabel(r: { server: string; ioThreads: number | null; shards: number | null }): string {
  return r.server === 'node' && r.ioThreads !== null && r.shards !== null ? `node (${layoutName({ ioThreads: r.ioThreads, shards: r.shards })})` : r.server
}

function findLayout(runs: LayoutRun[], l: Layout): LayoutRun | undefined {
  return runs.find((r) => sameLayout(r, l))
}

/** One layout's run, with the node's threads sampled over the measured interval. */
async function measureLayout(node: NodeProcess, layout: Layout, t: Timing, accounts: ReturnType<typeof writeGridConfig>): Promise<LayoutRun> {
  const snapshots: ThreadSnapshot[] = []
  const sample = () => { snapshots.push(node.threads()) }
  const run = await measure(node, 'node', layout, GRID_WINDOW, t, { ...accounts, onMeasureStart: sample, onMeasureEnd: sample })
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
  const threads = r.threads.map((u) => `${u.role}${u.role === 'other' ? ` (${u.threads})` : ''} ${u.busyPercent.toFixed(0)} % ${u.cpuUsPerPacket.toFixed(1)} ` +
    `${(1000 * u.sleepsPerPacket).toFixed(0)}`)
  const vanished = r.vanishedThreads > 0 ? `      ${r.vanishedThreads} thread(s) exited mid-run: in the node's total, in no row\n` : ''
  return describe(r) +
    `      threads (% busy, µs/packet, sleeps per 1000 packets): ${threads.join(', ')}; busiest ${r.busiest.role}\n${vanished}` +
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

/** Which layout the node picks by default on `cores` cores, and how it did against the grid's fastest. */
function defaultLayoutResult(runs: LayoutRun[], cores: number): DefaultLayoutResult {
  const layout = defaultLayout(cores)
  const fastest = runs.reduce<LayoutRun | null>((a, b) => (a === null || b.packetsPerSecond > a.packetsPerSecond ? b : a), null)
  const own = findLayout(runs, layout)
  return {
    cores,
    layout,
    fastest: fastest === null ? null : { ioThreads: fastest.ioThreads, shards: fastest.shards, packetsPerSecond: fastest.packetsPerSecond },
    packetsPerSecond: own?.packetsPerSecond ?? null,
    isFastest: own === undefined || fastest === null ? null : sameLayout(own, fastest),
  }
}

/** Section 2's paragraph on the default layout (console and Markdown). */
function describeDefaultLayout(d: DefaultLayoutResult): string {
  const elsewhere = PROJECTION_CORES.map((c) => `${layoutName(defaultLayout(c))} on ${c}`).join(', ')
  const rule = `(defaultLayout in src/config/load.ts; it picks ${elsewhere} cores)`
  const picks = `With IO_THREADS and SHARDS unset, the node picks ${layoutName(d.layout)} on this machine's ${d.cores} cores ${rule}.`
  if (d.fastest === null) return `${picks} No layout was measured in this run.`
  if (d.packetsPerSecond === null) {
    return `${picks} This run did not measure ${layoutName(d.layout)} (add it with --grid); of the layouts measured, ` +
      `${layoutName(d.fastest)} was the fastest (${fmt(d.fastest.packetsPerSecond)} packets/s).`
  }
  if (d.isFastest === true) return `${picks} It was the fastest layout measured in this run by packets/s (${fmt(d.packetsPerSecond)} packets/s).`
  const behind = (100 * (1 - d.packetsPerSecond / d.fastest.packetsPerSecond)).toFixed(0)
  return `${picks} It was not the fastest layout measured in this run by packets/s: ${layoutName(d.fastest)} was ` +
    `(${fmt(d.fastest.packetsPerSecond)} packets/s against the default's ${fmt(d.packetsPerSecond)}, ${behind} % fewer).`
}

async function layoutGrid(timing: Timing, grid: Layout[], cores: number, quick: boolean): Promise<LayoutGrid> {
  const t = { ...timing, warmupMs: Math.max(timing.warmupMs, quick ? GRID_WARMUP_MS.quick : GRID_WARMUP_MS.full) }
  log(`\n2. Layouts IO_THREADS×SHARDS ${grid.map(layoutName).join(', ')}: ${GRID_ACCOUNTS} senders → ${GRID_ACCOUNTS} receivers, W=${GRID_WINDOW} in all\n`)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const runs: LayoutRun[] = []
  try {
    const configPath = join(dir, 'config.json')
    const accounts = writeGridConfig(configPath)
    for (const layout of grid) {
      log(`  ${layoutName(layout)} … `)
      const node = await startNodeProcess({ ...layoutEnv(layout), CONFIG: configPath })
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
  const defaults = defaultLayoutResult(runs, cores)
  log(`  ${describeDefaultLayout(defaults)}\n`)
  return { runs, targets: targetResults(runs), defaultLayout: defaults }
}

/** The node's threads between two snapshots, per request (one request carries one prepare). */
function httpThreads(start: ThreadSnapshot, end: ThreadSnapshot, requests: number): { threads: HttpThreadUsage[]; vanished: number; busiest: HttpThreadUsage } {
  const { usage, vanished } = threadUsage(start, end, requests)
  const perRequest = (u: ThreadUsage): HttpThreadUsage => ({
    role: u.role, threads: u.threads, busyPercent: u.busyPercent, cpuUsPerRequest: u.cpuUsPerPacket, sleepsPerRequest: u.sleepsPerPacket,
  })
  return { threads: usage.map(perRequest), vanished, busiest: perRequest(busiestThread(usage)) }
}

function describeHttp(r: HttpRun): string {
  const line = `${fmt(r.requestsPerSecond)} requests/s, latency mean ${r.latencyMs.mean.toFixed(2)} ms, p99 ${r.latencyMs.p99} ms, server CPU ${r.serverCpuUsPerRequest.toFixed(1)} µs/request\n`
  if (r.threads === null || r.busiest === null) return line
  const threads = r.threads.map((u) => `${u.role}${u.role === 'other' ? ` (${u.threads})` : ''} ${u.busyPercent.toFixed(0)} % ${u.cpuUsPerRequest.toFixed(1)}`)
  const vanished = (r.vanishedThreads ?? 0) > 0 ? `      ${r.vanishedThreads} thread(s) exited mid-run: in the node's total, in no row\n` : ''
  return line + `      threads (% busy, µs/request): ${threads.join(', ')}; busiest ${r.busiest.role}\n${vanished}`
}

/** An HTTP thread row as threads.ts's ThreadUsage (one request carries one prepare). */
function perPacket(u: HttpThreadUsage): ThreadUsage {
  return { role: u.role, threads: u.threads, busyPercent: u.busyPercent, cpuUsPerPacket: u.cpuUsPerRequest, sleepsPerPacket: u.sleepsPerRequest }
}

/** A run of the node in the layout section 3's ratios against ilp-connector are taken from. */
function isHttpBaseline(r: HttpRun): boolean {
  return r.server === 'node' && r.ioThreads === HTTP_BASELINE.ioThreads && r.shards === HTTP_BASELINE.shards
}

/** Uneven CPU per request between a run's I/O threads, as a ratio of the most to the least. */
const IO_IMBALANCE = 1.25

/** Section 3's reading notes, from the figures (console and Markdown). */
function httpNotes(http: HttpRun[], nodeDefault: Layout): string[] {
  const notes: string[] = []
  if (http.some(isHttpBaseline)) {
    notes.push(`The ratios against ilp-connector are the ${layoutName(HTTP_BASELINE)} node's` +
      `${sameLayout(HTTP_BASELINE, nodeDefault) ? ', the layout the node picks by default on this machine' : ` (the node picks ${layoutName(nodeDefault)} by default on this machine)`}.`)
  }
  const multi = http.filter((r) => r.server === 'node' && (r.ioThreads ?? 1) > 1 && r.threads !== null)
  if (multi.length > 0) {
    const spread = multi.map((r) => {
      const io = r.threads!.filter((u) => u.role.startsWith('io-')).sort((a, b) => b.cpuUsPerRequest - a.cpuUsPerRequest)
      return { r, io, ratio: io.length >= 2 ? io[0].cpuUsPerRequest / io[io.length - 1].cpuUsPerRequest : null }
    })
    const figures = spread.map(({ r, io }) => `at ${r.connections} connections (${serverLabel(r)}) ` +
      (io.length === 0 ? 'no io rows' : io.map((u) => `${u.role} ${u.cpuUsPerRequest.toFixed(1)} µs/request (${u.busyPercent.toFixed(0)} % busy)`).join(', ')))
    const uneven = spread.filter((x) => x.ratio !== null && x.ratio >= IO_IMBALANCE)
    const heavy = new Set(uneven.map((x) => x.io[0].role))
    let reading: string
    if (spread.some((x) => x.io.length < 2)) {
      reading = 'A run with fewer than two io rows ran its sockets elsewhere, so the figures cannot show the split.'
    } else if (uneven.length === spread.length && heavy.size === 1) {
      reading = `The figures show it: ${[...heavy][0]} used ${uneven.map((x) => `${x.ratio!.toFixed(1)}×`).join(' and ')} the CPU per request ` +
        'of the least busy I/O thread, the outgoing side of every request on top of its share of the incoming connections.'
    } else if (uneven.length > 0) {
      reading = `The I/O threads' CPU per request differs by ${IO_IMBALANCE}× or more in ${uneven.length} of ${spread.length} runs, but not on the same ` +
        'thread in every run: how unevenly the kernel spread the incoming connections weighs as much as the outgoing side here.'
    } else {
      reading = `The figures do not show it: the I/O threads' CPU per request is within ${IO_IMBALANCE}× of each other in every run.`
    }
    notes.push('With IO_THREADS > 1 the kernel spreads autocannon\'s connections over the I/O threads (each listens on the shared port; ' +
      `the kernel picks one per connection by a hash, so ${Math.min(...HTTP_CONNECTIONS)} connections may split unevenly), while the node's ` +
      'outgoing HTTP requests go from the home I/O thread of the account they are for: in this bench every one is for bob, so all of them ' +
      `leave from one I/O thread. In this run: ${figures.join('; ')}. ${reading}`)
    const idle = multi.flatMap((r) => idleThreads(r.threads!.map(perPacket)).map((u) => `${u.role} at ${r.connections} connections`))
    if (idle.length > 0) {
      notes.push(`Named threads under ${IDLE_BUSY_PERCENT} % busy in the runs with I/O threads: ${idle.join(', ')}. ` +
        'With IO_THREADS > 1 the main thread runs only the control plane; a shard thread owns the accounts whose ids hash to it, ' +
        'and here one account (alice) sends every prepare.')
    }
  }
  return notes
}

async function httpForwarding(t: Timing, nodeDefault: Layout): Promise<HttpRun[]> {
  log(`\n3. ILP over HTTP: autocannon → server → bob (HTTP), node (${HTTP_LAYOUTS.map(layoutName).join(', ')}) and ilp-connector@23 alternating\n`)
  const bob = await startHttpReceiver('bob-token')
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const servers: { label: string; layout: Layout | null; proc: NodeProcess }[] = []
  try {
    const configPath = join(dir, 'config.json')
    writeFileSync(configPath, JSON.stringify({
      ilpAddress: 'test.ilpnode',
      accounts: {
        alice: { relation: 'child', assetCode: 'USD', assetScale: 9, http: { incomingToken: 'alice-token' } },
        bob: { relation: 'child', assetCode: 'USD', assetScale: 9, http: { url: `http://127.0.0.1:${bob.port}/`, outgoingToken: 'bob-token' } },
      },
    }))
    const [first, ...others] = HTTP_LAYOUTS
    // ilp-connector runs between the node's layouts, as beside the one layout before.
    servers.push({ label: 'node', layout: first, proc: await startNodeProcess({ ...layoutEnv(first), CONFIG: configPath }) })
    const refEnv = { TRANSPORT: 'http', ALICE_PORT: String(await freePort()), BOB_PORT: String(await freePort()), BOB_URL: `http://127.0.0.1:${bob.port}/` }
    servers.push({ label: 'ilp-connector', layout: null, proc: await startNodeProcess(refEnv, join(__dirname, 'reference_connector.js')) })
    for (const layout of others) servers.push({ label: 'node', layout, proc: await startNodeProcess({ ...layoutEnv(layout), CONFIG: configPath }) })
    const body = benchPrepare('test.ilpnode.bob')
    const runs: HttpRun[] = []
    let i = 0
    for (const connections of HTTP_CONNECTIONS) {
      for (const s of servers) {
        const label = s.layout === null ? s.label : `${s.label} (${layoutName(s.layout)})`
        log(`  [${++i}/${HTTP_CONNECTIONS.length * servers.length}] ${label.padEnd(13)} connections=${String(connections).padEnd(4)} … `)
        let cpuStart = 0
        let cpuEnd = 0
        const snapshots: ThreadSnapshot[] = []
        // The node's threads are sampled right after its process's CPU, over the same interval.
        const sample = () => { if (s.layout !== null) snapshots.push(s.proc.threads()) }
        const r = await runHttpLoad({
          url: `http://127.0.0.1:${s.proc.port}/ilp`,
          token: 'alice-token',
          connections,
          durationMs: t.durationMs,
          maxRequests: t.maxPackets,
          warmupMs: t.warmupMs,
          body,
          onMeasureStart: () => { cpuStart = s.proc.cpuMicros(); sample() },
          onMeasureEnd: () => { cpuEnd = s.proc.cpuMicros(); sample() },
        }, bob)
        const perThread = s.layout === null ? null : httpThreads(snapshots[0], snapshots[1], r.requests)
        const run: HttpRun = {
          server: s.label,
          ioThreads: s.layout?.ioThreads ?? null,
          shards: s.layout?.shards ?? null,
          ...r,
          serverCpuUsPerRequest: (cpuEnd - cpuStart) / r.requests,
          serverCoresBusy: (cpuEnd - cpuStart) / 1e6 / r.seconds,
          threads: perThread?.threads ?? null,
          vanishedThreads: perThread?.vanished ?? null,
          busiest: perThread?.busiest ?? null,
        }
        runs.push(run)
        log(describeHttp(run))
      }
    }
    for (const note of httpNotes(runs, nodeDefault)) log(`  ${note}\n`)
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

async function payPayee(t: Timing, nodeLayout: Layout): Promise<PayeeRuns> {
  log(`\n4. Pay a payee: PSK2 requests carol → node (${layoutName(nodeLayout)}) → payee shop, alone and beside forwarding\n`)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const child = (token: string) => ({ relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token } })
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify({
    ilpAddress: 'test.ilpnode',
    accounts: { alice: child('alice-token'), bob: child('bob-token'), carol: child('carol-token') },
    payees: { shop: {} },
  }))
  const node = await startNodeProcess({ ...layoutEnv(nodeLayout), CONFIG: configPath })
  try {
    const url = `http://127.0.0.1:${node.port}/shop`
    const carol = [{ user: 'carol', token: 'carol-token' }]
    const alone: Run[] = []
    for (const window of [1, 100]) {
      log(`  payee alone, W=${window} … `)
      const run = await measure(node, 'node', nodeLayout, window, t, { senders: carol, prepare: await payeePrepare(url, t), receiver: false })
      alone.push(run)
      log(describe(run))
    }
    log('  forwarding W=100 and the payee W=10 at once … ')
    const prepare = await payeePrepare(url, t)
    const [forwarding, payee] = await Promise.all([
      measure(node, 'node', nodeLayout, 100, t),
      measure(node, 'node', nodeLayout, 10, t, { senders: carol, prepare, receiver: false }),
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

async function shopRoutes(t: Timing, nodeLayout: Layout): Promise<ShopRun[]> {
  log(`\n5. The shop: autocannon on a paid route (token pre-funded) and the same route free, node (${layoutName(nodeLayout)})\n`)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify({
    ilpAddress: 'test.ilpnode',
    accounts: { carol: { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'carol-token' } } },
    shop: { routes: [{ method: 'GET', path: '/paid', price: '1', response: 'ok\n' }, { method: 'GET', path: '/free', price: '0', response: 'ok\n' }] },
  }))
  const node = await startNodeProcess({ ...layoutEnv(nodeLayout), CONFIG: configPath })
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

async function micro(quick: boolean): Promise<{ codecs: MicroResult[]; ring: RingResult; wake: WakeResult[] }> {
  log('\n6. Micro-benchmarks (benchmark.js)\n')
  const codecs = runCodecBenchmarks(quick ? 0.25 : 1)
  log('  ring between two threads (100-byte records) … ')
  const ring = await runRingBenchmark(quick ? 200_000 : 1_000_000)
  log(`${fmt(ring.oneWayRecordsPerSecond)} records/s; round trip p50 ${ring.roundTrip.map((r) => `${r.batch}: ${r.p50Us.toFixed(1)} µs`).join(', ')}\n`)
  log('  wake-ups between two sleeping threads … ')
  const wake = await runWakeBenchmark(quick ? 5_000 : 20_000)
  log(`${wake.map(describeWake).join('; ')}\n`)
  return { codecs, ring, wake }
}

function describeWake(w: WakeResult): string {
  return `${w.how}, ${w.placement}: ${w.wallUs.toFixed(1)} µs and ${w.cpuUs.toFixed(1)} µs of CPU per round trip (two wake-ups)`
}

function byServer(runs: Run[], server: string, window: number): Run | undefined {
  return runs.find((r) => r.server === server && r.window === window)
}

type Machine = {
  cores: number
  cpu: string | undefined
  memoryBytes: number
  node: string
  platform: string
  /** os.availableParallelism(): the cores the node sizes its default layout by. */
  availableParallelism: number
  /** The layout the node picks with IO_THREADS and SHARDS unset (sections 1, 4 and 5 run it). */
  defaultLayout: Layout
}

/** Every section's results, under the names the JSON file gives them; a section not run is absent. */
interface Results {
  sideBySide?: Run[]
  layoutGrid?: LayoutGrid
  httpForwarding?: HttpRun[]
  payPayee?: PayeeRuns
  shop?: ShopRun[]
  micro?: { codecs: MicroResult[]; ring: RingResult; wake: WakeResult[] }
  metricsCost?: MetricsCost
  exchangeCost?: ExchangeCost
}

/** Section 7: forwarding with the /metrics counters on and off, in alternating runs. */
interface MetricsCost {
  layout: Layout
  runs: (Run & { metrics: boolean })[]
  /** Mean packets/s with metrics on over off; and the same for CPU per packet. */
  packetsPerSecondRatio: number
  cpuPerPacketRatio: number
}

const METRICS_PAIRS = 3
/** The project's bound on what the counters may cost forwarding (packets/s, on against off). */
const METRICS_MAX_LOSS = 0.03

/**
 * Runs the node with each config in turn, `pairs` times over at W=100, alternating which goes
 * first so that a drift of the host's speed falls on both; each run tagged with its config's name.
 */
async function alternatingRuns<V>(
  name: string, variants: { tag: V; label: string; config: Record<string, unknown> }[], layout: Layout, pairs: number, t: Timing, extra: MeasureOptions = {},
): Promise<(Run & { tag: V })[]> {
  const dir = mkdtempSync(join(tmpdir(), `ilp-node-bench-${name}-`))
  const runs: (Run & { tag: V })[] = []
  try {
    const nodes: { tag: V; label: string; proc: NodeProcess }[] = []
    for (const [i, v] of variants.entries()) {
      const path = join(dir, `${name}-${i}.json`)
      writeFileSync(path, JSON.stringify(v.config))
      nodes.push({ tag: v.tag, label: v.label, proc: await startNodeProcess({ ...layoutEnv(layout), CONFIG: path }) })
    }
    try {
      for (let pair = 0; pair < pairs; pair++) {
        for (const n of pair % 2 === 0 ? nodes : [...nodes].reverse()) {
          log(`  [${runs.length + 1}/${variants.length * pairs}] ${n.label} … `)
          const run = { ...(await measure(n.proc, 'node', layout, 100, t, extra)), tag: n.tag }
          runs.push(run)
          log(describe(run))
        }
      }
    } finally {
      for (const n of nodes) await n.proc.stop()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return runs
}

function meanOf<T>(runs: T[], keep: (r: T) => boolean, f: (r: T) => number): number {
  const xs = runs.filter(keep).map(f)
  return xs.reduce((a, b) => a + b, 0) / xs.length
}

async function metricsCost(t: Timing, layout: Layout): Promise<MetricsCost> {
  log(`\n7. Metrics: node (${layoutName(layout)}) alice → bob at W=100 with the counters on and off, ${METRICS_PAIRS} alternating pairs\n`)
  const variants = [true, false].map((metrics) => ({ tag: metrics, label: `metrics ${metrics ? 'on ' : 'off'}`, config: { ...EMBEDDED_DEFAULT_CONFIG, metrics: { enabled: metrics } } }))
  const runs = (await alternatingRuns('metrics', variants, layout, METRICS_PAIRS, t)).map(({ tag, ...run }) => ({ ...run, metrics: tag }))
  const mean = (on: boolean, f: (r: Run) => number) => meanOf(runs, (r) => r.metrics === on, f)
  const result = {
    layout,
    runs,
    packetsPerSecondRatio: mean(true, (r) => r.packetsPerSecond) / mean(false, (r) => r.packetsPerSecond),
    cpuPerPacketRatio: mean(true, (r) => r.serverCpuUsPerPacket) / mean(false, (r) => r.serverCpuUsPerPacket),
  }
  log(`  ${describeMetricsCost(result)}\n`)
  return result
}

/** Section 8: forwarding within one asset, and across assets with a rate and a spread, in alternating runs. */
interface ExchangeCost {
  layout: Layout
  runs: (Run & { exchange: boolean })[]
  /** Mean node CPU per packet across assets less within one asset (µs). */
  cpuPerPacketDeltaUs: number
  packetsPerSecondRatio: number
}

const EXCHANGE_PAIRS = 3
/** The project's bound on what the rate and the fee may cost a packet (node CPU, µs). */
const EXCHANGE_MAX_DELTA_US = 1
/** 1000 units: USD → EUR at 0.9173 with a 0.2 % spread gives bob 915, not a unit lost to R01. */
const EXCHANGE_PREPARE_AMOUNT = 1000n

async function exchangeCost(t: Timing, layout: Layout): Promise<ExchangeCost> {
  log(`\n8. Exchange: node (${layoutName(layout)}) alice → bob at W=100, USD → USD and USD → EUR (static rate, 0.2 % spread), ${EXCHANGE_PAIRS} alternating pairs\n`)
  const eur = { ...EMBEDDED_DEFAULT_CONFIG.accounts.bob, assetCode: 'EUR' }
  const crossAsset = { ...EMBEDDED_DEFAULT_CONFIG, accounts: { ...EMBEDDED_DEFAULT_CONFIG.accounts, bob: eur }, rates: { backend: 'static', base: 'USD', table: { EUR: '0.9173' } }, spread: '0.002' }
  const variants = [
    { tag: false, label: 'USD → USD          ', config: { ...EMBEDDED_DEFAULT_CONFIG } },
    { tag: true, label: 'USD → EUR, spread  ', config: crossAsset },
  ]
  const runs = (await alternatingRuns('exchange', variants, layout, EXCHANGE_PAIRS, t, { amount: EXCHANGE_PREPARE_AMOUNT })).map(({ tag, ...run }) => ({ ...run, exchange: tag }))
  const mean = (on: boolean, f: (r: Run) => number) => meanOf(runs, (r) => r.exchange === on, f)
  const result = {
    layout,
    runs,
    cpuPerPacketDeltaUs: mean(true, (r) => r.serverCpuUsPerPacket) - mean(false, (r) => r.serverCpuUsPerPacket),
    packetsPerSecondRatio: mean(true, (r) => r.packetsPerSecond) / mean(false, (r) => r.packetsPerSecond),
  }
  log(`  ${describeExchangeCost(result)}\n`)
  return result
}

function describeExchangeCost(m: ExchangeCost): string {
  return `Across assets with a spread: ${m.cpuPerPacketDeltaUs >= 0 ? '+' : ''}${m.cpuPerPacketDeltaUs.toFixed(2)} µs of node CPU per packet, ${(100 * m.packetsPerSecondRatio).toFixed(1)} % of the packets/s ` +
    `(means of ${EXCHANGE_PAIRS} runs each): ${m.cpuPerPacketDeltaUs <= EXCHANGE_MAX_DELTA_US ? '✓ within' : '✗ beyond'} the ${EXCHANGE_MAX_DELTA_US} µs the project allows.`
}

function exchangeCostMarkdown(m: ExchangeCost): string[] {
  return [
    `## Exchange and fee: node (${layoutName(m.layout)}) alice → bob, W=100`, '',
    markdownTable(['run', 'bob\'s asset', 'packets/s', 'p50 µs', 'p99 µs', 'node CPU µs/packet'],
      m.runs.map((r, i) => [i + 1, r.exchange ? 'EUR (rate, spread)' : 'USD', fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p99Us), r.serverCpuUsPerPacket.toFixed(2)])), '',
    describeExchangeCost(m) + ` Each prepare is ${EXCHANGE_PREPARE_AMOUNT} units; across assets bob gets floor(${EXCHANGE_PREPARE_AMOUNT} × 0.9173 × 0.998).`, '',
  ]
}

function describeMetricsCost(m: MetricsCost): string {
  const loss = 1 - m.packetsPerSecondRatio
  return `With metrics on: ${(100 * m.packetsPerSecondRatio).toFixed(1)} % of the packets/s with them off, ${(100 * m.cpuPerPacketRatio).toFixed(1)} % of the CPU per packet ` +
    `(means of ${METRICS_PAIRS} runs each): ${loss <= METRICS_MAX_LOSS ? '✓ within' : '✗ beyond'} the ${100 * METRICS_MAX_LOSS} % the project allows.`
}

function metricsCostMarkdown(m: MetricsCost): string[] {
  return [
    `## Metrics on and off: node (${layoutName(m.layout)}) alice → bob, W=100`, '',
    markdownTable(['run', 'metrics', 'packets/s', 'p50 µs', 'p99 µs', 'node CPU µs/packet'],
      m.runs.map((r, i) => [i + 1, r.metrics ? 'on' : 'off', fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p99Us), r.serverCpuUsPerPacket.toFixed(2)])), '',
    describeMetricsCost(m) + ' Metrics on: every shard and I/O thread counts into shared memory; nothing is gathered unless /metrics is scraped (it is not, here).', '',
  ]
}

function sideBySideMarkdown(side: Run[], stamp: string): string[] {
  return [
    '## Side by side: BTP alice → server → bob', '',
    markdownTable(
      ['server', 'W', 'packets/s', 'p50 µs', 'p90 µs', 'p99 µs', 'server CPU µs/packet', 'generator CPU µs/packet'],
      side.map((r) => [serverLabel(r), r.window, fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p90Us), fmt(r.p99Us), r.serverCpuUsPerPacket.toFixed(1), r.generatorCpuUsPerPacket.toFixed(1)]),
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
  lines.push(describeDefaultLayout(grid.defaultLayout), '')
  lines.push('### CPU per thread', '')
  lines.push(markdownTable(
    ['IO_THREADS×SHARDS', 'thread', '% busy', 'CPU µs/packet', 'sleeps per 1000 packets'],
    grid.runs.flatMap((r) => r.threads.map((u) => [layoutName(r), u.role === 'other' ? `other (${u.threads} threads)` : u.role, u.busyPercent.toFixed(0),
      u.cpuUsPerPacket.toFixed(1), (1000 * u.sleepsPerPacket).toFixed(0)])),
  ), '')
  lines.push('Threads by the names the node gives them in /proc: main is the control plane (with IO_THREADS=1 also all socket I/O, ' +
    'with SHARDS=0 also the inline shard), io-n a socket I/O thread, shard-n a shard worker; other is every unnamed thread together ' +
    '(V8 platform workers, the libuv pool, GC helpers). % busy is CPU time (utime + stime) over wall time, in % of one core. ' +
    'Sleeps are the threads\' voluntary context switches (/proc/<pid>/task/<tid>/status): each is a time a thread ran out of work, ' +
    'blocked, and had to be woken again; the micro-benchmarks below give what a wake-up costs on this machine. ' +
    'A layout with IO_THREADS > 1 but no io rows ran its sockets on the main thread (a node without I/O threads).', '')
  for (const r of grid.runs.filter((x) => x.vanishedThreads > 0)) {
    lines.push(`${layoutName(r)}: ${r.vanishedThreads} thread(s) exited mid-run; their CPU is in the node's figures but in no thread row.`, '')
  }
  lines.push('### Projection: packets/s on C cores', '')
  lines.push(markdownTable(
    ['IO_THREADS×SHARDS', 'threads needing a core', ...PROJECTION_CORES.map((c) => `C=${c}`)],
    grid.runs.map((r) => [layoutName(r), coreThreads(r), ...r.projections.map(describeProjection)]),
  ), '')
  lines.push('Model: each busy named thread (main, io-n, shard-n) gets a core of its own; a thread\'s ceiling is 1e6 / its µs per packet; ' +
    'the node\'s projected packets/s is the lowest ceiling of its busy named threads, capped at C × 1e6 / the whole node\'s µs per packet ' +
    '(all threads, the unnamed and the idle too, share the C cores). In brackets: what caps it (a thread, or the cores). ' +
    `A named thread under ${IDLE_BUSY_PERCENT} % busy is idle and needs no core of its own (e.g. the main thread with IO_THREADS > 1, ` +
    'which then runs only the control plane): it does not count toward the threads that must fit in C cores, though its CPU is in the ' +
    'whole node\'s. A layout with more busy named threads than C needs more cores. **This assumes a thread\'s cost per packet stays the same when it gets its own core** ' +
    `(here all threads and the load generator share ${machine.cores} cores, so wake-ups, spinning and cache effects differ), ` +
    '**and that the load generator runs elsewhere**.', '')
  lines.push(...targetsMarkdown(grid.targets))
  return lines
}

/** The named threads a projection gives a core each, and the idle ones it leaves out: "4 (main idle)". */
function coreThreads(r: LayoutRun): string {
  const idle = idleThreads(r.threads)
  const busy = namedThreads(r.threads).length - idle.length
  return idle.length === 0 ? String(busy) : `${busy} (${idle.map((u) => u.role).join(', ')} idle)`
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

function httpMarkdown(http: HttpRun[], nodeDefault: Layout): string[] {
  const baseOf = (r: HttpRun) => http.find((x) => isHttpBaseline(x) && x.connections === r.connections)
  const nodeRuns = http.filter((r) => r.threads !== null)
  return [
    '## ILP over HTTP: autocannon → server → bob (HTTP)', '',
    markdownTable(
      ['server', 'connections', 'requests/s', 'mean ms', 'p50 ms', 'p90 ms', 'p99 ms', 'server CPU µs/request', 'ratio node / reference', `node / node (${layoutName(HTTP_BASELINE)})`],
      http.map((r) => {
        const ref = http.find((x) => x.server === 'ilp-connector' && x.connections === r.connections)
        // The ratios against the reference are the baseline layout's alone, as before the layouts.
        const ratio = isHttpBaseline(r) && ref !== undefined ? `${(r.requestsPerSecond / ref.requestsPerSecond).toFixed(1)}× req/s, 1/${(ref.serverCpuUsPerRequest / r.serverCpuUsPerRequest).toFixed(1)} CPU` : ''
        const base = baseOf(r)
        const vsBase = r.server === 'node' && !isHttpBaseline(r) && base !== undefined
          ? `${(r.requestsPerSecond / base.requestsPerSecond).toFixed(2)}× req/s, ${(r.serverCpuUsPerRequest / base.serverCpuUsPerRequest).toFixed(2)}× CPU` : ''
        return [serverLabel(r), r.connections, fmt(r.requestsPerSecond), r.latencyMs.mean.toFixed(2), r.latencyMs.p50, r.latencyMs.p90, r.latencyMs.p99,
          r.serverCpuUsPerRequest.toFixed(1), ratio, vsBase]
      }),
    ), '',
    'Each request is one prepare; the server forwards it over its keep-alive HTTP connections to bob. ' +
      'autocannon (in the bench process, with bob) shares the machine and measures latency in whole milliseconds.', '',
    '### The node\'s CPU per thread', '',
    markdownTable(
      ['node', 'connections', 'thread', '% busy', 'CPU µs/request'],
      nodeRuns.flatMap((r) => [
        ...r.threads!.map((u) => [serverLabel(r), r.connections,
          `${u.role === 'other' ? `other (${u.threads} threads)` : u.role}${u.role === r.busiest!.role ? ' (busiest)' : ''}`,
          u.busyPercent.toFixed(0), u.cpuUsPerRequest.toFixed(1)]),
        [serverLabel(r), r.connections, '**whole node**', (100 * r.serverCoresBusy).toFixed(0), r.serverCpuUsPerRequest.toFixed(1)],
      ]),
    ), '',
    'Threads as in the layouts\' table: main is the control plane (with IO_THREADS=1 also all socket I/O, with SHARDS=0 also the ' +
      'inline shard), io-n a socket I/O thread, shard-n a shard worker, other every unnamed thread together. % busy is CPU time over ' +
      'wall time in % of one core; the whole node\'s row is the process\'s CPU (its exited threads too), so its % can pass 100. ' +
      'The busiest thread is the named one with the most CPU per request.', '',
    ...nodeRuns.filter((r) => (r.vanishedThreads ?? 0) > 0)
      .flatMap((r) => [`${serverLabel(r)} at ${r.connections} connections: ${r.vanishedThreads} thread(s) exited mid-run; their CPU is in the whole node's row but in no thread row.`, '']),
    ...httpNotes(http, nodeDefault).flatMap((n) => [n, '']),
  ]
}

/** The console summary's HTTP ratios: the baseline layout's node against ilp-connector. */
function httpVsReferenceMarkdown(http: HttpRun[]): string[] {
  const rows = HTTP_CONNECTIONS.flatMap((c) => {
    const n = http.find((r) => isHttpBaseline(r) && r.connections === c)
    const ref = http.find((r) => r.server === 'ilp-connector' && r.connections === c)
    return n === undefined || ref === undefined ? [] : [[c, `${(n.requestsPerSecond / ref.requestsPerSecond).toFixed(1)}×`,
      `1/${(ref.serverCpuUsPerRequest / n.serverCpuUsPerRequest).toFixed(1)}`, (n.latencyMs.mean / ref.latencyMs.mean).toFixed(2)]]
  })
  return [
    `### ILP over HTTP: node (${layoutName(HTTP_BASELINE)}) / ilp-connector`, '',
    markdownTable(['connections', 'requests/s ratio', 'CPU per request ratio', 'mean latency ratio'], rows), '',
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

function microMarkdown(m: { codecs: MicroResult[]; ring: RingResult; wake: WakeResult[] }): string[] {
  return [
    '## Micro-benchmarks', '',
    markdownTable(['case', 'ops/s', '±%'], m.codecs.map((c) => [c.name, fmt(c.opsPerSecond), c.rme.toFixed(1)])), '',
    `Ring between two threads, 100-byte records: ${fmt(m.ring.oneWayRecordsPerSecond)} records/s one way (with echo); ` +
      `round trip p50/p99: ${m.ring.roundTrip.map((r) => `batch ${r.batch}: ${r.p50Us.toFixed(1)}/${r.p99Us.toFixed(1)} µs`).join('; ')}.`, '',
    'Wake-ups between two threads that sleep on their doorbells between turns (no records; the CPU of both threads per round trip, ' +
      'so the price of two sleeps and two wake-ups): ' + m.wake.map(describeWake).join('; ') + '. ' +
      'A layout\'s sleeps per packet (section 2) times half this CPU is roughly what its wake-ups cost per packet.', '',
  ]
}

function markdown(date: string, quick: boolean, machine: Machine, r: Results, stamp: string): string {
  return [
    `# ilp-node bench, ${date}${quick ? ' (quick)' : ''}`, '',
    `Machine: ${machine.cores} cores (${machine.cpu}), ${machine.node}. Load generator on the same machine. ` +
      `The node's default layout here (IO_THREADS×SHARDS, by its ${machine.availableParallelism} available cores): ${layoutName(machine.defaultLayout)}.`, '',
    ...(r.sideBySide ? sideBySideMarkdown(r.sideBySide, stamp) : []),
    ...(r.layoutGrid ? layoutGridMarkdown(r.layoutGrid, machine) : []),
    ...(r.httpForwarding ? httpMarkdown(r.httpForwarding, machine.defaultLayout) : []),
    ...(r.payPayee ? payeeMarkdown(r.payPayee) : []),
    ...(r.shop ? shopMarkdown(r.shop) : []),
    ...(r.micro ? microMarkdown(r.micro) : []),
    ...(r.metricsCost ? metricsCostMarkdown(r.metricsCost) : []),
    ...(r.exchangeCost ? exchangeCostMarkdown(r.exchangeCost) : []),
  ].join('\n')
}

const COLORS: Record<string, string> = { node: '#1f77b4', 'ilp-connector': '#d62728', relay: '#7f7f7f' }

function charts(side: Run[]): { throughput: string; latency: string } {
  const servers = ['node', 'ilp-connector', 'relay']
  const node = side.find((r) => r.server === 'node')
  const name = (s: string) => (s === 'relay' ? 'bare uWS relay' : s === 'node' && node !== undefined ? `ilp-${serverLabel(node)}` : s === 'node' ? 'ilp-node' : 'ilp-connector@23')
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

const SECTIONS = ['side', 'grid', 'http', 'payee', 'shop', 'micro', 'metrics', 'exchange'] as const
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
  const parallelism = availableParallelism()
  const nodeDefault = defaultLayout(parallelism)
  const machine: Machine = {
    cores: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem(), node: `Node ${process.version}`, platform: process.platform,
    availableParallelism: parallelism, defaultLayout: nodeDefault,
  }
  log(`ilp-node bench (${quick ? 'quick' : 'full'}${only === undefined ? '' : `, only ${only}`}): ${machine.cores} cores, ${machine.node}; ` +
    `the node's default layout here ${layoutName(nodeDefault)}\n`)
  const r: Results = {}
  if (sections.has('side')) r.sideBySide = await sideBySide(timing, nodeDefault)
  if (sections.has('grid')) r.layoutGrid = await layoutGrid(timing, grid, parallelism, quick)
  if (sections.has('http')) r.httpForwarding = await httpForwarding(timing, nodeDefault)
  if (sections.has('payee')) r.payPayee = await payPayee(timing, nodeDefault)
  if (sections.has('shop')) r.shop = await shopRoutes(timing, nodeDefault)
  if (sections.has('micro')) r.micro = await micro(quick)
  if (sections.has('metrics')) r.metricsCost = await metricsCost(timing, nodeDefault)
  if (sections.has('exchange')) r.exchangeCost = await exchangeCost(timing, nodeDefault)

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

  const summary = [
    ...(r.sideBySide ? nodeVsReferenceMarkdown(r.sideBySide) : []),
    ...(r.layoutGrid ? targetsMarkdown(r.layoutGrid.targets) : []),
    ...(r.httpForwarding ? httpVsReferenceMarkdown(r.httpForwarding) : []),
  ]
  log(`\n${summary.join('\n')}`)
  log(`\nwrote ${join(dir, stamp)}.{json,md}${svg !== null ? ' and -{throughput,latency}.svg' : ''} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
}

main().catch((err: Error) => {
  process.stderr.write(`\nbench failed: ${err.message}\n`)
  process.exit(1)
})
