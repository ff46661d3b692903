// What every section of the bench shares: a run of the BTP load generator against a server
// with the server's CPU sampled over the same span, the layouts the node is started in, and the
// alternating runs that compare two configs of the node on a shared machine.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GENERATOR_LIMIT_PERCENT, runLoad, type LoadOptions, type LoadResult } from './generator/load'
import { fmt } from './report'
import { startServerProcess, type ServerProcess } from './server_process'

export interface Layout {
  ioThreads: number
  shards: number
}

/** The env that starts the node in `layout`. */
export function layoutEnv(layout: Layout): Record<string, string> {
  return { IO_THREADS: String(layout.ioThreads), SHARDS: String(layout.shards) }
}

export interface Run extends LoadResult {
  server: string
  /** The node's layout; null for the other servers. */
  ioThreads: number | null
  shards: number | null
  serverCpuUsPerPacket: number
  serverCoresBusy: number
}

/** How long each load run lasts, and how many generator processes make its load. */
export interface RunPlan {
  warmupMs: number
  durationMs: number
  maxPackets: number
  generatorProcs: number
}

export function log(line: string): void {
  process.stdout.write(line)
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

export type MeasureOptions = Pick<LoadOptions, 'bobPort' | 'senders' | 'receivers' | 'prepare' | 'amount' | 'receiver' | 'onMeasureStart' | 'onMeasureEnd'>

export async function measure(server: ServerProcess, label: string, layout: Layout | null, window: number, t: RunPlan, extra: MeasureOptions = {}): Promise<Run> {
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
    procs: t.generatorProcs,
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

export function describe(r: Run): string {
  return `${fmt(r.packetsPerSecond)} packets/s, p50 ${fmt(r.p50Us)} µs, p99 ${fmt(r.p99Us)} µs, server CPU ${r.serverCpuUsPerPacket.toFixed(1)} µs/packet, ` +
    `generator ${r.generatorCpuUsPerPacket.toFixed(1)}\n${generatorWarning(r)}`
}

/** The Markdown note on runs the generator may have limited (none if it limited none). */
export function generatorLimitNote(runs: (LoadResult & { what: string })[]): string[] {
  const limited = runs.filter((r) => r.generatorLimited)
  if (limited.length === 0) return []
  return [`⚠ **Generator-limited**: ${limited.map((r) => `${r.what} (${r.generatorBusiestThreadPercent.toFixed(0)} %)`).join(', ')}: a thread of the load ` +
    `generator was ${GENERATOR_LIMIT_PERCENT} % busy or more, so these runs measured the generator as much as the server; ` +
    'their packets/s are a floor. Give the generator more processes (--gen-procs) and cores.', '']
}

/** A line that says the generator, not the server, set the pace of `r` (empty if it did not). */
export function generatorWarning(r: LoadResult): string {
  if (!r.generatorLimited) return ''
  return `      ⚠ generator-limited: a generator thread was ${r.generatorBusiestThreadPercent.toFixed(0)} % busy; ` +
    'the server may go faster than this run shows (more --gen-procs, on more cores)\n'
}

export function layoutName(l: Layout): string {
  return `${l.ioThreads}×${l.shards}`
}

export function sameLayout(a: Layout, b: Layout): boolean {
  return a.ioThreads === b.ioThreads && a.shards === b.shards
}

/** A run's server as the tables name it: the node with its layout, "node (1×0)". */
export function serverLabel(r: { server: string; ioThreads: number | null; shards: number | null }): string {
  return r.server === 'node' && r.ioThreads !== null && r.shards !== null ? `node (${layoutName({ ioThreads: r.ioThreads, shards: r.shards })})` : r.server
}

export function byServer(runs: Run[], server: string, window: number): Run | undefined {
  return runs.find((r) => r.server === server && r.window === window)
}

export type Machine = {
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

/**
 * Runs the node with each config in turn, `pairs` times over at W=100, alternating which goes
 * first so that a drift of the host's speed falls on both; each run tagged with its config's name.
 */
export async function alternatingRuns<V>(
  name: string, variants: { tag: V; label: string; config: Record<string, unknown> }[], layout: Layout, pairs: number, t: RunPlan, extra: MeasureOptions = {},
): Promise<(Run & { tag: V })[]> {
  const dir = mkdtempSync(join(tmpdir(), `ilp-node-bench-${name}-`))
  const runs: (Run & { tag: V })[] = []
  try {
    const nodes: { tag: V; label: string; proc: ServerProcess }[] = []
    for (const [i, v] of variants.entries()) {
      const path = join(dir, `${name}-${i}.json`)
      writeFileSync(path, JSON.stringify(v.config))
      nodes.push({ tag: v.tag, label: v.label, proc: await startServerProcess({ ...layoutEnv(layout), CONFIG: path }) })
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

export function meanOf<T>(runs: T[], keep: (r: T) => boolean, f: (r: T) => number): number {
  const xs = runs.filter(keep).map(f)
  return xs.reduce((a, b) => a + b, 0) / xs.length
}
