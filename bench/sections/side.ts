// Section 1, side by side: this node (in the layout it picks by default on this machine),
// ilp-connector@23 and a bare uWebSockets.js relay (the transport's ceiling) under the same load
// generator and the same receiver: BTP alice → server → bob, W = 1, 10, 100, 1000 outstanding
// prepares, bob fulfilling each; runs alternate per W. The generator's CPU per packet is beside
// each server's, so a run the generator limited shows as one.

import { join } from 'node:path'
import { fmt, lineChart, markdownTable } from '../report'
import { byServer, describe, freePort, generatorLimitNote, layoutEnv, layoutName, log, measure, serverLabel, type Layout, type Run, type RunPlan } from '../runner'
import { startServerProcess, type ServerProcess } from '../server_process'

export const WINDOWS = [1, 10, 100, 1000]

export async function sideBySide(t: RunPlan, nodeLayout: Layout): Promise<Run[]> {
  log(`\n1. Side by side: node (${layoutName(nodeLayout)}, its default here), ilp-connector@23, bare uWS relay; alternating per W\n`)
  const alicePort = await freePort()
  const bobPort = await freePort()
  const servers: { label: string; layout: Layout | null; proc: ServerProcess; bobPort?: number }[] = []
  try {
    servers.push({ label: 'node', layout: nodeLayout, proc: await startServerProcess(layoutEnv(nodeLayout)) })
    servers.push({
      label: 'ilp-connector',
      layout: null,
      proc: await startServerProcess({ ALICE_PORT: String(alicePort), BOB_PORT: String(bobPort) }, join(__dirname, '..', 'reference_connector.js')),
      bobPort,
    })
    servers.push({ label: 'relay', layout: null, proc: await startServerProcess({}, join(__dirname, '..', 'uws_relay.js')) })
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

export function sideBySideMarkdown(side: Run[], stamp: string): string[] {
  return [
    '## Side by side: BTP alice → server → bob', '',
    markdownTable(
      ['server', 'W', 'packets/s', 'p50 µs', 'p90 µs', 'p99 µs', 'server CPU µs/packet', 'generator CPU µs/packet', 'generator / server CPU', 'generator busiest thread %'],
      side.map((r) => [serverLabel(r), r.window, fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p90Us), fmt(r.p99Us), r.serverCpuUsPerPacket.toFixed(1),
        r.generatorCpuUsPerPacket.toFixed(1), (r.generatorCpuUsPerPacket / r.serverCpuUsPerPacket).toFixed(2), `${r.generatorBusiestThreadPercent.toFixed(0)}${r.generatorLimited ? ' ⚠' : ''}`]),
    ), '',
    `The generator (${side[0]?.generatorProcs ?? 1} process${(side[0]?.generatorProcs ?? 1) === 1 ? '' : 'es'}, every thread, from /proc) shares the machine with the server; ` +
      'its CPU per packet is what it takes from the server\'s cores.', '',
    ...generatorLimitNote(side.map((r) => ({ ...r, what: `${serverLabel(r)} W=${r.window}` }))),
    ...nodeVsReferenceMarkdown(side),
    `![throughput](${stamp}-throughput.svg)`, '', `![latency](${stamp}-latency.svg)`, '',
  ]
}

export function nodeVsReferenceMarkdown(side: Run[]): string[] {
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

export const COLORS: Record<string, string> = { node: '#1f77b4', 'ilp-connector': '#d62728', relay: '#7f7f7f' }

export function charts(side: Run[]): { throughput: string; latency: string } {
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
