// Goal: a full disk never costs money, never loops, and says so. The node's DATA_DIR is a real
// tmpfs of 64 MB (test/support/small_disk.ts), the node on its default reserve of 16 MiB. alice pays bob through the node over real BTP
// sockets; bob holds each prepare 300 ms before he fulfills it, so every prepare is journalled.
// Then the test fills the disk to the last page and raises alice's window to thousands of
// prepares, so that the LMDB file must grow: the commit fails, the node gives back its reserve and
// commits what it owes from it, refuses new prepares (T00 "storage unavailable"), answers /health
// 503, and never restarts its shards. Once the test frees the disk, the node takes its reserve
// again and forwards again. The books are then checked against each party's own view: alice's
// balance is what she saw fulfilled, bob's is minus what he fulfilled, each fulfill once.
// The second case stops the node on a still-full disk (SIGTERM's drain, then stop), checks the
// same books, and checks that a node started on that disk refuses with one line and exit code 73
// until the disk has room.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startNode, type RunningNode } from '../../src/node'
import { LeanNextHop, LeanSender } from '../support/lean_peers'
import { mountSmallDisk, type SmallDisk } from '../support/small_disk'
import { layoutName, makeConfig, sleep } from '../support/helpers'
import { captureStderrPerTest } from '../support/stderr_capture'

/** The full disk is logged as errors: asserted, not printed. */
const logs = captureStderrPerTest()
const DISK_FULL = [
  /ERROR storage: the disk is full: the storage reserve is in use for what the node owes; new prepares and transfers are refused until it is whole again /,
  /ERROR storage: refusing new prepares and transfers \(T00\), \/health 503 reason="storage unavailable: the storage reserve is in use \(the disk was full\)/,
]

/** Room for the LMDB file and the default reserve (limits.storageReserveBytes, 16 MiB), then filled by the test. */
const DISK_BYTES = 64 * 1024 * 1024
const BOB_HOLDS_MS = 300
const BOB = 'test.disk.bob'

function diskConfig(dataDir: string): Record<string, unknown> {
  return {
    ilpAddress: 'test.disk',
    limits: { journalDelayMs: 20 },
    accounts: {
      alice: { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'alice-token' } },
      bob: { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'bob-token' } },
    },
    dataDir,
  }
}

/** alice pays bob, who holds each prepare BOB_HOLDS_MS before he fulfils it (so each is journalled). */
async function connectPeers(port: number): Promise<{ alice: LeanSender; bob: LeanNextHop }> {
  const bob = await LeanNextHop.connect(port, 'bob')
  bob.fulfillAll(BOB_HOLDS_MS)
  return { alice: await LeanSender.connect(port, 'alice'), bob }
}

async function health(port: number): Promise<{ status: number; reason?: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/health`)
  const body = await res.json() as { reason?: string }
  return { status: res.status, reason: body.reason }
}

async function waitFor(what: string, ms: number, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(50)
  }
}

describe(`a full disk (${layoutName(0)})`, () => {
  let disk: SmallDisk
  before(() => { disk = mountSmallDisk(DISK_BYTES) })
  after(() => disk?.unmount())

  it('fails closed, commits what it owes from its reserve, never restarts, and resumes when the disk has room', async () => {
    const node = await startNode(makeConfig(0, join(disk.dir, 'data'), diskConfig(join(disk.dir, 'data'))))
    try {
      const { alice, bob } = await connectPeers(node.port)
      alice.keep(BOB, 50)
      await sleep(500)
      assert.ok(alice.seen > 0n, 'payments go through before the disk fills')
      assert.equal((await health(node.port)).status, 200)

      disk.fill()
      alice.keep(BOB, 6000) // thousands of prepares journalled at once: the LMDB file must grow
      let unavailable: { status: number; reason?: string } = { status: 200 }
      await waitFor('/health to say the storage is unavailable', 20_000, async () => {
        unavailable = await health(node.port)
        return unavailable.status === 503
      })
      assert.match(unavailable.reason ?? '', /storage unavailable/)
      await waitFor('a new prepare refused for storage', 10_000, () => alice.storageRefusals > 0)
      const seenWhileFull = alice.seen
      await waitFor('the prepares taken before the fault to be fulfilled and relayed', 10_000, () => bob.holding === 0 && alice.seen > seenWhileFull)
      assert.equal((await health(node.port)).status, 503, 'still unavailable while the disk is full')
      assert.equal(node.shards.restarts(), 0, 'no shard restarted')

      disk.free()
      await waitFor('/health 200 once the disk has room', 10_000, async () => (await health(node.port)).status === 200)
      const before = alice.seen
      alice.keep(BOB, 50)
      await waitFor('payments to go through again', 10_000, () => alice.seen > before)
      assert.equal(await alice.settle(15_000), 0, 'every prepare alice sent was answered')
      await waitFor('bob to have answered everything', 5000, () => bob.holding === 0)

      // Each party's own view against the node's books: every fulfill once, nothing else.
      assert.equal(alice.seen, bob.fulfilled, 'every fulfill bob sent reached alice')
      assert.equal(node.balance('alice'), alice.seen, 'alice is charged what she saw fulfilled')
      assert.equal(node.balance('bob'), -bob.fulfilled, 'bob is credited what he fulfilled, once')
      assert.equal(node.shards.restarts(), 0)
      logs.assertErrors(DISK_FULL)
      alice.ws.close()
      bob.ws.close()
    } finally {
      await node.stop()
    }
  })

  it('stops on a still-full disk with every fulfill it took booked, and will not start there (exit 73)', async () => {
    const dataDir = join(disk.dir, 'data2')
    const config = makeConfig(0, dataDir, diskConfig(dataDir))
    const node: RunningNode = await startNode(config)
    let peers: Awaited<ReturnType<typeof connectPeers>>
    try {
      peers = await connectPeers(node.port)
      disk.fill()
      peers.alice.keep(BOB, 6000)
      await waitFor('/health to say the storage is unavailable', 20_000, async () => (await health(node.port)).status === 503)
      peers.alice.window = 0
      // SIGTERM's path: no new prepares, the ones taken answered, then stop; the disk stays full.
      const left = await node.drain(15_000)
      assert.equal(left, 0, 'the drain ended with nothing in flight')
    } finally {
      await node.stop()
    }
    const { alice, bob } = peers
    assert.equal(alice.outstanding, 0, 'alice has every answer')
    alice.ws.close()
    bob.ws.close()

    // A node started on the full disk refuses: one line, exit 73.
    const configPath = join(disk.dir, '..', `disk-test-${process.pid}.json`)
    writeFileSync(configPath, JSON.stringify(diskConfig(dataDir)))
    const started = spawnSync(process.execPath, [join(__dirname, '..', '..', 'src', 'main.js')], {
      env: { ...process.env, CONFIG: configPath, DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'info', IO_THREADS: String(config.ioThreads), SHARDS: String(config.shards) },
      encoding: 'utf8', timeout: 20_000,
    })
    assert.equal(started.status, 73, `exit code 73, got ${started.status}: ${started.stdout}${started.stderr}`)
    const errors = started.stderr.split('\n').filter((l) => l.trim() !== '')
    assert.equal(errors.length, 1, `one line on stderr, got:\n${started.stderr}`)
    assert.match(errors[0], /storage reserve/)
    rmSync(configPath, { force: true })

    // Once the disk has room it starts, and the books are each party's own view.
    disk.free()
    const again = await startNode(config)
    try {
      assert.equal(again.balance('alice'), alice.seen, 'alice is charged what she saw fulfilled')
      assert.equal(again.balance('bob'), -bob.fulfilled, 'bob is credited what he fulfilled, once')
      assert.equal(alice.seen, bob.fulfilled)
      logs.assertErrors(DISK_FULL)
    } finally {
      await again.stop()
    }
  })
})
