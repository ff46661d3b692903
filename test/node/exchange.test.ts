// Goal: packets between assets and the node's fee, seen from real ilp-plugin-btp clients. alice
// (USD, scale 2) and dave (USD, scale 9, an account spread of 1 %) pay children in EUR at scales
// 4 and 0, in USD at scale 2, and in XRP (which the static table does not list). The amount each
// receiver gets is checked against figures worked out by hand from the rate (1 USD = 0.9173 EUR)
// and the spread (0.2 %), including the rounding edges and R01; the admin API's books then
// show what the node kept. Then a reload changes the rate and the spread under a running node.
// Runs in the suite's layout (SHARDS=0 here; 2×2 in the second pass).

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseConfig } from '../../src/config/parse'
import { startNode, type RunningNode } from '../../src/node'
import { ADMIN_TOKEN, adminRequest, BtpPlugin, connectClients, layoutName, MACHINE, NODE_ADDRESS, Payments, stopAll, tempDir, testLayout, withNode } from '../support/helpers'

const child = (assetCode: string, assetScale: number, extra: Record<string, unknown> = {}) => ({ relation: 'child', assetCode, assetScale, ...extra })

const CONFIG = {
  ilpAddress: NODE_ADDRESS,
  adminToken: ADMIN_TOKEN,
  rates: { backend: 'static', base: 'USD', table: { EUR: '0.9173' } },
  spread: '0.002',
  accounts: {
    alice: child('USD', 2, { btp: { token: 'alice-token' } }),
    dave: child('USD', 9, { btp: { token: 'dave-token' }, spread: 0.01 }),
    bob: child('EUR', 4, { btp: { token: 'bob-token' } }),
    erin: child('EUR', 0, { btp: { token: 'erin-token' } }),
    uma: child('USD', 2, { btp: { token: 'uma-token' } }),
    xavier: child('XRP', 6, { btp: { token: 'xavier-token' } }),
  },
}

describe(`exchange and spread with ${layoutName(0)}`, () => {
  const fixture = withNode(0, CONFIG, ['alice', 'dave', 'bob', 'erin', 'uma', 'xavier'])
  const payments = new Payments()

  before(() => {
    for (const name of ['bob', 'erin', 'uma', 'xavier']) payments.receive(fixture.clients[name])
  })

  /** Sends `amount` from `from` to `to`; the amount `to` got, or the reject. */
  const pay = (from: string, to: string, amount: bigint) => payments.pay(fixture.clients[from], fixture.clients[to], `${NODE_ADDRESS}.${to}`, amount)

  // Each row: from, to, amount sent, what the receiver gets, worked out by hand.
  //   alice → bob:  cents × 0.9173 × 0.998 EUR, in 1/10000 EUR: cents × 91.54654
  //   alice → erin: cents × 0.009154654 EUR, in whole EUR
  //   alice → uma:  cents × 0.998 (same asset, the spread only)
  //   dave → uma:   nano-dollars × 0.99 / 10^7 (the account's 1 % spread)
  const cases: [string, string, bigint, bigint][] = [
    ['alice', 'bob', 100n, 9154n], // 9154.654
    ['alice', 'bob', 1n, 91n], // 91.54654
    ['alice', 'bob', 100000n, 9154654n], // exact: no rounding
    ['alice', 'bob', 123456789n, 11302041872n], // 11302041872.46006
    ['alice', 'erin', 1000000n, 9154n], // 9154.654
    ['alice', 'erin', 110n, 1n], // 1.00701194: just above one euro
    ['alice', 'uma', 1000n, 998n],
    ['alice', 'uma', 501n, 499n], // 499.998: rounded down, in the node's favour
    ['dave', 'uma', 1000000000n, 99n],
    ['dave', 'uma', 10101011n, 1n], // 1.00000009
  ]

  it('gives the next hop exactly the converted amount less the spread, rounded down', async () => {
    for (const [from, to, amount, expected] of cases) {
      assert.equal(await pay(from, to, amount), expected, `${from} → ${to}, ${amount}`)
    }
  })

  it('rejects R01 when the amount rounds to zero for the next hop', async () => {
    for (const [from, to, amount] of [['alice', 'erin', 109n], ['dave', 'uma', 10101010n], ['alice', 'uma', 1n]] as const) {
      const reject = await pay(from, to, amount)
      assert.ok(typeof reject !== 'bigint', `${from} → ${to}, ${amount} was forwarded`)
      assert.equal(reject.code, 'R01', `${from} → ${to}, ${amount}: ${reject.message}`)
    }
  })

  it('rejects F02 naming the asset the node does not trade', async () => {
    const reject = await pay('alice', 'xavier', 1000n)
    assert.ok(typeof reject !== 'bigint')
    assert.equal(reject.code, 'F02')
    assert.match(reject.message, /does not trade XRP/)
    assert.equal(payments.received(fixture.clients.xavier).length, 0)
  })

  it('shows each rate with its source, and the books with what the node kept', async () => {
    const rates = await adminRequest(fixture.node.port, 'GET', '/admin/rates')
    assert.equal(rates.status, 200)
    assert.equal(rates.body.backend, 'static')
    assert.equal(rates.body.stale, false)
    assert.equal(rates.body.spread, '0.002')
    assert.deepEqual((rates.body.rates as { assetCode: string; rate: string }[]).map((r) => [r.assetCode, r.rate]), [['USD', '1'], ['EUR', '0.9173']])
    const dave = (rates.body.accounts as { id: string; spread: string; spreadFrom: string }[]).find((a) => a.id === 'dave')!
    assert.deepEqual([dave.spread, dave.spreadFrom], ['0.01', 'account'])

    const books = await adminRequest(fixture.node.port, 'GET', '/admin/books')
    assert.equal(books.status, 200)
    const assets = books.body.assets as { assetCode: string; assetScale: number; position: string; earned: string; outsideIlp: string }[]
    const row = (code: string, scale: number) => assets.find((a) => a.assetCode === code && a.assetScale === scale)!
    const sum = (f: (c: [string, string, bigint, bigint]) => bigint | null) => cases.reduce((s, c) => s + (f(c) ?? 0n), 0n)
    // What the node took in USD at scale 2 (from alice) less what it paid uma; and so on.
    const usd2 = sum(([from, , amount]) => (from === 'alice' ? amount : null)) - sum(([, to, , out]) => (to === 'uma' ? out : null))
    assert.equal(row('USD', 2).position, usd2.toString())
    assert.equal(row('USD', 2).earned, usd2.toString())
    assert.equal(row('USD', 9).position, sum(([from, , amount]) => (from === 'dave' ? amount : null)).toString())
    assert.equal(row('EUR', 4).position, (-sum(([, to, , out]) => (to === 'bob' ? out : null))).toString())
    assert.equal(row('EUR', 0).position, (-sum(([, to, , out]) => (to === 'erin' ? out : null))).toString())
    for (const a of assets) assert.equal(a.outsideIlp, '0')
    // In dollars: the spread on what went through, plus what the floors kept (under a unit each).
    const valueSent = sum(([from, , amount]) => (from === 'alice' ? amount * 10n ** 7n : amount)) // in nano-dollars
    const earned = (books.body.earnedInBase as { assetCode: string; amount: string })
    assert.equal(earned.assetCode, 'USD')
    const earnedNano = BigInt(earned.amount.replace('.', ''))
    assert.ok(earnedNano >= (valueSent * 2n) / 1000n, `earned ${earned.amount} USD on ${valueSent} nano-dollars sent`)
    assert.ok(earnedNano <= (valueSent * 10n) / 1000n + 10n ** 9n, `earned ${earned.amount} USD on ${valueSent} nano-dollars sent`)
  })
})

describe(`rates and spread changed by a reload with ${layoutName(0)}`, () => {
  const dir = tempDir()
  const path = join(dir, 'config.json')
  let node: RunningNode
  let alice: BtpPlugin
  let bob: BtpPlugin
  const payments = new Payments()
  const file = (eur: string, spread: string) => writeFileSync(path, JSON.stringify({
    ilpAddress: NODE_ADDRESS, adminToken: ADMIN_TOKEN, port: 0, dataDir: join(dir, 'data'), logLevel: 'error', ...testLayout(0),
    rates: { backend: 'static', base: 'USD', table: { EUR: eur } }, spread,
    accounts: { alice: child('USD', 2, { btp: { token: 'alice-token' } }), bob: child('EUR', 4, { btp: { token: 'bob-token' } }) },
  }))

  before(async () => {
    file('0.9173', '0.002')
    node = await startNode(parseConfig(JSON.parse(readFileSync(path, 'utf8')), {}, MACHINE, path))
    ;[alice, bob] = await connectClients(node.port, 'alice', 'bob')
    payments.receive(bob)
  })

  after(() => stopAll([alice, bob], node, dir))

  const pay = (cents: bigint) => payments.pay(alice, bob, `${NODE_ADDRESS}.bob`, cents)

  it('applies a new rate and spread from the file at once, while the links stay up', async () => {
    assert.equal(await pay(100n), 9154n) // 100 × 91.54654
    file('0.95', '0.01')
    const reload = await adminRequest(node.port, 'POST', '/admin/reload')
    assert.equal(reload.status, 200)
    assert.equal(reload.body.rates, 'static, spread 0.01')
    assert.deepEqual(reload.body.restartOnly, [])
    assert.equal(await pay(100n), 9405n) // 100 × 0.95 × 100 × 0.99 = 9405 exactly
    const rates = await adminRequest(node.port, 'GET', '/admin/rates')
    assert.equal(rates.body.spread, '0.01')
    assert.ok((rates.body.rates as { assetCode: string; rate: string }[]).some((r) => r.assetCode === 'EUR' && r.rate === '0.95'))
  })
})
