// Compiles the node's native addons (src/native/*.c: the futex and pipe wake-ups between threads,
// and the storage reserve's allocation) into dist/native/*.node, as part of `npm run build`. They
// are Node-API addons: they need a C compiler and Node's own headers (node_api.h), nothing
// downloaded. Where one cannot be built (no compiler, no headers, not Linux) the build still
// succeeds and says so, and the node does without it (ADDONS says how), and says so again when
// it starts.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * The addons: each a C file built into dist/native/<name>.node, with what the node does without it.
 *   wake      futex and pipe wake-ups (without: Atomics wake-ups, slower with several threads)
 *   storage   the store's reserve allocated past the end of its data file (without: a file
 *             DATA_DIR/reserve, given back when a commit fails; see src/store/storage_health.ts)
 */
const ADDONS = [
  { name: 'wake', without: 'the node will use Atomics wake-ups, slower with several threads' },
  { name: 'storage', without: 'the storage reserve will be a file of its own (DATA_DIR/reserve) instead of space allocated past the store' },
]

/** Where node_api.h is: npm's configured nodedir, else beside this Node's binary. */
function headerDir() {
  const candidates = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(dirname(process.execPath), '..', 'include', 'node'),
  ].filter(Boolean)
  return candidates.find((dir) => existsSync(join(dir, 'node_api.h'))) ?? null
}

function build({ name, without }) {
  const warn = (reason) => console.warn(`build-native: ${name}.node not built (${reason}); ${without}`)
  const source = join(root, 'src', 'native', `${name}.c`)
  const output = join(root, 'dist', 'native', `${name}.node`)
  if (process.platform !== 'linux') return warn(`Linux only, this is ${process.platform}`)
  if (existsSync(output) && statSync(output).mtimeMs >= Math.max(statSync(source).mtimeMs, statSync(fileURLToPath(import.meta.url)).mtimeMs)) return
  const include = headerDir()
  if (include === null) return warn("Node's headers (node_api.h) not found")
  mkdirSync(dirname(output), { recursive: true })
  const cc = process.env.CC || 'cc'
  const result = spawnSync(cc, [
    '-O2', '-Wall', '-Wextra', '-Werror=implicit-function-declaration', '-fPIC', '-shared',
    // Resolve every symbol when the addon loads, so a missing one fails the require (and the node
    // falls back) instead of killing the process at the first call.
    '-Wl,-z,now', `-I${include}`, '-o', output, source,
  ], { stdio: 'inherit' })
  if (result.error) return warn(`${cc}: ${result.error.message}`)
  if (result.status !== 0) return warn(`${cc} exited with ${result.status}`)
}

for (const addon of ADDONS) build(addon)
