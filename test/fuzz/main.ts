// `npm run fuzz [-- --inputs N --seed S]`: every fuzz target for N inputs (default 100,000). Under
// --expose-gc (as the npm script runs it) a target that keeps more than 4 MB of heap fails too.

import { fuzz, targets } from './targets'
import { prng } from '../support/helpers'

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? Number(process.argv[at + 1]) : fallback
}

const inputs = arg('inputs', 100_000)
const seed = arg('seed', 1)
/** Heap a target may keep after its run (compiled code and caches), past which it counts as a leak. */
const MAX_RETAINED_BYTES = 4e6
const measured = typeof (globalThis as { gc?: unknown }).gc === 'function'
let findings = 0
console.log(`fuzz: ${targets.length} targets × ${inputs.toLocaleString('en-US')} inputs, seed ${seed}`)
for (const target of targets) {
  const r = fuzz(target, inputs, prng(seed))
  if (measured && r.heapGrowthBytes > MAX_RETAINED_BYTES) r.findings.push(`heap grew by ${(r.heapGrowthBytes / 1e6).toFixed(1)} MB after a full collection`)
  findings += r.findings.length
  console.log(`  ${r.name.padEnd(28)} ${r.inputs.toLocaleString('en-US').padStart(9)} inputs  ${String(r.ms).padStart(6)} ms  ` +
    `heap ${(r.heapGrowthBytes / 1e6).toFixed(1).padStart(6)} MB  ${r.findings.length === 0 ? 'ok' : `${r.findings.length} FINDINGS`}`)
  for (const f of r.findings) console.log(`    ${f}`)
}
process.exit(findings === 0 ? 0 : 1)
