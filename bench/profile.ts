// Where a layout's time goes, per thread: runs the node (as `npm start` does) with --cpu-prof,
// under the layout grid's load (8 senders → 8 receivers, W=100), stops it, and prints each
// thread's hottest functions by self time from its profile.
//
//   npm run build && node dist/bench/profile.js [IOxSHARDS, default 1x1] [seconds, default 5]
//
// Profiles are written as the threads end (the main thread's at exit; a worker's when it
// finishes): dist/bench/profiles/<layout>/*.cpuprofile, for Chrome's DevTools too.

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runLoad } from './generator/load'
import { writeGridConfig } from './grid_config'
import { startServerProcess } from './server_process'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount: number
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
}

const TOP = 25

function summarize(path: string): string {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile
  const hits = new Map<string, number>()
  let total = 0
  for (const node of profile.nodes) {
    total += node.hitCount
    const { functionName, url, lineNumber } = node.callFrame
    const where = url === '' ? '' : ` ${url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${lineNumber + 1}`
    const key = `${functionName === '' ? '(anonymous)' : functionName}${where}`
    hits.set(key, (hits.get(key) ?? 0) + node.hitCount)
  }
  const idle = hits.get('(idle)') ?? 0
  const lines = [...hits].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, TOP)
    .map(([k, n]) => `  ${((100 * n) / Math.max(1, total - idle)).toFixed(1).padStart(5)} %  ${k}`)
  return `${path.split('/').pop()} (${total - idle} busy samples of ${total})\n${lines.join('\n')}`
}

async function main(): Promise<void> {
  const [ioThreads, shards] = (process.argv[2] ?? '1x1').split('x').map(Number)
  const seconds = Number(process.argv[3] ?? 5)
  const out = join(__dirname, 'profiles', `${ioThreads}x${shards}`)
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-profile-'))
  try {
    const accounts = writeGridConfig(join(dir, 'config.json'))
    const node = await startServerProcess({ IO_THREADS: String(ioThreads), SHARDS: String(shards), CONFIG: join(dir, 'config.json') }, undefined,
      ['--cpu-prof', `--cpu-prof-dir=${out}`])
    try {
      const result = await runLoad({ port: node.port, destination: '', window: 100, durationMs: seconds * 1000, maxPackets: 50_000_000, warmupMs: 1000, ...accounts })
      console.log(`${ioThreads}x${shards}: ${Math.round(result.packetsPerSecond)} packets/s over ${seconds} s`)
    } finally {
      await node.stop()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  for (const file of readdirSync(out).filter((f) => f.endsWith('.cpuprofile')).sort()) console.log(`\n${summarize(join(out, file))}`)
}

void main()
