// Section 2, layouts: the node with IO_THREADS × SHARDS = 1×0, 1×1, 2×2, 4×4 (or --grid), N senders
// each paying its own receiver at one window in all (--senders, --window); CPU per thread (main,
// io-n, shard-n, other), a projection of packets/s on more cores, the project's targets for 2×2
// and 4×4 against 1×0, and which layout the node picks by default here and whether it was the
// fastest measured. With --scale, the layouts and generator processes come from the core count and
// each layout's measured packets/s is set beside its projection on this machine's cores.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaultLayout } from '../../src/config/load'
import { GRID_ACCOUNTS, writeGridConfig } from '../grid_config'
import { fmt, markdownTable } from '../report'
import { describe, generatorLimitNote, layoutEnv, layoutName, log, measure, sameLayout, type Layout, type Machine, type Run, type RunPlan } from '../runner'
import { startServerProcess, type ServerProcess } from '../server_process'
import { busiestThread, idleThreads, IDLE_BUSY_PERCENT, namedThreads, project, projectSharing, threadUsage, type Projection, type ThreadSnapshot, type ThreadUsage } from '../threads'

/** Section 2's layouts: the inline shard (the targets' baseline), one shard worker, and I/O
 * threads with as many shards. */
export const LAYOUT_GRID: Layout[] = [{ ioThreads: 1, shards: 0 }, { ioThreads: 1, shards: 1 }, { ioThreads: 2, shards: 2 }, { ioThreads: 4, shards: 4 }]

/** Over all senders: section 1's W=100, so the layouts and the targets compare with it. */
export const GRID_WINDOW = 100

/** What the grid runs: its layouts, and the load (--grid, --senders, --window, --gen-procs). */
export interface GridPlan {
  layouts: Layout[]
  /** Senders, each paying its own receiver. */
  senders: number
  /** Prepares outstanding over all senders. */
  window: number
  generatorProcs: number
  /** --scale: set each layout's measured packets/s beside its projection on the cores the node had. */
  scale: boolean
  /** Each layout is run this many times, the order reversed every other round (--rounds). */
  rounds: number
}

/** The layouts --scale tries: a layout runs if its threads fit in max(SCALE_MIN_CORES, cores). */
const SCALE_LAYOUTS: Layout[] = [{ ioThreads: 1, shards: 0 }, { ioThreads: 1, shards: 1 }, { ioThreads: 2, shards: 2 }, { ioThreads: 4, shards: 4 }, { ioThreads: 8, shards: 8 }]
/** --scale's rounds: a layout's median of three, as one run on a shared machine proves little. */
const SCALE_ROUNDS = 3
/** Below this, --scale still runs 2×2, so that a small machine shows what threads cost it. */
const SCALE_MIN_CORES = 4
/** A generator process per this many cores: one costs about a fifth of the 1×0 node's CPU per
 * packet (side by side at W=100 on this project's machine) and threaded layouts cost the node
 * more, so one per 4 cores of node stays well under the generator-limit warning. */
const SCALE_CORES_PER_GENERATOR = 4

/** The grid --scale runs on `cores` cores: the layouts that fit, a generator process per 4 cores,
 * and a sender per I/O thread at least (8 at least), with W=100 per 8 senders. */
export function scalePlan(cores: number): GridPlan {
  const generatorProcs = Math.max(1, Math.floor(cores / SCALE_CORES_PER_GENERATOR))
  const layouts = SCALE_LAYOUTS.filter((l) => l.ioThreads + l.shards <= Math.max(SCALE_MIN_CORES, cores))
  const senders = Math.max(GRID_ACCOUNTS, 2 * Math.max(...layouts.map((l) => l.ioThreads)))
  return { layouts, senders, window: (GRID_WINDOW * senders) / GRID_ACCOUNTS, generatorProcs, scale: true, rounds: SCALE_ROUNDS }
}

export const PROJECTION_CORES = [4, 8, 16]

/**
 * Section 2's warm-up before measuring: every thread of a layout is a V8 isolate that compiles
 * its own hot code on V8's background threads, so a 4×4 node compiles nine times what 1×0 does;
 * with section 1's warm-up that compilation fell in the measured interval ("other").
 */
export const GRID_WARMUP_MS = { full: 3000, quick: 1000 }

export interface LayoutRun extends Run {
  ioThreads: number
  shards: number
  /** Which of the grid's rounds (1, 2, …). */
  round: number
  threads: ThreadUsage[]
  /** Threads that exited mid-run: their CPU is in serverCpuUsPerPacket but in no thread row. */
  vanishedThreads: number
  busiest: ThreadUsage
  projections: Projection[]
  /** The projection on this machine's cores less those the generator kept busy, threads sharing
   * cores as they must (--scale): what to set the measured packets/s against. */
  projectionHere: Projection
}

/** A target of the project: a layout's µs per packet (its busiest thread's or the whole node's)
 * over the whole node's µs per packet in the inline layout, at most `limit`. */
export interface Target {
  layout: Layout
  of: 'busiest thread' | 'whole node'
  limit: number
}

export const BASELINE: Layout = { ioThreads: 1, shards: 0 }

export const TARGETS: Target[] = [
  { layout: { ioThreads: 2, shards: 2 }, of: 'busiest thread', limit: 0.5 },
  { layout: { ioThreads: 2, shards: 2 }, of: 'whole node', limit: 1.3 },
  { layout: { ioThreads: 4, shards: 4 }, of: 'busiest thread', limit: 0.3 },
]

export interface TargetResult {
  what: string
  /** null when the grid lacks the layout or the baseline. */
  ratio: number | null
  limit: number
}

/** The layout the node picks by default on this machine, against the grid's fastest. */
export interface DefaultLayoutResult {
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

export interface LayoutGrid {
  senders: number
  window: number
  generatorProcs: number
  scale: boolean
  rounds: number
  runs: LayoutRun[]
  targets: TargetResult[]
  defaultLayout: DefaultLayoutResult
}

export function findLayout(runs: LayoutRun[], l: Layout): LayoutRun | undefined {
  return runs.find((r) => sameLayout(r, l))
}

/** One layout's run, with the node's threads sampled over the measured interval. */
export async function measureLayout(node: ServerProcess, layout: Layout, t: RunPlan, window: number, cores: number, round: number, accounts: ReturnType<typeof writeGridConfig>): Promise<LayoutRun> {
  const snapshots: ThreadSnapshot[] = []
  const sample = () => { snapshots.push(node.threads()) }
  const run = await measure(node, 'node', layout, window, t, { ...accounts, onMeasureStart: sample, onMeasureEnd: sample })
  const { usage, vanished } = threadUsage(snapshots[0], snapshots[1], run.packets)
  return {
    ...run,
    ...layout,
    round,
    threads: usage,
    vanishedThreads: vanished,
    busiest: busiestThread(usage),
    projections: PROJECTION_CORES.map((cores) => project(usage, run.serverCpuUsPerPacket, cores)),
    projectionHere: projectSharing(usage, run.serverCpuUsPerPacket, coresLeftToNode(cores, run)),
  }
}

export function describeProjection(p: Projection): string {
  return p.packetsPerSecond === null ? 'needs more cores' : `${fmt(p.packetsPerSecond)} (${p.limitedBy})`
}

export function describeLayout(r: LayoutRun, scale = false): string {
  const threads = r.threads.map((u) => `${u.role}${u.role === 'other' ? ` (${u.threads})` : ''} ${u.busyPercent.toFixed(0)} % ${u.cpuUsPerPacket.toFixed(1)} ` +
    `${(1000 * u.sleepsPerPacket).toFixed(0)}`)
  const vanished = r.vanishedThreads > 0 ? `      ${r.vanishedThreads} thread(s) exited mid-run: in the node's total, in no row\n` : ''
  return describe(r) +
    `      threads (% busy, µs/packet, sleeps per 1000 packets): ${threads.join(', ')}; busiest ${r.busiest.role}\n${vanished}` +
    `      projected packets/s: ${r.projections.map((p) => `C=${p.cores}: ${describeProjection(p)}`).join(', ')}` +
    `${scale ? `; here (C=${r.projectionHere.cores.toFixed(1)}, shared): ${describeProjection(r.projectionHere)}` : ''}\n`
}

export function targetResults(runs: LayoutRun[]): TargetResult[] {
  const base = findLayout(runs, BASELINE)
  return TARGETS.map((t) => {
    const what = `${t.of} at ${layoutName(t.layout)} / whole node at ${layoutName(BASELINE)} (µs per packet)`
    const run = findLayout(runs, t.layout)
    if (base === undefined || run === undefined) return { what, ratio: null, limit: t.limit }
    const us = t.of === 'whole node' ? run.serverCpuUsPerPacket : run.busiest.cpuUsPerPacket
    return { what, ratio: us / base.serverCpuUsPerPacket, limit: t.limit }
  })
}

export function targetMark(t: TargetResult): string {
  if (t.ratio === null) return 'not measured (layout not in the grid)'
  return t.ratio <= t.limit ? '✓ pass' : '✗ fail'
}

/** Which layout the node picks by default on `cores` cores, and how it did against the grid's fastest. */
export function defaultLayoutResult(runs: LayoutRun[], cores: number): DefaultLayoutResult {
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
export function describeDefaultLayout(d: DefaultLayoutResult): string {
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

/** The machine's cores less those the generator kept busy in `run` (its CPU over the run's span). */
export function coresLeftToNode(cores: number, run: Run): number {
  return Math.max(0.1, cores - (run.generatorCpuUsPerPacket * run.packetsPerSecond) / 1e6)
}

export async function layoutGrid(timing: RunPlan, plan: GridPlan, cores: number, quick: boolean): Promise<LayoutGrid> {
  const t = { ...timing, generatorProcs: plan.generatorProcs, warmupMs: Math.max(timing.warmupMs, quick ? GRID_WARMUP_MS.quick : GRID_WARMUP_MS.full) }
  log(`\n2. Layouts IO_THREADS×SHARDS ${plan.layouts.map(layoutName).join(', ')}: ${plan.senders} senders → ${plan.senders} receivers, W=${plan.window} in all, ` +
    `${plan.generatorProcs} generator process${plan.generatorProcs === 1 ? '' : 'es'}${plan.scale ? ` (--scale on ${cores} cores)` : ''}\n`)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const runs: LayoutRun[] = []
  try {
    const configPath = join(dir, 'config.json')
    const accounts = writeGridConfig(configPath, plan.senders)
    for (let round = 1; round <= plan.rounds; round++) {
      // Every other round in reverse, so that a drift of the host's speed falls on every layout.
      for (const layout of round % 2 === 1 ? plan.layouts : [...plan.layouts].reverse()) {
        log(`  ${plan.rounds > 1 ? `[round ${round}/${plan.rounds}] ` : ''}${layoutName(layout)} … `)
        const node = await startServerProcess({ ...layoutEnv(layout), CONFIG: configPath })
        try {
          const run = await measureLayout(node, layout, t, plan.window, cores, round, accounts)
          runs.push(run)
          log(describeLayout(run, plan.scale))
        } finally {
          await node.stop()
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  const medians = medianRuns(runs, plan.layouts)
  const defaults = defaultLayoutResult(medians, cores)
  log(`  ${describeDefaultLayout(defaults)}\n`)
  return {
    senders: plan.senders, window: plan.window, generatorProcs: plan.generatorProcs, scale: plan.scale, rounds: plan.rounds,
    runs, targets: targetResults(medians), defaultLayout: defaults,
  }
}

/** Each layout's run with the median packets/s (the lower of the middle two for an even count):
 * what the targets and the default's verdict are read from when there are rounds. */
export function medianRuns(runs: LayoutRun[], layouts: Layout[]): LayoutRun[] {
  return layouts.map((l) => runsOf(runs, l)).filter((rs) => rs.length > 0).map((rs) => rs[Math.floor((rs.length - 1) / 2)])
}

/** A layout's runs, fewest packets/s first. */
function runsOf(runs: LayoutRun[], l: Layout): LayoutRun[] {
  return runs.filter((r) => sameLayout(r, l)).sort((a, b) => a.packetsPerSecond - b.packetsPerSecond)
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)]
}

/** A run's name in the tables: its layout, and its round when there are several. */
function runName(r: LayoutRun, rounds: number): string {
  return rounds > 1 ? `${layoutName(r)} #${r.round}` : layoutName(r)
}

/** --scale's table: each layout's measured packets/s beside its projection on the cores the node had. */
export function scaleMarkdown(grid: LayoutGrid): string[] {
  const layouts = grid.runs.filter((r, i) => grid.runs.findIndex((x) => sameLayout(x, r)) === i)
  return [
    `### Measured against projected on this machine's cores, less the generator's${grid.rounds > 1 ? ` (medians of ${grid.rounds} rounds)` : ''}`, '',
    markdownTable(
      ['IO_THREADS×SHARDS', 'measured packets/s', 'range', 'cores left to the node', 'projected packets/s', 'measured / projected', 'generator busiest thread %'],
      layouts.map((l) => scaleRow(runsOf(grid.runs, l))),
    ), '',
    'Projected: from each run\'s own CPU per packet of the whole node and of each thread, the packets/s the cores the generator left ' +
      '(the machine\'s, less the generator\'s CPU over the run) would give if the node turned all of them into packets, each thread no faster ' +
      'than 1e6 / its µs per packet; threads share cores where there are fewer cores than threads (so it is not the C=4/8/16 projection, which ' +
      'gives each thread a core). Near 1.00 the node used every cycle it had and the projection held; well under 1.00 it did not: threads ' +
      'waited on each other (wake-ups, hops), or something else on the machine took cores. A generator-limited row measured the generator.', '',
  ]
}

/** One layout's row of the --scale table, from its runs (fewest packets/s first). */
function scaleRow(runs: LayoutRun[]): string[] {
  const measured = median(runs.map((r) => r.packetsPerSecond))!
  const projected = median(runs.map((r) => r.projectionHere.packetsPerSecond ?? 0))!
  const cores = median(runs.map((r) => r.projectionHere.cores))!
  const busiest = Math.max(...runs.map((r) => r.generatorBusiestThreadPercent))
  return [
    layoutName(runs[0]), fmt(measured), `${fmt(runs[0].packetsPerSecond)}–${fmt(runs[runs.length - 1].packetsPerSecond)}`,
    cores.toFixed(1), fmt(projected), (measured / projected).toFixed(2),
    `${busiest.toFixed(0)}${runs.some((r) => r.generatorLimited) ? ' ⚠ generator-limited' : ''}`,
  ]
}

export function layoutGridMarkdown(grid: LayoutGrid, machine: Machine): string[] {
  const lines: string[] = []
  lines.push(`## Layouts IO_THREADS × SHARDS: ${grid.senders} senders → ${grid.senders} receivers, W=${grid.window}, ` +
    `${grid.generatorProcs} generator process${grid.generatorProcs === 1 ? '' : 'es'}`, '')
  lines.push(markdownTable(
    ['IO_THREADS×SHARDS', 'packets/s', 'p50 µs', 'p99 µs', 'node CPU µs/packet', 'node cores busy', 'busiest thread', 'its µs/packet', 'generator CPU µs/packet', 'generator busiest thread %'],
    grid.runs.map((r) => [runName(r, grid.rounds), fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p99Us), r.serverCpuUsPerPacket.toFixed(1), r.serverCoresBusy.toFixed(2),
      r.busiest.role, r.busiest.cpuUsPerPacket.toFixed(1), r.generatorCpuUsPerPacket.toFixed(1),
      `${r.generatorBusiestThreadPercent.toFixed(0)}${r.generatorLimited ? ' ⚠' : ''}`]),
  ), '')
  lines.push(...generatorLimitNote(grid.runs.map((r) => ({ ...r, what: runName(r, grid.rounds) }))))
  if (grid.scale) lines.push(...scaleMarkdown(grid))
  lines.push(describeDefaultLayout(grid.defaultLayout), '')
  lines.push('### CPU per thread', '')
  lines.push(markdownTable(
    ['IO_THREADS×SHARDS', 'thread', '% busy', 'CPU µs/packet', 'sleeps per 1000 packets'],
    grid.runs.flatMap((r) => r.threads.map((u) => [runName(r, grid.rounds), u.role === 'other' ? `other (${u.threads} threads)` : u.role, u.busyPercent.toFixed(0),
      u.cpuUsPerPacket.toFixed(1), (1000 * u.sleepsPerPacket).toFixed(0)])),
  ), '')
  lines.push('Threads by the names the node gives them in /proc: main is the control plane (with IO_THREADS=1 also all socket I/O, ' +
    'with SHARDS=0 also the inline shard), io-n a socket I/O thread, shard-n a shard worker; other is every unnamed thread together ' +
    '(V8 platform workers, the libuv pool, GC helpers). % busy is CPU time (utime + stime) over wall time, in % of one core. ' +
    'Sleeps are the threads\' voluntary context switches (/proc/<pid>/task/<tid>/status): each is a time a thread ran out of work, ' +
    'blocked, and had to be woken again; the micro-benchmarks below give what a wake-up costs on this machine. ' +
    'A layout with IO_THREADS > 1 but no io rows ran its sockets on the main thread (a node without I/O threads).', '')
  for (const r of grid.runs.filter((x) => x.vanishedThreads > 0)) {
    lines.push(`${runName(r, grid.rounds)}: ${r.vanishedThreads} thread(s) exited mid-run; their CPU is in the node's figures but in no thread row.`, '')
  }
  lines.push('### Projection: packets/s on C cores', '')
  lines.push(markdownTable(
    ['IO_THREADS×SHARDS', 'threads needing a core', ...PROJECTION_CORES.map((c) => `C=${c}`)],
    grid.runs.map((r) => [runName(r, grid.rounds), coreThreads(r), ...r.projections.map(describeProjection)]),
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
export function coreThreads(r: LayoutRun): string {
  const idle = idleThreads(r.threads)
  const busy = namedThreads(r.threads).length - idle.length
  return idle.length === 0 ? String(busy) : `${busy} (${idle.map((u) => u.role).join(', ')} idle)`
}

export function targetsMarkdown(targets: TargetResult[]): string[] {
  return [
    '### Targets', '',
    markdownTable(
      ['ratio', 'measured', 'target', 'result'],
      targets.map((t) => [t.what, t.ratio === null ? '–' : t.ratio.toFixed(2), `≤ ${t.limit}`, targetMark(t)]),
    ), '',
  ]
}

/** The console summary: with --scale, measured against projected; then the targets. */
export function gridSummary(grid: LayoutGrid): string[] {
  return [...(grid.scale ? scaleMarkdown(grid) : []), ...targetsMarkdown(grid.targets)]
}
