// Goal: limits hold on both sides of a packet, in range, and a few accounts cannot take a shard's
// shared room from the rest. Method: real BTP sockets (lean peers, test/support/lean_peers.ts),
// the node in the suite's layout; each party's own count checked against the node's books.
//   1. The next hop's balance.minimum (the most the node will owe it) is held when the node
//      forwards: bursts from two senders at once (on two shards when there are two) to a next hop
//      that answers only after the burst: exactly as much is forwarded as its minimum allows, the
//      rest gets T04, and once fulfilled its balance is its minimum to the unit.
//   2. Balances stay within ±(2^63 − 1): credits that would take one past it get T04, peer.balance
//      then reports the true figure, and adjustments out of range are refused naming the field.
//   3. Fair use: four accounts each keep limits.maxInFlightPerAccount zero-amount prepares at a
//      next hop that never answers (enough, together, to fill the shard's pending table), and a
//      fifth account's payment still goes through.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { shardOfAccount } from '../../src/config/account_table'
import { kindOf, LeanNextHop, LeanSender } from '../support/lean_peers'
import { ADMIN_TOKEN, adminRequest, connectPlugin, layoutName, peerBalance, sleep, testLayout, withNode } from '../support/helpers'

const INT64_MAX = 2n ** 63n - 1n

function child(token: string, balance?: Record<string, string>): Record<string, unknown> {
  return { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token }, ...(balance === undefined ? {} : { balance }) }
}

/** `count` account names that the suite's layout puts on the same shard as `with` (all, with one shard). */
function sameShardAs(withId: string, prefix: string, count: number): string[] {
  const shards = testLayout(0).shards
  const names: string[] = []
  for (let i = 0; names.length < count; i++) if (shardOfAccount(`${prefix}${i}`, shards) === shardOfAccount(withId, shards)) names.push(`${prefix}${i}`)
  return names
}

/** An account name on another shard than `other`, when the layout has two or more. */
function otherShardThan(other: string, prefix: string): string {
  const shards = testLayout(0).shards
  for (let i = 0; ; i++) if (shards < 2 || shardOfAccount(`${prefix}${i}`, shards) !== shardOfAccount(other, shards)) return `${prefix}${i}`
}

async function waitFor(what: string, ms: number, check: () => boolean, everyMs = 10): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

const SECOND = otherShardThan('alice', 'carol')

describe(`the next hop's minimum, held when forwarding (${layoutName(0)})`, () => {
  const f = withNode(0, {
    ilpAddress: 'test.limits',
    accounts: { alice: child('alice-token'), [SECOND]: child(`${SECOND}-token`), bob: child('bob-token', { minimum: '-1000000' }) },
  })

  it('forwards exactly what keeps bob at or above his minimum under a concurrent burst from two shards, and T04 for the rest', async () => {
    const port = f.node.port
    const bob = await LeanNextHop.connect(port, 'bob')
    const senders = [await LeanSender.connect(port, 'alice'), await LeanSender.connect(port, SECOND)]
    // 2 × 150 prepares of 7,000 at once: 2,100,000 offered, 1,000,000 allowed: 142 fit (994,000).
    for (const s of senders) s.burst('test.limits.bob', 7000n, 150)
    const refusedT04 = () => senders.reduce((n, s) => n + (s.rejects.get('T04') ?? 0), 0)
    await waitFor('every prepare refused or at bob', 10_000, () => refusedT04() + bob.held.length === 300)
    assert.equal(bob.held.length, 142, 'as many prepares reach bob as his minimum allows')
    assert.equal(refusedT04(), 300 - 142, 'the rest get T04')
    bob.fulfillAll()
    for (const h of bob.held) bob.answer(h.requestId, h.amount, bob.autoAnswer!)
    for (const s of senders) assert.equal(await s.settle(5000), 0)
    await sleep(100)
    assert.equal(f.node.balance('bob'), -994_000n, 'bob is owed what he fulfilled, within his minimum')
    assert.equal(senders[0].seen + senders[1].seen, 994_000n)
    // One more packet would pass the minimum: refused; one that fits goes.
    assert.equal(kindOf(await senders[0].pay('test.limits.bob', 6001n)), 'T04')
    assert.equal(kindOf(await senders[0].pay('test.limits.bob', 6000n)), 'fulfill')
    assert.equal(f.node.balance('bob'), -1_000_000n)
    for (const c of [...senders, bob]) c.ws.close()
  })
})

describe(`balances within the signed 64-bit range (${layoutName(0)})`, () => {
  const max = { maximum: INT64_MAX.toString() }
  const f = withNode(0, {
    ilpAddress: 'test.int64',
    adminToken: ADMIN_TOKEN,
    accounts: { s1: child('s1-token', max), s2: child('s2-token', max), s3: child('s3-token', max), bob: child('bob-token') },
  })

  it('keeps a next hop with no minimum above −(2^63 − 1), reports its true peer.balance, and refuses adjustments out of range', async () => {
    const port = f.node.port
    const bob = await LeanNextHop.connect(port, 'bob')
    bob.fulfillAll()
    const [s1, s2, s3] = [await LeanSender.connect(port, 's1'), await LeanSender.connect(port, 's2'), await LeanSender.connect(port, 's3')]
    assert.equal(kindOf(await s1.pay('test.int64.bob', 2n ** 62n)), 'fulfill')
    assert.equal(kindOf(await s2.pay('test.int64.bob', 2n ** 62n)), 'T04', 'bob would reach −2^63')
    assert.equal(kindOf(await s2.pay('test.int64.bob', 2n ** 62n - 1n)), 'fulfill', 'bob reaches −(2^63 − 1), the floor')
    assert.equal(kindOf(await s3.pay('test.int64.bob', 1n)), 'T04', 'not one unit further')
    assert.equal(f.node.balance('bob'), -INT64_MAX)
    const plugin = await connectPlugin(port, 'bob', 'bob-token')
    try {
      assert.equal(await peerBalance(plugin), INT64_MAX, 'peer.balance is the true balance')
    } finally {
      await plugin.disconnect()
    }
    // The adjustment's own range, then the balance it would make.
    for (const amount of [(2n ** 63n).toString(), (-(2n ** 63n) - 1n).toString(), (-(2n ** 64n)).toString()]) {
      const r = await adminRequest(port, 'POST', '/admin/accounts/bob/adjust', { body: { amount, reason: 'range' }, headers: { 'idempotency-key': `range-${amount}` } })
      assert.equal(r.status, 400, `amount ${amount}: ${JSON.stringify(r.body)}`)
      assert.equal(r.body.field, 'amount')
    }
    const below = await adminRequest(port, 'POST', '/admin/accounts/bob/adjust', { body: { amount: '-1', reason: 'below' }, headers: { 'idempotency-key': 'below-floor' } })
    assert.equal(below.status, 400, JSON.stringify(below.body))
    assert.equal(below.body.field, 'amount')
    const above = await adminRequest(port, 'POST', '/admin/accounts/s1/adjust', { body: { amount: (2n ** 62n).toString(), reason: 'above' }, headers: { 'idempotency-key': 'above-max' } })
    assert.equal(above.status, 400, JSON.stringify(above.body))
    const fine = await adminRequest(port, 'POST', '/admin/accounts/bob/adjust', { body: { amount: '5', reason: 'fine' }, headers: { 'idempotency-key': 'fine' } })
    assert.equal(fine.status, 201, JSON.stringify(fine.body))
    assert.equal(f.node.balance('bob'), -INT64_MAX + 5n)
    for (const c of [s1, s2, s3, bob]) c.ws.close()
  })
})

describe(`fair use of a shard's pending table (${layoutName(0)})`, () => {
  const flooders = sameShardAs('alice', 'flood', 4)
  const f = withNode(0, {
    ilpAddress: 'test.fair',
    accounts: {
      alice: child('alice-token'), carol: child('carol-token'), silent: child('silent-token'),
      ...Object.fromEntries(flooders.map((id) => [id, child(`${id}-token`)])),
    },
  })

  it('serves a fifth account while four keep maxInFlightPerAccount zero-amount prepares each at a next hop that never answers', async () => {
    const port = f.node.port
    const silent = await LeanNextHop.connect(port, 'silent')
    const carol = await LeanNextHop.connect(port, 'carol')
    carol.fulfillAll()
    const attackers = await Promise.all(flooders.map((id) => LeanSender.connect(port, id)))
    // Each keeps maxInFlightPerAccount zero-amount prepares outstanding, sending again whatever is
    // refused: 4 × 16,384 = 65,536, the whole pending table of a shard, at no cost to them.
    for (const a of attackers) a.keep('test.fair.silent', f.node.config.maxInFlightPerAccount, () => 0n, 25_000)
    let held = -1
    await waitFor('the flood to take all the room it can', 20_000, () => {
      const now = silent.held.length
      const stable = now === held
      held = now
      return stable && now > 0
    }, 300)
    assert.ok(attackers.some((a) => (a.rejects.get('T03') ?? 0) > 0), 'the flood does not get the whole table')
    const alice = await LeanSender.connect(port, 'alice')
    assert.equal(kindOf(await alice.pay('test.fair.carol', 100n)), 'fulfill', 'the fifth account is served during the flood')
    assert.equal(f.node.balance('carol'), -100n)
    for (const a of attackers) a.window = 0
    for (const c of [...attackers, alice, silent, carol]) c.ws.close()
  })
})
