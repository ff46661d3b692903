// Goal: settlements in flight across an account's deletion and a restart, an asset change held
// back while one is in flight, a peer that answers two copies of one settlement differently, and
// the books keeping a deleted account's balance. One node (in the suite's layout) on a temporary
// LMDB directory, restarted on it; hal and ivy are raw BTP clients scripted per case.

import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { BtpFrame, BTP_TRANSFER, encodeError, encodeResponse } from '../../src/codec/btp_packet'
import type { RunningNode } from '../../src/node'
import { connectBtp } from '../support/btp_connect'
import { ADMIN_TOKEN, adminRequest, layoutName, removeDir, sleep, startTestNode, tempDir } from '../support/helpers'
import { captureStderrPerTest } from '../support/stderr_capture'

/** The scripted refusal is logged as errors: asserted, not printed. */
const logs = captureStderrPerTest()

const SETTLES = { engine: 'btp-transfer', retryMs: 100 }
const hal = { relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token: 'hal-token' }, settlement: SETTLES, balance: { settleThreshold: '-100', settleTo: '0' } }
const ivy = { relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token: 'ivy-token' }, settlement: { engine: 'btp-transfer', retryMs: 50 }, balance: { settleThreshold: '-100', settleTo: '0' } }
const config = (accounts: Record<string, unknown>) => ({
  ilpAddress: 'test.r', adminToken: ADMIN_TOKEN,
  accounts: { keeper: { relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token: 'keeper-token' } }, ...accounts },
})

interface Sent { id: string; account: string; amount: string; state: string; reason: string | null }

describe(`settlements in flight across deletion and restart with ${layoutName(0)}`, () => {
  const dir = tempDir()
  let node: RunningNode | null = null
  after(async () => {
    await node?.stop()
    removeDir(dir)
  })
  const sent = async (account: string) => ((await adminRequest(node!.port, 'GET', '/admin/settlements')).body.sent as Sent[]).filter((e) => e.account === account)
  const waitFor = async (what: string, check: () => Promise<boolean>) => {
    const deadline = Date.now() + 8000
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await sleep(50)
    }
  }
  const adjust = (account: string, amount: string, key: string) =>
    adminRequest(node!.port, 'POST', `/admin/accounts/${account}/adjust`, { body: { amount, reason: 'test' }, headers: { 'idempotency-key': key } })

  it('holds back an asset change while a settlement is in flight, and sends it after a restart that brings its account back', async () => {
    node = await startTestNode(0, dir, config({ hal }))
    assert.equal((await adjust('hal', '-300', 'hal-1')).status, 201)
    await waitFor('hal\'s settlement', async () => (await sent('hal')).some((e) => e.state === 'sending'))
    const [first] = await sent('hal')
    const put = await adminRequest(node.port, 'PUT', '/admin/accounts/hal', { body: { ...hal, assetScale: 9 } })
    assert.equal(put.status, 409)
    assert.equal(put.body.code, 'settlement_in_flight')
    assert.equal((await adminRequest(node.port, 'DELETE', '/admin/accounts/hal?force=true')).status, 200)
    // Deleted, its balance stays in the books (what the node booked for the settlement: 0 now).
    await node.stop()
    node = await startTestNode(0, dir, config({}))
    const books = (await adminRequest(node.port, 'GET', '/admin/books')).body.assets as { assetCode: string | null; accounts: string[]; position: string }[]
    const gone = books.find((r) => r.assetCode === null)!
    assert.deepEqual([gone.accounts, gone.position], [['hal'], '0'])
    // hal comes back: the settlement still in flight goes out, same id, and nothing else.
    assert.equal((await adminRequest(node.port, 'PUT', '/admin/accounts/hal', { body: hal })).status, 201)
    const ws = await connectBtp(node.port, 'hal', 'hal-token')
    const ids: string[] = []
    const frame = new BtpFrame()
    ws.onMessage = (data) => {
      if (!frame.parse(data) || frame.type !== BTP_TRANSFER) return
      ids.push(Buffer.from(frame.entryData(frame.findEntry(Buffer.from('transfer_id')))).toString('hex'))
      ws.send(encodeResponse(frame.requestId))
    }
    await waitFor('the settlement acknowledged', async () => (await sent('hal')).every((e) => e.state === 'acknowledged'))
    ws.close()
    assert.deepEqual([...new Set(ids)], [first.id])
    assert.deepEqual((await sent('hal')).map((e) => [e.id, e.amount, e.state]), [[first.id, '300', 'acknowledged']])
    assert.equal(node.balance('hal'), 0n)
  })

  it('books a settlement again when the peer acknowledges one copy after refusing another', async () => {
    await node!.stop()
    node = await startTestNode(0, dir, config({ hal, ivy }))
    // ivy holds the first copy unanswered; when the second comes it refuses it (F00), then
    // acknowledges the first: it has booked the settlement, so the node must have it booked.
    const ws = await connectBtp(node.port, 'ivy', 'ivy-token')
    const copies: number[] = []
    const frame = new BtpFrame()
    ws.onMessage = (data) => {
      if (!frame.parse(data) || frame.type !== BTP_TRANSFER) return
      copies.push(frame.requestId)
      if (copies.length !== 2) return
      ws.send(encodeError(copies[1], 'F00', 'NotAcceptedError', 'scripted refusal'))
      setTimeout(() => ws.send(encodeResponse(copies[0])), 30)
    }
    assert.equal((await adjust('ivy', '-500', 'ivy-1')).status, 201)
    await waitFor('the late acknowledgement', async () => (await sent('ivy')).some((e) => e.state === 'acknowledged'))
    ws.close()
    const [entry] = await sent('ivy')
    assert.equal(entry.amount, '500')
    assert.match(String(entry.reason), /acknowledged after a refusal \(F00 NotAcceptedError: scripted refusal\); booked again/)
    await sleep(20)
    assert.equal(node.balance('ivy'), 0n) // -500 adjusted, +500 settled (booked, reversed, booked again)
    const again = /ERROR shards?(?: \d+)?: the peer acknowledged a settlement it had refused; booked again account=ivy amount=500 /
    await logs.waitFor(again)
    logs.assertErrors([/ERROR shards?(?: \d+)?: the peer refused a settlement; .* account=ivy amount=500 .*reason="F00 NotAcceptedError: scripted refusal"/, again])
  })
})
