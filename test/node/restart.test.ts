// Goal: balances are durable and holds are not. The node runs as a child process (npm start's
// entry point) on a temp LMDB directory; real ilp-plugin-btp clients pay through it, then it is
// killed with SIGKILL while a prepare is held, and restarted with a different SHARDS count.
// Afterwards the committed balances are exactly as before and the unfinished prepare's hold is
// released (the same amount fits under alice's maximum again); then a clean SIGTERM restart
// onto SHARDS=0 keeps every balance too.

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import {
  asFulfill, asReject, BtpPlugin, connectPlugin, fulfillmentPair, IlpPacket, NODE_ADDRESS, peerBalance, prepare, removeDir, sleep, tempDir,
  testConfigJson, testLayout,
} from '../support/helpers'

interface Child {
  proc: ChildProcess
  port: number
  output: string[]
  exited: Promise<number | null>
}

async function spawnNode(configPath: string, dataDir: string, shards: number, env: Record<string, string> = {}): Promise<Child> {
  const proc = spawn(process.execPath, [join(__dirname, '..', '..', 'src', 'main.js')], {
    env: {
      ...process.env, CONFIG: configPath, DATA_DIR: dataDir, SHARDS: String(shards), IO_THREADS: String(shards === 0 ? 1 : testLayout(shards).ioThreads),
      PORT: '0', LOG_LEVEL: 'info', ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start:\n${output.join('')}`)), 15_000)
    const onData = (chunk: Buffer) => {
      output.push(chunk.toString())
      const m = /ilp-node listening .* port=(\d+)/.exec(output.join(''))
      if (m) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()))
    void exited.then((code) => reject(new Error(`node exited with ${code}:\n${output.join('')}`)))
  })
  return { proc, port, output, exited }
}

function fulfillingHandler(fulfillment: Buffer) {
  return async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
}

describe('restart and recovery (child process, SIGKILL, SHARDS change)', () => {
  const dir = tempDir()
  const configPath = join(dir, 'config.json')
  const json = testConfigJson()
  const accounts = json.accounts as Record<string, Record<string, unknown>>
  accounts.alice.balance = { minimum: '-1000000', maximum: '1500' }
  accounts.alice.maxPacketAmount = '1000'
  writeFileSync(configPath, JSON.stringify(json))
  const children: Child[] = []

  after(() => {
    for (const c of children) c.proc.kill('SIGKILL')
    removeDir(dir)
  })

  it('keeps committed balances and releases the hold of a prepare in flight at SIGKILL', async () => {
    const dataDir = join(dir, 'data')

    // Run 1: SHARDS=2. Three fulfilled payments of 100, then one prepare bob never answers.
    const first = await spawnNode(configPath, dataDir, 2)
    children.push(first)
    let alice: BtpPlugin = await connectPlugin(first.port, 'alice', 'alice-token')
    let bob: BtpPlugin = await connectPlugin(first.port, 'bob', 'bob-token')
    const { fulfillment, condition } = fulfillmentPair()
    let held = 0
    bob.registerDataHandler(async (data) => {
      if (IlpPacket.deserializeIlpPrepare(data).amount === '1000') {
        held++
        return new Promise<Buffer>(() => {}) // never answered
      }
      return fulfillingHandler(fulfillment)()
    })
    for (let i = 0; i < 3; i++) {
      asFulfill(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, amount: '100', executionCondition: condition })))
    }
    void alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, amount: '1000', executionCondition: condition, expiresAt: new Date(Date.now() + 25_000) })).catch(() => {})
    while (held === 0) await sleep(10)
    // 300 committed + 1000 held: another 1000 would pass alice's maximum of 1500.
    assert.equal(asReject(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, amount: '1000' }))).code, 'T04')
    // Past limits.journalDelayMs (50 ms) plus a shard tick, the held prepare is in the journal.
    await sleep(150)
    assert.equal(await peerBalance(alice), -300n)
    assert.equal(await peerBalance(bob), 300n)
    first.proc.kill('SIGKILL')
    await first.exited
    await alice.disconnect().catch(() => {})
    await bob.disconnect().catch(() => {})

    // Run 2: SHARDS=1. Balances as committed; the hold is gone, so 1000 fits again.
    const second = await spawnNode(configPath, dataDir, 1)
    children.push(second)
    assert.match(second.output.join(''), /released holds of prepares that were in flight .* account=alice amount=1000/)
    alice = await connectPlugin(second.port, 'alice', 'alice-token')
    bob = await connectPlugin(second.port, 'bob', 'bob-token')
    bob.registerDataHandler(fulfillingHandler(fulfillment))
    assert.equal(await peerBalance(alice), -300n)
    assert.equal(await peerBalance(bob), 300n)
    asFulfill(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, amount: '1000', executionCondition: condition })))
    assert.equal(await peerBalance(alice), -1300n)
    await alice.disconnect()
    await bob.disconnect()
    second.proc.kill('SIGTERM')
    assert.equal(await second.exited, 0)

    // Run 3: SHARDS=0 (inline) after a clean stop: every balance kept.
    const third = await spawnNode(configPath, dataDir, 0)
    children.push(third)
    alice = await connectPlugin(third.port, 'alice', 'alice-token')
    bob = await connectPlugin(third.port, 'bob', 'bob-token')
    assert.equal(await peerBalance(alice), -1300n)
    assert.equal(await peerBalance(bob), 1300n)
    await alice.disconnect()
    await bob.disconnect()
    third.proc.kill('SIGTERM')
    assert.equal(await third.exited, 0)
  })

  it('refuses to start on a bad config, naming the field', async () => {
    const badPath = join(dir, 'bad.json')
    const bad = testConfigJson()
    ;(bad.accounts as Record<string, Record<string, unknown>>).alice.balance = { maximum: 'lots' }
    writeFileSync(badPath, JSON.stringify(bad))
    await assert.rejects(spawnNode(badPath, join(dir, 'bad-data'), 0), /accounts\.alice\.balance\.maximum: must be a decimal integer string/)
  })

  it('refuses to start (exit 69, saying why) when uWebSockets.js falls back to its JavaScript emulation', async () => {
    // The package's own switch loads the emulation it would otherwise fall back to silently.
    await assert.rejects(spawnNode(configPath, join(dir, 'fallback-data'), 0, { UWS_USE_FALLBACK: '1' }),
      /node exited with 69:[\s\S]*loaded its pure-JS fallback, not its native binary[\s\S]*Refusing to start/)
  })
})
