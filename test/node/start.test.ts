// Goal: `npm start` behaves like a Node.js server's start command. With dist built it listens
// within 3 s (no compile); signals sent to the PID of `npm start` reach the node: SIGTERM stops
// it (it drains) and npm exits with the node's code; a Ctrl-C (SIGINT to the whole foreground
// group: npm forwards its copy too) drains once rather than counting as the second signal that
// skips the drain; SIGHUP to the launcher npm runs reloads the node. npm 11 itself dies of a
// SIGHUP without forwarding it: the node is then stopped, not left holding the port. After each
// case no process of this test is left and the port is free.

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { removeDir, tempDir } from '../support/helpers'
import { portRefuses, processesWithEnv, waitFor } from '../support/processes'

const ROOT = join(__dirname, '..', '..', '..')

interface Started {
  npm: ChildProcess
  port: number
  ms: number
  dataDir: string
  output(): string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** PIDs of the processes started with this DATA_DIR (npm, the launcher, the node). */
const processesOf = (dataDir: string): number[] => processesWithEnv('DATA_DIR', dataDir)

function nodeProcessesOf(dataDir: string): number[] {
  return processesOf(dataDir).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('dist/src/main.js')
    } catch {
      return false
    }
  })
}

describe('npm start', () => {
  const dataDirs: string[] = []
  after(() => {
    // Whatever a failed case left running goes, then its directory; the node runs in a process
    // group of its own (scripts/start.mjs says why), so each process is found by its DATA_DIR.
    for (const dataDir of dataDirs) {
      for (const pid of processesOf(dataDir)) {
        try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
      }
      removeDir(dataDir)
    }
  })

  async function start(): Promise<Started> {
    const dataDir = tempDir()
    dataDirs.push(dataDir)
    const began = performance.now()
    // detached: npm leads a process group, so a case can signal it as a terminal would.
    const npm = spawn('npm', ['start'], {
      cwd: ROOT,
      env: { ...process.env, PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'info', CONFIG: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    let output = ''
    npm.stdout!.on('data', (c: Buffer) => { output += c.toString() })
    npm.stderr!.on('data', (c: Buffer) => { output += c.toString() })
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => npm.once('exit', (code, signal) => resolve({ code, signal })))
    let port = 0
    await waitFor('the listening line', () => {
      port = Number(/ilp-node listening .* port=(\d+)/.exec(output)?.[1] ?? 0)
      return port !== 0
    }, () => output, 15_000)
    return { npm, port, ms: performance.now() - began, dataDir, output: () => output, exited }
  }

  async function assertGone(started: Started): Promise<void> {
    await waitFor('every process of the case gone', () => processesOf(started.dataDir).length === 0, started.output)
    assert.equal(await portRefuses(started.port), true, `port ${started.port} still accepts connections`)
  }

  it('listens within 3 s; SIGTERM to npm drains and stops the node, and npm exits with its code', async (t) => {
    const started = await start()
    t.diagnostic(`npm start to the listening line: ${started.ms.toFixed(0)} ms`)
    assert.ok(started.ms < 3000, `took ${started.ms.toFixed(0)} ms:\n${started.output()}`)
    assert.equal(nodeProcessesOf(started.dataDir).length, 1)
    process.kill(started.npm.pid!, 'SIGTERM')
    assert.deepEqual(await started.exited, { code: 0, signal: null })
    assert.match(started.output(), /shutting down: draining signal=SIGTERM/)
    assert.match(started.output(), /ilp-node stopped/)
    await assertGone(started)
  })

  it('a Ctrl-C (SIGINT to the group) drains once; it is not taken for a second signal', async () => {
    const started = await start()
    process.kill(-started.npm.pid!, 'SIGINT')
    const { code } = await started.exited
    assert.equal(code, 0, started.output())
    assert.equal(started.output().match(/shutting down: draining/g)?.length, 1, started.output())
    assert.doesNotMatch(started.output(), /second signal/)
    await assertGone(started)
  })

  it('SIGHUP to the launcher npm runs reaches the node, which reloads and keeps serving', async () => {
    const started = await start()
    const children = readFileSync(`/proc/${started.npm.pid}/task/${started.npm.pid}/children`, 'utf8').trim().split(/\s+/).map(Number)
    assert.equal(children.length, 1, 'npm runs the launcher itself (exec), no shell between')
    process.kill(children[0], 'SIGHUP')
    await waitFor('the SIGHUP line', () => /SIGHUP: reloading the config/.test(started.output()), started.output)
    assert.equal(await portRefuses(started.port), false)
    process.kill(started.npm.pid!, 'SIGTERM')
    assert.deepEqual(await started.exited, { code: 0, signal: null })
    await assertGone(started)
  })

  it('SIGHUP to npm (which dies of it without forwarding it) stops the node instead of leaving it behind', async () => {
    const started = await start()
    process.kill(started.npm.pid!, 'SIGHUP')
    assert.equal((await started.exited).signal, 'SIGHUP')
    await assertGone(started)
    assert.match(started.output(), /npm \(pid \d+\) is gone; stopping the node/)
    assert.match(started.output(), /ilp-node stopped/)
  })
})
