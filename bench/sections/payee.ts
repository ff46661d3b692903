// Section 4, pay a payee: PSK2 requests (draft 2, as ilp-fetch and koa-ilp send them) to a payee of
// the node, alone and while forwarding runs at W=100 beside it, and SPSP queries.

import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { encodePrepare } from '../../src/codec/ilp_packet'
import { encrypt, psk2Fulfillment, psk2Keys, serializeDraft2, TYPE_REQUEST } from '../../src/codec/psk2'
import { runGetLoad, type GetRunResult } from '../http_load'
import { fmt, markdownTable } from '../report'
import { describe, layoutEnv, layoutName, log, measure, type Layout, type Run, type RunPlan } from '../runner'
import { startServerProcess } from '../server_process'

export interface PayeeRuns {
  alone: Run[]
  duringForwarding: { forwarding: Run; payee: Run }
  spsp: GetRunResult
}

/** A PSK2 request (draft 2) for 10 units to the payee at `url`, from a fresh SPSP query. */
export async function payeePrepare(url: string, t: RunPlan): Promise<Buffer> {
  const res = await request(url, { headers: { accept: 'application/spsp+json' } })
  if (res.statusCode !== 200) throw new Error(`SPSP query to ${url} answered ${res.statusCode}`)
  const spsp = await res.body.json() as { destination_account: string; shared_secret: string }
  return psk2Request(spsp.destination_account, spsp.shared_secret, 10n, Buffer.alloc(0), Date.now() + t.warmupMs + t.durationMs + 60_000)
}

/** A PSK2 draft-2 request prepare (what ilp-fetch and koa-ilp send), fulfillable by the receiver. */
export function psk2Request(destination: string, sharedSecret: string, amount: bigint, data: Buffer, expiresAtMs: number): Buffer {
  const keys = psk2Keys(Buffer.from(sharedSecret, 'base64'))
  const encrypted = encrypt(keys.encryption, serializeDraft2(TYPE_REQUEST, 1, 0n, data))
  const condition = createHash('sha256').update(psk2Fulfillment(keys, encrypted)).digest()
  return encodePrepare({ amount, expiresAtMs, executionCondition: condition, destination, data: encrypted })
}

export async function payPayee(t: RunPlan, nodeLayout: Layout): Promise<PayeeRuns> {
  log(`\n4. Pay a payee: PSK2 requests carol → node (${layoutName(nodeLayout)}) → payee shop, alone and beside forwarding\n`)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-config-'))
  const child = (token: string) => ({ relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token } })
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify({
    ilpAddress: 'test.ilpnode',
    accounts: { alice: child('alice-token'), bob: child('bob-token'), carol: child('carol-token') },
    payees: { shop: {} },
  }))
  const node = await startServerProcess({ ...layoutEnv(nodeLayout), CONFIG: configPath })
  try {
    const url = `http://127.0.0.1:${node.port}/shop`
    const carol = [{ user: 'carol', token: 'carol-token' }]
    const alone: Run[] = []
    for (const window of [1, 100]) {
      log(`  payee alone, W=${window} … `)
      const run = await measure(node, 'node', nodeLayout, window, t, { senders: carol, prepare: await payeePrepare(url, t), receiver: false })
      alone.push(run)
      log(describe(run))
    }
    log('  forwarding W=100 and the payee W=10 at once … ')
    const prepare = await payeePrepare(url, t)
    const [forwarding, payee] = await Promise.all([
      measure(node, 'node', nodeLayout, 100, t),
      measure(node, 'node', nodeLayout, 10, t, { senders: carol, prepare, receiver: false }),
    ])
    log(`forwarding ${fmt(forwarding.packetsPerSecond)} packets/s (p99 ${fmt(forwarding.p99Us)} µs), payee ${fmt(payee.packetsPerSecond)} payments/s (p99 ${fmt(payee.p99Us)} µs)\n`)
    log('  SPSP queries, 10 connections … ')
    const spsp = await runGetLoad(url, { accept: 'application/spsp+json' }, 10, t.durationMs, t.maxPackets)
    log(`${fmt(spsp.requestsPerSecond)} queries/s, mean ${spsp.latencyMs.mean.toFixed(2)} ms, p99 ${spsp.latencyMs.p99.toFixed(2)} ms\n`)
    return { alone, duringForwarding: { forwarding, payee }, spsp }
  } finally {
    await node.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

export function payeeMarkdown(payee: PayeeRuns): string[] {
  const rows = [
    ...payee.alone.map((r) => [`payee alone, W=${r.window}`, r]),
    ['payee (W=10) beside forwarding', payee.duringForwarding.payee],
    ['forwarding (W=100) beside the payee', payee.duringForwarding.forwarding],
  ] as [string, Run][]
  return [
    '## Pay a payee: PSK2 requests (draft 2) carol → node → payee', '',
    markdownTable(
      ['run', 'packets/s', 'p50 µs', 'p99 µs', 'node CPU µs/packet'],
      rows.map(([name, r]) => [name, fmt(r.packetsPerSecond), fmt(r.p50Us), fmt(r.p99Us), name.includes('beside') ? 'shared' : r.serverCpuUsPerPacket.toFixed(1)]),
    ), '',
    `SPSP queries (${payee.spsp.connections} keep-alive connections, GET with Accept: application/spsp+json): ` +
      `${fmt(payee.spsp.requestsPerSecond)} queries/s, mean ${payee.spsp.latencyMs.mean.toFixed(2)} ms, p99 ${payee.spsp.latencyMs.p99.toFixed(2)} ms.`, '',
    'Each payment: the sender\'s hold, AES-GCM decryption and HMACs in the payee\'s shard, an encrypted answer, ' +
      'and the credit committed to LMDB.', '',
  ]
}

/** The console summary: payments/s alone at each window, and SPSP queries/s. */
export function payeeSummary(p: PayeeRuns): string[] {
  return ['### Pay a payee', '', `PSK2 payments/s alone: ${p.alone.map((r) => `W=${r.window} ${fmt(r.packetsPerSecond)}`).join(', ')}; ` +
    `SPSP ${fmt(p.spsp.requestsPerSecond)} queries/s.`, '']
}
