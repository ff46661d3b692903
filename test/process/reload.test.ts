// Goal: SIGHUP (and POST /admin/reload) re-reads CONFIG and applies its accounts and routes
// while the node runs, without dropping the links of the accounts it did not change: a sender
// keeps sending across the reload with no reject. A file that does not parse, or names a field
// the node does not know, changes nothing: the node logs why and runs on. Method: the real entry
// point as a child process with a CONFIG file, in the inline layout and at IO_THREADS=2
// SHARDS=2; ilp-plugin-btp clients alice and bob; 8 lanes of alice's prepares to bob run while
// the file is rewritten and the signal sent.

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import * as ILDCP from 'ilp-protocol-ildcp'
import { startNodeProcess } from '../../src/testing/node_process'
import { ADMIN_TOKEN, adminRequest, asReject, assertAuthRefused, connectPlugin, fulfillmentPair, IlpPacket, prepare, sleep } from '../support/helpers'

const LANES = 8

function child(token: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token }, ...extra }
}

function configJson(accounts: Record<string, unknown>, routes: unknown[] = [], limits: Record<string, unknown> = {}): Record<string, unknown> {
  return { ilpAddress: 'test.reload', adminToken: ADMIN_TOKEN, accounts, routes, limits }
}

async function waitForOutput(output: () => string, pattern: RegExp, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!pattern.test(output())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${output()}`)
    await sleep(20)
  }
}

for (const layout of [{ IO_THREADS: '1', SHARDS: '0' }, { IO_THREADS: '2', SHARDS: '2' }]) {
  describe(`reload (IO_THREADS=${layout.IO_THREADS} SHARDS=${layout.SHARDS})`, () => {
    it('applies a changed file on SIGHUP while alice keeps sending to bob, with no reject and no dropped link', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'ilp-node-reload-'))
      const file = join(dir, 'config.json')
      const base = { alice: child('alice-token'), bob: child('bob-token', { maxPacketAmount: '1000' }), carl: child('carl-token') }
      writeFileSync(file, JSON.stringify(configJson(base)))
      const node = await startNodeProcess({ ...layout, CONFIG: file, DATA_DIR: join(dir, 'data') })
      let sending = true
      const clients: { disconnect(): Promise<void> }[] = []
      try {
        const alice = await connectPlugin(node.port, 'alice', 'alice-token')
        const bob = await connectPlugin(node.port, 'bob', 'bob-token')
        const carl = await connectPlugin(node.port, 'carl', 'carl-token', 2000)
        let disconnects = 0
        for (const p of [alice, bob]) (p as unknown as NodeJS.EventEmitter).on('disconnect', () => disconnects++)
        const { fulfillment, condition } = fulfillmentPair()
        bob.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))

        clients.push(alice, bob, carl)
        let fulfilled = 0
        const rejects: string[] = []
        const lane = async (): Promise<void> => {
          while (sending) {
            const reply = await alice.sendData(prepare({ destination: 'test.reload.bob', amount: '10', executionCondition: condition }))
            if (reply[0] === IlpPacket.Type.TYPE_ILP_FULFILL) fulfilled++
            else rejects.push(IlpPacket.deserializeIlpReject(reply).code)
          }
        }
        const lanes = Array.from({ length: LANES }, lane)
        await sleep(200)

        // dave is added, carl deleted, bob's limit raised, a route added; alice is as she was.
        const changed = {
          alice: child('alice-token'), bob: child('bob-token', { maxPacketAmount: '5000' }), dave: child('dave-token'),
        }
        writeFileSync(file, JSON.stringify(configJson(changed, [{ targetPrefix: 'test.elsewhere', peerId: 'bob' }], { maxHoldTimeMs: 20000 })))
        const before = fulfilled
        node.proc.kill('SIGHUP')
        await waitForOutput(node.output, /config reloaded/)
        await sleep(200)
        sending = false
        await Promise.all(lanes)

        assert.deepEqual(rejects, [], 'no prepare was rejected across the reload')
        assert.ok(fulfilled > before + 20, `alice kept sending (${before} before the reload, ${fulfilled} in all)`)
        assert.equal(disconnects, 0, 'alice\'s and bob\'s links stayed up')
        assert.match(node.output(), /config reloaded .*added=dave .*updated=bob .*deleted=carl .*relinked=carl/)
        assert.match(node.output(), /take effect at the next restart .*fields=maxHoldTimeMs/)
        // The changes hold: bob takes 2000 now, dave connects and learns its address, carl is gone.
        const big = await alice.sendData(prepare({ destination: 'test.reload.bob', amount: '2000', executionCondition: condition }))
        assert.equal(big[0], IlpPacket.Type.TYPE_ILP_FULFILL)
        const elsewhere = await alice.sendData(prepare({ destination: 'test.elsewhere.x', amount: '1', executionCondition: condition }))
        assert.equal(elsewhere[0], IlpPacket.Type.TYPE_ILP_FULFILL)
        const dave = await connectPlugin(node.port, 'dave', 'dave-token')
        clients.push(dave)
        assert.equal((await ILDCP.fetch((data: Buffer) => dave.sendData(data))).clientAddress, 'test.reload.dave')
        assert.equal(asReject(await alice.sendData(prepare({ destination: 'test.reload.carl', amount: '1', executionCondition: condition }))).code, 'F02')

        // A broken file: the node says why and keeps the config it runs.
        writeFileSync(file, '{ "ilpAddress": "test.reload", "accounts": { ')
        node.proc.kill('SIGHUP')
        await waitForOutput(node.output, /reload refused; the node keeps running on its current config .*is not valid JSON/)
        writeFileSync(file, JSON.stringify(configJson({ ...changed, erin: child('erin-token', { maxPacketAmmount: '5' }) })))
        const refused = await adminRequest(node.port, 'POST', '/admin/reload')
        assert.equal(refused.status, 400)
        const body = refused.body as { field: string; error: string }
        assert.equal(body.field, 'accounts.erin.maxPacketAmmount')
        assert.match(body.error, /did you mean "maxPacketAmount"/)
        await waitForOutput(node.output, /reload refused.*accounts\.erin\.maxPacketAmmount/)
        await assertAuthRefused(node.port, 'erin', 'erin-token')
        const still = await alice.sendData(prepare({ destination: 'test.reload.bob', amount: '2000', executionCondition: condition }))
        assert.equal(still[0], IlpPacket.Type.TYPE_ILP_FULFILL, 'the node runs on the config it had')
        assert.equal(node.proc.exitCode, null)
      } finally {
        sending = false
        await Promise.allSettled(clients.map((c) => c.disconnect()))
        await node.stop()
        rmSync(dir, { recursive: true, force: true })
      }
    })

    it('reports no update for a file reloaded unchanged, settlement block and settle fields included', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'ilp-node-reload-'))
      const file = join(dir, 'config.json')
      const settling = child('alice-token', { settlement: { engine: 'btp-transfer' }, balance: { minimum: '-1000', maximum: '1000', settleThreshold: '-500', settleTo: '0' } })
      writeFileSync(file, JSON.stringify(configJson({ alice: settling, bob: child('bob-token') }, [{ targetPrefix: 'test.elsewhere', peerId: 'bob' }])))
      const node = await startNodeProcess({ ...layout, CONFIG: file, DATA_DIR: join(dir, 'data') })
      try {
        const reload = await adminRequest(node.port, 'POST', '/admin/reload')
        assert.equal(reload.status, 200)
        assert.equal(reload.body.updated, '')
        assert.equal(reload.body.added, '')
        assert.equal(reload.body.relinked, '')
        // The same by SIGHUP: neither reload's log line names an account.
        node.proc.kill('SIGHUP')
        await waitForOutput(node.output, /config reloaded: nothing changed[\s\S]*config reloaded: nothing changed/)
        assert.doesNotMatch(node.output(), /updated=/)
      } finally {
        await node.stop()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
}
