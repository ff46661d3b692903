// Goal: accounts and routes change while the node runs, through the admin API, with the config
// file's validation, and the changes survive a restart; a balance adjustment happens once per
// idempotency key. Method: a node (in the suite's layout) with alice and bob connected by
// ilp-plugin-btp; a child "dave" created through the API connects at once, learns its address
// by IL-DCP (ilp-protocol-ildcp) and pays alice; its limit is raised and its token changed while
// alice's link is watched; routes are added and removed while alice sends; then the node is
// stopped and started again on the same data directory.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type BtpPlugin from 'ilp-plugin-btp'
import * as ILDCP from 'ilp-protocol-ildcp'
import type { RunningNode } from '../../src/node'
import {
  ADMIN_TOKEN, adminRequest, asFulfill, asReject, assertAuthRefused, connectPlugin, fulfillmentPair, IlpPacket, layoutName, NODE_ADDRESS, prepare, removeDir, sleep, startTestNode, tempDir, testConfigJson,
} from '../support/helpers'

// Changed and deleted accounts' clients keep redialling with tokens the node now refuses: the
// client gate's wait after failed authentications is not what this suite tests.
const CONFIG = { ...testConfigJson(), adminToken: ADMIN_TOKEN, limits: { authFailuresFree: 1000 } }

function admin(port: number, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): ReturnType<typeof adminRequest> {
  return adminRequest(port, method, path, { body, headers })
}

function child(token: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token }, ...extra }
}

async function connectDave(port: number, token: string): Promise<BtpPlugin> {
  // Refused after a token change: see connectPlugin's responseTimeoutMs.
  return connectPlugin(port, 'dave', token, 2000)
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

describe(`admin API changes (${layoutName(0)})`, () => {
  let dir: string
  let node: RunningNode
  let port: number
  const plugins: { disconnect(): Promise<void> }[] = []
  const { fulfillment, condition } = fulfillmentPair()
  let alice: Awaited<ReturnType<typeof connectPlugin>>
  let bob: Awaited<ReturnType<typeof connectPlugin>>
  let bobSeen: string[] = []

  before(async () => {
    dir = tempDir()
    node = await startTestNode(0, dir, CONFIG)
    port = node.port
    alice = await connectPlugin(port, 'alice', 'alice-token')
    bob = await connectPlugin(port, 'bob', 'bob-token')
    plugins.push(alice, bob)
    const fulfill = async (data: Buffer) => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.from(IlpPacket.deserializeIlpPrepare(data).destination) })
    alice.registerDataHandler(fulfill)
    bob.registerDataHandler(async (data) => {
      bobSeen.push(IlpPacket.deserializeIlpPrepare(data).destination)
      return fulfill(data)
    })
  })
  after(async () => {
    await Promise.allSettled(plugins.map((p) => p.disconnect()))
    await node?.stop()
    removeDir(dir)
  })

  it('creates a child that connects at once, learns its address by IL-DCP and pays another child', async () => {
    const created = await admin(port, 'PUT', '/admin/accounts/dave', child('dave-token', { maxPacketAmount: '100', balance: { minimum: '-1000000', maximum: '1000000' } }))
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.equal(created.body.id, 'dave')
    assert.equal(JSON.stringify(created.body).includes('dave-token'), false, 'no token in the answer')
    const dave = await connectDave(port, 'dave-token')
    plugins.push(dave)
    dave.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))
    const info = await ILDCP.fetch((data: Buffer) => dave.sendData(data))
    assert.equal(info.clientAddress, `${NODE_ADDRESS}.dave`)
    assert.equal(info.assetCode, 'USD')
    const reply = await dave.sendData(prepare({ destination: `${NODE_ADDRESS}.alice.x`, amount: '60', executionCondition: condition }))
    asFulfill(reply)
    assert.equal(node.balance('dave'), 60n)
    // And alice can pay dave, at the child route made for it.
    asFulfill(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.dave.y`, amount: '10', executionCondition: condition })))
  })

  it('raises a limit, and the next packet passes', async () => {
    const dave = await connectDave(port, 'dave-token')
    plugins.push(dave)
    const big = () => dave.sendData(prepare({ destination: `${NODE_ADDRESS}.alice.x`, amount: '500', executionCondition: condition }))
    assert.equal(asReject(await big()).code, 'F08')
    const raised = await admin(port, 'PUT', '/admin/accounts/dave', child('dave-token', { maxPacketAmount: '1000', balance: { minimum: '-1000000', maximum: '1000000' } }))
    assert.equal(raised.status, 200, JSON.stringify(raised.body))
    assert.equal((raised.body.limits as Record<string, string>).maxPacketAmount, '1000')
    asFulfill(await big())
    // A limit change keeps the link.
    asFulfill(await big())
  })

  it('changes a token: that account\'s links drop, and only those', async () => {
    const before = (await admin(port, 'GET', '/admin/accounts/dave')).body
    assert.ok(Number(before.links) >= 1)
    const changed = await admin(port, 'PUT', '/admin/accounts/dave', child('dave-new-token', { maxPacketAmount: '1000', balance: { minimum: '-1000000', maximum: '1000000' } }))
    assert.equal(changed.status, 200, JSON.stringify(changed.body))
    await waitFor('dave\'s links to close', async () => Number((await admin(port, 'GET', '/admin/accounts/dave')).body.links) === 0)
    assert.equal((await admin(port, 'GET', '/admin/accounts/alice')).body.links, 1)
    assert.equal((await admin(port, 'GET', '/admin/accounts/bob')).body.links, 1)
    // alice's and bob's links carry on, without a reconnect.
    asFulfill(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob.z`, amount: '5', executionCondition: condition })))
    await assertAuthRefused(port, 'dave', 'dave-token')
    const dave = await connectDave(port, 'dave-new-token')
    plugins.push(dave)
    dave.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))
    asFulfill(await dave.sendData(prepare({ destination: `${NODE_ADDRESS}.alice.x`, amount: '5', executionCondition: condition })))
  })

  it('refuses to delete an account with a balance (409), and deletes it when forced', async () => {
    const balance = node.balance('dave')
    assert.notEqual(balance, 0n)
    const refused = await admin(port, 'DELETE', '/admin/accounts/dave')
    assert.equal(refused.status, 409)
    assert.equal(refused.body.code, 'balance_not_zero')
    assert.equal(refused.body.balance, balance.toString())
    assert.equal((await admin(port, 'GET', '/admin/accounts/dave')).status, 200)
    const routed = await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.dave.y`, amount: '1', executionCondition: condition }))
    asFulfill(routed)

    const forced = await admin(port, 'DELETE', '/admin/accounts/dave?force=true')
    assert.equal(forced.status, 200, JSON.stringify(forced.body))
    assert.equal((await admin(port, 'GET', '/admin/accounts/dave')).status, 404)
    assert.equal(asReject(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.dave.y`, amount: '1', executionCondition: condition }))).code, 'F02')
    await assertAuthRefused(port, 'dave', 'dave-new-token')
    // Its balance is kept in LMDB (money is not lost by deleting the account that owes it).
    assert.equal(node.balance('dave'), balance - 1n)
    // An account with nothing owed is deleted without force.
    assert.equal((await admin(port, 'PUT', '/admin/accounts/erin', child('erin-token'))).status, 201)
    assert.equal((await admin(port, 'DELETE', '/admin/accounts/erin')).status, 200)
    assert.equal((await admin(port, 'DELETE', '/admin/accounts/erin')).status, 404)
  })

  it('adds and removes static routes, and forwarding follows', async () => {
    const send = () => alice.sendData(prepare({ destination: 'test.faraway.shop', amount: '3', executionCondition: condition }))
    assert.equal(asReject(await send()).code, 'F02')
    const put = await admin(port, 'PUT', '/admin/routes/test.faraway', { peerId: 'bob' })
    assert.equal(put.status, 201, JSON.stringify(put.body))
    bobSeen = []
    asFulfill(await send())
    assert.deepEqual(bobSeen, ['test.faraway.shop'])
    const table = (await admin(port, 'GET', '/admin/routes')).body.routes as { prefix: string; nextHop: string; source: string }[]
    assert.deepEqual(table.find((r) => r.prefix === 'test.faraway'), { prefix: 'test.faraway', nextHop: 'bob', source: 'admin', path: [] })
    assert.equal((await admin(port, 'DELETE', '/admin/routes/test.faraway')).status, 200)
    assert.equal(asReject(await send()).code, 'F02')
    // A route of the config file can be removed too, and a deleted route is 404 the second time.
    assert.equal((await admin(port, 'DELETE', '/admin/routes/test.carl')).status, 200)
    assert.equal((await admin(port, 'DELETE', '/admin/routes/test.carl')).status, 404)
    // A route to an account with routes on it cannot lose that account.
    assert.equal((await admin(port, 'PUT', '/admin/routes/test.kept', { peerId: 'carl' })).status, 201)
    const refused = await admin(port, 'DELETE', '/admin/accounts/carl')
    assert.equal(refused.status, 409)
    assert.deepEqual(refused.body.routes, ['test.kept'])
  })

  it('keeps an account\'s asset while it has a balance, and stops asking a peer for routes once it no longer takes them', async () => {
    assert.notEqual(node.balance('alice'), 0n)
    const eur = await admin(port, 'PUT', '/admin/accounts/alice', child('alice-token', { assetCode: 'EUR', assetScale: 2 }))
    assert.equal(eur.status, 409, JSON.stringify(eur.body))
    assert.equal(eur.body.code, 'balance_not_zero')
    assert.equal(((await admin(port, 'GET', '/admin/accounts/alice')).body.asset as Record<string, unknown>).code, 'USD')
    // carl (a peer) fails the node's route control, so the node asks again in 1 s; taking no
    // more routes from carl must end that, not crash on it.
    const carl = await connectPlugin(port, 'carl', 'carl-token', 2000)
    plugins.push(carl)
    carl.registerDataHandler(async () => { throw new Error('carl does not talk CCP today') })
    await sleep(300)
    const off = await admin(port, 'PUT', '/admin/accounts/carl', { relation: 'peer', assetCode: 'USD', assetScale: 9, btp: { token: 'carl-token' }, receiveRoutes: false })
    assert.equal(off.status, 200, JSON.stringify(off.body))
    await sleep(1500)
    assert.equal((await admin(port, 'GET', '/admin/accounts/carl')).status, 200, 'the node is still up')
    // A malformed percent-escape in the path is the caller's error.
    const bad = await admin(port, 'GET', '/admin/routes/%')
    assert.equal(bad.status, 400)
    assert.equal(bad.body.field, 'path')
  })

  it('answers 400 naming the field for bad bodies', async () => {
    const cases: [string, string, unknown, string, RegExp][] = [
      ['PUT', '/admin/accounts/fay', child('fay-token', { maxPacketAmmount: '10' }), 'maxPacketAmmount', /did you mean "maxPacketAmount"/],
      ['PUT', '/admin/accounts/fay', child('fay-token', { relation: 'cousin' }), 'relation', /child, peer, parent/],
      ['PUT', '/admin/accounts/fay', child('fay-token', { balance: { minimum: '10', maximum: '1' } }), 'balance', /minimum is greater/],
      ['PUT', '/admin/accounts/fay', child('alice-token'), 'btp.token', /used by another account/],
      ['PUT', '/admin/accounts/fay', '{"relation":', '(body)', /not valid JSON/],
      ['PUT', '/admin/accounts/fay', [1, 2], '(body)', /JSON object/],
      ['PUT', '/admin/accounts/no%20spaces', child('x-token'), 'id', /account ids are/],
      ['PUT', '/admin/routes/test.x', { peerId: 'nobody' }, 'peerId', /names no account/],
      ['PUT', '/admin/routes/test.x', { peerId: 'bob', via: 'x' }, 'via', /not a field the node knows/],
      ['PUT', '/admin/routes/not%20an%20address', { peerId: 'bob' }, 'prefix', /ILP address prefix/],
      ['POST', '/admin/accounts/alice/adjust', { reason: 'x' }, 'amount', /decimal string/],
      ['POST', '/admin/accounts/alice/adjust', { amount: '12.5', reason: 'x' }, 'amount', /decimal string/],
      ['POST', '/admin/accounts/alice/adjust', { amount: '10' }, 'reason', /non-empty string/],
      ['POST', '/admin/accounts/alice/adjust', { amount: '10', reason: 'settled' }, 'idempotencyKey', /Idempotency-Key/],
      ['POST', '/admin/accounts/alice/adjust', { amount: '10', reason: 'settled', amuont: '1' }, 'amuont', /unknown field/],
    ]
    for (const [method, path, body, field, message] of cases) {
      const res = await admin(port, method, path, body)
      assert.equal(res.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`)
      assert.equal(res.body.field, field, `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`)
      assert.equal(res.body.code, field === '(body)' ? 'invalid_body' : 'invalid_field')
      assert.match(String(res.body.error), message)
    }
    assert.equal((await admin(port, 'GET', '/admin/accounts/fay')).status, 404, 'nothing of a refused change is applied')
    const tooBig = await admin(port, 'PUT', '/admin/accounts/fay', JSON.stringify({ pad: 'x'.repeat(70_000) }))
    assert.equal(tooBig.status, 413)
    assert.equal(tooBig.body.code, 'body_too_large')
  })

  it('refuses ids that every object has (__proto__, constructor, ...) on every path, and makes no account of them', async () => {
    const before = (await admin(port, 'GET', '/admin/accounts')).body.accounts as { id: string }[]
    for (const id of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf']) {
      for (const [method, path, body] of [
        ['PUT', `/admin/accounts/${id}`, child(`${id}-token`)],
        ['GET', `/admin/accounts/${id}`, undefined],
        ['DELETE', `/admin/accounts/${id}`, undefined],
        ['POST', `/admin/accounts/${id}/adjust`, { amount: '1', reason: 'x', idempotencyKey: id }],
      ] as const) {
        const res = await admin(port, method, path, body)
        assert.equal(res.status, 400, `${method} ${path}: ${JSON.stringify(res.body)}`)
        assert.equal(res.body.code, 'invalid_field')
        assert.equal(res.body.field, 'id')
        assert.match(String(res.body.error), /^account ids are .* other than the names JavaScript objects have built in .*; not "/)
      }
    }
    const after = (await admin(port, 'GET', '/admin/accounts')).body.accounts as { id: string }[]
    assert.deepEqual(after.map((a) => a.id), before.map((a) => a.id))
    assert.equal(node.config.accounts.length, before.length)
  })

  it('answers 400 naming the field for bodies of the wrong types or sizes, and shows no object, function or control character', async () => {
    const long = 'x'.repeat(5000)
    const cases: [string, string, unknown, string][] = [
      ['PUT', '/admin/accounts/fay', child('fay-token', { assetCode: {} }), 'assetCode'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { assetCode: 5 }), 'assetCode'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { assetCode: long }), 'assetCode'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { assetCode: 'US\u0000D' }), 'assetCode'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { assetCode: 'US\nD' }), 'assetCode'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { assetCode: 'US\u202eD' }), 'assetCode'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { balance: [] }), 'balance'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { relation: { constructor: 1 } }), 'relation'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { constructor: 1 }), 'constructor'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { ['__proto__']: { relation: 'peer' } }), '__proto__'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { toString: 'x' }), 'toString'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { assetScale: '9x' }), 'assetScale'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { maxPacketAmount: 10 }), 'maxPacketAmount'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { btp: { token: 7 } }), 'btp.token'],
      ['PUT', '/admin/accounts/fay', child('fay-token', { [`k\n${long}`]: 1 }), `"k\\n${'x'.repeat(62)}"… (5002 characters)`],
      ['PUT', `/admin/accounts/${encodeURIComponent(`\u202e\n${'i'.repeat(300)}`)}`, child('fay-token'), 'id'],
      ['PUT', '/admin/accounts/fay', `{"relation": "child", "assetCode": "USD\u0000${long}`, '(body)'],
      ['PUT', '/admin/routes/test.x', { peerId: {} }, 'peerId'],
      ['PUT', '/admin/routes/test.x', { peerId: `${long}\n` }, 'peerId'],
      ['POST', '/admin/accounts/alice/adjust', { amount: {}, reason: 'x', idempotencyKey: 'k' }, 'amount'],
      ['POST', '/admin/accounts/alice/adjust', { amount: '1', reason: [], idempotencyKey: 'k' }, 'reason'],
      ['POST', '/admin/accounts/alice/adjust', { amount: '1', reason: 'x', idempotencyKey: 'k', ['__proto__']: 1 }, '__proto__'],
    ]
    for (const [method, path, body, field] of cases) {
      const res = await admin(port, method, path, body)
      const what = `${method} ${path.slice(0, 80)} ${JSON.stringify(body).slice(0, 120)}: ${JSON.stringify(res.body).slice(0, 400)}`
      assert.equal(res.status, 400, what)
      assert.equal(res.body.field, field, what)
      assert.equal(res.body.code, field === '(body)' ? 'invalid_body' : 'invalid_field', what)
      const error = String(res.body.error)
      assert.doesNotMatch(error, /\[object Object\]|function/, what)
      assert.doesNotMatch(error, /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/, what)
      assert.ok(error.length < 600, what)
    }
    assert.equal((await admin(port, 'GET', '/admin/accounts/fay')).status, 404, 'nothing of a refused change is applied')
  })

  it('adjusts a balance exactly once per idempotency key, journalled with its reason', async () => {
    const before = node.balance('alice')
    const body = { amount: '-250', reason: 'settled on-ledger, tx 42' }
    const first = await admin(port, 'POST', '/admin/accounts/alice/adjust', body, { 'idempotency-key': 'settlement-42' })
    assert.equal(first.status, 201, JSON.stringify(first.body))
    assert.equal(first.body.balance, (before - 250n).toString())
    assert.equal(node.balance('alice'), before - 250n)
    const again = await admin(port, 'POST', '/admin/accounts/alice/adjust', body, { 'idempotency-key': 'settlement-42' })
    assert.equal(again.status, 200)
    assert.equal(again.body.replayed, true)
    assert.equal(node.balance('alice'), before - 250n, 'the repeat changed nothing')
    const other = await admin(port, 'POST', '/admin/accounts/alice/adjust', { ...body, amount: '-300' }, { 'idempotency-key': 'settlement-42' })
    assert.equal(other.status, 409)
    assert.equal(other.body.code, 'idempotency_conflict')
    // The shard's live balance moved too: alice's next packet is checked against it.
    const view = (await admin(port, 'GET', '/admin/accounts/alice')).body
    assert.equal(view.balance, (before - 250n).toString())
    asFulfill(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob.z`, amount: '1', executionCondition: condition })))
    assert.equal(node.balance('alice'), before - 250n + 1n)
  })

  it('keeps the changes across a restart', async () => {
    assert.equal((await admin(port, 'PUT', '/admin/accounts/gus', child('gus-token', { maxPacketAmount: '77' }))).status, 201)
    assert.equal((await admin(port, 'PUT', '/admin/routes/test.gus-land', { peerId: 'gus' })).status, 201)
    const aliceBalance = node.balance('alice')
    await Promise.allSettled(plugins.map((p) => p.disconnect()))
    plugins.length = 0
    await node.stop()
    node = await startTestNode(0, dir, CONFIG)
    port = node.port
    const gus = (await admin(port, 'GET', '/admin/accounts/gus')).body
    assert.equal((gus.limits as Record<string, string>).maxPacketAmount, '77')
    assert.equal((await admin(port, 'GET', '/admin/accounts/dave')).status, 404, 'the deletion stands')
    assert.equal((await admin(port, 'GET', '/admin/accounts/erin')).status, 404)
    const routes = (await admin(port, 'GET', '/admin/routes')).body.routes as { prefix: string; source: string }[]
    assert.equal(routes.find((r) => r.prefix === 'test.gus-land')?.source, 'admin')
    assert.equal(routes.find((r) => r.prefix === 'test.carl'), undefined, 'the deleted file route stays deleted')
    assert.equal(node.balance('alice'), aliceBalance, 'the adjustment is in the books')
    const gusPlugin = await connectPlugin(port, 'gus', 'gus-token')
    plugins.push(gusPlugin)
    assert.equal((await ILDCP.fetch((data: Buffer) => gusPlugin.sendData(data))).clientAddress, `${NODE_ADDRESS}.gus`)
  })
})
