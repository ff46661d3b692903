// Section 9, changes at scale: what a hub with many accounts pays to start, and to change one
// account while it runs. For 1,000, 10,000 and 100,000 child accounts, a node process (the same
// entry point as `npm start`, in the machine's default layout) is started on a fresh data
// directory and measured for:
//   - start: from spawn to the first 200 of /health;
//   - RSS once started (/proc/<pid>/status);
//   - one PUT /admin/accounts/:id that adds an account, one that updates one, one DELETE
//     (each the median of several);
//   - one balance adjustment (POST /admin/accounts/:id/adjust) and one GET /admin/accounts/:id (medians);
//   - one reload (POST /admin/reload, as SIGHUP) after the file gained one account (median).
// A change should cost what it changes: the figures at 100,000 should be those at 1,000.
// `--only accounts` runs it; alone, `node dist/bench/sections/accounts.js [--quick] [--sizes 1000,100000]`; every wait is bounded.

import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fmt, markdownTable } from '../report'
import { log } from '../runner'

const ADMIN_TOKEN = 'accounts-bench-admin-token'
/** A node with 100,000 accounts starts in seconds; beyond this it counts as failed. */
const START_TIMEOUT_MS = 120_000
const REQUEST_TIMEOUT_MS = 60_000

export interface AccountsRow {
  accounts: number
  startMs: number
  rssMiB: number
  putAddMs: number
  putUpdateMs: number
  deleteMs: number
  adjustMs: number
  getOneMs: number
  reloadMs: number
}

export interface AccountsResult {
  rows: AccountsRow[]
  repetitions: number
}

interface NodeUnderTest {
  proc: ChildProcess
  port: number
  dir: string
  configPath: string
  file: Record<string, unknown>
}

function childAccount(i: number): Record<string, unknown> {
  return { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: `token-of-child-${i}-0123456789` }, balance: { minimum: '-1000000000', maximum: '1000000000' } }
}

function configOf(accounts: number): Record<string, unknown> {
  const all: Record<string, unknown> = {}
  for (let i = 0; i < accounts; i++) all[`child${i}`] = childAccount(i)
  return { ilpAddress: 'test.hub', adminToken: ADMIN_TOKEN, accounts: all, routes: [] }
}

async function startNode(accounts: number): Promise<NodeUnderTest & { startMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-accounts-'))
  const configPath = join(dir, 'config.json')
  const file = configOf(accounts)
  writeFileSync(configPath, JSON.stringify(file))
  const started = performance.now()
  const proc = spawn(process.execPath, [join(__dirname, '..', '..', 'src', 'main.js')], {
    env: { ...process.env, CONFIG: configPath, DATA_DIR: join(dir, 'data'), PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const port = await listeningPort(proc)
  await untilHealthy(port, started)
  return { proc, port, dir, configPath, file, startMs: performance.now() - started }
}

/** The port the node logs once listening. */
function listeningPort(proc: ChildProcess): Promise<number> {
  let output = ''
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`no start within ${START_TIMEOUT_MS} ms:\n${output.slice(-2000)}`)) }, START_TIMEOUT_MS)
    const read = (chunk: Buffer) => {
      output += chunk.toString()
      const m = /listening .*port=(\d+)/.exec(output)
      if (m !== null) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
      if (output.length > 100_000) output = output.slice(-10_000)
    }
    proc.stdout!.on('data', read)
    proc.stderr!.on('data', read)
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`node exited (${code}):\n${output.slice(-2000)}`)) })
  })
}

async function untilHealthy(port: number, started: number): Promise<void> {
  while (performance.now() - started < START_TIMEOUT_MS) {
    const ok = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false)
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error('/health never answered 200')
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) / 1024
}

/** One admin request, timed; throws unless it answered `expect`. */
async function timed(node: NodeUnderTest, method: string, path: string, body: unknown, expect: number): Promise<number> {
  const t0 = performance.now()
  const res = await fetch(`http://127.0.0.1:${node.port}${path}`, {
    method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  const text = await res.text()
  const ms = performance.now() - t0
  if (res.status !== expect) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 500)}`)
  return ms
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

async function measure(accounts: number, repetitions: number): Promise<AccountsRow> {
  const node = await startNode(accounts)
  try {
    const rss = rssMiB(node.proc.pid!)
    const putAdd: number[] = []
    const putUpdate: number[] = []
    const deletes: number[] = []
    const adjusts: number[] = []
    const gets: number[] = []
    const reloads: number[] = []
    for (let r = 0; r < repetitions; r++) {
      putAdd.push(await timed(node, 'PUT', `/admin/accounts/added${r}`, childAccount(accounts + r), 201))
      putUpdate.push(await timed(node, 'PUT', `/admin/accounts/child${r}`, { ...childAccount(r), maxPacketAmount: String(1000 + r) }, 200))
      deletes.push(await timed(node, 'DELETE', `/admin/accounts/added${r}`, undefined, 200))
      adjusts.push(await timed(node, 'POST', `/admin/accounts/child${r}/adjust`, { amount: '-1', reason: 'bench', idempotencyKey: `bench-${r}` }, 201))
      gets.push(await timed(node, 'GET', `/admin/accounts/child${r}`, undefined, 200))
    }
    const accountsOfFile = node.file.accounts as Record<string, unknown>
    for (let r = 0; r < repetitions; r++) {
      accountsOfFile[`reloaded${r}`] = childAccount(2 * accounts + r)
      writeFileSync(node.configPath, JSON.stringify(node.file))
      reloads.push(await timed(node, 'POST', '/admin/reload', undefined, 200))
    }
    return { accounts, startMs: node.startMs, rssMiB: rss, putAddMs: median(putAdd), putUpdateMs: median(putUpdate), deleteMs: median(deletes), adjustMs: median(adjusts), getOneMs: median(gets), reloadMs: median(reloads) }
  } finally {
    await stopNode(node)
  }
}

async function stopNode(node: NodeUnderTest): Promise<void> {
  const exited = new Promise((resolve) => node.proc.once('exit', resolve))
  node.proc.kill('SIGTERM')
  const timer = setTimeout(() => node.proc.kill('SIGKILL'), 30_000)
  await exited
  clearTimeout(timer)
  rmSync(node.dir, { recursive: true, force: true })
}

/** Every size, smallest first; quick mode repeats each change 3 times instead of 7. */
export async function runAccounts(quick: boolean, sizes: readonly number[] = [1_000, 10_000, 100_000]): Promise<AccountsResult> {
  log(`\n9. Changes at scale: start, RSS and one change with ${sizes.map((n) => fmt(n)).join(', ')} accounts\n`)
  const repetitions = quick ? 3 : 7
  const rows: AccountsRow[] = []
  for (const accounts of sizes) {
    log(`  ${fmt(accounts)} accounts … `)
    rows.push(await measure(accounts, repetitions))
    log(`${describeRow(rows[rows.length - 1])}\n`)
  }
  return { rows, repetitions }
}

function describeRow(row: AccountsRow): string {
  return `start ${fmt(row.startMs)} ms, RSS ${fmt(row.rssMiB)} MiB, PUT ${fmt(row.putAddMs, 1)} ms (update ${fmt(row.putUpdateMs, 1)}), DELETE ${fmt(row.deleteMs, 1)} ms, ` +
    `adjust ${fmt(row.adjustMs, 1)} ms, GET one ${fmt(row.getOneMs, 1)} ms, reload +1 ${fmt(row.reloadMs, 1)} ms`
}

export function accountsSummary(r: AccountsResult): string[] {
  return ['### Changes at scale', '', ...r.rows.map((row) => `${fmt(row.accounts)} accounts: ${describeRow(row)}`), '']
}

export function accountsMarkdown(r: AccountsResult): string[] {
  return [
    '## Changes at scale',
    '',
    `A node with N child accounts (BTP tokens, one asset): start to /health, RSS after start, and the median of ${r.repetitions} of each change.`,
    '',
    markdownTable(['accounts', 'start (ms)', 'RSS (MiB)', 'PUT new (ms)', 'PUT update (ms)', 'DELETE (ms)', 'adjust (ms)', 'GET one (ms)', 'reload +1 account (ms)'],
      r.rows.map((row) => [row.accounts, fmt(row.startMs), fmt(row.rssMiB), fmt(row.putAddMs, 1), fmt(row.putUpdateMs, 1), fmt(row.deleteMs, 1), fmt(row.adjustMs, 1), fmt(row.getOneMs, 1), fmt(row.reloadMs, 1)])),
    '',
  ]
}

if (require.main === module) {
  const quick = process.argv.includes('--quick')
  const sizesArg = process.argv.indexOf('--sizes')
  const sizes = sizesArg < 0 ? undefined : process.argv[sizesArg + 1].split(',').map(Number)
  runAccounts(quick, sizes).then((r) => {
    console.log(accountsMarkdown(r).join('\n'))
  }, (err: Error) => {
    console.error(err)
    process.exit(1)
  })
}
