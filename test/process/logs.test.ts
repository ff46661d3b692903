// Goal: LOG_FORMAT=json writes one JSON object per line (time, level, scope, msg and the event's
// fields), from the main thread and from worker threads alike, and neither format ever writes a
// token. Method: the real entry point as a child process on the embedded default config, in the
// threaded layout (IO_THREADS=2 SHARDS=2, so I/O threads and shards log too); a client that
// presents a wrong token and one that authenticates and sends a packet that is rejected (no
// route); then every line of output is parsed and searched for the tokens.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { startNodeProcess } from '../../src/testing/node_process'
import { asReject, connectPlugin, prepare } from '../support/helpers'

const WRONG_TOKEN = 'a-wrong-token-that-must-not-be-logged'

async function exercise(port: number): Promise<void> {
  await assert.rejects(connectPlugin(port, 'alice', WRONG_TOKEN))
  const alice = await connectPlugin(port, 'alice', 'alice-token')
  assert.equal(asReject(await alice.sendData(prepare({ destination: 'test.nowhere.at.all' }))).code, 'F02')
  await alice.disconnect()
}

describe('logs', () => {
  it('with LOG_FORMAT=json: one JSON object per line from every thread, amounts as strings, no token', async () => {
    const node = await startNodeProcess({ LOG_FORMAT: 'json', LOG_LEVEL: 'debug', IO_THREADS: '2', SHARDS: '2' })
    try {
      await exercise(node.port)
    } finally {
      await node.stop()
    }
    const lines = node.output().split('\n').filter((l) => l !== '')
    assert.ok(lines.length > 5, node.output())
    const records = lines.map((line) => {
      assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`)
      return JSON.parse(line) as Record<string, unknown>
    })
    for (const r of records) {
      assert.equal(typeof r.time, 'string')
      assert.match(String(r.level), /^(error|warn|info|debug)$/)
      assert.equal(typeof r.scope, 'string')
      assert.equal(typeof r.msg, 'string')
    }
    const listening = records.find((r) => r.msg === 'ilp-node listening')
    assert.equal(listening?.port, node.port)
    assert.ok(records.some((r) => r.msg === 'BTP authentication refused'), 'the wrong token was logged as refused')
    assert.ok(records.some((r) => String(r.scope).includes('io')), 'an I/O thread logged in JSON')
    assert.doesNotMatch(node.output(), new RegExp(`${WRONG_TOKEN}|alice-token|bob-token`))
  })

  it('in the default text format: no token either', async () => {
    const node = await startNodeProcess({ LOG_LEVEL: 'debug' })
    try {
      await exercise(node.port)
    } finally {
      await node.stop()
    }
    assert.match(node.output(), /INFO  node: ilp-node listening/)
    assert.doesNotMatch(node.output(), new RegExp(`${WRONG_TOKEN}|alice-token|bob-token`))
  })
})
