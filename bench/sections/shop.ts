// Section 5, the shop: our generator's GETs on a paid route (a pre-funded Pay-Token) and on the same route
// free, and the node's CPU per request for each.

import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { runGetLoad, type GetRunResult } from '../http_load'
import { fmt, markdownTable } from '../report'
import { layoutEnv, layoutName, log, type Layout, type RunPlan } from '../runner'
import { startServerProcess } from '../server_process'
import { psk2Request } from './payee'

export interface ShopRun extends GetRunResult {
  route: 'paid' | 'free'
  serverCpuUsPerRequest: number
}

export async function shopRoutes(t: RunPlan, nodeLayout: Layout): Promise<ShopRun[]> {
  log(`\n5. The shop: GETs on a paid route (token pre-funded) and the same route free, node (${layoutName(nodeLayout)})\n`)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify({
    ilpAddress: 'test.ilpnode',
    accounts: { carol: { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'carol-token' } } },
    shop: { routes: [{ method: 'GET', path: '/paid', price: '1', response: 'ok\n' }, { method: 'GET', path: '/free', price: '0', response: 'ok\n' }] },
  }))
  const node = await startServerProcess({ ...layoutEnv(nodeLayout), CONFIG: configPath })
  try {
    const token = randomBytes(16)
    await fundToken(node.port, `http://127.0.0.1:${node.port}/paid`, token, 1_000_000_000_000n)
    const runs: ShopRun[] = []
    for (const route of ['paid', 'free'] as const) {
      log(`  GET /${route}, 10 connections … `)
      let cpuStart = 0
      let cpuEnd = 0
      const r = await runGetLoad(`http://127.0.0.1:${node.port}/${route}`, route === 'paid' ? { 'pay-token': token.toString('base64url') } : {}, 10, t.durationMs, t.maxPackets,
        { onMeasureStart: () => { cpuStart = node.cpuMicros() }, onMeasureEnd: () => { cpuEnd = node.cpuMicros() } })
      const run: ShopRun = { route, ...r, serverCpuUsPerRequest: (cpuEnd - cpuStart) / r.requests }
      runs.push(run)
      log(`${fmt(run.requestsPerSecond)} requests/s, mean ${run.latencyMs.mean.toFixed(2)} ms, p99 ${run.latencyMs.p99.toFixed(2)} ms, node CPU ${run.serverCpuUsPerRequest.toFixed(1)} µs/request, generator ${run.generatorCpuUsPerRequest.toFixed(1)}\n`)
    }
    return runs
  } finally {
    await node.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Pays `amount` to the shop for `token`, as ilp-fetch would (a PSK2 request with the token as data). */
export async function fundToken(port: number, url: string, token: Buffer, amount: bigint): Promise<void> {
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

export function shopMarkdown(shop: ShopRun[]): string[] {
  return [
    '## The shop: a paid route (pre-funded Pay-Token) and the same route free', '',
    markdownTable(
      ['route', 'requests/s', 'mean ms', 'p99 ms', 'node CPU µs/request', 'generator CPU µs/request'],
      shop.map((r) => [r.route === 'paid' ? 'GET /paid (price 1, Pay-Token)' : 'GET /free (price 0)', fmt(r.requestsPerSecond), r.latencyMs.mean.toFixed(2), r.latencyMs.p99.toFixed(2), r.serverCpuUsPerRequest.toFixed(1), r.generatorCpuUsPerRequest.toFixed(1)]),
    ), '',
    'A paid request adds the token check, one message to the shop\'s shard and back, and the spend committed to LMDB before the answer.', '',
  ]
}

/** The console summary: each route's requests/s and node CPU per request. */
export function shopSummary(shop: ShopRun[]): string[] {
  return ['### The shop', '', shop.map((r) => `/${r.route} ${fmt(r.requestsPerSecond)} requests/s (${r.serverCpuUsPerRequest.toFixed(1)} µs of node CPU each)`).join(', ') + '.', '']
}
