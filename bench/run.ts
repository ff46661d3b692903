// `npm run bench` — how this node compares with the reference connector and how it scales, on
// the machine it runs on. Ratios measured in one run are the figures that hold on a shared
// machine, so every comparison alternates the servers within one run.
//
//   1. Side by side: this node, ilp-connector@23 and a bare uWebSockets.js relay (the transport's
//      ceiling) under the same load generator and the same receiver: BTP alice → server → bob,
//      W = 1, 10, 100, 1000 outstanding prepares, bob fulfilling each; runs alternate per W.
//   2. Shard scaling: the node with SHARDS = 0 … cores, 64 sending accounts.
//   3. ILP over HTTP: autocannon POSTs prepares (RFC 35) to this node and to ilp-connector with
//      ilp-plugin-http accounts; both forward them over HTTP to the same bob, who fulfills.
//   4. Pay a payee: PSK2 requests (draft 2, as ilp-fetch and koa-ilp send them) to a payee of the
//      node, alone and while forwarding runs at W=100 beside it.
//   5. The shop: autocannon on a paid route (a pre-funded Pay-Token) and on the same route free.
//   6. Micro-benchmarks: codecs (ours and the libraries'), routing, hashing, the ring, PSK2.
//
// Writes bench/results/<date>.json and .md, and SVG charts beside them (also copied to
// bench/results/latest*.{md,svg}). `--quick` shortens every run (under 2 minutes in all).
// Every load run is bounded by a packet count and a duration.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { runLoad, type LoadResult } from './btp_load'
import { createHash, randomBytes } from 'node:crypto'
import { request } from 'undici'
import { encodePrepare } from '../src/codec/ilp_packet'
import { encrypt, psk2Fulfillment, psk2Keys, serializeDraft2, TYPE_REQUEST } from '../src/payee/psk2'
import { benchPrepare, runHttpLoad, runGetLoad, startHttpReceiver, type GetRunResult, type HttpRunResult } from './http_load'
import { runCodecBenchmarks, runRingBenchmark, type MicroResult, type RingResult } from './micro'
import { startNodeProcess, type NodeProcess } from './node_process'
import { fmt, lineChart, markdownTable } from './report'
import { defaultShardCount } from '../src/config/load'

interface Run extends LoadResult {
  server: string
  shards: number | null
  serverCpuUsPerPacket: number
  serverCoresBusy: number
}

interface Timing {
  warmupMs: number
  durationMs: number
  maxPackets: number
}

const WINDOWS = [1, 10, 100, 1000]
const HTTP_CONNECTIONS = [10, 100]

interface HttpRun extends HttpRunResult {
  server: string
  shards: number | null
  serverCpuUsPerRequest: number
}
const SCALING_SENDERS = 64
const SCALING_WINDOW = 256

function log(line: string): void {
  process.stdout.write(line)
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

async function measure(server: NodeProcess, label: string, shards: number | null, window: number, t: Timing,
  extra: { bobPort?: number; senders?: { user: string; token: string }[]; prepare?: Buffer; receiver?: boolean } = {}): Promise<Run> {
  let cpuStart = 0
  let cpuEnd = 0
  const result = await runLoad({
    port: server.port,
    bobPort: extra.bobPort,
    senders: extra.senders,
    prepare: extra.prepare,
    receiver: extra.receiver,
    destination: 'test.ilpnode.bob',
    window,
    durationMs: t.durationMs,
    maxPackets: t.maxPackets,
    warmupMs: t.warmupMs,
    onMeasureStart: () => { cpuStart = server.cpuMicros() },
    onMeasureEnd: () => { cpuEnd = server.cpuMicros() },
  })
  if (result.packets === 0) throw new Error(`${label} W=${window}: no packet completed`)
  if (result.rejected > 0) throw new Error(`${label} W=${window}: ${result.rejected} prepares were rejected`)
  const cpu = cpuEnd - cpuStart
  return {
    server: label,
    shards,
    ...result,
    serverCpuUsPerPacket: cpu / result.packets,
    serverCoresBusy: cpu / 1e6 / result.seconds,
  }
}

function describe(r: Run): string {
  return `${fmt(r.packetsPerSecond)} packets/s, p50 ${fmt(r.p50Us)} µs, p99 ${fmt(r.p99Us)} µs, server CPU ${r.serverCpuUsPerPacket.toFixed(1)} µs/packet\n`
}

async function sideBySide(t: Timing, nodeShards: number): Promise<Run[]> {
  log(`\n1. Side by side: node (SHARDS=${nodeShards}), ilp-connector@23, bare uWS relay; alternating per W\n`)
  const alicePort = await freePort()
  const bobPort = await freePort()
  const servers: { label: string; shards: number | null; proc: NodeProcess; bobPort?: number }[] = []
  try {
    servers.push({ label: 'node', shards: nodeShards, proc: await startNodeProcess({ SHARDS: String(nodeShards) }) })
    servers.push({
      label: 'ilp-connector',
      shards: null,
      proc: await startNodeProcess({ ALICE_PORT: String(alicePort), BOB_PORT: String(bobPort) }, join(__dirname, 'reference_connector.js')),
      bobPort,
    })
    servers.push({ label: 'relay', shards: null, proc: await startNodeProcess({}, join(__dirname, 'uws_relay.js')) })
    const runs: Run[] = []
    let i = 0
    for (const window of WINDOWS) {
      for (const s of servers) {
        log(`  [${++i}/${WINDOWS.length * servers.length}] ${s.label.padEnd(13)} W=${String(window).padEnd(4)} … `)
        const run = await measure(s.proc, s.label, s.shards, window, t, { bobPort: s.bobPort })
        runs.push(run)
        log(describe(run))
      }
    }
    return runs
  } finally {
    for (const s of servers) await s.proc.stop()
  }
}

async function shardScaling(t: Timing): Promise<Run[]> {
  const maxShards = availableParallelism()
  log(`\n2. Shard scaling: SHARDS = 0 … ${maxShards}, ${SCALING_SENDERS} senders, W=${SCALING_WINDOW} in all\n`)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const accounts: Record<string, unknown> = {}
  const senders: { user: string; token: string }[] = []
  const limits = { balance: { minimum: '-1000000000000', maximum: '1000000000000' } }
  for (let i = 0; i < SCALING_SENDERS; i++) {
    const user = `sender${i}`
    senders.push({ user, token: `${user}-token` })
    accounts[user] = { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: `${user}-token` }, ...limits }
  }
  accounts.bob = { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'bob-token' }, ...limits }
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify({ ilpAddress: 'test.ilpnode', accounts }))
  const runs: Run[] = []
  try {
    for (let shards = 0; shards <= maxShards; shards++) {
      log(`  SHARDS=${shards} … `)
      const node = await startNodeProcess({ SHARDS: String(shards), CONFIG: configPath })
      try {
        const run = await measure(node, 'node', shards, SCALING_WINDOW, t, { senders })
        runs.push(run)
        log(describe(run))
      } finally {
        await node.stop()
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return runs
}

async function httpForwarding(t: Timing, nodeShards: number): Promise<HttpRun[]> {
  log(`\n3. ILP over HTTP: autocannon → server → bob (HTTP), node (SHARDS=${nodeShards}) and ilp-connector@23 alternating\n`)
  const bob = await startHttpReceiver('bob-token')
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const servers: { label: string; shards: number | null; proc: NodeProcess }[] = []
  try {
    const configPath = join(dir, 'config.json')
    writeFileSync(configPath, JSON.stringify({
      ilpAddress: 'test.ilpnode',
      accounts: {
        alice: { relation: 'child', assetCode: 'USD', assetScale: 9, http: { incomingToken: 'alice-token' } },
        bob: { relation: 'child', assetCode: 'USD', assetScale: 9, http: { url: `http://127.0.0.1:${bob.port}/`, outgoingToken: 'bob-token' } },
      },
    }))
    servers.push({ label: 'node', shards: nodeShards, proc: await startNodeProcess({ SHARDS: String(nodeShards), CONFIG: configPath }) })
    const refEnv = { TRANSPORT: 'http', ALICE_PORT: String(await freePort()), BOB_PORT: String(await freePort()), BOB_URL: `http://127.0.0.1:${bob.port}/` }
    servers.push({ label: 'ilp-connector', shards: null, proc: await startNodeProcess(refEnv, join(__dirname, 'reference_connector.js')) })
    const body = benchPrepare('test.ilpnode.bob')
    const runs: HttpRun[] = []
    let i = 0
    for (const connections of HTTP_CONNECTIONS) {
      for (const s of servers) {
        log(`  [${++i}/${HTTP_CONNECTIONS.length * servers.length}] ${s.label.padEnd(13)} connections=${String(connections).padEnd(4)} … `)
        let cpuStart = 0
        let cpuEnd = 0
        const r = await runHttpLoad({
          url: `http://127.0.0.1:${s.proc.port}/ilp`,
          token: 'alice-token',
          connections,
          durationMs: t.durationMs,
          maxRequests: t.maxPackets,
          warmupMs: t.warmupMs,
          body,
          onMeasureStart: () => { cpuStart = s.proc.cpuMicros() },
          onMeasureEnd: () => { cpuEnd = s.proc.cpuMicros() },
        }, bob)
        const run = { server: s.label, shards: s.shards, ...r, serverCpuUsPerRequest: (cpuEnd - cpuStart) / r.requests }
        runs.push(run)
        log(`${fmt(run.requestsPerSecond)} requests/s, latency mean ${run.latencyMs.mean.toFixed(2)} ms, p99 ${run.latencyMs.p99} ms, server CPU ${run.serverCpuUsPerRequest.toFixed(1)} µs/request\n`)
      }
    }
    return runs
  } finally {
    for (const s of servers) await s.proc.stop()
    bob.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

interface PayeeRuns {
  alone: Run[]
  duringForwarding: { forwarding: Run; payee: Run }
  spsp: GetRunResult
}

/** A PSK2 request (draft 2) for 10 units to the payee at `url`, from a fresh SPSP query. */
async function payeePrepare(url: string, t: Timing): Promise<Buffer> {
  const res = await request(url, { headers: { accept: 'application/spsp+json' } })
  if (res.statusCode !== 200) throw new Error(`SPSP query to ${url} answered ${res.statusCode}`)
  const spsp = await res.body.json() as { destination_account: string; shared_secret: string }
  return psk2Request(spsp.destination_account, spsp.shared_secret, 10n, Buffer.alloc(0), Date.now() + t.warmupMs + t.durationMs + 60_000)
}

/** A PSK2 draft-2 request prepare (what ilp-fetch and koa-ilp send), fulfillable by the receiver. */
function psk2Request(destination: string, sharedSecret: string, amount: bigint, data: Buffer, expiresAtMs: number): Buffer {
  const keys = psk2Keys(Buffer.from(sharedSecret, 'base64'))
  const encrypted = encrypt(keys.encryption, serializeDraft2(TYPE_REQUEST, 1, 0n, data))
  const condition = createHash('sha256').update(psk2Fulfillment(keys, encrypted)).digest()
  return encodePrepare({ amount, expiresAtMs, executionCondition: condition, destination, data: encrypted })
}

async function payPayee(t: Timing, nodeShards: number): Promise<PayeeRuns> {
  log(`\n4. Pay a payee: PSK2 requests carol → node (SHARDS=${nodeShards}) → payee shop, alone and beside forwarding\n`)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const child = (token: string) => ({ relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token } })
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify({
    ilpAddress: 'test.ilpnode',
    accounts: { alice: child('alice-token'), bob: child('bob-token'), carol: child('carol-token') },
    payees: { shop: {} },
  }))
  const node = await startNodeProcess({ SHARDS: String(nodeShards), CONFIG: configPath })
  try {
    const url = `http://127.0.0.1:${node.port}/shop`
    const carol = [{ user: 'carol', token: 'carol-token' }]
    const alone: Run[] = []
    for (const window of [1, 100]) {
      log(`  payee alone, W=${window} … `)
      const run = await measure(node, 'node', nodeShards, window, t, { senders: carol, prepare: await payeePrepare(url, t), receiver: false })
      alone.push(run)
      log(describe(run))
    }
    log('  forwarding W=100 and the payee W=10 at once … ')
    const prepare = await payeePrepare(url, t)
    const [forwarding, payee] = await Promise.all([
      measure(node, 'node', nodeShards, 100, t),
      measure(node, 'node', nodeShards, 10, t, { senders: carol, prepare, receiver: false }),
    ])
    log(`forwarding ${fmt(forwarding.packetsPerSecond)} packets/s (p99 ${fmt(forwarding.p99Us)} µs), payee ${fmt(payee.packetsPerSecond)} payments/s (p99 ${fmt(payee.p99Us)} µs)\n`)
    log('  SPSP queries, autocannon, 10 connections … ')
    const spsp = await runGetLoad(url, { accept: 'application/spsp+json' }, 10, t.durationMs, t.maxPackets)
    log(`${fmt(spsp.requestsPerSecond)} queries/s, mean ${spsp.latencyMs.mean.toFixed(2)} ms, p99 ${spsp.latencyMs.p99} ms\n`)
    return { alone, duringForwarding: { forwarding, payee }, spsp }
  } finally {
    await node.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

interface ShopRun extends GetRunResult {
  route: 'paid' | 'free'
  serverCpuUsPerRequest: number
}

async function shopRoutes(t: Timing, nodeShards: number): Promise<ShopRun[]> {
  log(`\n5. The shop: autocannon on a paid route (token pre-funded) and the same route free, node SHARDS=${nodeShards}\n`)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify({
    ilpAddress: 'test.ilpnode',
    accounts: { carol: { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'carol-token' } } },
    shop: { routes: [{ method: 'GET', path: '/paid', price: '1', response: 'ok\n' }, { method: 'GET', path: '/free', price: '0', response: 'ok\n' }] },
  }))
  const node = await startNodeProcess({ SHARDS: String(nodeShards), CONFIG: configPath })
  try {
    const token = randomBytes(16)
    await fundToken(node.port, `http://127.0.0.1:${node.port}/paid`, token, 1_000_000_000_000n)
    const runs: ShopRun[] = []
    for (const route of ['paid', 'free'] as const) {
      log(`  GET /${route}, 10 connections … `)
      const cpuStart = node.cpuMicros()
      const r = await runGetLoad(`http://127.0.0.1:${node.port}/${route}`, route === 'paid' ? { 'pay-token': token.toString('base64url') } : {}, 10, t.durationMs, t.maxPackets)
      const run: ShopRun = { route, ...r, serverCpuUsPerRequest: (node.cpuMicros() - cpuStart) / r.requests }
      runs.push(run)
      log(`${fmt(run.requestsPerSecond)} requests/s, mean ${run.latencyMs.mean.toFixed(2)} ms, p99 ${run.latencyMs.p99} ms, node CPU ${run.serverCpuUsPerRequest.toFixed(1)} µs/request\n`)
    }
    return runs
  } finally {
    await node.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Pays `amount` to the shop for `token`, as ilp-fetch would (a PSK2 request with the token as data). */
async function fundToken(port: number, url: string, token: Buffer, amount: bigint): Promise<void> {
  const probe = await request(url, { method: 'OPTIONS' })
  await probe.body.dump()
  const [, destination, secret] = String(probe.headers.pay).split(' ')
  const prepare = psk2Request(destination, secret, amount, token, Date.now() + 30_000)
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const BtpPlugin = require('ilp-plugin-btp') as new (o: { server: string }) => { connect(): Promise<void>; sendData(d: Buffer): Promise<Buffer>; disconnect(): Promise<void> }
  const carol = new BtpPlugin({ server: `btp+ws://carol:carol-token@127.0.0.1:${port}` })
  await carol.connect()
  const reply = await carol.sendData(prepare)
  await carol.disconnect()
  if (reply[0] !== 13) throw new Error('funding the bench\'s pay token was rejected')
}

async function micro(quick: boolean): Promise<{ codecs: MicroResult[]; ring: RingResult }> {
  log('\n6. Micro-benchmarks (benchmark.js)\n')
  const codecs = runCodecBenchmarks(quick ? 0.25 : 1)
  log('  ring between two threads (100-byte records) … ')
  const ring = await runRingBenchmark(quick ? 200_000 : 1_000_000)
  log(`${fmt(ring.oneWayRecordsPerSecond)} records/s; round trip p50 ${ring.roundTrip.map((r) => `${r.batch}: ${r.p50Us.toFixed(1)} µs`).join(', ')}\n`)
  return { codecs, ring }
}

function byServer(runs: Run[], server: string, window: number): Run | undefined {
  return runs.find((r) => r.server === server && r.window === window)
}

function markdown(date: string, quick: boolean, machine: Record<string, unknown>, side: Run[], scaling: Run[], http: HttpRun[], payee: PayeeRuns, shop: ShopRun[],
  m: { codecs: MicroResult[]; ring: RingResult }, stamp: string): string {
  const lines: string[] = []
  lines.push(`# ilp-node bench, ${date}${quick ? ' (quick)' : ''}`, '')
  lines.push(`Machine: ${machine.cores} cores (${machine.cpu}), ${machine.node}. Load generator on the same machine.`, '')
  lines.push('## Side by side: BTP alice → server → bob', '')
  lines.push(markdownTable(
    ['server', 'W', 'packets/s', 'p50 µs', 'p90 µs', 'p99 µs', 'server CPU µs/packet', 'generator CPU µs/packet'],
    side.map((r) => [r.server === 'node' ? `node (SHARDS=${r.shards})` : r.server, r.window, fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p90Us), fmt(r.p99Us), r.serverCpuUsPerPacket.toFixed(1), r.generatorCpuUsPerPacket.toFixed(1)]),
  ), '')
  lines.push('### Node / ilp-connector', '')
  lines.push(markdownTable(
    ['W', 'packets/s ratio', 'CPU per packet ratio', 'p50 ratio', 'share of relay packets/s'],
    WINDOWS.map((w) => {
      const n = byServer(side, 'node', w)!
      const ref = byServer(side, 'ilp-connector', w)!
      const relay = byServer(side, 'relay', w)!
      return [w, `${(n.packetsPerSecond / ref.packetsPerSecond).toFixed(1)}×`, `1/${(ref.serverCpuUsPerPacket / n.serverCpuUsPerPacket).toFixed(1)}`,
        (n.p50Us / ref.p50Us).toFixed(2), `${((100 * n.packetsPerSecond) / relay.packetsPerSecond).toFixed(0)} %`]
    }),
  ), '')
  lines.push(`![throughput](${stamp}-throughput.svg)`, '', `![latency](${stamp}-latency.svg)`, '')
  lines.push(`## Shard scaling: ${SCALING_SENDERS} senders, W=${SCALING_WINDOW}`, '')
  lines.push(markdownTable(
    ['SHARDS', 'packets/s', 'p50 µs', 'p99 µs', 'node CPU µs/packet', 'node cores busy'],
    scaling.map((r) => [r.shards ?? '', fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p99Us), r.serverCpuUsPerPacket.toFixed(1), r.serverCoresBusy.toFixed(2)]),
  ), '')
  lines.push('How to read it: the main thread owns every socket and each shard owns the accounts that hash to it. ' +
    'Scaling needs a core per shard plus one for the main thread (and here the load generator shares the machine), ' +
    `so on ${machine.cores} cores extra shards cannot add throughput; on a larger machine, run the bench and look for ` +
    'packets/s rising with SHARDS until the main thread saturates (node cores busy ≈ SHARDS + 1).', '')
  lines.push('## ILP over HTTP: autocannon → server → bob (HTTP)', '')
  lines.push(markdownTable(
    ['server', 'connections', 'requests/s', 'mean ms', 'p50 ms', 'p90 ms', 'p99 ms', 'server CPU µs/request', 'ratio node / reference'],
    http.map((r) => {
      const ref = http.find((x) => x.server === 'ilp-connector' && x.connections === r.connections)
      const ratio = r.server === 'node' && ref !== undefined ? `${(r.requestsPerSecond / ref.requestsPerSecond).toFixed(1)}× req/s, 1/${(ref.serverCpuUsPerRequest / r.serverCpuUsPerRequest).toFixed(1)} CPU` : ''
      return [r.server === 'node' ? `node (SHARDS=${r.shards})` : r.server, r.connections, fmt(r.requestsPerSecond), r.latencyMs.mean.toFixed(2), r.latencyMs.p50, r.latencyMs.p90, r.latencyMs.p99,
        r.serverCpuUsPerRequest.toFixed(1), ratio]
    }),
  ), '')
  lines.push('Each request is one prepare; the server forwards it over its keep-alive HTTP connections to bob. ' +
    'autocannon (in the bench process, with bob) shares the machine and measures latency in whole milliseconds.', '')
  lines.push('## Pay a payee: PSK2 requests (draft 2) carol → node → payee', '')
  const payeeRows = [
    ...payee.alone.map((r) => [`payee alone, W=${r.window}`, r]),
    ['payee (W=10) beside forwarding', payee.duringForwarding.payee],
    ['forwarding (W=100) beside the payee', payee.duringForwarding.forwarding],
  ] as [string, Run][]
  lines.push(markdownTable(
    ['run', 'packets/s', 'p50 µs', 'p99 µs', 'node CPU µs/packet'],
    payeeRows.map(([name, r]) => [name, fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p99Us), name.includes('beside') ? 'shared' : r.serverCpuUsPerPacket.toFixed(1)]),
  ), '')
  lines.push(`SPSP queries (autocannon, ${payee.spsp.connections} connections, GET with Accept: application/spsp+json): ` +
    `${fmt(payee.spsp.requestsPerSecond)} queries/s, mean ${payee.spsp.latencyMs.mean.toFixed(2)} ms, p99 ${payee.spsp.latencyMs.p99} ms.`, '')
  lines.push('Each payment: the sender\'s hold, AES-GCM decryption and HMACs in the payee\'s shard, an encrypted answer, ' +
    'and the credit committed to LMDB.', '')
  lines.push('## The shop: a paid route (pre-funded Pay-Token) and the same route free', '')
  lines.push(markdownTable(
    ['route', 'requests/s', 'mean ms', 'p99 ms', 'node CPU µs/request'],
    shop.map((r) => [r.route === 'paid' ? 'GET /paid (price 1, Pay-Token)' : 'GET /free (price 0)', fmt(r.requestsPerSecond), r.latencyMs.mean.toFixed(2), r.latencyMs.p99, r.serverCpuUsPerRequest.toFixed(1)]),
  ), '')
  lines.push('A paid request adds the token check, one message to the shop\'s shard and back, and the spend committed to LMDB before the answer.', '')
  lines.push('## Micro-benchmarks', '')
  lines.push(markdownTable(['case', 'ops/s', '±%'], m.codecs.map((c) => [c.name, fmt(c.opsPerSecond), c.rme.toFixed(1)])), '')
  lines.push(`Ring between two threads, 100-byte records: ${fmt(m.ring.oneWayRecordsPerSecond)} records/s one way (with echo); ` +
    `round trip p50/p99: ${m.ring.roundTrip.map((r) => `batch ${r.batch}: ${r.p50Us.toFixed(1)}/${r.p99Us.toFixed(1)} µs`).join('; ')}.`, '')
  return lines.join('\n')
}

const COLORS: Record<string, string> = { node: '#1f77b4', 'ilp-connector': '#d62728', relay: '#7f7f7f' }

function charts(side: Run[]): { throughput: string; latency: string } {
  const servers = ['node', 'ilp-connector', 'relay']
  const name = (s: string) => (s === 'relay' ? 'bare uWS relay' : s === 'node' ? `ilp-node (SHARDS=${side.find((r) => r.server === 'node')?.shards})` : 'ilp-connector@23')
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

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick')
  const started = Date.now()
  const timing: Timing = quick ? { warmupMs: 300, durationMs: 1200, maxPackets: 2_000_000 } : { warmupMs: 1000, durationMs: 5000, maxPackets: 5_000_000 }
  const machine = { cores: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem(), node: `Node ${process.version}`, platform: process.platform }
  log(`ilp-node bench (${quick ? 'quick' : 'full'}): ${machine.cores} cores, ${machine.node}\n`)
  const nodeShards = defaultShardCount()
  const side = await sideBySide(timing, nodeShards)
  const scaling = await shardScaling(timing)
  const http = await httpForwarding(timing, nodeShards)
  const payee = await payPayee(timing, nodeShards)
  const shop = await shopRoutes(timing, nodeShards)
  const m = await micro(quick)

  const date = new Date().toISOString()
  const stamp = `${date.replace(/[:.]/g, '-')}${quick ? '-quick' : ''}`
  const dir = join(__dirname, '..', '..', 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  const md = markdown(date, quick, machine, side, scaling, http, payee, shop, m, stamp)
  const { throughput, latency } = charts(side)
  writeFileSync(join(dir, `${stamp}.json`), JSON.stringify({ date, mode: quick ? 'quick' : 'full', machine, sideBySide: side, shardScaling: scaling, httpForwarding: http, payPayee: payee, shop, micro: m }, null, 2) + '\n')
  writeFileSync(join(dir, `${stamp}.md`), md)
  writeFileSync(join(dir, `${stamp}-throughput.svg`), throughput)
  writeFileSync(join(dir, `${stamp}-latency.svg`), latency)
  if (!quick) {
    writeFileSync(join(dir, 'latest.md'), md.replaceAll(`${stamp}-`, 'latest-'))
    writeFileSync(join(dir, 'latest-throughput.svg'), throughput)
    writeFileSync(join(dir, 'latest-latency.svg'), latency)
  }

  log(`\n${md.split('## Shard scaling')[0].split('### Node / ilp-connector')[1] ?? ''}`)
  log(`\nwrote ${join(dir, stamp)}.{json,md} and -{throughput,latency}.svg in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
}

main().catch((err: Error) => {
  process.stderr.write(`\nbench failed: ${err.message}\n`)
  process.exit(1)
})
