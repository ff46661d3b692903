// Goal: the ecb rate backend against a recorded copy of the ECB's daily reference rates
// (test/fixtures/ecb/, the published eurofxref-daily.xml of 2022-07-08), served by a local HTTP
// server. alice (USD, scale 2) pays bob (EUR, scale 4) with no spread: bob gets cents × 100 /
// 1.0163 (the day's USD rate), rounded down. Then the file changes (a new day, a new rate) and
// the next packets follow it; then the server goes away, and once the rates are older than
// rates.maxAgeMs packets get T00 saying why; when it comes back they flow again. The parser's
// refusals of malformed documents are at the end.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseEcbDaily } from '../../src/codec/ecb_xml'
import { parseDecimal } from '../../src/codec/decimal'
import { parseConfig } from '../../src/config/parse'
import { RateFeed } from '../../src/control/rates/rate_feed'
import { logger } from '../../src/log'
import type { RateSnapshot } from '../../src/shard/exchange'
import type { RunningNode } from '../../src/node'
import {
  ADMIN_TOKEN, adminRequest, BtpPlugin, connectClients, IlpPacket, layoutName, MACHINE, NODE_ADDRESS, Payments, removeDir, sleep, startTestNode, stopAll, tempDir,
} from '../support/helpers'
import { captureStderrPerTest } from '../support/stderr_capture'

/** Stale rates are logged as an error: asserted where a test lets them go stale, not printed. */
const logs = captureStderrPerTest()

const RECORDED = readFileSync(join(__dirname, '..', '..', '..', 'test', 'fixtures', 'ecb', 'eurofxref-daily-2022-07-08.xml'), 'utf8')
/** The same document for the next day with another USD rate, as the ECB would publish it. */
const NEXT_DAY = RECORDED.replace("time='2022-07-08'", "time='2022-07-11'").replace("currency='USD' rate='1.0163'", "currency='USD' rate='1.0093'")
const MAX_AGE_MS = 1500
const REFRESH_MS = 200

describe(`ecb exchange rates with ${layoutName(0)}`, () => {
  let document = RECORDED
  let server: Server
  let port = 0
  let node: RunningNode
  let alice: BtpPlugin
  let bob: BtpPlugin
  const dir = tempDir()
  let fetches = 0

  function serve(): Promise<void> {
    server = createServer((req, res) => {
      fetches++
      if (req.url !== '/stats/eurofxref/eurofxref-daily.xml') return void res.writeHead(404).end()
      res.writeHead(200, { 'content-type': 'text/xml' }).end(document)
    })
    return new Promise((resolve) => server.listen(port, '127.0.0.1', () => {
      port = (server.address() as AddressInfo).port
      resolve()
    }))
  }

  before(async () => {
    await serve()
    node = await startTestNode(0, dir, {
      ilpAddress: NODE_ADDRESS,
      adminToken: ADMIN_TOKEN,
      rates: { backend: 'ecb', url: `http://127.0.0.1:${port}/stats/eurofxref/eurofxref-daily.xml`, refreshMs: REFRESH_MS, maxAgeMs: MAX_AGE_MS },
      accounts: {
        alice: { relation: 'child', assetCode: 'USD', assetScale: 2, btp: { token: 'alice-token' } },
        bob: { relation: 'child', assetCode: 'EUR', assetScale: 4, btp: { token: 'bob-token' } },
      },
    })
    ;[alice, bob] = await connectClients(node.port, 'alice', 'bob')
    payments.receive(bob)
  })

  after(async () => {
    await stopAll([alice, bob], node)
    server.close()
    removeDir(dir)
  })

  const payments = new Payments()
  const pay = (cents: bigint) => payments.pay(alice, bob, `${NODE_ADDRESS}.bob`, cents)

  async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await sleep(50)
    }
  }

  it('converts at the recorded day\'s rate, and shows it with its source and age', async () => {
    assert.equal(await pay(10000n), 983961n) // $100 / 1.0163 = 98.39614287 EUR
    assert.equal(await pay(1n), 98n) // 98.39614...
    const rates = await adminRequest(node.port, 'GET', '/admin/rates')
    assert.equal(rates.status, 200)
    assert.equal(rates.body.backend, 'ecb')
    assert.equal(rates.body.day, '2022-07-08')
    assert.equal(rates.body.stale, false)
    assert.ok(typeof rates.body.ageMs === 'number' && rates.body.ageMs < MAX_AGE_MS)
    const usd = (rates.body.rates as { assetCode: string; rate: string; per: string; source: string }[]).find((r) => r.assetCode === 'USD')!
    assert.deepEqual([usd.rate, usd.per], ['1.0163', 'EUR'])
    assert.match(usd.source, /^ecb http:\/\/127\.0\.0\.1:/)
    assert.equal((rates.body.rates as unknown[]).length, 32) // 31 currencies and EUR itself
  })

  it('follows the file when it changes', async () => {
    document = NEXT_DAY
    await waitFor('the next day\'s rates', async () => (await adminRequest(node.port, 'GET', '/admin/rates')).body.day === '2022-07-11')
    assert.equal(await pay(10000n), 990785n) // $100 / 1.0093 = 99.07856930 EUR, so 990785.69 units
  })

  it('rejects T00 once the rates are older than maxAgeMs while the source is away, and resumes when it is back', async () => {
    await new Promise((resolve) => server.close(resolve))
    server.closeAllConnections()
    const gone = Date.now()
    // Within maxAgeMs of the last fetch the last rates still hold.
    let reject: bigint | IlpPacket.IlpReject = 0n
    await waitFor('the rates to go stale', async () => {
      reject = await pay(10000n)
      return typeof reject !== 'bigint'
    })
    assert.ok(Date.now() - gone >= MAX_AGE_MS - REFRESH_MS - 100, `stale after only ${Date.now() - gone} ms`)
    assert.ok(typeof reject !== 'bigint')
    const r = reject as IlpPacket.IlpReject
    assert.equal(r.code, 'T00')
    assert.match(r.message, /exchange rates from ecb are stale: fetched [0-9.]+ s ago, rates\.maxAgeMs is 1500; last fetch: /)
    const view = await adminRequest(node.port, 'GET', '/admin/rates')
    assert.equal(view.body.stale, true)
    assert.notEqual(view.body.lastError, null)

    const before = fetches
    await serve()
    await waitFor('a fetch after the source came back', async () => fetches > before)
    await waitFor('packets to flow again', async () => typeof (await pay(10000n)) === 'bigint')
    assert.equal(await pay(10000n), 990785n)
    assert.equal((await adminRequest(node.port, 'GET', '/admin/rates')).body.stale, false)
    logs.assertErrors([/ERROR rates: exchange rates are stale or will be before the next fetch: packets between different assets get T00 until a fetch succeeds source=ecb /])
  })
})

describe('the ECB XML parser', () => {
  it('reads the recorded document', () => {
    const { day, rates } = parseEcbDaily(RECORDED)
    assert.equal(day, '2022-07-08')
    assert.equal(rates.USD, '1.0163')
    assert.equal(rates.JPY, '138.05')
    assert.equal(rates.EUR, '1')
    assert.equal(Object.keys(rates).length, 32)
  })

  it('refuses malformed documents, naming what is wrong', () => {
    const cases: [string, string, RegExp][] = [
      ['an empty body', '', /not the ECB reference-rate envelope/],
      ['an HTML error page', '<html><body>503 Service Unavailable</body></html>', /not the ECB reference-rate envelope/],
      ['no day', RECORDED.replace(/<Cube time='[^']*'>/, '<Cube>'), /no <Cube time/],
      ['no rates', RECORDED.replace(/<Cube currency=[^>]*\/>/g, ''), /no <Cube currency/],
      ['a negative rate', RECORDED.replace("rate='1.0163'", "rate='-1.0163'"), /rate "-1.0163" of USD is not a positive decimal/],
      ['a zero rate', RECORDED.replace("rate='1.0163'", "rate='0'"), /not a positive decimal/],
      ['a rate in exponent form', RECORDED.replace("rate='1.0163'", "rate='1e3'"), /not a positive decimal/],
      ['a bad currency', RECORDED.replace("currency='USD'", "currency='usd'"), /is not a three-letter code/],
      ['a currency twice', RECORDED.replace("currency='JPY'", "currency='USD'"), /USD is listed twice/],
      ['a huge document', RECORDED + ' '.repeat(300 * 1024), /larger than/],
    ]
    for (const [name, text, error] of cases) assert.throws(() => parseEcbDaily(text), error, name)
  })
})

describe('decimal text as exact fractions', () => {
  it('reads decimals and JSON numbers exactly, and refuses what is not a plain non-negative decimal', () => {
    assert.deepEqual(parseDecimal('0.002'), { num: 1n, den: 500n })
    assert.deepEqual(parseDecimal(0.002), { num: 1n, den: 500n })
    assert.deepEqual(parseDecimal('1.0163'), { num: 10163n, den: 10000n })
    assert.deepEqual(parseDecimal('15210.73'), { num: 1521073n, den: 100n })
    assert.deepEqual(parseDecimal(1e-7), { num: 1n, den: 10000000n })
    assert.deepEqual(parseDecimal('0'), { num: 0n, den: 1n })
    for (const bad of ['', '.5', '5.', '-1', '+1', '1e3', '0x10', '01', ' 1', '1,5', 'NaN', 'Infinity', '1.0000000000000000000000000000001', -0.5, NaN, Infinity, null, {}, true]) {
      assert.equal(parseDecimal(bad), null, String(bad))
    }
  })
})

describe('the rate feed across a reconfiguration', () => {
  it('fetches from a new URL at once though a fetch from the old one is still under way, and keeps the rates when only the timings change', async () => {
    const servers: Server[] = []
    const serveAfter = (delayMs: number, body: string) => new Promise<number>((resolve) => {
      const server = createServer((_req, res) => { setTimeout(() => res.writeHead(200).end(body), delayMs) })
      servers.push(server)
      server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))
    })
    try {
      const slow = await serveAfter(1500, RECORDED)
      const fast = await serveAfter(0, NEXT_DAY)
      const ecb = (port: number, refreshMs = 600000) => parseConfig({
        ilpAddress: 'test.feed', accounts: {}, rates: { backend: 'ecb', url: `http://127.0.0.1:${port}/x.xml`, refreshMs, maxAgeMs: 700000 },
      }, {}, MACHINE)
      const published: RateSnapshot[] = []
      const feed = new RateFeed(ecb(slow), (s) => published.push(s), logger('test'))
      try {
        const first = feed.start() // the slow server is still answering
        await sleep(100)
        feed.reconfigure(ecb(fast))
        await waitUntil(() => feed.current.day === '2022-07-11', 1000)
        await first
        await sleep(100)
        assert.equal(feed.current.day, '2022-07-11', 'the old URL\'s late answer did not replace the new one')
        const fetchedAtMs = feed.current.fetchedAtMs
        feed.reconfigure(ecb(fast, 500000))
        assert.equal(feed.current.fetchedAtMs, fetchedAtMs)
        assert.equal(feed.current.day, '2022-07-11')
        assert.ok(published.length >= 2)
      } finally {
        feed.stop()
      }
    } finally {
      for (const s of servers) s.closeAllConnections()
      for (const s of servers) s.close()
    }
  })
})

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await sleep(20)
  }
}
