// The project's performance targets, each read from the run's own figures: the generator's cost
// beside the node's, ILP over HTTP against BTP's cost, ilp-connector and the bare HTTP relay, the
// BTP ratio, and what one account change and a start cost in a big book. A target whose section did not run
// is left out; a section that ran without the figure it needs says so.

import type { Results } from './results'
import type { Run } from './runner'
import { markdownTable } from './report'

export interface TargetCheck {
  target: string
  measured: string
  met: boolean | null
}

/** The window and connection count the targets are stated at. */
const BTP_WINDOW = 100
const HTTP_CONNECTIONS = 100

const isInlineNode = (r: { server: string; ioThreads: number | null; shards: number | null }) => r.server === 'node' && r.ioThreads === 1 && r.shards === 0

function check(target: string, measured: number | undefined, show: (v: number) => string, met: (v: number) => boolean): TargetCheck {
  return measured === undefined || !Number.isFinite(measured)
    ? { target, measured: 'not measured', met: null }
    : { target, measured: show(measured), met: met(measured) }
}

function generatorShare(run: Run | undefined): number | undefined {
  return run === undefined ? undefined : run.generatorCpuUsPerPacket / run.serverCpuUsPerPacket
}

function btpTargets(r: Results): TargetCheck[] {
  const checks: TargetCheck[] = []
  const share = (v: number) => `${v.toFixed(2)} of the node's CPU per packet`
  if (r.sideBySide !== undefined) {
    const node = r.sideBySide.find((x) => isInlineNode(x) && x.window === BTP_WINDOW)
    const ref = r.sideBySide.find((x) => x.server === 'ilp-connector' && x.window === BTP_WINDOW)
    checks.push(check(`Generator CPU per packet ≤ 1/3 of the 1×0 node's (side by side, W=${BTP_WINDOW})`, generatorShare(node), share, (v) => v <= 1 / 3))
    checks.push(check(`BTP side by side ≥ 9× ilp-connector's packets/s (W=${BTP_WINDOW})`,
      node !== undefined && ref !== undefined ? node.packetsPerSecond / ref.packetsPerSecond : undefined, (v) => `${v.toFixed(1)}×`, (v) => v >= 9))
  }
  if (r.layoutGrid !== undefined) {
    const runs = r.layoutGrid.runs.filter(isInlineNode)
    const mean = runs.length === 0 ? undefined : runs.reduce((a, x) => a + generatorShare(x)!, 0) / runs.length
    checks.push(check('Generator CPU per packet ≤ 1/3 of the 1×0 node\'s (layouts)', mean, share, (v) => v <= 1 / 3))
  }
  return checks
}

function httpTargets(r: Results): TargetCheck[] {
  if (r.httpForwarding === undefined) return []
  const at = (server: string) => r.httpForwarding!.find((x) => x.server === server && x.connections === HTTP_CONNECTIONS && (server !== 'node' || isInlineNode(x)))
  const node = at('node')
  const ref = at('ilp-connector')
  const relay = at('relay')
  return [
    check(`ILP over HTTP, 1×0 node, ${HTTP_CONNECTIONS} connections: ≤ 20 µs of node CPU per request`, node?.serverCpuUsPerRequest, (v) => `${v.toFixed(1)} µs`, (v) => v <= 20),
    check('ILP over HTTP: ≥ 15× ilp-connector\'s requests/s', node !== undefined && ref !== undefined ? node.requestsPerSecond / ref.requestsPerSecond : undefined,
      (v) => `${v.toFixed(1)}×`, (v) => v >= 15),
    check('ILP over HTTP: ≥ 80 % of the bare HTTP relay\'s requests/s', node !== undefined && relay !== undefined ? node.requestsPerSecond / relay.requestsPerSecond : undefined,
      (v) => `${Math.round(100 * v)} %`, (v) => v >= 0.8),
  ]
}

/** The book the change targets are stated at. */
const BIG_BOOK = 100_000

function accountsTargets(r: Results): TargetCheck[] {
  if (r.accounts === undefined) return []
  const row = r.accounts.rows.find((x) => x.accounts === BIG_BOOK)
  return [
    check(`One PUT /admin/accounts/:id at ${fmtCount(BIG_BOOK)} accounts ≤ 20 ms`, row === undefined ? undefined : Math.max(row.putAddMs, row.putUpdateMs),
      (v) => `${v.toFixed(1)} ms (the slower of adding and updating)`, (v) => v <= 20),
    check(`Start at ${fmtCount(BIG_BOOK)} accounts ≤ 5 s`, row?.startMs, (v) => `${(v / 1000).toFixed(1)} s`, (v) => v <= 5000),
  ]
}

const fmtCount = (n: number) => n.toLocaleString('en-US')

export function targetChecks(r: Results): TargetCheck[] {
  return [...btpTargets(r), ...httpTargets(r), ...accountsTargets(r)]
}

export function targetsMarkdown(r: Results): string[] {
  const checks = targetChecks(r)
  if (checks.length === 0) return []
  const mark = (c: TargetCheck) => c.met === null ? '—' : c.met ? '✓ met' : '✗ not met'
  return [
    '## Targets', '',
    markdownTable(['target', 'measured', ''], checks.map((c) => [c.target, c.measured, mark(c)])), '',
    'Each from this run alone. Ratios against ilp-connector move with the host between runs (see the sections above); ' +
      'the generator\'s share is its processes\' CPU over the node\'s, per packet.', '',
  ]
}
