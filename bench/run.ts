// `npm run bench`: alice → node → bob over BTP, W prepares outstanding, bob fulfilling each,
// for SHARDS = 0, 1, 2 and W = 1, 10, 100, 1000, and the same load through a bare uWebSockets.js
// relay (no ILP logic: the transport's ceiling on this machine). Prints packets/s, latency
// percentiles and the server's CPU per packet, and writes the figures to bench/results/<date>.json.
// `--quick` shortens every run (development); every run is bounded in time and packet count.

import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { runLoad, type LoadResult } from './btp_load'
import { startNodeProcess } from './node_process'

interface Run extends LoadResult {
  /** "node" or "relay" (the bare uWebSockets.js relay). */
  server: string
  shards: number | null
  nodeCpuUsPerPacket: number
  nodeCpuCores: number
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick')
  const shardCounts = [0, 1, 2]
  const windows = [1, 10, 100, 1000]
  const warmupMs = quick ? 300 : 1000
  const durationMs = quick ? 1500 : 5000
  const maxPackets = 2_000_000
  const runs: Run[] = []

  console.log(`ilp-node BTP forwarding bench (${quick ? 'quick' : 'full'}): ${cpus().length} cores, Node ${process.version}`)
  const servers: { label: string; shards: number | null }[] = [
    ...shardCounts.map((shards) => ({ label: `node SHARDS=${shards}`, shards })),
    { label: 'bare uWS relay', shards: null },
  ]
  for (const { label, shards } of servers) {
    const node = shards === null
      ? await startNodeProcess({}, join(__dirname, 'uws_relay.js'))
      : await startNodeProcess({ SHARDS: String(shards) })
    try {
      for (const window of windows) {
        process.stdout.write(`  ${label} W=${window} … `)
        let cpuStart = 0
        let cpuEnd = 0
        const result = await runLoad({
          port: node.port,
          destination: 'test.ilpnode.bob',
          window,
          durationMs,
          maxPackets,
          warmupMs,
          onMeasureStart: () => { cpuStart = node.cpuMicros() },
          onMeasureEnd: () => { cpuEnd = node.cpuMicros() },
        })
        if (result.rejected > 0) throw new Error(`${result.rejected} prepares were rejected during the run`)
        const cpu = cpuEnd - cpuStart
        const run: Run = {
          server: shards === null ? 'relay' : 'node',
          shards,
          ...result,
          nodeCpuUsPerPacket: result.packets > 0 ? cpu / result.packets : 0,
          nodeCpuCores: cpu / 1e6 / result.seconds,
        }
        runs.push(run)
        console.log(`${Math.round(run.packetsPerSecond)} packets/s, p50 ${run.p50Us.toFixed(0)} µs, server CPU ${run.nodeCpuUsPerPacket.toFixed(1)} µs/packet`)
      }
    } finally {
      await node.stop()
    }
  }

  console.log('\n| server | W | packets/s | p50 µs | p90 µs | p99 µs | server CPU µs/packet | server cores busy | generator CPU µs/packet |')
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const r of runs) {
    const server = r.shards === null ? 'bare uWS relay' : `node, SHARDS=${r.shards}`
    console.log(`| ${server} | ${r.window} | ${Math.round(r.packetsPerSecond)} | ${r.p50Us.toFixed(0)} | ${r.p90Us.toFixed(0)} | ${r.p99Us.toFixed(0)} | ${r.nodeCpuUsPerPacket.toFixed(1)} | ${r.nodeCpuCores.toFixed(2)} | ${r.generatorCpuUsPerPacket.toFixed(1)} |`)
  }
  const dir = join(__dirname, '..', '..', 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`)
  writeFileSync(file, JSON.stringify({
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version, platform: process.platform },
    runs,
  }, null, 2) + '\n')
  console.log(`\nwrote ${file}`)
}

main().catch((err: Error) => {
  console.error(`bench failed: ${err.stack}`)
  process.exit(1)
})
