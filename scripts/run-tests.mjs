// Runs the compiled test suite with node's test runner, tier by tier (test/<tier>/, in TIERS'
// order: the fast and basic first), then the node tier again with IO_THREADS=2 SHARDS=2 (sockets
// on two I/O threads, two shards). It ends with one line for both passes.
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
/**
 * The tiers, in the order they run: unit (no node), simulation (shards driven in memory), node (a
 * node and its clients over real sockets, in whatever layout the environment sets), process (the
 * node as a process: signals, logs, drain, reload, each test in the layouts it picks), fuzz (the
 * short pass), crash (the short kill test).
 */
const TIERS = ['unit', 'simulation', 'node', 'process', 'fuzz', 'crash']
/** The tier that runs a second time with threads: its tests take the layout from the environment. */
const LAYOUT_TIER = 'node'

const filesOf = (tier) => readdirSync(join(dir, tier)).filter((f) => f.endsWith('.test.js')).sort().map((f) => join(dir, tier, f))

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
const unknown = readdirSync(dir).filter((f) => f.endsWith('.test.js') || (!TIERS.includes(f) && !['support', 'fixtures'].includes(f)))
if (unknown.length > 0) {
  console.error(`test files or folders outside the tiers (${TIERS.join(', ')}): ${unknown.join(', ')}`)
  process.exit(1)
}
// One run of the test runner per tier: it sorts the files it is given, so one run for all would
// mix the tiers by name.
const tiers = TIERS.map((tier) => run(filesOf(tier), {}, `default layout: ${tier}`))
const first = { passed: tiers.reduce((n, t) => n + t.passed, 0), failed: tiers.reduce((n, t) => n + t.failed, 0) }
const second = run(filesOf(LAYOUT_TIER), { IO_THREADS: '2', SHARDS: '2' }, `IO_THREADS=2 SHARDS=2: ${LAYOUT_TIER}`)
const passed = first.passed + second.passed
const failed = first.failed + second.failed
console.log(`\ndefault layout: ${first.passed} passed, ${first.failed} failed; IO_THREADS=2 SHARDS=2: ${second.passed} passed, ${second.failed} failed`)
console.log(`tests: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
