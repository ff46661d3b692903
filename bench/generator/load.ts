// Our load generator. Over BTP, senders (alice by default) keep W prepares outstanding to a
// server, each to its own receiver (bob by default), and every receiver fulfills each prepare
// that reaches it; over HTTP, keep-alive connections each keep one request outstanding.
// The connections are shared out over `procs` generator processes (generator_process.ts); this
// side forks them, tells them when to warm up, measure and stop, adds up their counts, and reads
// their CPU from /proc as the bench reads the server's, so a run reports the generator's CPU per
// packet beside the server's and says when the generator, not the server, was the limit. Every run is bounded by a packet count and a duration.

import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { encodePrepare } from '../../src/codec/ilp_packet'
import { parseStat } from '../../src/control/threads/thread_stats'
import { busiestThreadPercent, snapshotThreads } from '../threads'
import { BENCH_CONDITION, type FromGenerator, type GeneratorCounts, type GeneratorJob, type ToGenerator } from './generator_process'
import { encodeRequest } from './http_socket'
import { addLatencyCounts, latencyPercentile, newLatencyCounts } from './latency_histogram'

export interface LoadResult {
  window: number
  senders: number
  packets: number
  fulfilled: number
  rejected: number
  seconds: number
  packetsPerSecond: number
  p50Us: number
  p90Us: number
  p99Us: number
  /** The generator's processes, all their threads, per packet. */
  generatorCpuUsPerPacket: number
  generatorProcs: number
  /** The busiest thread of any generator process, in % of one core. */
  generatorBusiestThreadPercent: number
  /** The generator, not the server, may have set the pace: a thread of it at GENERATOR_LIMIT_PERCENT or more. */
  generatorLimited: boolean
  /** Latency at every whole percentile, 0..100, in µs (the chart's distribution). */
  latencyPercentilesUs: number[]
}

export interface BtpAccount {
  user: string
  token: string
}

export interface LoadOptions {
  port: number
  /** The receivers' port when the server listens per account (ilp-plugin-btp listeners); default `port`. */
  bobPort?: number
  /** Where prepares go, unless their sender names its own destination. */
  destination: string
  window: number
  durationMs: number
  maxPackets: number
  warmupMs: number
  /** Generator processes to share the connections out over (default 1). */
  procs?: number
  /** The sending accounts (default alice); `window` is spread over them. */
  senders?: (BtpAccount & { destination?: string })[]
  /** The receiving accounts (default bob), each a connection that fulfills what reaches it. */
  receivers?: BtpAccount[]
  /** The prepare every sender sends (default: `amount` units to its destination, for a receiver to fulfill). */
  prepare?: Buffer
  /** The default prepare's amount (1 unit unless set). */
  amount?: bigint
  /** Connect the receivers and fulfill what reaches them (default true; false when a payee answers). */
  receiver?: boolean
  /**
   * HTTP in place of BTP: `connections` keep-alive connections (shared out over the processes),
   * one request outstanding each, `path` with `headers`. A POST is ILP over HTTP: its body is the
   * prepare, and an answer counts as fulfilled only if it is a Fulfill; a GET's answer counts if
   * it is a 2xx. `window`, `senders` and `receivers` are not used.
   */
  http?: { method: 'GET' | 'POST'; path: string; headers: Record<string, string>; connections: number }
  /** Called when measurement starts and ends (to sample the server's CPU over the same span). */
  onMeasureStart?: () => void
  onMeasureEnd?: () => void
}

/** A generator thread this busy (% of one core) could not have gone faster: the run measured the generator. */
export const GENERATOR_LIMIT_PERCENT = 90
/** Time for a generator process to start, connect and authenticate before the run gives up. */
const CONNECT_TIMEOUT_MS = 15_000

/** A forked generator process and the messages it has sent. */
interface Generator {
  child: ChildProcess
  next(kind: FromGenerator['kind']): Promise<FromGenerator>
  done: Promise<void>
}

/** Runs one bounded load run and returns its figures. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const jobs = shareOut(o)
  const generators = jobs.map(forkGenerator)
  try {
    await withTimeout(Promise.all(generators.map((g, i) => {
      g.child.send({ kind: 'connect', job: jobs[i] } satisfies ToGenerator)
      return g.next('ready')
    })), CONNECT_TIMEOUT_MS, 'the generator did not connect')
    return await measureRun(o, generators, jobs)
  } finally {
    for (const g of generators) g.child.kill()
  }
}

/** Warm-up, the measured span and the drain: the counts of the span and the generator's CPU over it. */
async function measureRun(o: LoadOptions, generators: Generator[], jobs: GeneratorJob[]): Promise<LoadResult> {
  const tell = (kind: 'start' | 'measure' | 'stop') => { for (const g of generators) g.child.send({ kind }) }
  tell('start')
  await sleep(o.warmupMs)
  tell('measure')
  const cpuStart = generatorCpuMicros(generators)
  const threadsStart = generators.map((g) => snapshotThreads(g.child.pid!))
  o.onMeasureStart?.()
  const started = performance.now()
  // Any process's share of the packets ends the span for all, so every count covers the same span.
  await Promise.race([sleep(o.durationMs), ...generators.map((g) => g.done)])
  tell('stop')
  const seconds = (performance.now() - started) / 1000
  const cpu = generatorCpuMicros(generators) - cpuStart
  const threadsEnd = generators.map((g) => snapshotThreads(g.child.pid!))
  o.onMeasureEnd?.()
  const results = await withTimeout(Promise.all(generators.map((g) => g.next('result'))), 30_000, 'the generator did not report')
  const counts = sumCounts(results.filter((m): m is FromGenerator & { kind: 'result' } => m.kind === 'result'))
  const busiest = Math.max(...threadsStart.map((s, i) => busiestThreadPercent(s, threadsEnd[i])))
  return {
    window: o.http?.connections ?? o.window,
    senders: o.http?.connections ?? jobs.reduce((n, j) => n + j.senders.length, 0),
    packets: counts.packets,
    fulfilled: counts.fulfilled,
    rejected: counts.rejected,
    seconds,
    packetsPerSecond: counts.packets / seconds,
    p50Us: latencyPercentile(counts.latencyCounts, 0.5),
    p90Us: latencyPercentile(counts.latencyCounts, 0.9),
    p99Us: latencyPercentile(counts.latencyCounts, 0.99),
    generatorCpuUsPerPacket: counts.packets > 0 ? cpu / counts.packets : 0,
    generatorProcs: generators.length,
    generatorBusiestThreadPercent: busiest,
    generatorLimited: busiest >= GENERATOR_LIMIT_PERCENT,
    latencyPercentilesUs: Array.from({ length: 101 }, (_, i) => latencyPercentile(counts.latencyCounts, i / 100)),
  }
}

/**
 * Each generator process's senders and receivers. The connections are dealt out in turn, a
 * sender then its receiver, so with two processes one plays every sender and the other every
 * receiver; a process dealt nothing is not started.
 */
function shareOut(o: LoadOptions): GeneratorJob[] {
  if (o.http !== undefined) return shareOutHttp(o, o.http)
  const senders = o.senders ?? [{ user: 'alice', token: 'alice-token' }]
  const receivers = o.receiver === false ? [] : o.receivers ?? [{ user: 'bob', token: 'bob-token' }]
  const procs = Math.max(1, o.procs ?? 1)
  const jobs: GeneratorJob[] = Array.from({ length: procs }, () => ({ port: o.port, bobPort: o.bobPort ?? o.port, senders: [], receivers: [], http: null, maxPackets: 0 }))
  const prepares = preparesFor(o)
  let dealt = 0
  for (let i = 0; i < Math.max(senders.length, receivers.length); i++) {
    if (i < senders.length) {
      const s = senders[i]
      jobs[dealt++ % procs].senders.push({ user: s.user, token: s.token, prepare: prepares(s.destination ?? o.destination), window: windowOf(i, senders.length, o.window) })
    }
    if (i < receivers.length) jobs[dealt++ % procs].receivers.push(receivers[i])
  }
  const used = jobs.filter((j) => j.senders.length + j.receivers.length > 0)
  const sending = used.filter((j) => j.senders.length > 0).length
  for (const j of used) j.maxPackets = j.senders.length > 0 ? Math.ceil(o.maxPackets / sending) : 0
  return used
}

/** HTTP: the connections dealt out evenly, one tag per process. */
function shareOutHttp(o: LoadOptions, http: NonNullable<LoadOptions['http']>): GeneratorJob[] {
  const procs = Math.max(1, Math.min(o.procs ?? 1, http.connections))
  const ilp = http.method === 'POST'
  const body = ilp ? preparesFor(o)(o.destination) : null
  const request = encodeRequest(http.method, o.port, http.path, http.headers, body)
  // A prepare's data is its last field: the tag takes its last 8 bytes.
  const tagOffset = ilp ? request.length - 8 : -1
  return Array.from({ length: procs }, (_, i) => ({
    port: o.port, bobPort: o.port, senders: [], receivers: [], maxPackets: Math.ceil(o.maxPackets / procs),
    http: { request, tagOffset, connections: windowOf(i, procs, http.connections), tag: i + 1, ilp },
  }))
}

/** Sender `i`'s share of the window `w` over `n` senders (at least one prepare each). */
function windowOf(i: number, n: number, w: number): number {
  return Math.max(1, Math.floor(w / n) + (i < w % n ? 1 : 0))
}

/** The prepare for each destination: `o.prepare`, or `o.amount` units whose expiry covers the whole run. */
function preparesFor(o: LoadOptions): (destination: string) => Buffer {
  const expiresAtMs = Date.now() + o.warmupMs + o.durationMs + 30_000
  const cache = new Map<string, Buffer>()
  return (destination) => {
    let prepare = cache.get(destination)
    if (prepare === undefined) {
      prepare = o.prepare ?? encodePrepare({ amount: o.amount ?? 1n, expiresAtMs, executionCondition: BENCH_CONDITION, destination, data: Buffer.alloc(0) })
      cache.set(destination, prepare)
    }
    return prepare
  }
}

function forkGenerator(): Generator {
  // Buffers and typed arrays cross the IPC channel as they are with the advanced serialization.
  const child = fork(join(__dirname, 'generator_process.js'), [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const waiting = new Map<string, (m: FromGenerator) => void>()
  const arrived = new Map<string, FromGenerator>()
  let fail: (err: Error) => void = () => {}
  const failed = new Promise<never>((_, reject) => { fail = reject })
  failed.catch(() => {})
  child.on('message', (m: FromGenerator) => {
    if (m.kind === 'failed') return fail(new Error(`generator: ${m.message}`))
    const resolve = waiting.get(m.kind)
    if (resolve === undefined) arrived.set(m.kind, m)
    else resolve(m)
  })
  child.once('exit', (code) => fail(new Error(`generator process exited (code ${code})`)))
  const next = (kind: FromGenerator['kind']) => {
    const early = arrived.get(kind)
    if (early !== undefined) {
      arrived.delete(kind)
      return Promise.resolve(early)
    }
    return Promise.race([failed, new Promise<FromGenerator>((resolve) => waiting.set(kind, (m) => { waiting.delete(kind); resolve(m) }))])
  }
  const done = next('done').then(() => {}, () => new Promise<void>(() => {}))
  return { child, next, done }
}

function sumCounts(results: GeneratorCounts[]): GeneratorCounts {
  const sum = { packets: 0, fulfilled: 0, rejected: 0, latencyCounts: newLatencyCounts() }
  for (const r of results) {
    sum.packets += r.packets
    sum.fulfilled += r.fulfilled
    sum.rejected += r.rejected
    addLatencyCounts(sum.latencyCounts, r.latencyCounts)
  }
  return sum
}

/** All generator processes' CPU so far (every thread, the exited too), in µs. */
function generatorCpuMicros(generators: Generator[]): number {
  return generators.reduce((sum, g) => sum + parseStat(readFileSync(`/proc/${g.child.pid}/stat`, 'utf8')).cpuMicros, 0)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}
