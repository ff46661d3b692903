// Compiles the node's native addons (src/native/*.c and *.cc: the futex and pipe wake-ups between
// threads, the storage reserve's allocation, the refusal of HTTP/2 prior-knowledge clients) into
// dist/native/*.node, as part of `npm run build`. The C ones are Node-API addons; the C++ one uses
// V8's API (its header says why), so it is built for the Node.js that runs this script and loads
// under no other major version. They need C and C++ compilers and Node's own headers (node_api.h,
// node.h), nothing downloaded. Where one cannot be built (no compiler, no headers, not Linux) the
// build still succeeds and says so, and the node does without it (ADDONS says how), and says so
// again when it starts.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * The addons: each a C or C++ file built into dist/native/<name>.node, with what the node does
 * without it.
 *   wake           futex and pipe wake-ups (without: Atomics wake-ups, slower with several threads)
 *   storage        the store's reserve allocated past the end of its data file (without: a file
 *                  DATA_DIR/reserve, given back when a commit fails; see src/store/storage_health.ts)
 *   http2_refusal  (C++) an HTTP/2 prior-knowledge client refused at once with a GOAWAY (without:
 *                  it hears nothing until uWebSockets.js's 10 s idle timeout closes the
 *                  connection; see src/io/http/http2_refusal.ts)
 */
const ADDONS = [
  { name: 'wake', source: 'wake.c', without: 'the node will use Atomics wake-ups, slower with several threads' },
  { name: 'storage', source: 'storage.c', without: 'the storage reserve will be a file of its own (DATA_DIR/reserve) instead of space allocated past the store' },
  { name: 'http2_refusal', source: 'http2_refusal.cc', without: 'HTTP/2 prior-knowledge clients will get no answer until uWebSockets.js closes the idle connection (10 s)' },
]

/** Where node_api.h is: npm's configured nodedir, else beside this Node's binary. */
function headerDir() {
  const candidates = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(dirname(process.execPath), '..', 'include', 'node'),
  ].filter(Boolean)
  return candidates.find((dir) => existsSync(join(dir, 'node_api.h'))) ?? null
}

/** The compiler and its flags for one source: C, or C++ as Node's own headers expect it. */
function compiler(source) {
  if (!source.endsWith('.cc')) return { cc: process.env.CC || 'cc', flags: ['-Werror=implicit-function-declaration'] }
  return { cc: process.env.CXX || 'c++', flags: ['-std=c++17', '-fno-exceptions', '-fno-rtti'] }
}

function build({ name, source: file, without }) {
  const warn = (reason) => console.warn(`build-native: ${name}.node not built (${reason}); ${without}`)
  const source = join(root, 'src', 'native', file)
  const output = join(root, 'dist', 'native', `${name}.node`)
  if (process.platform !== 'linux') return warn(`Linux only, this is ${process.platform}`)
  const include = headerDir()
  if (include === null) return warn("Node's headers (node_api.h) not found")
  // A C++ addon is built again when Node's headers change (another Node.js installed).
  const inputs = [source, fileURLToPath(import.meta.url), ...(file.endsWith('.cc') ? [join(include, 'node_version.h')] : [])]
  if (existsSync(output) && statSync(output).mtimeMs >= Math.max(...inputs.map((path) => statSync(path).mtimeMs))) return
  mkdirSync(dirname(output), { recursive: true })
  const { cc, flags } = compiler(file)
  const result = spawnSync(cc, [
    '-O2', '-Wall', '-Wextra', ...flags, '-fPIC', '-shared',
    // Resolve every symbol when the addon loads, so a missing one fails the require (and the node
    // falls back) instead of killing the process at the first call.
    '-Wl,-z,now',
    // Node's headers as system headers: their own warnings are not this addon's.
    '-isystem', include, '-o', output, source,
  ], { stdio: 'inherit' })
  if (result.error) return warn(`${cc}: ${result.error.message}`)
  if (result.status !== 0) return warn(`${cc} exited with ${result.status}`)
}

for (const addon of ADDONS) build(addon)
