// `npm start`: builds only when a source is newer than the last successful build, then runs the
// node (dist/src/main.js) and stands between it and npm, because npm cannot be trusted with it:
//   - npm 11 forwards SIGTERM and SIGINT to its script's process but not SIGHUP, and the shell it
//     runs the script with (dash) does not pass signals on; package.json's `exec` makes this
//     script npm's own child, and this script passes SIGTERM, SIGINT and SIGHUP to the node.
//   - A Ctrl-C reaches npm and this script at once, and npm forwards its copy, so one key press
//     can arrive here twice (the kernel merges the copies only when both are pending at once); the node runs in its own process group (the terminal's copy does not
//     reach it) and copies of one signal within DUPLICATE_MS count once, so that the node does not
//     take them for the second signal that stops it without draining.
//   - npm dies of a SIGHUP (it has no handler) or a SIGKILL without telling its script. Whoever ran
//     `npm start` then has no PID left to stop the node with, and a node left running holds the port
//     and DATA_DIR, so the next start fails; when npm is gone, the node is stopped (SIGTERM: it
//     drains first).
// The node's exit code becomes this script's, and so npm's; a node killed by a signal kills this
// script with the same signal (npm does the same in turn).
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
/** Touched by `npm run build` once every step succeeded; tsc writes its outputs even when it reports errors. */
const stamp = join(root, 'dist', '.build-stamp')
const FORWARDED = ['SIGTERM', 'SIGINT', 'SIGHUP']
const DUPLICATE_MS = 100
const PARENT_CHECK_MS = 250

function newestMtime(path) {
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newestMtime(join(path, name))))
}

function stale() {
  if (!existsSync(stamp)) return true
  const inputs = ['src', 'types', 'tsconfig.json', 'package.json', 'package-lock.json', 'scripts/build-native.mjs']
  const newest = Math.max(...inputs.filter((path) => existsSync(join(root, path))).map((path) => newestMtime(join(root, path))))
  return newest > statSync(stamp).mtimeMs
}

if (stale()) {
  const build = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' })
  if (build.status !== 0) process.exit(build.status ?? 1)
}

const node = spawn(process.execPath, [join(root, 'dist', 'src', 'main.js')], { stdio: 'inherit', detached: true })
const lastSent = new Map()
for (const signal of FORWARDED) {
  process.on(signal, () => {
    const now = Date.now()
    if (now - (lastSent.get(signal) ?? -Infinity) < DUPLICATE_MS) return
    lastSent.set(signal, now)
    node.kill(signal)
  })
}

const parent = process.ppid
const watch = setInterval(() => {
  if (process.ppid === parent) return
  clearInterval(watch)
  console.error(`start: npm (pid ${parent}) is gone; stopping the node (pid ${node.pid})`)
  node.kill('SIGTERM')
}, PARENT_CHECK_MS)

node.once('exit', (code, signal) => {
  clearInterval(watch)
  if (signal === null) process.exit(code)
  for (const forwarded of FORWARDED) process.removeAllListeners(forwarded)
  process.kill(process.pid, signal)
})
