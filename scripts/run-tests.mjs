// Runs the compiled test suite with node's test runner (spec reporter, so CI prints its summary).
// `npm test` builds first; extra arguments are passed on (e.g. a single file).
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

const dir = 'dist/test'
const files = process.argv.length > 2
  ? process.argv.slice(2)
  : readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => join(dir, f))
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=1', ...files], { stdio: 'inherit' })
process.exit(result.status ?? 1)
