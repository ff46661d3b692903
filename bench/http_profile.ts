// Where ILP over HTTP's time goes: runs the node (as `npm start` does, 1×0 unless IO_THREADS /
// SHARDS say otherwise) under the HTTP section's load (the generator → node → bob, RFC 35), prints
// requests/s and the node's CPU per request from /proc, and with --cpu-prof each thread's
// hottest functions by self time, and by file.
//
//   npm run build && node dist/bench/http_profile.js [seconds, default 5] [connections, default 100] [--cpu-prof] [--relay]
//
// --relay runs bench/http_relay.ts in the node's place (the bare HTTP relay baseline).
// Profiles: dist/bench/profiles/http/*.cpuprofile, for Chrome's DevTools too.

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { benchPrepare, runHttpLoad, startHttpReceiver } from './http_load'
import { startServerProcess } from './server_process'

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount: number
}

const TOP = 30

function table(hits: Map<string, number>, busy: number): string {
  return [...hits].sort((a, b) => b[1] - a[1]).slice(0, TOP)
    .map(([k, n]) => `  ${((100 * n) / Math.max(1, busy)).toFixed(1).padStart(5)} %  ${k}`).join('\n')
}

function summarize(path: string): string {
  const nodes = (JSON.parse(readFileSync(path, 'utf8')) as { nodes: ProfileNode[] }).nodes
  const byFunction = new Map<string, number>()
  const byFile = new Map<string, number>()
  let busy = 0
  for (const { callFrame: { functionName, url, lineNumber }, hitCount } of nodes) {
    if (functionName === '(idle)') continue
    busy += hitCount
    const file = url === '' ? `(${functionName || 'native'})` : url.replace(/^.*\/(dist|node_modules)\//, '$1/')
    const key = `${functionName === '' ? '(anonymous)' : functionName}${url === '' ? '' : ` ${file}:${lineNumber + 1}`}`
    byFunction.set(key, (byFunction.get(key) ?? 0) + hitCount)
    byFile.set(file, (byFile.get(file) ?? 0) + hitCount)
  }
  return `${path.split('/').pop()} (${busy} busy samples)\n${table(byFunction, busy)}\n by file:\n${table(byFile, busy)}`
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const numbers = args.filter((a) => !a.startsWith('--')).map(Number)
  const seconds = numbers[0] ?? 5
  const connections = numbers[1] ?? 100
  const profile = args.includes('--cpu-prof')
  const relay = args.includes('--relay')
  const out = join(__dirname, 'profiles', 'http')
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-http-profile-'))
  const bob = await startHttpReceiver('bob-token')
  try {
    const bobUrl = `http://127.0.0.1:${bob.port}/`
    writeFileSync(join(dir, 'config.json'), JSON.stringify({
      ilpAddress: 'test.ilpnode',
      accounts: {
        alice: { relation: 'child', assetCode: 'USD', assetScale: 9, http: { incomingToken: 'alice-token' } },
        bob: { relation: 'child', assetCode: 'USD', assetScale: 9, http: { url: bobUrl, outgoingToken: 'bob-token' } },
      },
    }))
    const env = { IO_THREADS: process.env.IO_THREADS ?? '1', SHARDS: process.env.SHARDS ?? '0', CONFIG: join(dir, 'config.json'), UPSTREAM_URL: bobUrl, UPSTREAM_TOKEN: 'bob-token' }
    const node = await startServerProcess(env, relay ? join(__dirname, 'http_relay.js') : undefined, profile ? ['--cpu-prof', '--cpu-prof-interval=200', `--cpu-prof-dir=${out}`] : [])
    try {
      let cpuStart = 0
      let cpuEnd = 0
      const r = await runHttpLoad({
        url: `http://127.0.0.1:${node.port}/ilp`, token: 'alice-token', connections, durationMs: seconds * 1000, maxRequests: 50_000_000, warmupMs: 1000,
        body: benchPrepare('test.ilpnode.bob'),
        onMeasureStart: () => { cpuStart = node.cpuMicros() },
        onMeasureEnd: () => { cpuEnd = node.cpuMicros() },
      }, bob)
      console.log(`${relay ? 'relay' : `node ${env.IO_THREADS}x${env.SHARDS}`} connections=${connections}: ${Math.round(r.requestsPerSecond)} requests/s, ` +
        `CPU ${((cpuEnd - cpuStart) / r.requests).toFixed(1)} µs/request, mean ${r.latencyMs.mean.toFixed(2)} ms, p99 ${r.latencyMs.p99} ms`)
    } finally {
      await node.stop()
    }
  } finally {
    bob.close()
    rmSync(dir, { recursive: true, force: true })
  }
  if (!profile) return
  for (const file of readdirSync(out).filter((f) => f.endsWith('.cpuprofile')).sort()) console.log(`\n${summarize(join(out, file))}`)
}

void main()
