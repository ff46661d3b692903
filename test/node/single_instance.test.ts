// Goal: one node per data directory and per port. A second `npm start` (the real entry point, a
// child process) on a DATA_DIR in use exits 75 naming the directory and the process holding it;
// one on a PORT held by any other process exits 75 naming the port, instead of sharing it
// (uWebSockets.js would otherwise listen beside the first with SO_REUSEPORT). A lock left by a
// killed node does not stop the next one; a stopped node gives its lock and port back. A
// DATA_DIR that cannot be created exits 73 with one line naming it and the cause.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { lockDataDir } from '../../src/store/data_dir_lock'
import { connectPlugin, freePort, peerBalance, removeDir, startTestNode, tempDir, testConfigJson } from '../support/helpers'

const MAIN = join(__dirname, '..', '..', 'src', 'main.js')

/** Runs the node's entry point until it exits (bounded); returns its exit code and output. */
function runUntilExit(env: Record<string, string>, timeoutMs = 15_000): Promise<{ code: number | null; output: string }> {
  const proc = spawn(process.execPath, [MAIN], { env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  proc.stdout.on('data', (c: Buffer) => { output += c.toString() })
  proc.stderr.on('data', (c: Buffer) => { output += c.toString() })
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
  return new Promise((resolve) => proc.once('exit', (code) => {
    clearTimeout(timer)
    resolve({ code, output })
  }))
}

describe('one node per data directory and port', () => {
  const dirs: string[] = []
  const dir = (): string => {
    const d = tempDir()
    dirs.push(d)
    return d
  }
  after(() => dirs.forEach(removeDir))

  it('a second node on a DATA_DIR in use exits 75, naming the directory and the holder; the first is untouched', async () => {
    const dataDir = dir()
    const first = await startTestNode(0, dataDir)
    try {
      const second = await runUntilExit({ DATA_DIR: dataDir, PORT: '0' })
      assert.equal(second.code, 75, second.output)
      assert.match(second.output, new RegExp(`DATA_DIR ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by another node: process ${process.pid}`))
      assert.doesNotMatch(second.output, /listening/)
      assert.doesNotMatch(second.output, /\n\s+at /, 'one line, no stack trace')
      const alice = await connectPlugin(first.port, 'alice', 'alice-token')
      assert.equal(await peerBalance(alice), 0n)
      await alice.disconnect()
      // In the same process too: a second startNode on the directory is refused.
      await assert.rejects(startTestNode(0, dataDir), /is in use by another node: this process/)
    } finally {
      await first.stop()
    }
    assert.equal(existsSync(join(dataDir, 'node.lock')), false, 'a stopped node removes its lock')
    const again = await startTestNode(0, dataDir)
    await again.stop()
  })

  it('a node whose PORT is held by another process exits 75 and does not listen beside it', async () => {
    const port = await freePort()
    // Held by a uWebSockets.js node (which binds with SO_REUSEPORT) ...
    const first = await startTestNode(0, dir())
    try {
      const onNodePort = await runUntilExit({ DATA_DIR: dir(), PORT: String(first.port) })
      assert.equal(onNodePort.code, 75, onNodePort.output)
      assert.match(onNodePort.output, new RegExp(`PORT ${first.port} on 127\\.0\\.0\\.1 is in use by another process`))
    } finally {
      await first.stop()
    }
    // ... and by a plain socket of another kind of server.
    const holder: Server = await new Promise((resolve) => { const s = createServer().listen(port, '127.0.0.1', () => resolve(s)) })
    try {
      const onHeldPort = await runUntilExit({ DATA_DIR: dir(), PORT: String(port) })
      assert.equal(onHeldPort.code, 75, onHeldPort.output)
      assert.match(onHeldPort.output, new RegExp(`PORT ${port} on 127\\.0\\.0\\.1 is in use`))
      await assert.rejects(startTestNode(0, dir(), { ...testConfigJson(), port }), /is in use by another process/)
    } finally {
      await new Promise((resolve) => holder.close(resolve))
    }
  })

  it('a lock left by a process that is gone (kill -9) is taken over', async () => {
    const dataDir = dir()
    // A pid that is not running (the kernel never hands out pid 0x3ffffff0 on a default pid_max).
    writeFileSync(join(dataDir, 'node.lock'), `${0x3ffffff0} 12345\n`)
    const lock = lockDataDir(dataDir)
    assert.throws(() => lockDataDir(dataDir), /in use by another node: this process/)
    lock.release()
    // A live pid whose start time does not match (its pid was reused): stale as well.
    writeFileSync(join(dataDir, 'node.lock'), `${process.pid} 1\n`)
    lockDataDir(dataDir).release()
  })

  it('a DATA_DIR that cannot be created exits 73 with one line naming it and the cause', async () => {
    const blocker = join(dir(), 'a-file')
    writeFileSync(blocker, 'not a directory')
    const dataDir = join(blocker, 'data')
    const run = await runUntilExit({ DATA_DIR: dataDir, PORT: '0' })
    assert.equal(run.code, 73, run.output)
    assert.match(run.output, new RegExp(`ERROR main: DATA_DIR ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not usable: ENOTDIR`))
    assert.doesNotMatch(run.output, /\n\s+at /, 'one line, no stack trace')
    assert.doesNotMatch(run.output, /listening/)
  })
})
