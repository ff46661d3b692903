// Goal: an error no code caught on the main thread (an uncaught exception or an unhandled
// rejection) ends the node with exit code 70 and exactly one log line naming the error, escaped
// and without a stack trace, the stack only at LOG_LEVEL=debug; the node still stops first (its
// I/O threads closed: a thread holding sockets when the process exits would abort it). In a
// worker thread such an error is one line too: a shard failing as it starts stops the node (70),
// a failed I/O thread is replaced. Method: the real entry point as a child process, with a
// preload (support/fail_on_signal.ts) that fails from a timer once the node listens, or while it
// starts, or in the worker threads; in the threaded layout, where there are I/O threads to close,
// and in the inline one.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { removeDir, tempDir } from '../support/helpers'

const MAIN = join(__dirname, '..', '..', 'src', 'main.js')
const PRELOAD = join(__dirname, '..', 'support', 'fail_on_signal.js')

/** The failure's message as its log line shows it (in quotes): one line, the newline and the override escaped. */
const SHOWN_MESSAGE = 'Error: injected failure\\n    at nowhere (forged.js:1:1)\\u202e'

interface Run {
  code: number | null
  signal: string | null
  output: string
}

/**
 * Runs the node with the preload until it exits (bounded). Once it listens, `onListening` (by
 * default: SIGUSR2, the preload's signal to fail); SIGTERM once its output matches `stopWhen`.
 */
function runUntilExit(env: Record<string, string>, o: { onListening?: (port: number) => void; stopWhen?: RegExp } = {}): Promise<Run> {
  const dataDir = tempDir()
  const proc = spawn(process.execPath, ['-r', PRELOAD, MAIN], {
    env: { ...process.env, DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const onListening = o.onListening ?? (() => proc.kill('SIGUSR2'))
  let listening = false
  let stopped = false
  const read = (chunk: Buffer) => {
    output += chunk.toString()
    const port = / listening .* port=(\d+)/.exec(output)
    if (!listening && port !== null) {
      listening = true
      onListening(Number(port[1]))
    }
    if (!stopped && o.stopWhen?.test(output)) {
      stopped = true
      proc.kill('SIGTERM')
    }
  }
  proc.stdout.on('data', read)
  proc.stderr.on('data', read)
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000)
  return new Promise((resolve) => proc.once('exit', (code, signal) => {
    clearTimeout(timer)
    removeDir(dataDir)
    resolve({ code, signal, output })
  }))
}

/** `text` as a regular expression matching it literally. */
function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/**
 * Exit 70 with one error line. With I/O threads the node stopped first; with the sockets on the
 * main thread it exits at once (main.ts says why).
 */
function assertOneLineExit(run: Run, layout: 'threaded' | 'inline'): void {
  assert.equal(run.code, 70, `exit code 70, got ${run.code} (${run.signal}):\n${run.output}`)
  const errors = run.output.split('\n').filter((line) => / ERROR /.test(line))
  assert.equal(errors.length, 1, run.output)
  assert.ok(errors[0].endsWith(`ERROR main: uncaught error: stopping the node exitCode=70 error="${SHOWN_MESSAGE}"`), errors[0])
  assert.doesNotMatch(run.output, /^\s+at /m, 'no stack trace')
  assert.doesNotMatch(run.output, /\u202e/, 'the override is escaped')
  if (layout === 'threaded') assert.match(run.output, /INFO  node: ilp-node stopped/, 'the node stopped before the process exited')
  else assert.doesNotMatch(run.output, /ilp-node stopped/)
}

const nothing = (): void => {}
const THREADED = { IO_THREADS: '2', SHARDS: '2' }
const INLINE = { IO_THREADS: '1', SHARDS: '0' }

describe('an error no code caught', () => {
  it('an uncaught exception: exit 70 after the node stops, one line naming it (threaded layout)', async () => {
    assertOneLineExit(await runUntilExit(THREADED), 'threaded')
  })

  it('an unhandled rejection: the same (threaded layout)', async () => {
    assertOneLineExit(await runUntilExit({ ...THREADED, FAIL_WITH: 'rejection' }), 'threaded')
  })

  it('while the node starts: it is let finish starting, then stopped, the same way', async () => {
    assertOneLineExit(await runUntilExit({ ...THREADED, FAIL_AT: 'start' }, { onListening: nothing }), 'threaded')
  })

  it('with the sockets on the main thread: exit 70 at once, one line (inline layout)', async () => {
    assertOneLineExit(await runUntilExit({ ...INLINE, FAIL_WITH: 'rejection' }), 'inline')
  })

  it('in a request handler on the main thread: exit 70 at once, one line, not an abort', async () => {
    const request = (port: number) => void fetch(`http://127.0.0.1:${port}/health`, { headers: { 'x-fail': '1' } }).catch(nothing)
    assertOneLineExit(await runUntilExit({ ...INLINE, FAIL_IN: 'request' }, { onListening: request }), 'inline')
  })

  it('in a shard as it starts: one line each for the shard, the node\'s fatal stop and the failed start; exit 70', async () => {
    const run = await runUntilExit({ ...THREADED, FAIL_IN: 'workers' }, { onListening: nothing })
    assert.equal(run.code, 70, run.output)
    assert.match(run.output, new RegExp(`ERROR shards: shard worker died shard=\\d error="${escaped(SHOWN_MESSAGE)}"\n`))
    assert.match(run.output, new RegExp(`ERROR node: fatal: stopping the node reason="shard \\d failed: ${escaped(SHOWN_MESSAGE)}"\n`))
    assert.match(run.output, /ERROR main: start-up failed exitCode=70 error=/)
    assert.doesNotMatch(run.output, /^\s+at |\u202e/m, 'no stack trace, the override escaped')
  })

  it('in an I/O thread: one line, its sockets closed and the thread replaced (the supervisor\'s design), the node running on', async () => {
    const dir = tempDir()
    const run = await runUntilExit({ ...THREADED, FAIL_IN: 'workers', FAIL_AFTER_MS: '1500', FAIL_ONCE: join(dir, 'failed') }, { onListening: nothing, stopWhen: /I\/O thread replaced/ })
    removeDir(dir)
    assert.equal(run.code, 0, run.output)
    const failed = run.output.split('\n').filter((line) => line.includes('I/O thread failed'))
    assert.equal(failed.length, 1, run.output)
    assert.match(failed[0], new RegExp(`ERROR io\\d: I/O thread failed; closing its sockets error="${escaped(SHOWN_MESSAGE)}"$`))
    assert.doesNotMatch(run.output, /^\s+at |\u202e/m, 'no stack trace, the override escaped')
  })

  it('with LOG_LEVEL=debug: the stack too', async () => {
    const run = await runUntilExit({ ...INLINE, LOG_LEVEL: 'debug' })
    assert.equal(run.code, 70, run.output)
    const errors = run.output.split('\n').filter((line) => / ERROR /.test(line))
    assert.equal(errors.length, 1, run.output)
    assert.ok(errors[0].includes(SHOWN_MESSAGE), errors[0])
    assert.match(run.output, /stack="Error: injected failure\\n {4}at nowhere \(forged\.js:1:1\)\\u202e\\n {4}at .*fail_on_signal\.js:\d+/)
  })
})
