// Goal: what a shard thread logs reaches the node's output while the node runs (within a second),
// and all of it at a stop and across a restart of the shards, in every layout with shard threads
// and in both log formats; a shard that logs faster than its lines are written out drops lines
// instead of waiting, and the output says how many. A shard thread never returns to its event
// loop, so lines it gave process.stdout used to wait there until it ended, and were lost when it
// was terminated.
//
// Method: the real entry point as a child process, at IO_THREADS=2 SHARDS=2 and at SHARDS=1, in
// the text and the JSON format, LOG_LEVEL=debug; alice and bob (on both shards at SHARDS=2) send
// malformed prepares, which their shard refuses (F01) and logs at debug level ("rejected
// malformed packet"), one at a time, each line awaited on the output for at most a second; then a
// burst of them just before SIGTERM, every line of which must be there once the process has
// exited. A node in this process (SHARDS=2) has a shard terminated right after it logged, and the
// lines must come out after the restart. (test/unit/log_ring.test.ts checks the ring itself.)

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseConfig } from '../../src/config/parse'
import { shardOfAccount } from '../../src/config/account_table'
import { startNode } from '../../src/node'
import { startNodeProcess } from '../../src/testing/node_process'
import { asReject, connectPlugin, MACHINE, removeDir, sleep, tempDir, testConfigJson, type BtpPlugin } from '../support/helpers'
import { captureStderrPerTest } from '../support/stderr_capture'

/** An ILP prepare cut short: the I/O thread passes it on, the shard refuses it and logs why. */
const MALFORMED = Buffer.from([0x0c, 0x05, 1, 2, 3])
const SEEN_WITHIN_MS = 1000
const ONE_BY_ONE = 3
const BURST = 40

/** Lines as they arrive on one of a child's streams (complete lines only). */
class Lines {
  readonly all: string[] = []
  private partial = ''

  add(chunk: Buffer): void {
    const parts = (this.partial + chunk.toString()).split('\n')
    this.partial = parts.pop()!
    this.all.push(...parts)
  }
}

/** The shard's line for a malformed prepare from `account`, in either format. */
function isMalformedLine(line: string, account: string): boolean {
  if (line.startsWith('{')) {
    const record = JSON.parse(line) as Record<string, unknown>
    return record.msg === 'rejected malformed packet' && record.account === account && /^shard \d$/.test(String(record.scope)) && record.level === 'debug'
  }
  return new RegExp(`^\\S+ DEBUG shard \\d: rejected malformed packet account=${account} `).test(line)
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) return false
    await sleep(10)
  }
  return true
}

async function sendMalformed(client: BtpPlugin): Promise<void> {
  assert.equal(asReject(await client.sendData(MALFORMED)).code, 'F01')
}

describe('a shard\'s log lines', () => {
  /** The in-process node's error lines (the shard this test terminates): asserted, not printed. */
  const logs = captureStderrPerTest()
  for (const layout of [{ IO_THREADS: '2', SHARDS: '2' }, { IO_THREADS: '1', SHARDS: '1' }]) {
    for (const format of ['text', 'json']) {
      it(`reach the output within a second, and all of them at a stop (IO_THREADS=${layout.IO_THREADS} SHARDS=${layout.SHARDS}, LOG_FORMAT=${format})`, { timeout: 60_000 }, async () => {
        const node = await startNodeProcess({ ...layout, LOG_FORMAT: format, LOG_LEVEL: 'debug' })
        const stdout = new Lines()
        const stderr = new Lines()
        node.proc.stdout!.on('data', (chunk: Buffer) => stdout.add(chunk))
        node.proc.stderr!.on('data', (chunk: Buffer) => stderr.add(chunk))
        const accounts = ['alice', 'bob']
        const count = (account: string) => stdout.all.filter((line) => isMalformedLine(line, account)).length
        let clients: BtpPlugin[] = []
        try {
          clients = await Promise.all(accounts.map((account) => connectPlugin(node.port, account, `${account}-token`)))
          // Before, a shard's first line got out, and the ones after it waited for its thread to end.
          for (let i = 1; i <= ONE_BY_ONE; i++) {
            for (const [c, account] of accounts.entries()) {
              await sendMalformed(clients[c])
              assert.ok(await waitFor(() => count(account) === i, SEEN_WITHIN_MS), `line ${i} for ${account} within ${SEEN_WITHIN_MS} ms; saw ${count(account)}:\n${node.output()}`)
            }
          }
          await Promise.all(clients.map((client) => Promise.all(Array.from({ length: BURST }, () => sendMalformed(client)))))
        } finally {
          await Promise.all(clients.map((client) => client.disconnect()))
          await node.stop()
        }
        assert.equal(node.proc.exitCode, 0, node.output())
        for (const account of accounts) assert.equal(count(account), ONE_BY_ONE + BURST, `every line for ${account} after the stop:\n${node.output()}`)
        assert.ok(!stderr.all.some((line) => isMalformedLine(line, 'alice')), 'debug lines go to stdout')
        assert.ok(!stderr.all.some((line) => /log lines dropped/.test(line)), stderr.all.join('\n'))
        if (format === 'json') for (const line of [...stdout.all, ...stderr.all]) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`)
      })
    }
  }

  it('logged just before the shard died come out after the restart (SHARDS=2, in this process)', { timeout: 60_000 }, async () => {
    const dir = tempDir()
    const written: string[] = []
    const write = process.stdout.write
    // Passed on as well: the test runner may be reading this stream.
    process.stdout.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]) {
      written.push(String(chunk))
      return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest)
    } as typeof process.stdout.write
    const node = await startNode(parseConfig({ port: 0, ...testConfigJson(), shards: 2, ioThreads: 1, dataDir: dir, logLevel: 'debug' }, {}, MACHINE))
    let alice: BtpPlugin | null = null
    try {
      alice = await connectPlugin(node.port, 'alice', 'alice-token')
      for (let i = 0; i < BURST; i++) await sendMalformed(alice)
      await node.shards.terminate(shardOfAccount('alice', 2))
      assert.ok(await waitFor(() => node.shards.restarts() === 1, 10_000), 'the shards restarted')
      const lines = () => written.join('').split('\n').filter((line) => isMalformedLine(line, 'alice')).length
      assert.ok(await waitFor(() => lines() === BURST, SEEN_WITHIN_MS), `all ${BURST} lines; saw ${lines()}`)
      // The new shard logs on in the same ring (T00 or T01 while the shards restart).
      let code = ''
      for (const deadline = Date.now() + 10_000; code !== 'F01' && Date.now() < deadline; await sleep(50)) {
        code = asReject(await alice.sendData(MALFORMED)).code
      }
      assert.equal(code, 'F01', 'the restarted shard refuses the malformed prepare')
      assert.ok(await waitFor(() => lines() === BURST + 1, SEEN_WITHIN_MS), `the line after the restart; saw ${lines()}`)
      logs.assertErrors([/ERROR shards: shard worker died shard=\d/, /ERROR shards: a thread of the data plane died; restarting every shard from LMDB reason="shard \d failed/],
        [/ERROR storage: refusing new prepares and transfers \(T00\), \/health 503 reason="storage unavailable: the shards are restarting"/])
    } finally {
      process.stdout.write = write
      await alice?.disconnect()
      await node.stop()
      removeDir(dir)
    }
  })
})
