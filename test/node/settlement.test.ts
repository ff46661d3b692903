// Goal: settlement over BTP transfers between two real nodes, and a peer's transfers checked.
// Node A (test.a) dials node B (test.b); each has a child (alice on A, bob on B) and the other
// node as a peer with limits of ±5000, settleThreshold -2000 and settleTo 0, on both sides.
// alice and bob pay each other nearly 10 times the limits, in parallel lanes (first alice pays
// more than bob, then bob more than alice, so each node in turn owes): nothing gets T04, both
// nodes' balances of each other stay within the limits all along, and once the settlements are
// acknowledged each node's balance of the other is the negation of the other's, to the unit,
// with every settlement A sent booked once by B and the other way round. Then real ilp-plugin-btp
// clients send B transfers it must refuse (an account that does not settle, no id, a bad id, a
// zero amount, an id reused for another amount) and one it books once though sent twice.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createHash } from 'node:crypto'
import type { RunningNode } from '../../src/node'
import { BtpFrame, BTP_ERROR } from '../../src/codec/btp_packet'
import { connectBtp } from '../support/btp_connect'
import { ADMIN_TOKEN, adminRequest, BtpPlugin, connectPlugin, IlpPacket, layoutName, prepare, sleep } from '../support/helpers'
import { withNetwork } from '../support/network'
import { captureStderrPerTest } from '../support/stderr_capture'

/** A refused settlement is logged as an error: asserted where a test provokes it, not printed. */
const logs = captureStderrPerTest()

const LIMITS = { minimum: '-5000', maximum: '5000', settleThreshold: '-2000', settleTo: '0' }
const SETTLES = { engine: 'btp-transfer', retryMs: 200 }
const FULFILLMENT = Buffer.alloc(32, 7)
const CONDITION = createHash('sha256').update(FULFILLMENT).digest()
const LANES = 4
const PACKETS_PER_LANE = 100
/** Each phase: 4 lanes each way, 100 packets each, of 100 one way and 20 the other. */
const HEAVY = 100n
const LIGHT = 20n

interface SettlementView { id: string; account: string; amount: string; state: string }

describe(`settlement between two nodes over BTP transfers with ${layoutName(0)}`, () => {
  let a: RunningNode
  let b: RunningNode
  /** Clients the tests connect themselves, closed before the network stops. */
  const clients: BtpPlugin[] = []
  let alice: BtpPlugin
  let bob: BtpPlugin

  after(async () => {
    await Promise.all(clients.map((c) => c.disconnect()))
  })
  const net = withNetwork({
    nodes: {
      b: {
        ilpAddress: 'test.b', adminToken: ADMIN_TOKEN,
        accounts: {
          bob: { relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token: 'bob-token' } },
          a: { relation: 'peer', assetCode: 'USD', assetScale: 6, balance: LIMITS, settlement: SETTLES },
          carol: { relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token: 'carol-token' } },
          dan: { relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token: 'dan-token' }, settlement: SETTLES },
          fay: { relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token: 'fay-token' }, settlement: SETTLES, balance: { minimum: '-1500' } },
          gus: { relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token: 'gus-token' }, settlement: SETTLES, balance: { settleThreshold: '-100', settleTo: '0' } },
          erin: { relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token: 'erin-token' }, settlement: SETTLES, balance: { settleThreshold: '-100', settleTo: '0' } },
        },
        routes: [{ targetPrefix: 'test.a', peerId: 'a' }],
      },
      a: {
        ilpAddress: 'test.a', adminToken: ADMIN_TOKEN,
        accounts: {
          alice: { relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token: 'alice-token' } },
          b: { relation: 'peer', assetCode: 'USD', assetScale: 6, balance: LIMITS, settlement: SETTLES },
        },
        routes: [{ targetPrefix: 'test.b', peerId: 'b' }],
      },
    },
    // A dials B (token a-to-b), and settles with it over that link.
    links: [{ from: 'a.b', to: 'b.a' }],
    clients: ['a.alice', 'b.bob'],
  })

  before(() => {
    ({ nodes: { a, b }, clients: { a: { alice }, b: { bob } } } = net)
    for (const c of [alice, bob]) c.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment: FULFILLMENT, data: Buffer.alloc(0) }))
  })

  async function lane(from: BtpPlugin, to: string, amount: bigint, rejects: string[]): Promise<void> {
    for (let i = 0; i < PACKETS_PER_LANE; i++) {
      const reply = await from.sendData(prepare({ destination: to, amount: amount.toString(), executionCondition: CONDITION, expiresAt: new Date(Date.now() + 10000) }))
      if (reply[0] !== IlpPacket.Type.TYPE_ILP_FULFILL) {
        const r = IlpPacket.deserializeIlpReject(reply)
        rejects.push(`${r.code} ${r.message}`)
      }
    }
  }

  /** A BTP Transfer from a real ilp-plugin-btp client (its own _call, as its sendMoney would if it had one). */
  const transferFrom = (plugin: BtpPlugin, amount: string, id: Buffer) =>
    (plugin as unknown as { _call(to: null, packet: unknown): Promise<unknown> })._call(null, {
      type: 7, requestId: Math.floor(Math.random() * 2 ** 31), data: { amount, protocolData: [{ protocolName: 'transfer_id', contentType: 0, data: id }] },
    })

  const settlements = async (node: RunningNode) => (await adminRequest(node.port, 'GET', '/admin/settlements')).body as { sent: SettlementView[]; received: SettlementView[] }

  it('carries traffic of many times the limits both ways without a T04, and the books agree to the unit', async () => {
    const rejects: string[] = []
    const samples: [bigint, bigint][] = []
    let running = true
    const sampler = (async () => {
      while (running) {
        samples.push([a.balance('b'), b.balance('a')])
        await sleep(5)
      }
    })()
    for (const [toBob, toAlice] of [[HEAVY, LIGHT], [LIGHT, HEAVY]]) {
      const lanes: Promise<void>[] = []
      for (let i = 0; i < LANES; i++) lanes.push(lane(alice, 'test.b.bob', toBob, rejects), lane(bob, 'test.a.alice', toAlice, rejects))
      await Promise.all(lanes)
    }
    running = false
    await sampler
    assert.deepEqual(rejects, [])
    for (const [ab, ba] of samples) {
      assert.ok(ab >= -5000n && ab <= 5000n, `A's balance of B left the limits: ${ab}`)
      assert.ok(ba >= -5000n && ba <= 5000n, `B's balance of A left the limits: ${ba}`)
    }

    // Every settlement answered: then each side's view of the other is the other's negated.
    const deadline = Date.now() + 10000
    let sa = await settlements(a)
    let sb = await settlements(b)
    while ([...sa.sent, ...sb.sent].some((s) => s.state === 'sending')) {
      if (Date.now() > deadline) throw new Error('settlements still in flight')
      await sleep(50)
      sa = await settlements(a)
      sb = await settlements(b)
    }
    assert.ok(sa.sent.length >= 3 && sb.sent.length >= 3, `settlements: A sent ${sa.sent.length}, B sent ${sb.sent.length}`)
    assert.ok(sa.sent.every((s) => s.state === 'acknowledged') && sb.sent.every((s) => s.state === 'acknowledged'))
    const key = (s: SettlementView) => `${s.id} ${s.amount}`
    assert.deepEqual(sa.sent.map(key).sort(), sb.received.map(key).sort(), 'what A sent is what B booked, once each')
    assert.deepEqual(sb.sent.map(key).sort(), sa.received.map(key).sort(), 'what B sent is what A booked, once each')
    assert.equal(a.balance('b'), -b.balance('a'))
    // And both balances are what the packets and the settlements make them.
    const sum = (xs: SettlementView[]) => xs.reduce((s, x) => s + BigInt(x.amount), 0n)
    // A forwarded as much to B as B to A (each phase's mirror): the packets net out on the books.
    assert.equal(a.balance('b'), sum(sa.sent) - sum(sa.received))
  })

  it('refuses a transfer from an account that does not settle, or a malformed one, and books nothing', async () => {
    const carol = await connectPlugin(b.port, 'carol', 'carol-token', 3000)
    const dan = await connectPlugin(b.port, 'dan', 'dan-token', 3000)
    clients.push(carol, dan)
    const transfer = (plugin: BtpPlugin, amount: string, protocolData: { protocolName: string; contentType: number; data: Buffer }[]) =>
      (plugin as unknown as { _call(to: null, packet: unknown): Promise<unknown> })._call(null, {
        type: 7, requestId: Math.floor(Math.random() * 2 ** 31), data: { amount, protocolData },
      })
    const id = (bytes: Buffer) => [{ protocolName: 'transfer_id', contentType: 0, data: bytes }]
    // The main thread reads LMDB through a read transaction it renews between event-loop turns:
    // a shard's commit shows there a turn or so after the answer that followed it.
    const balanceOf = async (account: string) => {
      await sleep(20)
      return b.balance(account)
    }
    const good = Buffer.alloc(16, 9)
    await assert.rejects(transfer(carol, '100', id(good)), /F00.*carol does not settle/)
    assert.equal(await balanceOf('carol'), 0n)
    await assert.rejects(transfer(dan, '100', []), /F00.*needs a transfer_id/)
    await assert.rejects(transfer(dan, '100', id(Buffer.alloc(8))), /F00.*must be 16 octets/)
    await assert.rejects(transfer(dan, '0', id(good)), /F00.*must be positive/)
    assert.equal(await balanceOf('dan'), 0n)

    await transfer(dan, '100', id(good))
    assert.equal(await balanceOf('dan'), -100n)
    await transfer(dan, '100', id(good)) // a retry: answered, not booked again
    assert.equal(await balanceOf('dan'), -100n)
    await assert.rejects(transfer(dan, '101', id(good)), /F00.*booked already with another amount/)
    assert.equal(await balanceOf('dan'), -100n)
    const received = (await settlements(b)).received.filter((t) => t.account === 'dan')
    assert.deepEqual(received.map((t) => [t.id, t.amount]), [[good.toString('hex'), '100']])
  })

  it('books the same transfer id from two accounts once each, answers a retry after the account stops settling, and keeps balance.minimum', async () => {
    const dan = await connectPlugin(b.port, 'dan', 'dan-token', 3000)
    const fay = await connectPlugin(b.port, 'fay', 'fay-token', 3000)
    clients.push(dan, fay)
    const danBefore = b.balance('dan')
    // Ten ids, each sent by dan and fay at once: two accounts' settlements, not a retry of one.
    const ids = Array.from({ length: 10 }, (_, i) => Buffer.alloc(16, 0x40 + i))
    await Promise.all(ids.flatMap((id) => [transferFrom(dan, '100', id), transferFrom(fay, '100', id)]))
    await sleep(20)
    assert.equal(b.balance('dan'), danBefore - 1000n)
    assert.equal(b.balance('fay'), -1000n)
    // fay's minimum is -1500: a transfer of 600 would take it to -1600. Refused, and every copy
    // of that id is, even once the balance has room (the sender reversed it at the first F).
    const tooMuch = Buffer.alloc(16, 0x60)
    await assert.rejects(transferFrom(fay, '600', tooMuch), /F00.*below balance\.minimum \(-1500\)/)
    await sleep(20)
    assert.equal(b.balance('fay'), -1000n)
    assert.equal((await adminRequest(b.port, 'POST', '/admin/accounts/fay/adjust', { body: { amount: '1000', reason: 'room' }, headers: { 'idempotency-key': 'fay-room' } })).status, 201)
    await assert.rejects(transferFrom(fay, '600', tooMuch), /F00.*below balance\.minimum \(-1500\)/)
    await transferFrom(fay, '600', Buffer.alloc(16, 0x62))
    await sleep(20)
    assert.equal(b.balance('fay'), -600n)

    // dan stops settling: a retry of a transfer booked before is still acknowledged (the peer
    // booked its side when it was first answered); a new one is refused.
    const put = await adminRequest(b.port, 'PUT', '/admin/accounts/dan', { body: { relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token: 'dan-token' } } })
    assert.equal(put.status, 200)
    const danLink = await connectPlugin(b.port, 'dan', 'dan-token', 3000)
    clients.push(danLink)
    await transferFrom(danLink, '100', ids[0])
    await assert.rejects(transferFrom(danLink, '100', Buffer.alloc(16, 0x61)), /F00.*dan does not settle/)
    await sleep(20)
    assert.equal(b.balance('dan'), danBefore - 1000n)
  })

  it('answers a Transfer whose amount is cut short with a BTP error, and books nothing', async () => {
    const ws = await connectBtp(b.port, 'fay', 'fay-token')
    const before = b.balance('fay')
    const frame = new BtpFrame()
    const answer = new Promise<BtpFrame>((resolve) => { ws.onMessage = (data) => { if (frame.parse(data)) resolve(frame) } })
    // type 7, requestId 77, contents of 4 bytes: half an amount, no protocol data.
    ws.send(Buffer.from([7, 0, 0, 0, 77, 4, 0, 0, 0, 1]))
    const reply = await answer
    assert.equal(reply.type, BTP_ERROR)
    assert.equal(reply.requestId, 77)
    assert.equal(reply.errorCode, 'F01')
    assert.match(reply.errorData, /transfer too short/)
    ws.close()
    await sleep(20)
    assert.equal(b.balance('fay'), before)
  })

  it('keeps sending a settlement in flight when its account stops settling', async () => {
    // gus never connects: its settlement stays in flight; then its settlement config goes.
    const adjust = await adminRequest(b.port, 'POST', '/admin/accounts/gus/adjust', { body: { amount: '-300', reason: 'test' }, headers: { 'idempotency-key': 'gus-1' } })
    assert.equal(adjust.status, 201)
    const deadline = Date.now() + 5000
    while (!(await settlements(b)).sent.some((e) => e.account === 'gus' && e.state === 'sending')) {
      if (Date.now() > deadline) throw new Error('no settlement for gus')
      await sleep(50)
    }
    const put = await adminRequest(b.port, 'PUT', '/admin/accounts/gus', { body: { relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token: 'gus-token' } } })
    assert.equal(put.status, 200)
    await sleep(600) // three retry intervals: the shard goes on sending (to no link)
    const gus = (await settlements(b)).sent.filter((e) => e.account === 'gus')
    assert.deepEqual(gus.map((e) => [e.amount, e.state]), [['300', 'sending']])
    // The node still forwards and answers.
    assert.equal((await adminRequest(b.port, 'GET', '/admin/accounts/bob')).status, 200)
    const reply = await alice.sendData(prepare({ destination: 'test.b.bob', amount: '1', executionCondition: CONDITION, expiresAt: new Date(Date.now() + 10000) }))
    assert.equal(reply[0], IlpPacket.Type.TYPE_ILP_FULFILL)
  })

  it('reverses a settlement the peer refuses (ilp-plugin-btp, which has no settlement), and pauses', async () => {
    // erin is an ilp-plugin-btp client: it answers a Transfer with a BTP error, F00.
    const erin = await connectPlugin(b.port, 'erin', 'erin-token')
    clients.push(erin)
    erin.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment: FULFILLMENT, data: Buffer.alloc(0) }))
    const reply = await bob.sendData(prepare({ destination: 'test.b.erin', amount: '250', executionCondition: CONDITION, expiresAt: new Date(Date.now() + 10000) }))
    assert.equal(reply[0], IlpPacket.Type.TYPE_ILP_FULFILL)
    const deadline = Date.now() + 10000
    let refused: (SettlementView & { reason?: string })[] = []
    while (refused.length === 0) {
      if (Date.now() > deadline) throw new Error('no refused settlement')
      await sleep(50)
      refused = (await settlements(b)).sent.filter((e) => e.account === 'erin' && e.state === 'refused')
    }
    assert.equal(refused.length, 1)
    assert.equal(refused[0].amount, '250')
    assert.match(String(refused[0].reason), /^F00 .*No sendMoney functionality/)
    // Booked at +250 when sent, reversed when refused: the node still owes erin the 250.
    await sleep(20)
    assert.equal(b.balance('erin'), -250n)
    // Paused: no second attempt for 10 s, though the balance is still below the threshold.
    await sleep(500)
    assert.equal((await settlements(b)).sent.filter((e) => e.account === 'erin').length, 1)
    // A shard's line is relayed by the main thread, a little later.
    const refusal = /ERROR shards?(?: \d+)?: the peer refused a settlement; its booking is reversed, and the account pauses before it settles again account=erin amount=250 .*reason="F00 /
    await logs.waitFor(refusal)
    logs.assertErrors([refusal])
  })
})
