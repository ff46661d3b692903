// Goal: the command-line scripts a newcomer starts with do what the README says: scripts/pay.js
// pays one account of the node from another (a STREAM receiver it starts as the receiving
// account), prints what was sent and delivered, and the node's books agree; pointed at a node
// that is not there, pay.js and ilp-curl.js give up within their timeout with a message saying
// so, instead of redialling in silence. (pay.js to a payee: test/node/payee.test.ts; ilp-curl.js
// against the shop: test/node/shop.test.ts.)

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'
import { freePort, layoutName, withNode } from '../support/helpers'

const execFileAsync = promisify(execFile)
const SCRIPTS = join(__dirname, '..', '..', '..', 'scripts')

/** Runs a script; resolves with its exit code and output whatever the code. */
async function run(script: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const started = Date.now()
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [join(SCRIPTS, script), ...args], { timeout: 60_000 })
    return { code: 0, stdout, stderr, ms: Date.now() - started }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr, ms: Date.now() - started }
  }
}

describe(`scripts/pay.js between two accounts (${layoutName(0)})`, () => {
  const fixture = withNode(0)

  it('pays bob from alice through the node: sent, delivered and received agree, and so do the books', async () => {
    const port = fixture.node.port
    const via = `btp+ws://alice:alice-token@127.0.0.1:${port}`
    const byUrl = await run('pay.js', [`btp+ws://bob:bob-token@127.0.0.1:${port}`, '1000', '--via', via])
    assert.equal(byUrl.code, 0, byUrl.stderr)
    assert.match(byUrl.stdout, /paying 1000 to test\.node\.bob\.\S+ \(a STREAM receiver started as bob\)/)
    assert.match(byUrl.stdout, /sent 1000, delivered 1000; bob received 1000\n/)
    // A bare account name: the development config's tokens, on --via's host and port.
    const byName = await run('pay.js', ['bob', '500', '--via', via])
    assert.equal(byName.code, 0, byName.stderr)
    assert.match(byName.stdout, /sent 500, delivered 500; bob received 500\n/)
    assert.equal(fixture.node.balance('alice'), 1500n, 'alice owes what she sent')
    assert.equal(fixture.node.balance('bob'), -1500n, 'the node owes bob what he received')
  })
})

describe('scripts give up when the node is not there', () => {
  it('pay.js: a clear message and exit 1 within --timeout-ms', async () => {
    const port = await freePort()
    const result = await run('pay.js', ['bob', '10', '--via', `btp+ws://alice:alice-token@127.0.0.1:${port}`, '--timeout-ms', '1000'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, new RegExp(`pay: could not connect to btp\\+ws://127\\.0\\.0\\.1:${port} as alice within 1000 ms: is the node running there \\(npm start\\)`))
    assert.ok(result.ms < 10_000, `gave up after ${result.ms} ms`)
  })

  it('ilp-curl.js: a clear message and exit 1', async () => {
    const port = await freePort()
    const result = await run('ilp-curl.js', [`http://127.0.0.1:${port}/weather`, '--timeout-ms', '1000'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, new RegExp(`ilp-curl: could not reach http://127\\.0\\.0\\.1:${port}/weather: ECONNREFUSED: is the node running there`))
    assert.ok(result.ms < 10_000, `gave up after ${result.ms} ms`)
  })
})
