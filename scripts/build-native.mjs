// Compiles src/native/wake.c (the futex and pipe wake-ups between threads) into
// dist/native/wake.node, as part of `npm run build`. It is a Node-API addon: it needs a C compiler
// and Node's own headers (node_api.h), nothing downloaded. Where it cannot be built (no compiler,
// no headers, not Linux) the build still succeeds and says so: the node then wakes its threads
// with Atomics.wait/notify/waitAsync, which works everywhere but costs more per wake-up, and it
// says so again when it starts with threads.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const source = join(root, 'src', 'native', 'wake.c')
const output = join(root, 'dist', 'native', 'wake.node')

function warn(reason) {
  console.warn(`build-native: native wake-ups not built (${reason}); the node will use Atomics wake-ups, slower with several threads`)
}

/** Where node_api.h is: npm's configured nodedir, else beside this Node's binary. */
function headerDir() {
  const candidates = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(dirname(process.execPath), '..', 'include', 'node'),
  ].filter(Boolean)
  return candidates.find((dir) => existsSync(join(dir, 'node_api.h'))) ?? null
}

function main() {
  if (process.platform !== 'linux') return warn(`futex wake-ups are Linux only, this is ${process.platform}`)
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

main()
