// Runs the compiled test suite with node's test runner, twice: in the default thread layout, then
// with IO_THREADS=2 SHARDS=2 (sockets on two I/O threads, two shards) for every file that starts a
// node. It ends with one line for both passes.
// `npm test` builds first; extra arguments are passed on (e.g. a single file), run once as is.
// The reporter (test-reporter.mjs) prints one line per file, and a file's output only if something
// in it failed (TEST_OUTPUT=all: every file's), then the runner's summary; the counts are read
// from a TAP copy of the results.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const dir = 'dist/test'
const reporter = fileURLToPath(new URL('./test-reporter.mjs', import.meta.url))
/** Files that start no node (or choose their own layouts): the second pass has nothing to add. */
const LAYOUT_FREE = new Set(['codec.test.js', 'config.test.js', 'crash.test.js', 'fuzz.test.js', 'layers.test.js', 'ring.test.js', 'shard_simulation.test.js', 'wake_fallback.test.js', 'logs.test.js', 'drain.test.js', 'reload.test.js', 'shard_logs.test.js', 'log_bounds.test.js', 'fatal_exit.test.js'])

function run(files, env, label) {
  console.log(`\n=== ${label} ===\n`)
  const tmp = mkdtempSync(join(tmpdir(), 'ilp-node-tests-'))
  const tap = join(tmp, 'results.tap')
  const result = spawnSync(process.execPath, [
    '--test', '--test-concurrency=1', `--test-reporter=${reporter}`, '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tap}`, ...files,
  ], { stdio: 'inherit', env: { ...process.env, ...env } })
  let passed = 0
  let failed = 0
  try {
    const text = readFileSync(tap, 'utf8')
    passed = Number(/^# pass (\d+)$/m.exec(text)?.[1] ?? 0)
    failed = Number(/^# fail (\d+)$/m.exec(text)?.[1] ?? 0)
  } catch {
    failed = 1 // the runner died before writing its summary
  }
  rmSync(tmp, { recursive: true, force: true })
  return { passed, failed: failed + (result.status === 0 || failed > 0 ? 0 : 1) }
}

if (process.argv.length > 2) {
  const one = run(process.argv.slice(2), {}, 'selected files')
  process.exit(one.failed === 0 ? 0 : 1)
}
const all = readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort()
const first = run(all.map((f) => join(dir, f)), {}, 'default layout')
const second = run(all.filter((f) => !LAYOUT_FREE.has(f)).map((f) => join(dir, f)), { IO_THREADS: '2', SHARDS: '2' }, 'IO_THREADS=2 SHARDS=2')
const passed = first.passed + second.passed
const failed = first.failed + second.failed
console.log(`\ndefault layout: ${first.passed} passed, ${first.failed} failed; IO_THREADS=2 SHARDS=2: ${second.passed} passed, ${second.failed} failed`)
console.log(`tests: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
