// Errors a test provokes on purpose are logged by the node it runs. The test captures those lines
// and asserts the ones it expects, rather than letting them into the run's output, where they
// would look like trouble. What the test process writes to stderr is held while each test runs:
// the log's error and warn lines of an in-process node, from its main thread and, relayed or
// piped, from its shard and I/O threads (a sink set with setLogSink would see the main thread's
// only). If the test fails, what was held is written out after all, so that its logs still show.
// Lines a node writes after the test ends (a relay that comes late) are not held.

import assert from 'node:assert/strict'
import { afterEach, beforeEach } from 'node:test'

/** An error line of the log in either format (`… ERROR scope: …` or `"level":"error"`). */
const ERROR_LINE = / ERROR |"level":"error"/

export class StderrCapture {
  private held: string[] = []
  private realWrite: typeof process.stderr.write | null = null

  start(): void {
    if (this.realWrite !== null) return
    this.held = []
    this.realWrite = process.stderr.write
    process.stderr.write = ((chunk: string | Uint8Array, encoding?: unknown, callback?: unknown): boolean => {
      this.held.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString())
      const done = typeof encoding === 'function' ? encoding : callback
      if (typeof done === 'function') process.nextTick(done)
      return true
    }) as typeof process.stderr.write
  }

  /** Stops holding; writes out what was held if `show` (the test failed). */
  stop(show: boolean): void {
    if (this.realWrite === null) return
    process.stderr.write = this.realWrite
    this.realWrite = null
    if (show && this.held.length > 0) process.stderr.write(this.held.join(''))
  }

  lines(): string[] {
    return this.held.join('').split('\n').filter((line) => line !== '')
  }

  errorLines(): string[] {
    return this.lines().filter((line) => ERROR_LINE.test(line))
  }

  /** Waits until a line matches (a shard's line is relayed by the main thread a little later). */
  async waitFor(pattern: RegExp, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const line = this.lines().find((l) => pattern.test(l))
      if (line !== undefined) return line
      if (Date.now() > deadline) assert.fail(`no log line matches ${pattern} within ${timeoutMs} ms; held:\n${this.lines().join('\n')}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  /**
   * Asserts the error lines: each of `expected` matches one at least, and each matches one of
   * `expected` or `allowed` (lines whose timing the test does not control).
   */
  assertErrors(expected: RegExp[], allowed: RegExp[] = []): void {
    const errors = this.errorLines()
    // The lines themselves are shown with the failing test's output.
    for (const pattern of expected) assert.ok(errors.some((l) => pattern.test(l)), `no error line matches ${pattern} (of ${errors.length})`)
    const unexpected = errors.filter((l) => ![...expected, ...allowed].some((p) => p.test(l)))
    assert.deepEqual(unexpected, [], 'error lines not expected')
  }
}

/**
 * Holds stderr around each test of the enclosing describe (or file), for the test to assert on;
 * a failing test's lines are written out.
 */
export function captureStderrPerTest(): StderrCapture {
  const capture = new StderrCapture()
  beforeEach(() => capture.start())
  // TestContext.passed (node 20.12 and later) is missing from the @types/node 20 declarations.
  afterEach((t) => capture.stop((t as { passed?: boolean }).passed !== true))
  return capture
}
