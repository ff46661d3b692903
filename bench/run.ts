// `npm run bench` — how this node compares with the reference connector and how it scales, on
// the machine it runs on. Ratios measured in one run are the figures that hold on a shared
// machine, so every comparison alternates the servers within one run. One file per section in
// sections/, each with its run, its console summary and its Markdown; runner.ts holds what they
// share (a measured load run, layouts, alternating runs); results.ts writes the report and the
// summary; generator/ is the BTP load generator. This file reads the flags and calls the sections.
//
//   1. side      this node, ilp-connector@23 and a bare uWebSockets.js relay, W = 1 … 1000
//   2. grid      the node's layouts IO_THREADS × SHARDS, per-thread CPU and a projection on more cores
//   3. http      ILP over HTTP against ilp-connector with ilp-plugin-http and a bare HTTP relay
//   4. payee     PSK2 payments to a payee of the node, and SPSP queries
//   5. shop      a paid route against the same route free
//   6. micro     codecs, routing, hashing, the ring, PSK2, wake-ups between threads
//   7. metrics   forwarding with the /metrics counters on and off
//   8. exchange  forwarding across assets with a rate and a spread, against within one asset
//   9. accounts  start, RSS and one account change with 1,000, 10,000 and 100,000 accounts
//
// Writes bench/results/<date>.json and .md, and SVG charts beside them (also copied to
// bench/results/latest*.{md,svg}). `--quick` shortens every run.
// `--only grid` (or side, http, payee, shop, micro, metrics, exchange, accounts; several with commas) runs
// only those sections. The grid: `--grid 1x0,2x2` (layouts), `--senders N` (N senders paying N
// receivers), `--window W` (prepares outstanding over all senders), `--rounds N` (each layout N
// times, alternating the order); `--gen-procs N` spreads the load generator's connections over
// N processes (side, grid and ILP over HTTP). `--scale` runs the grid alone, with layouts, senders
// and generator processes picked from the core count, and sets each layout's measured packets/s
// beside its projection. Only a full run of every section updates
// latest*. Every load run is bounded by a packet count and a duration.

import { availableParallelism, cpus, totalmem } from 'node:os'
import { defaultLayout } from '../src/config/load'
import { GRID_ACCOUNTS } from './grid_config'
import { summary, writeResults, type Results } from './results'
import { layoutName, log, type Layout, type Machine, type RunPlan } from './runner'
import { exchangeCost } from './sections/exchange'
import { GRID_WINDOW, LAYOUT_GRID, layoutGrid, scalePlan, type GridPlan } from './sections/grid'
import { httpForwarding } from './sections/http'
import { metricsCost } from './sections/metrics'
import { micro } from './sections/micro'
import { payPayee } from './sections/payee'
import { shopRoutes } from './sections/shop'
import { sideBySide } from './sections/side'
import { runAccounts } from './sections/accounts'

const SECTIONS = ['side', 'grid', 'http', 'payee', 'shop', 'micro', 'metrics', 'exchange', 'accounts'] as const
type Section = (typeof SECTIONS)[number]

/** What the command line asked for. */
interface Flags {
  quick: boolean
  /** --only's list as given; undefined for every section. */
  only: string | undefined
  sections: Set<Section>
  grid: GridPlan
  generatorProcs: number
}

/** What the sections need to run. */
interface Context {
  plan: RunPlan
  flags: Flags
  machine: Machine
}

async function runSections(ctx: Context): Promise<Results> {
  const { plan, flags, machine } = ctx
  const nodeDefault = machine.defaultLayout
  const r: Results = {}
  if (flags.sections.has('side')) r.sideBySide = await sideBySide(plan, nodeDefault)
  if (flags.sections.has('grid')) r.layoutGrid = await layoutGrid(plan, flags.grid, machine.availableParallelism, flags.quick)
  if (flags.sections.has('http')) r.httpForwarding = await httpForwarding(plan, nodeDefault)
  if (flags.sections.has('payee')) r.payPayee = await payPayee(plan, nodeDefault)
  if (flags.sections.has('shop')) r.shop = await shopRoutes(plan, nodeDefault)
  if (flags.sections.has('micro')) r.micro = await micro(flags.quick)
  if (flags.sections.has('metrics')) r.metricsCost = await metricsCost(plan, nodeDefault)
  if (flags.sections.has('exchange')) r.exchangeCost = await exchangeCost(plan, nodeDefault)
  if (flags.sections.has('accounts')) r.accounts = await runAccounts(flags.quick)
  return r
}

/** The value after `--name` on the command line, if the flag is there. */
function argValue(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`)
  if (at < 0) return undefined
  const value = process.argv[at + 1]
  if (value === undefined || value.startsWith('--')) throw new Error(`--${name} needs a value`)
  return value
}

/** A whole number of at least 1 after `--name`, or `fallback` without the flag. */
function countArg(name: string, fallback: number): number {
  const value = argValue(name)
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: "${value}" is not a whole number of at least 1`)
  return n
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

/** The flags; --scale replaces the grid's defaults with those for this machine's cores (the flags given still win) and runs the grid alone. */
function parseFlags(cores: number): Flags {
  const scale = process.argv.includes('--scale')
  if (scale && argValue('only') !== undefined) throw new Error('--scale runs the grid alone: leave out --only')
  const only = scale ? 'grid' : argValue('only')
  const base: GridPlan = scale ? scalePlan(cores) : { layouts: LAYOUT_GRID, senders: GRID_ACCOUNTS, window: GRID_WINDOW, generatorProcs: 1, scale: false, rounds: 1 }
  const generatorProcs = countArg('gen-procs', base.generatorProcs)
  const gridList = argValue('grid')
  return {
    quick: process.argv.includes('--quick'),
    only,
    sections: parseSections(only),
    grid: {
      layouts: gridList === undefined ? base.layouts : parseGrid(gridList),
      senders: countArg('senders', base.senders),
      window: countArg('window', base.window),
      generatorProcs,
      scale,
      rounds: countArg('rounds', base.rounds),
    },
    generatorProcs,
  }
}

async function main(): Promise<void> {
  const started = Date.now()
  const parallelism = availableParallelism()
  const flags = parseFlags(parallelism)
  const plan: RunPlan = flags.quick
    ? { warmupMs: 300, durationMs: 1200, maxPackets: 2_000_000, generatorProcs: flags.generatorProcs }
    : { warmupMs: 1000, durationMs: 5000, maxPackets: 5_000_000, generatorProcs: flags.generatorProcs }
  const machine: Machine = {
    cores: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem(), node: `Node ${process.version}`, platform: process.platform,
    availableParallelism: parallelism, defaultLayout: defaultLayout(parallelism),
  }
  log(`ilp-node bench (${flags.quick ? 'quick' : 'full'}${flags.only === undefined ? '' : `, only ${flags.only}`}${flags.grid.scale ? ', --scale' : ''}): ` +
    `${machine.cores} cores, ${machine.node}; the node's default layout here ${layoutName(machine.defaultLayout)}\n`)
  // A partial run names its sections in the file names, and never stands in for latest*.
  const r = await runSections({ plan, flags, machine })
  const date = new Date().toISOString()
  const stamp = `${date.replace(/[:.]/g, '-')}${flags.only === undefined ? '' : `-${[...flags.sections].join('+')}`}${flags.grid.scale ? '-scale' : ''}${flags.quick ? '-quick' : ''}`
  const wrote = writeResults({ quick: flags.quick, allSections: flags.only === undefined, machine, stamp }, date, r)
  log(`\n${summary(r).join('\n')}`)
  log(`\nwrote ${wrote} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
}

main().catch((err: Error) => {
  process.stderr.write(`\nbench failed: ${err.message}\n`)
  process.exit(1)
})
