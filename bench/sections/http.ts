// Section 3, ILP over HTTP: our generator POSTs prepares (RFC 35) to this node (layouts 1×0 and 2×2),
// to ilp-connector with ilp-plugin-http accounts and to the bare HTTP relay (http_relay.ts: the
// node's own HTTP client, no ILP logic, the ceiling); each forwards them over HTTP to the same
// bob, who fulfills; runs alternate per connection count. The node's CPU per thread per request.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { benchPrepare, runHttpLoad, startHttpReceiver, type HttpRunResult } from '../http_load'
import { fmt, markdownTable } from '../report'
import { freePort, layoutEnv, layoutName, log, sameLayout, serverLabel, type Layout, type RunPlan } from '../runner'
import { startServerProcess, type ServerProcess } from '../server_process'
import { busiestThread, idleThreads, IDLE_BUSY_PERCENT, threadUsage, type ThreadSnapshot, type ThreadUsage } from '../threads'

export const HTTP_CONNECTIONS = [10, 100]

/** A thread's share of the node's work in section 3, as ThreadUsage per packet is in section 2. */
export interface HttpThreadUsage {
  /** main, io-<n>, shard-<n>, or other (all unnamed threads together). */
  role: string
  threads: number
  busyPercent: number
  cpuUsPerRequest: number
  sleepsPerRequest: number
}

export interface HttpRun extends HttpRunResult {
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
export const HTTP_BASELINE: Layout = { ioThreads: 1, shards: 0 }

export const HTTP_LAYOUTS: Layout[] = [HTTP_BASELINE, { ioThreads: 2, shards: 2 }]

/** The node's threads between two snapshots, per request (one request carries one prepare). */
export function httpThreads(start: ThreadSnapshot, end: ThreadSnapshot, requests: number): { threads: HttpThreadUsage[]; vanished: number; busiest: HttpThreadUsage } {
  const { usage, vanished } = threadUsage(start, end, requests)
  const perRequest = (u: ThreadUsage): HttpThreadUsage => ({
    role: u.role, threads: u.threads, busyPercent: u.busyPercent, cpuUsPerRequest: u.cpuUsPerPacket, sleepsPerRequest: u.sleepsPerPacket,
  })
  return { threads: usage.map(perRequest), vanished, busiest: perRequest(busiestThread(usage)) }
}

export function describeHttp(r: HttpRun): string {
  const generator = `generator ${r.generatorCpuUsPerRequest.toFixed(1)} µs/request${r.generatorLimited ? ` (⚠ a thread ${r.generatorBusiestThreadPercent.toFixed(0)} % busy: the generator may have set the pace)` : ''}`
  const line = `${fmt(r.requestsPerSecond)} requests/s, latency mean ${r.latencyMs.mean.toFixed(2)} ms, p99 ${r.latencyMs.p99.toFixed(2)} ms, server CPU ${r.serverCpuUsPerRequest.toFixed(1)} µs/request, ${generator}\n`
  if (r.threads === null || r.busiest === null) return line
  const threads = r.threads.map((u) => `${u.role}${u.role === 'other' ? ` (${u.threads})` : ''} ${u.busyPercent.toFixed(0)} % ${u.cpuUsPerRequest.toFixed(1)}`)
  const vanished = (r.vanishedThreads ?? 0) > 0 ? `      ${r.vanishedThreads} thread(s) exited mid-run: in the node's total, in no row\n` : ''
  return line + `      threads (% busy, µs/request): ${threads.join(', ')}; busiest ${r.busiest.role}\n${vanished}`
}

/** An HTTP thread row as threads.ts's ThreadUsage (one request carries one prepare). */
export function perPacket(u: HttpThreadUsage): ThreadUsage {
  return { role: u.role, threads: u.threads, busyPercent: u.busyPercent, cpuUsPerPacket: u.cpuUsPerRequest, sleepsPerPacket: u.sleepsPerRequest }
}

/** A run of the node in the layout section 3's ratios against ilp-connector are taken from. */
export function isHttpBaseline(r: HttpRun): boolean {
  return r.server === 'node' && r.ioThreads === HTTP_BASELINE.ioThreads && r.shards === HTTP_BASELINE.shards
}

/** Uneven CPU per request between a run's I/O threads, as a ratio of the most to the least. */
export const IO_IMBALANCE = 1.25

/** Section 3's reading notes, from the figures (console and Markdown). */
export function httpNotes(http: HttpRun[], nodeDefault: Layout): string[] {
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
    notes.push('With IO_THREADS > 1 the kernel spreads the generator\'s connections over the I/O threads (each listens on the shared port; ' +
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

export async function httpForwarding(t: RunPlan, nodeDefault: Layout): Promise<HttpRun[]> {
  log(`\n3. ILP over HTTP: generator → server → bob (HTTP), node (${HTTP_LAYOUTS.map(layoutName).join(', ')}), ilp-connector@23 and the bare HTTP relay alternating\n`)
  const bob = await startHttpReceiver('bob-token')
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const servers: { label: string; layout: Layout | null; proc: ServerProcess }[] = []
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
    servers.push({ label: 'node', layout: first, proc: await startServerProcess({ ...layoutEnv(first), CONFIG: configPath }) })
    const refEnv = { TRANSPORT: 'http', ALICE_PORT: String(await freePort()), BOB_PORT: String(await freePort()), BOB_URL: `http://127.0.0.1:${bob.port}/` }
    servers.push({ label: 'ilp-connector', layout: null, proc: await startServerProcess(refEnv, join(__dirname, '..', 'reference_connector.js')) })
    for (const layout of others) servers.push({ label: 'node', layout, proc: await startServerProcess({ ...layoutEnv(layout), CONFIG: configPath }) })
    const relayEnv = { UPSTREAM_URL: `http://127.0.0.1:${bob.port}/`, UPSTREAM_TOKEN: 'bob-token' }
    servers.push({ label: 'relay', layout: null, proc: await startServerProcess(relayEnv, join(__dirname, '..', 'http_relay.js')) })
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
          generatorProcs: t.generatorProcs,
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

export function httpMarkdown(http: HttpRun[], nodeDefault: Layout): string[] {
  const baseOf = (r: HttpRun) => http.find((x) => isHttpBaseline(x) && x.connections === r.connections)
  const nodeRuns = http.filter((r) => r.threads !== null)
  return [
    '## ILP over HTTP: generator → server → bob (HTTP)', '',
    markdownTable(
      ['server', 'connections', 'requests/s', 'mean ms', 'p50 ms', 'p90 ms', 'p99 ms', 'server CPU µs/request', 'generator CPU µs/request', 'ratio node / reference', `node / node (${layoutName(HTTP_BASELINE)})`, 'share of relay requests/s'],
      http.map((r) => {
        const ref = http.find((x) => x.server === 'ilp-connector' && x.connections === r.connections)
        // The ratios against the reference are the baseline layout's alone, as before the layouts.
        const ratio = isHttpBaseline(r) && ref !== undefined ? `${(r.requestsPerSecond / ref.requestsPerSecond).toFixed(1)}× req/s, 1/${(ref.serverCpuUsPerRequest / r.serverCpuUsPerRequest).toFixed(1)} CPU` : ''
        const base = baseOf(r)
        const vsBase = r.server === 'node' && !isHttpBaseline(r) && base !== undefined
          ? `${(r.requestsPerSecond / base.requestsPerSecond).toFixed(2)}× req/s, ${(r.serverCpuUsPerRequest / base.serverCpuUsPerRequest).toFixed(2)}× CPU` : ''
        const relay = relayOf(http, r.connections)
        const share = r.server === 'node' && relay !== undefined ? `${Math.round((100 * r.requestsPerSecond) / relay.requestsPerSecond)} %` : ''
        return [serverLabel(r), r.connections, fmt(r.requestsPerSecond), r.latencyMs.mean.toFixed(2), r.latencyMs.p50.toFixed(2), r.latencyMs.p90.toFixed(2), r.latencyMs.p99.toFixed(2),
          r.serverCpuUsPerRequest.toFixed(1), `${r.generatorCpuUsPerRequest.toFixed(1)}${r.generatorLimited ? ' ⚠' : ''}`, ratio, vsBase, share]
      }),
    ), '',
    'Each request is one prepare; the server forwards it over its keep-alive HTTP connections to bob. The relay takes any POST, ' +
      'relays its body to bob with the node\'s own HTTP client and answers bob\'s body: what HTTP alone costs on this machine. ' +
      'The generator (generator/, one process, one request outstanding per connection) and bob (in the bench process) share the machine; ' +
      'its CPU per request is the generator column, and ⚠ marks a run whose generator had a thread at 90 % busy or more (it may have set the pace).', '',
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
export function httpVsReferenceMarkdown(http: HttpRun[]): string[] {
  const rows = HTTP_CONNECTIONS.flatMap((c) => {
    const n = http.find((r) => isHttpBaseline(r) && r.connections === c)
    const ref = http.find((r) => r.server === 'ilp-connector' && r.connections === c)
    const relay = relayOf(http, c)
    return n === undefined || ref === undefined ? [] : [[c, `${(n.requestsPerSecond / ref.requestsPerSecond).toFixed(1)}×`,
      `1/${(ref.serverCpuUsPerRequest / n.serverCpuUsPerRequest).toFixed(1)}`, (n.latencyMs.mean / ref.latencyMs.mean).toFixed(2),
      n.serverCpuUsPerRequest.toFixed(1), relay === undefined ? '' : `${Math.round((100 * n.requestsPerSecond) / relay.requestsPerSecond)} %`]]
  })
  return [
    `### ILP over HTTP: node (${layoutName(HTTP_BASELINE)}) / ilp-connector`, '',
    markdownTable(['connections', 'requests/s ratio', 'CPU per request ratio', 'mean latency ratio', 'node CPU µs/request', 'share of relay requests/s'], rows), '',
  ]
}

/** The bare relay's run at `connections`, the ceiling a node's requests/s is read against. */
function relayOf(http: HttpRun[], connections: number): HttpRun | undefined {
  return http.find((r) => r.server === 'relay' && r.connections === connections)
}
