// Goal: the admin API shows what the node holds (settings, committed balances, holds in flight,
// links, traffic, the routing table with each route's origin), answers only with the admin
// token, and never shows a token. Method: a node with alice, bob and carl (ilp-plugin-btp
// clients for alice and bob), real traffic, and a prepare that bob holds while the API is asked.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ADMIN_TOKEN, adminRequest, asFulfill, fulfillmentPair, IlpPacket, layoutName, NODE_ADDRESS, prepare, sleep, testConfigJson, withNode } from '../support/helpers'
import { AdminApi } from '../../src/control/ops/admin_api'
import { ADMIN_ERRORS, type AdminErrorCode } from '../../src/io/ops/admin_errors'

function admin(port: number, method: string, path: string, token: string | null = ADMIN_TOKEN): ReturnType<typeof adminRequest> {
  return adminRequest(port, method, path, { token })
}

type AccountView = { id: string; balance: string; held: string; preparesInFlight: number; connected: boolean; links: number; transport: Record<string, unknown>;
  limits: Record<string, string>; traffic: Record<string, { fulfilled: number; rejected: number; amountFulfilled: string }> | null }

describe(`admin API (${layoutName(0)})`, () => {
  // 30 wrong tokens in a row from one address: the client gate's penalty is not what this suite tests.
  const fixture = withNode(0, { ...testConfigJson(), adminToken: ADMIN_TOKEN, limits: { authFailuresFree: 1000 } }, ['alice', 'bob'])

  it('answers 401 on every endpoint without the admin token, or with a wrong one', async () => {
    const endpoints: [string, string][] = [
      ['GET', '/admin/accounts'], ['GET', '/admin/accounts/alice'], ['GET', '/admin/routes'], ['PUT', '/admin/accounts/dave'],
      ['DELETE', '/admin/accounts/alice'], ['POST', '/admin/accounts/alice/adjust'], ['GET', '/admin/nothing'], ['GET', '/admin'],
      ['GET', '/admin/routes/test.carl'], ['PUT', '/admin/routes/test.new'], ['DELETE', '/admin/routes/test.carl'], ['POST', '/admin/reload'],
      ['GET', '/admin/rates'], ['GET', '/admin/books'], ['GET', '/admin/settlements'],
    ]
    for (const [method, path] of endpoints) {
      for (const token of [null, 'not-the-admin-token', 'alice-token']) {
        const res = await admin(fixture.node.port, method, path, token)
        assert.equal(res.status, 401, `${method} ${path} with ${token ?? 'no token'}`)
      }
    }
  })

  it('shows each account: settings without tokens, committed balance, links and traffic', async () => {
    const { alice, bob } = fixture.clients
    const { fulfillment, condition } = fulfillmentPair()
    bob.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))
    for (let i = 0; i < 5; i++) asFulfill(await alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, amount: '40', executionCondition: condition })))
    const res = await admin(fixture.node.port, 'GET', '/admin/accounts')
    assert.equal(res.status, 200)
    const text = JSON.stringify(res.body)
    assert.doesNotMatch(text, /alice-token|bob-token|carl-token/, 'no token in the answer')
    const accounts = res.body.accounts as AccountView[]
    assert.deepEqual(accounts.map((a) => a.id), ['alice', 'bob', 'carl'])
    const [a, b, c] = accounts
    assert.equal(a.balance, '200')
    assert.equal(b.balance, '-200')
    assert.equal(a.held, '0')
    assert.deepEqual(a.limits, { balanceMinimum: '-1000000000', balanceMaximum: '1000000000', maxPacketAmount: '1000000' })
    assert.deepEqual(a.transport, { btp: { listens: true }, http: null })
    assert.equal(a.connected, true)
    assert.equal(a.links, 1)
    assert.equal(c.connected, false)
    assert.equal(a.traffic?.incoming.fulfilled, 5)
    assert.equal(a.traffic?.incoming.amountFulfilled, '200')
    assert.equal(b.traffic?.outgoing.fulfilled, 5)
    const one = await admin(fixture.node.port, 'GET', '/admin/accounts/bob')
    assert.equal(one.status, 200)
    assert.equal((one.body as unknown as AccountView).balance, '-200')
    assert.equal((await admin(fixture.node.port, 'GET', '/admin/accounts/nobody')).status, 404)
  })

  it('shows the hold of a prepare while the next hop holds it, and releases it after', async () => {
    const { alice, bob } = fixture.clients
    const { fulfillment, condition } = fulfillmentPair()
    let answer: () => void = () => {}
    bob.deregisterDataHandler()
    bob.registerDataHandler(() => new Promise((resolve) => {
      answer = () => resolve(IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))
    }))
    const before = (await admin(fixture.node.port, 'GET', '/admin/accounts/alice')).body as unknown as AccountView
    const sent = alice.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, amount: '777', executionCondition: condition }))
    let during: AccountView | null = null
    for (let i = 0; i < 100 && (during === null || during.held === '0'); i++) {
      await sleep(10)
      during = (await admin(fixture.node.port, 'GET', '/admin/accounts/alice')).body as unknown as AccountView
    }
    assert.equal(during?.held, '777')
    assert.equal(during?.preparesInFlight, 1)
    answer()
    asFulfill(await sent)
    let after = during!
    for (let i = 0; i < 100 && after.held !== '0'; i++) {
      await sleep(10)
      after = (await admin(fixture.node.port, 'GET', '/admin/accounts/alice')).body as unknown as AccountView
    }
    assert.equal(after.held, '0')
    assert.equal(after.preparesInFlight, 0)
    assert.equal(BigInt(after.balance), BigInt(before.balance) + 777n)
  })

  it('shows the routing table with where each route came from', async () => {
    const res = await admin(fixture.node.port, 'GET', '/admin/routes')
    assert.equal(res.status, 200)
    const routes = res.body.routes as { prefix: string; nextHop: string; source: string }[]
    const find = (prefix: string) => routes.find((r) => r.prefix === prefix)
    assert.deepEqual(find('test.elsewhere'), { prefix: 'test.elsewhere', nextHop: 'bob', source: 'config', path: [] })
    assert.deepEqual(find(`${NODE_ADDRESS}.alice`), { prefix: `${NODE_ADDRESS}.alice`, nextHop: 'alice', source: 'child', path: [] })
    assert.equal(find('test.carl')?.source, 'config')
  })

  it('answers 405 for methods an endpoint does not take, and 404 for unknown endpoints', async () => {
    const wrong = await admin(fixture.node.port, 'POST', '/admin/accounts/dave')
    assert.equal(wrong.status, 405)
    assert.match(String(wrong.body.error), /allowed: GET, PUT, DELETE/)
    assert.equal((await admin(fixture.node.port, 'DELETE', '/admin/routes')).status, 405)
    assert.equal((await admin(fixture.node.port, 'GET', '/admin/reload')).status, 405)
    assert.equal((await admin(fixture.node.port, 'GET', '/admin/nothing')).status, 404)
    assert.equal((await admin(fixture.node.port, 'POST', '/admin/rates')).status, 405)
    assert.equal((await admin(fixture.node.port, 'DELETE', '/admin/settlements')).status, 405)
  })

  it('answers from its tables: each error with its code\'s status, a 404 listing the routes, a 405 with their methods in Allow', async () => {
    const port = fixture.node.port
    for (const [code, { status, meaning }] of Object.entries(ADMIN_ERRORS)) {
      assert.ok(status >= 400 && status <= 599, `${code}: ${status}`)
      assert.match(code, /^[a-z]+(_[a-z]+)*$/)
      assert.ok(meaning.length > 0 && !meaning.includes('\n'), `${code} has a one-line meaning`)
    }
    // Errors of every kind this node can give without breaking anything: each answers its code's status.
    const asked: [string, string, unknown?][] = [
      ['GET', '/admin/nothing'], ['PATCH', '/admin/accounts'], ['GET', '/admin/accounts/nobody'], ['GET', '/admin/accounts/no%20body'],
      ['GET', '/admin/accounts/%E0'], ['PUT', '/admin/accounts/dave', 'not json'], ['POST', '/admin/accounts/alice/adjust', []],
      ['DELETE', '/admin/routes/test.nowhere'], ['DELETE', '/admin/accounts/carl/adjust'], ['POST', '/admin/reload'],
    ]
    const seen = new Set<string>()
    for (const [method, path, body] of asked) {
      const res = await adminRequest(port, method, path, { body })
      const code = res.body.code as AdminErrorCode
      assert.ok(Object.hasOwn(ADMIN_ERRORS, code), `${method} ${path}: code ${String(code)} is in the table`)
      assert.equal(res.status, ADMIN_ERRORS[code].status, `${method} ${path} answered ${code}`)
      seen.add(code)
    }
    assert.deepEqual([...seen].sort(), ['invalid_body', 'invalid_field', 'method_not_allowed', 'no_config_file', 'not_found', 'unknown_endpoint'])
    const unauthorized = await adminRequest(port, 'GET', '/admin/accounts', { token: 'not-the-admin-token' })
    assert.equal(unauthorized.status, ADMIN_ERRORS.unauthorized.status)
    assert.equal(unauthorized.body.code, 'unauthorized')

    const unknown = await adminRequest(port, 'GET', '/admin/nothing')
    assert.deepEqual(unknown.body.endpoints, AdminApi.ROUTES.map(([method, pattern]) => `${method} ${pattern}`))

    // Each pattern with a method it does not take: 405, and Allow names the methods the table gives it.
    const patterns = [...new Set(AdminApi.ROUTES.map(([, pattern]) => pattern))]
    for (const pattern of patterns) {
      const path = pattern.replace(':id', 'alice').replace('*prefix', 'test.carl')
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'PATCH', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
      const body = await res.json() as Record<string, unknown>
      assert.equal(res.status, ADMIN_ERRORS.method_not_allowed.status, pattern)
      assert.equal(body.code, 'method_not_allowed')
      const methods = AdminApi.ROUTES.filter(([, p]) => p === pattern).map(([method]) => method)
      assert.equal(res.headers.get('allow'), methods.join(', '), pattern)
      assert.match(String(body.error), new RegExp(`allowed: ${methods.join(', ')}`))
    }
  })

  it('lists settlements with their totals, and answers 400 to a bad limit', async () => {
    const res = await admin(fixture.node.port, 'GET', '/admin/settlements?limit=10')
    assert.equal(res.status, 200)
    assert.deepEqual(res.body.totals, { sent: 0, received: 0, sending: 0 })
    for (const limit of ['0', '-1', 'x', '99999999']) {
      const bad = await admin(fixture.node.port, 'GET', `/admin/settlements?limit=${limit}`)
      assert.equal(bad.status, 400, limit)
      assert.equal(bad.body.field, 'limit')
    }
  })

  it('shows one-to-one rates and books that balance when nothing was earned', async () => {
    const rates = await admin(fixture.node.port, 'GET', '/admin/rates')
    assert.equal(rates.status, 200)
    assert.deepEqual([rates.body.backend, rates.body.stale, rates.body.spread], ['one-to-one', false, '0'])
    const books = await admin(fixture.node.port, 'GET', '/admin/books')
    assert.equal(books.status, 200)
    // alice paid bob 5 × 40 with no spread: the node's USD position is zero.
    const usd = (books.body.assets as { assetCode: string; position: string; earned: string }[]).find((a) => a.assetCode === 'USD')!
    assert.deepEqual([usd.position, usd.earned], ['0', '0'])
  })
})

describe('admin API without an adminToken', () => {
  const fixture = withNode(0)

  it('answers nothing under /admin (404), with or without a token', async () => {
    for (const token of [null, ADMIN_TOKEN]) {
      assert.equal((await admin(fixture.node.port, 'GET', '/admin/accounts', token)).status, 404)
      assert.equal((await admin(fixture.node.port, 'GET', '/admin/routes', token)).status, 404)
    }
  })
})

describe(`admin API and metrics on their own port (adminPort, ${layoutName(0)})`, () => {
  const fixture = withNode(0, { ...testConfigJson(), adminToken: ADMIN_TOKEN, adminHost: '127.0.0.1', adminPort: 0 })

  it('answer on ADMIN_PORT only, not on the node\'s port', async () => {
    const adminPort = fixture.node.adminPort
    assert.ok(adminPort !== null && adminPort !== fixture.node.port)
    const there = await admin(adminPort, 'GET', '/admin/accounts')
    assert.equal(there.status, 200)
    assert.deepEqual((there.body.accounts as AccountView[]).map((a) => a.id), ['alice', 'bob', 'carl'])
    assert.equal((await admin(adminPort, 'GET', '/admin/accounts', null)).status, 401)
    assert.equal((await fetch(`http://127.0.0.1:${adminPort}/metrics`)).status, 200)
    // The public port no longer serves them, nor does the admin port serve ILP.
    assert.equal((await admin(fixture.node.port, 'GET', '/admin/accounts')).status, 404)
    assert.equal((await fetch(`http://127.0.0.1:${fixture.node.port}/metrics`)).status, 404)
    assert.equal((await fetch(`http://127.0.0.1:${adminPort}/health`)).status, 404)
  })
})
