// Goal: no request or sequence of requests can make the node write more than a bounded amount of
// log. Every string value from outside is cut (LOG_VALUE_MAX_CHARS, LOG_ERROR_VALUE_MAX_CHARS on
// error lines), the message too (LOG_MESSAGE_MAX_CHARS), no line is over LOG_LINE_MAX_BYTES,
// control and bidi characters cannot start a line or pass for a field, and each thread writes at
// most its budget of lines (src/log.ts). Found before: 2,000 unauthenticated requests for
// `/admin/<64 KiB path>` wrote 131 MB of log in 1.5 s.
//
// Method: the logger in this process with a sink that keeps its lines and a clock the test moves,
// in both formats; then the real entry point as a child process, flooded from 127.0.0.1 for a few
// seconds (bounded in count and in time) with those admin requests over keep-alive connections
// and with BTP connections that send garbage, in the inline layout and at IO_THREADS=2 SHARDS=2,
// every byte of its output counted against maxLogBytes for its threads and the flood's duration.

import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { Agent, get } from 'node:http'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { EMBEDDED_DEFAULT_CONFIG } from '../../src/config/load'
import {
  LOG_BURST_LINES, LOG_ERROR_RESERVE_LINES, LOG_ERROR_VALUE_MAX_CHARS, LOG_LINES_PER_SECOND, LOG_LINE_MAX_BYTES,
  LOG_MESSAGE_MAX_CHARS, LOG_VALUE_MAX_CHARS, LogOncePer, configureLog, formatLogLine, logger, maxLogBytes, maxLogLines, resetLogBudget, setLogSink,
} from '../../src/log'
import { startNodeProcess } from '../../src/testing/node_process'
import { BenchWebSocket } from '../support/ws_client'
import { removeDir, sleep, tempDir } from '../support/helpers'

interface Written {
  line: string
  toStderr: boolean
}

/** This thread's logger writing into an array, on a clock the test sets. */
function capture(): { lines: Written[]; clock: { nowMs: number } } {
  const lines: Written[] = []
  const clock = { nowMs: 0 }
  setLogSink((line, toStderr) => lines.push({ line, toStderr }))
  resetLogBudget(() => clock.nowMs)
  return { lines, clock }
}

function isDroppedReport(line: string): boolean {
  return line.includes("log lines dropped over this thread's rate limit")
}

function droppedCount(line: string): number {
  return Number(/ dropped=(\d+)$/.exec(line)![1])
}

describe('log lines: cut, escaped, capped', () => {
  beforeEach(() => configureLog('info', 'text'))
  afterEach(() => configureLog('info', 'text'))

  it('cuts a long value and says how much went; the message too', () => {
    const line = formatLogLine('info', 'admin', 'm'.repeat(70_000), { path: `/admin/${'a'.repeat(65536)}`, method: 'GET' })
    const path = `/admin/${'a'.repeat(LOG_VALUE_MAX_CHARS - 7)}…(+${65536 + 7 - LOG_VALUE_MAX_CHARS} chars)`
    assert.ok(line.includes(` path="${path}" method=GET`), line.slice(0, 1000))
    assert.ok(line.includes(`: ${'m'.repeat(LOG_MESSAGE_MAX_CHARS)}…(+${70_000 - LOG_MESSAGE_MAX_CHARS} chars) path=`))
    assert.equal(formatLogLine('info', 'admin', 'short', { v: 'b'.repeat(LOG_VALUE_MAX_CHARS) }).endsWith(` v=${'b'.repeat(LOG_VALUE_MAX_CHARS)}`), true)
  })

  it('keeps more of a value on an error line (a stack trace), still cut', () => {
    const stack = `Error: boom\n${'    at somewhere (file.js:1:1)\n'.repeat(200)}`
    const line = formatLogLine('error', 'main', 'start-up failed', { error: stack })
    const kept = stack.slice(0, LOG_ERROR_VALUE_MAX_CHARS).replaceAll('\n', '\\n')
    assert.ok(line.includes(`error="${kept}…(+${stack.length - LOG_ERROR_VALUE_MAX_CHARS} chars)"`))
    assert.ok(!line.includes('\n'))
  })

  it('escapes what would start a line or turn text around, and quotes what would pass for a field', () => {
    const forged = 'x\n2026-01-01T00:00:00.000Z ERROR node: fatal\r\u0000\u001b[31m\u0085\u2028\u202eevil\u2066 ok'
    const line = formatLogLine('info', 'btp', 'refused\nFAKE', { remote: forged, account: 'alice admin=true', quote: 'a"b', empty: '', back: 'a\\nb', plain: 'alice' })
    assert.equal(line.split('\n').length, 1)
    assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/)
    assert.ok(line.includes(': refused\\nFAKE remote='))
    assert.ok(line.includes('remote="x\\n2026-01-01T00:00:00.000Z ERROR node: fatal\\r\\u0000\\u001b[31m\\u0085\\u2028\\u202eevil\\u2066 ok"'), line)
    assert.ok(line.includes(' account="alice admin=true" quote="a\\"b" empty="" back=a\\\\nb plain=alice'), line)
  })

  it('in JSON: the same cuts, one object per line, bidi characters escaped', () => {
    configureLog('info', 'json')
    const line = formatLogLine('warn', 'admin', `refused\n${'m'.repeat(1000)}`, { path: `/admin/${'a'.repeat(65536)}\u202e`, remote: 'x\u2066\u0000', amount: 12n, ok: true, time: 'forged' })
    assert.equal(line.split('\n').length, 1)
    assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/)
    const record = JSON.parse(line) as Record<string, unknown>
    assert.equal(record.level, 'warn')
    assert.notEqual(record.time, 'forged')
    assert.equal(record.msg, `refused\n${'m'.repeat(LOG_MESSAGE_MAX_CHARS - 8)}…(+${1008 - LOG_MESSAGE_MAX_CHARS} chars)`)
    assert.equal(record.path, `/admin/${'a'.repeat(LOG_VALUE_MAX_CHARS - 7)}…(+${65537 + 7 - LOG_VALUE_MAX_CHARS} chars)`)
    assert.equal(record.remote, 'x\u2066\u0000')
    assert.equal(record.amount, '12')
    assert.equal(record.ok, true)
  })

  for (const format of ['text', 'json'] as const) {
    it(`no line is over LOG_LINE_MAX_BYTES, whatever the fields (${format}); those left out are counted`, () => {
      configureLog('info', format)
      const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`field${i}`, 'v'.repeat(300)]))
      const worst = {
        ...Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`nul${i}`, '\u0000'.repeat(5000)])),
        ...Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`wide${i}`, '\u4e00'.repeat(5000)])),
      }
      const lines = [
        formatLogLine('info', 'x', 'many fields', many),
        formatLogLine('error', '\u001b'.repeat(200), '\u0000'.repeat(5000), worst),
        formatLogLine('warn', 'x', '\u4e00'.repeat(5000), worst),
      ]
      for (const line of lines) {
        assert.ok(Buffer.byteLength(line) <= LOG_LINE_MAX_BYTES, `${Buffer.byteLength(line)} bytes`)
        assert.equal(line.split('\n').length, 1)
        if (format === 'json') assert.doesNotThrow(() => JSON.parse(line))
      }
      const kept = (lines[0].match(/field\d+/g) ?? []).length
      const leftOut = format === 'json' ? (JSON.parse(lines[0]) as { fieldsLeftOut: number }).fieldsLeftOut : Number(/ fieldsLeftOut=(\d+)$/.exec(lines[0])![1])
      assert.ok(kept > 5)
      assert.equal(kept + leftOut, 100)
    })
  }
})

describe('log lines: each thread\'s budget', () => {
  afterEach(() => {
    setLogSink(null)
    resetLogBudget()
    configureLog('info', 'text')
  })

  it('LogOncePer, with its table full, forgets the keys whose interval has passed and says what they held back; new keys get their own lines again', () => {
    const { lines } = capture()
    const once = new LogOncePer(logger('clients'), 'info', 60_000, 4)
    const event = (client: string, atMs: number) => once.event(client, 'refused', { client }, atMs)
    for (const client of ['a', 'b', 'c', 'd']) {
      event(client, 0)
      event(client, 10)
    }
    assert.equal(lines.length, 4, 'one line per key; the second of each held back')
    event('e', 1000)
    assert.equal(lines.length, 5, 'a fifth key within the interval shares the (other) line')
    event('f', 61_000)
    assert.match(lines[5].line, / client=f suppressedForOthers=4$/)
    event('g', 61_500)
    assert.equal(lines.length, 7, 'room again: g has a line of its own, not a share of (other)')
    assert.match(lines[6].line, / client=g$/)
  })

  it('writes a burst, then the refill; says how many it dropped, with its next line', () => {
    const { lines, clock } = capture()
    const log = logger('admin')
    for (let i = 0; i < LOG_BURST_LINES + 500; i++) log.info('refused', { i })
    assert.equal(lines.length, LOG_BURST_LINES)
    assert.ok(lines.every((l) => !isDroppedReport(l.line)))

    clock.nowMs = 1000
    for (let i = 0; i < 2 * LOG_LINES_PER_SECOND; i++) log.info('refused', { i })
    const second = lines.slice(LOG_BURST_LINES)
    assert.ok(isDroppedReport(second[0].line), second[0].line)
    assert.equal(second[0].toStderr, true)
    assert.equal(droppedCount(second[0].line), 500)
    assert.match(second[0].line, /WARN  admin: log lines dropped over this thread's rate limit \(100 lines\/s, burst 1000\) dropped=500$/)
    assert.equal(second.length, 1 + LOG_LINES_PER_SECOND)

    // Within a second of the last count the next one waits; then it comes with the next line.
    clock.nowMs = 1500
    log.info('later')
    assert.equal(lines.length, LOG_BURST_LINES + 2 + LOG_LINES_PER_SECOND)
    assert.ok(!isDroppedReport(lines.at(-2)!.line))
    clock.nowMs = 2000
    log.info('later still')
    assert.equal(droppedCount(lines.at(-2)!.line), LOG_LINES_PER_SECOND)
    assert.match(lines.at(-1)!.line, /later still$/)
  })

  it('keeps a reserve for error lines once info lines have spent the budget', () => {
    const { lines } = capture()
    const log = logger('node')
    for (let i = 0; i < LOG_BURST_LINES * 3; i++) log.info('flood')
    for (let i = 0; i < LOG_ERROR_RESERVE_LINES + 10; i++) log.error('fatal: stopping the node', { i })
    const errors = lines.filter((l) => l.line.includes('fatal: stopping the node'))
    assert.equal(errors.length, LOG_ERROR_RESERVE_LINES)
    assert.equal(droppedCount(lines[LOG_BURST_LINES].line), LOG_BURST_LINES * 2)
  })

  it('counts nothing for a level that is off', () => {
    const { lines } = capture()
    const log = logger('shard 0')
    for (let i = 0; i < LOG_BURST_LINES * 3; i++) log.debug('rejected malformed packet')
    log.info('still here')
    assert.deepEqual(lines.map((l) => l.line.replace(/^\S+ /, '')), ['INFO  shard 0: still here'])
  })

  for (const format of ['text', 'json'] as const) {
    it(`a flood of the longest lines for 60 s of its clock stays within maxLogBytes(1, 60) (${format})`, () => {
      configureLog('info', format)
      const { lines, clock } = capture()
      const log = logger('admin')
      const huge = { path: `/admin/${'a'.repeat(65536)}`, auth: '\u0000'.repeat(5000), a: 'x'.repeat(5000), b: 'y'.repeat(5000) }
      // 500 calls every 10 ms, errors among them: 3 million lines asked for.
      for (let step = 0; step <= 6000; step++) {
        clock.nowMs = step * 10
        for (let i = 0; i < 500; i++) log[i % 10 === 0 ? 'error' : 'info']('admin request refused', huge)
      }
      const bytes = lines.reduce((sum, l) => sum + Buffer.byteLength(l.line) + 1, 0)
      assert.ok(lines.length <= maxLogLines(1, 60), `${lines.length} lines`)
      assert.ok(bytes <= maxLogBytes(1, 60), `${bytes} > ${maxLogBytes(1, 60)}`)
      assert.ok(lines.every((l) => Buffer.byteLength(l.line) <= LOG_LINE_MAX_BYTES))
      const reports = lines.filter((l) => isDroppedReport(l.line))
      assert.ok(reports.length >= 59 && reports.length <= 61, `${reports.length} reports`)
    })
  }
})

/** What a child writes on its stdout and stderr from now on. */
class Output {
  private readonly streams = { stdout: [] as Buffer[], stderr: [] as Buffer[] }

  constructor(proc: ChildProcess) {
    proc.stdout!.on('data', (chunk: Buffer) => this.streams.stdout.push(chunk))
    proc.stderr!.on('data', (chunk: Buffer) => this.streams.stderr.push(chunk))
  }

  bytes(): number {
    return [...this.streams.stdout, ...this.streams.stderr].reduce((sum, chunk) => sum + chunk.length, 0)
  }

  lines(): string[] {
    return [this.streams.stdout, this.streams.stderr].flatMap((chunks) => Buffer.concat(chunks).toString().split('\n'))
  }
}

const ADMIN_REQUESTS = 2000
const BTP_CONNECTIONS = 600
const FLOOD_MS = 3000
/** Time for the last lines of the flood to reach the output (shard lines wait up to 100 ms in their rings). */
const SETTLE_MS = 500

/** GET /admin/<64 KiB of 'a'> without a token, over keep-alive connections: `count` at most, for `ms` at most. */
async function floodAdmin(port: number, count: number, ms: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 8 })
  const path = `/admin/${'a'.repeat(65536)}`
  const deadline = Date.now() + ms
  let sent = 0
  const one = () => new Promise<void>((resolve) => {
    get({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume()
      res.on('end', () => resolve())
    }).on('error', () => resolve())
  })
  const sender = async () => {
    while (sent < count && Date.now() < deadline) {
      sent++
      await one()
    }
  }
  await Promise.all(Array.from({ length: 8 }, sender))
  agent.destroy()
  return sent
}

/** BTP connections that send garbage instead of an auth message: `count` at most, for `ms` at most. */
async function floodBtp(port: number, count: number, ms: number): Promise<number> {
  const deadline = Date.now() + ms
  let opened = 0
  const sockets: BenchWebSocket[] = []
  const sender = async () => {
    while (opened < count && Date.now() < deadline) {
      opened++
      const ws = await BenchWebSocket.open(port).catch(() => null)
      if (ws === null) continue
      sockets.push(ws)
      for (let i = 0; i < 3; i++) ws.send(randomBytes(512))
      ws.close()
    }
  }
  await Promise.all(Array.from({ length: 8 }, sender))
  for (const ws of sockets) ws.close()
  return opened
}

function health(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/health' }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    }).on('error', reject)
  })
}

describe('the node under a log flood', () => {
  const layouts = [
    { env: { IO_THREADS: '1', SHARDS: '0' }, threads: 1 },
    { env: { IO_THREADS: '2', SHARDS: '2' }, threads: 5 },
  ]
  for (const { env, threads } of layouts) {
    it(`writes at most maxLogBytes(${threads}, seconds) while flooded (IO_THREADS=${env.IO_THREADS} SHARDS=${env.SHARDS})`, { timeout: 60_000 }, async (t) => {
      const dir = tempDir('ilp-node-log-flood-')
      // An admin token the flood does not know: every request is refused, and refusals are logged.
      const config = join(dir, 'node.json')
      writeFileSync(config, JSON.stringify({ ...EMBEDDED_DEFAULT_CONFIG, adminToken: 'a-token-the-flood-does-not-know' }))
      const node = await startNodeProcess({ ...env, CONFIG: config, LOG_LEVEL: 'info', LOG_FORMAT: 'text' })
      try {
        const output = new Output(node.proc)
        const started = performance.now()
        const requests = await floodAdmin(node.port, ADMIN_REQUESTS, FLOOD_MS)
        const connections = await floodBtp(node.port, BTP_CONNECTIONS, FLOOD_MS)
        await sleep(SETTLE_MS)
        const seconds = (performance.now() - started) / 1000
        const bytes = output.bytes()
        const bound = maxLogBytes(threads, seconds)
        const lines = output.lines().filter((line) => line !== '')
        const longest = lines.reduce((most, line) => Math.max(most, Buffer.byteLength(line)), 0)
        t.diagnostic(`${requests} admin requests, ${connections} BTP connections in ${seconds.toFixed(2)} s: ${bytes} bytes of log in ${lines.length} lines, longest ${longest} bytes; bound ${bound} bytes`)
        assert.ok(connections > 0)
        assert.ok(lines.length <= maxLogLines(threads, seconds), `${lines.length} lines`)
        assert.ok(bytes <= bound, `${bytes} bytes > ${bound}`)
        assert.ok(longest <= LOG_LINE_MAX_BYTES, `a line of ${longest} bytes`)
        // The refusals themselves are logged once per client per minute (src/io/client_gate.ts).
        const refusals = lines.filter((line) => /admin request refused: no bearer token/.test(line)).length
        assert.ok(refusals >= 1 && refusals <= 2, `${refusals} lines for ${requests} refused admin requests`)
        assert.equal(await health(node.port), 200)
      } finally {
        await node.stop()
        removeDir(dir)
      }
    })
  }
})
