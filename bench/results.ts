// A bench run's output: the JSON and the Markdown report in bench/results/ (the charts beside
// them), copied to latest* for a full run, and the console's closing summary, each section's part
// from its own file.

import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { layoutName, type Machine, type Run } from './runner'
import { accountsMarkdown, accountsSummary, type AccountsResult } from './sections/accounts'
import { exchangeCostMarkdown, exchangeSummary, type ExchangeCost } from './sections/exchange'
import { gridSummary, layoutGridMarkdown, type LayoutGrid } from './sections/grid'
import { httpMarkdown, httpVsReferenceMarkdown, type HttpRun } from './sections/http'
import { metricsCostMarkdown, metricsSummary, type MetricsCost } from './sections/metrics'
import { microMarkdown, microSummary, type MicroResults } from './sections/micro'
import { payeeMarkdown, payeeSummary, type PayeeRuns } from './sections/payee'
import { shopMarkdown, shopSummary, type ShopRun } from './sections/shop'
import { charts, nodeVsReferenceMarkdown, sideBySideMarkdown } from './sections/side'
import { targetsMarkdown } from './targets'

/** Every section's results, under the names the JSON file gives them; a section not run is absent. */
export interface Results {
  sideBySide?: Run[]
  layoutGrid?: LayoutGrid
  httpForwarding?: HttpRun[]
  payPayee?: PayeeRuns
  shop?: ShopRun[]
  micro?: MicroResults
  metricsCost?: MetricsCost
  exchangeCost?: ExchangeCost
  accounts?: AccountsResult
}

/** How the run was made, as the report's file names and header say it. */
export interface RunInfo {
  quick: boolean
  /** True when every section ran: only such a run (and a full one) replaces latest*. */
  allSections: boolean
  machine: Machine
  /** The file names' stamp: the date, then the sections of a partial run, -scale, -quick. */
  stamp: string
}

/** A section's parts of the report and of the console summary, read from its results. */
interface SectionParts {
  key: keyof Results
  report: (r: Results, info: RunInfo) => string[]
  summary: (r: Results) => string[]
}

/** In the report's order; a section the run left out has no results and no parts. */
const PARTS: SectionParts[] = [
  { key: 'sideBySide', report: (r, info) => sideBySideMarkdown(r.sideBySide!, info.stamp), summary: (r) => nodeVsReferenceMarkdown(r.sideBySide!) },
  { key: 'layoutGrid', report: (r, info) => layoutGridMarkdown(r.layoutGrid!, info.machine), summary: (r) => gridSummary(r.layoutGrid!) },
  { key: 'httpForwarding', report: (r, info) => httpMarkdown(r.httpForwarding!, info.machine.defaultLayout), summary: (r) => httpVsReferenceMarkdown(r.httpForwarding!) },
  { key: 'payPayee', report: (r) => payeeMarkdown(r.payPayee!), summary: (r) => payeeSummary(r.payPayee!) },
  { key: 'shop', report: (r) => shopMarkdown(r.shop!), summary: (r) => shopSummary(r.shop!) },
  { key: 'micro', report: (r) => microMarkdown(r.micro!), summary: (r) => microSummary(r.micro!) },
  { key: 'metricsCost', report: (r) => metricsCostMarkdown(r.metricsCost!), summary: (r) => metricsSummary(r.metricsCost!) },
  { key: 'exchangeCost', report: (r) => exchangeCostMarkdown(r.exchangeCost!), summary: (r) => exchangeSummary(r.exchangeCost!) },
  { key: 'accounts', report: (r) => accountsMarkdown(r.accounts!), summary: (r) => accountsSummary(r.accounts!) },
]

function markdown(date: string, info: RunInfo, r: Results): string {
  const { machine } = info
  return [
    `# ilp-node bench, ${date}${info.quick ? ' (quick)' : ''}`, '',
    `Machine: ${machine.cores} cores (${machine.cpu}), ${machine.node}. Load generator on the same machine. ` +
      `The node's default layout here (IO_THREADS×SHARDS, by its ${machine.availableParallelism} available cores): ${layoutName(machine.defaultLayout)}.`, '',
    ...PARTS.filter((p) => r[p.key] !== undefined).flatMap((p) => p.report(r, info)),
    ...targetsMarkdown(r),
  ].join('\n')
}

/** The console's closing summary: each section's headline, then the targets. */
export function summary(r: Results): string[] {
  return [...PARTS.filter((p) => r[p.key] !== undefined).flatMap((p) => p.summary(r)), ...targetsMarkdown(r)]
}

/** Writes the run's files; returns what it wrote, for the console. */
export function writeResults(info: RunInfo, date: string, r: Results): string {
  const { stamp } = info
  const dir = join(__dirname, '..', '..', 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  const md = markdown(date, info, r)
  writeFileSync(join(dir, `${stamp}.json`), JSON.stringify({ date, mode: info.quick ? 'quick' : 'full', machine: info.machine, ...r }, null, 2) + '\n')
  writeFileSync(join(dir, `${stamp}.md`), md)
  const svg = r.sideBySide ? charts(r.sideBySide) : null
  if (svg !== null) {
    writeFileSync(join(dir, `${stamp}-throughput.svg`), svg.throughput)
    writeFileSync(join(dir, `${stamp}-latency.svg`), svg.latency)
  }
  if (!info.quick && info.allSections && svg !== null) {
    writeFileSync(join(dir, 'latest.md'), md.replaceAll(`${stamp}-`, 'latest-'))
    writeFileSync(join(dir, 'latest-throughput.svg'), svg.throughput)
    writeFileSync(join(dir, 'latest-latency.svg'), svg.latency)
  }
  return `${join(dir, stamp)}.{json,md}${svg !== null ? ' and -{throughput,latency}.svg' : ''}`
}

