// Goal: the README's five-minute tour works as written, on the development config a fresh
// checkout starts with. Method: every command line of the tour's `sh` blocks, read from the
// README itself and run in order with bash in an empty directory (holding only links to
// package.json and scripts/, so that `./data` is the directory's own), on the README's port:
// `npm start` in the background, then the health check, a payment from alice to bob, the admin
// view of both balances, the packets in /metrics, an edit of data/config.json reloaded by SIGHUP
// (a 1 % fee, seen in the second payment), and SIGTERM to npm's PID, after which no process of
// the tour is left and the port is free.

import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, realpathSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { removeDir } from '../support/helpers'
import { portRefuses, processesIn, waitFor } from '../support/processes'

const ROOT = join(__dirname, '..', '..', '..')
const PORT = 7768

/** The commands the README's tour gives, in order: what this test knows how to check. */
const TOUR = [
  'npm start',
  'curl -s http://127.0.0.1:7768/health',
  'node scripts/pay.js bob 1000',
  "curl -s -H 'Authorization: Bearer development-admin-token' http://127.0.0.1:7768/admin/accounts",
  "curl -s -H 'Authorization: Bearer development-admin-token' http://127.0.0.1:7768/metrics | grep 'ilp_node_packets_total{'",
  `sed -i 's/"spread": "0"/"spread": "0.01"/' data/config.json`,
  'pkill -HUP -x ilp-main',
  'node scripts/pay.js bob 1000',
]

/** The command lines of the `sh` blocks in the README's section "A five-minute tour". */
function tourCommands(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const start = readme.indexOf('\n## A five-minute tour\n')
  assert.ok(start >= 0, 'the README has a section "## A five-minute tour"')
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end < 0 ? undefined : end)
  const commands: string[] = []
  for (const block of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of block[1].split('\n')) if (line.trim() !== '' && !line.trimStart().startsWith('#')) commands.push(line.trim())
  }
  return commands
}

describe("the README's five-minute tour", () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'ilp-node-tour-')))
  // The tour's own environment: no CONFIG, DATA_DIR or port of the caller's (the layout is kept,
  // so the suite's second pass walks the tour with threads).
  const env = { ...process.env }
  for (const name of ['CONFIG', 'DATA_DIR', 'HOST', 'PORT', 'ADMIN_HOST', 'ADMIN_PORT', 'LOG_LEVEL', 'LOG_FORMAT']) delete env[name]
  let npm: ChildProcess | null = null
  let output = ''

  after(() => {
    for (const pid of processesIn(dir)) {
      try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
    }
    removeDir(dir)
  })

  /** Runs one command of the tour as a newcomer would in the second terminal. */
  function run(command: string): string {
    const result = spawnSync('bash', ['-c', command], { cwd: dir, env, encoding: 'utf8', timeout: 30_000 })
    assert.equal(result.status, 0, `${command} exited ${result.status}:\n${result.stdout}${result.stderr}\nnode:\n${output}`)
    return result.stdout
  }

  it('runs as written: pay alice → bob, see it in the admin API and /metrics, reload a fee, stop', { timeout: 90_000 }, async () => {
    assert.deepEqual(tourCommands(), TOUR, 'the README tour gives the commands this test walks')
    assert.equal(await portRefuses(PORT), true, `port ${PORT} is in use: the tour runs on the README's port, so stop whatever holds it`)
    symlinkSync(join(ROOT, 'package.json'), join(dir, 'package.json'))
    symlinkSync(join(ROOT, 'scripts'), join(dir, 'scripts'))
    const [start, health, pay, accounts, metrics, edit, reload, payAgain] = TOUR

    npm = spawn('bash', ['-c', `exec ${start}`], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
    npm.stdout!.on('data', (c: Buffer) => { output += c.toString() })
    npm.stderr!.on('data', (c: Buffer) => { output += c.toString() })
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => npm!.once('exit', (code, signal) => resolve({ code, signal })))
    await waitFor('the listening line', () => /ilp-node listening .* port=7768/.test(output), () => output)
    assert.match(output, /wrote the development config .* file=data\/config\.json/)
    assert.match(output, /running with the development tokens from the README/)

    assert.equal(run(health).trim(), '{"status":"ok"}')
    assert.match(run(pay), /^sent 1000, delivered 1000; bob received 1000$/m)

    const view = JSON.parse(run(accounts)) as { accounts: Array<{ id: string; balance: string }> }
    const balance = (id: string) => view.accounts.find((a) => a.id === id)?.balance
    assert.equal(balance('alice'), '1000', 'alice paid 1000: the node holds it for her')
    assert.equal(balance('bob'), '-1000', 'bob was paid 1000: the node owes it to him')

    const packets = (text: string, account: string, direction: string) =>
      Number(new RegExp(`^ilp_node_packets_total\\{account="${account}",direction="${direction}",result="fulfill"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? -1)
    const scraped = run(metrics)
    assert.ok(packets(scraped, 'alice', 'incoming') >= 1, scraped)
    assert.ok(packets(scraped, 'bob', 'outgoing') >= 1, scraped)

    run(edit)
    assert.match(readFileSync(join(dir, 'data', 'config.json'), 'utf8'), /"spread": "0\.01"/)
    const ours = spawnSync('pgrep', ['-x', 'ilp-main'], { encoding: 'utf8' }).stdout.trim().split('\n').map(Number)
    assert.deepEqual(ours.filter((pid) => !processesIn(dir).includes(pid)), [], 'another ilp-main runs on this machine: the tour\'s pkill would reload it too')
    run(reload)
    await waitFor('the reload line', () => /config reloaded .*spread 0\.01/.test(output), () => output)
    assert.match(run(payAgain), /^sent 1000, delivered 990; bob received 990$/m)

    process.kill(npm.pid!, 'SIGTERM')
    assert.deepEqual(await exited, { code: 0, signal: null }, output)
    assert.match(output, /ilp-node stopped/)
    await waitFor('every process of the tour gone', () => processesIn(dir).length === 0, () => output)
    assert.equal(await portRefuses(PORT), true, `port ${PORT} still accepts connections`)
  })
})
