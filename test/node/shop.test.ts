// Goal: the shop role, HTTP-ILP draft 3, with the real clients of 2018. A sender pays with
// ilp-protocol-psk2@0.5.0 through the node's BTP account and walks the whole flow (probe, 402,
// payment, paid requests, Pay-Balance after each); ilp-fetch@1.3.3 pays on its own and gets the
// paid answer; 200 concurrent requests on a token funded for 100 get exactly 100 answers; bad
// Pay-Tokens get 400; a paid route proxies to its upstream, streaming its answer. SHARDS=2: the
// shop's shard is not the sender's (payments cross shards; spends go to the shop's shard).

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createServer, type Server } from 'node:http'
import { after, before, describe, it } from 'node:test'
import * as PSK2 from 'ilp-protocol-psk2'
import { request } from 'undici'
import { SHOP_ACCOUNT } from '../../src/config/schema'
import type { RunningNode } from '../../src/node'
import { shardOfAccount } from '../../src/config/account_table'
import { asReject, BtpPlugin, connectPlugin, freePort, prepare, removeDir, sleep, startTestNode, tempDir } from '../support/helpers'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const ilpFetch = require('ilp-fetch') as (url: string, opts: Record<string, unknown>) => Promise<{ status: number; text(): Promise<string>; price: string }>

const ADMIN = 'admin-token-0123456789'
const execFileAsync = promisify(execFile)

/** `promise`, or a failed assertion naming `what` if it takes longer than `ms`. */
async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new assert.AssertionError({ message: `waited ${ms} ms for ${what}` })), ms) })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

function parsePay(header: string | string[] | undefined): { method: string; destination: string; secret: Buffer; price: string } {
  const [method, destination, secret, price] = String(header).split(' ')
  return { method, destination, secret: Buffer.from(secret, 'base64'), price }
}

describe('the shop: HTTP-ILP draft 3 with PSK2 (SHARDS=2)', () => {
  let node: RunningNode
  let dir: string
  let sender: BtpPlugin
  let base: string
  let upstream: Server
  const seenUpstream: { method: string; url: string; headers: Record<string, unknown>; body: string }[] = []
  // /slow sends its first line, then holds the rest until the test lets it go.
  let releaseSlow: () => void = () => {}
  const slowReleased = new Promise<void>((resolve) => { releaseSlow = resolve })
  // /big: more than any buffer on the way (the proxy once held whole answers up to 8 MiB).
  const BIG = randomBytes(12 << 20)
  let bigAbandoned = 0

  before(async () => {
    assert.notEqual(shardOfAccount(SHOP_ACCOUNT, 2), shardOfAccount('sender', 2), 'shop and sender on different shards')
    const upstreamPort = await freePort()
    upstream = createServer((req, res) => {
      if (req.url === '/slow') {
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.write('first\n')
        void slowReleased.then(() => res.end('second\n'))
        return
      }
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG.length) })
        let at = 0
        res.on('close', () => { if (!res.writableFinished) bigAbandoned++ })
        const more = (): void => {
          while (at < BIG.length) {
            const chunk = BIG.subarray(at, at + 65536)
            at += chunk.length
            if (!res.write(chunk)) return void res.once('drain', more)
          }
          res.end()
        }
        return more()
      }
      if (req.url === '/cut') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' })
        res.write('x'.repeat(100), () => res.destroy())
        return
      }
      let body = ''
      req.on('data', (c: Buffer) => { body += c.toString() })
      req.on('end', () => {
        seenUpstream.push({ method: req.method!, url: req.url!, headers: req.headers, body })
        res.writeHead(201, { 'content-type': 'application/json', 'x-upstream': 'yes' })
        res.end(JSON.stringify({ echoed: body }))
      })
    }).listen(upstreamPort, '127.0.0.1')
    dir = tempDir()
    node = await startTestNode(2, dir, {
      ilpAddress: 'test.node',
      adminToken: ADMIN,
      accounts: { sender: { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'sender-token' } } },
      shop: {
        routes: [
          { method: 'GET', path: '/weather', price: '10', response: 'sunny\n' },
          { method: 'POST', path: '/echo', price: '5', upstream: `http://127.0.0.1:${upstreamPort}` },
          { method: 'GET', path: '/down', price: '1', upstream: 'http://127.0.0.1:9' },
          { method: 'GET', path: '/slow', price: '1', upstream: `http://127.0.0.1:${upstreamPort}` },
          { method: 'GET', path: '/big', price: '1', upstream: `http://127.0.0.1:${upstreamPort}` },
          { method: 'GET', path: '/cut', price: '1', upstream: `http://127.0.0.1:${upstreamPort}` },
          { method: 'GET', path: '/free', price: '0', response: 'free\n' },
        ],
      },
    })
    sender = await connectPlugin(node.port, 'sender', 'sender-token')
    base = `http://127.0.0.1:${node.port}`
  })

  after(async () => {
    releaseSlow()
    await sender.disconnect()
    await node.stop()
    upstream.close()
    removeDir(dir)
  })

  const get = async (path: string, token?: string) => {
    const res = await request(`${base}${path}`, { headers: token === undefined ? {} : { 'pay-token': token } })
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
  }
  const shopBalance = async () => {
    const res = await request(`${base}/payees/${encodeURIComponent(SHOP_ACCOUNT)}`, { headers: { authorization: `Bearer ${ADMIN}` } })
    return BigInt((await res.body.json() as { balance: string }).balance)
  }
  async function pay(token: Buffer, amount: string): Promise<void> {
    const probe = await request(`${base}/weather`, { method: 'OPTIONS', headers: { 'pay-token': token.toString('base64url') } })
    const { destination, secret } = parsePay(probe.headers.pay)
    await probe.body.dump()
    const result = await PSK2.sendRequest(sender as never, { destinationAccount: destination, sharedSecret: secret, sourceAmount: amount, minDestinationAmount: amount, data: token })
    assert.ok(PSK2.isPskResponse(result), `payment fulfilled (${JSON.stringify(result)})`)
  }

  it('walks the draft-3 flow with ilp-protocol-psk2@0.5.0: probe, 402, payment, paid requests, Pay-Balance after each', async () => {
    const token = randomBytes(16)
    const t = token.toString('base64url')
    const shopBefore = await shopBalance()
    const probe = await request(`${base}/weather`, { method: 'OPTIONS', headers: { 'pay-token': t } })
    assert.equal(probe.statusCode, 204)
    const pay = parsePay(probe.headers.pay)
    assert.equal(pay.method, 'interledger-psk2')
    assert.match(pay.destination, /^test\.node\.~shop\.psk2\.[A-Za-z0-9_-]{24}$/)
    assert.equal(pay.secret.length, 32)
    assert.equal(pay.price, '10')
    assert.equal(probe.headers['pay-balance'], '0')
    const unpaid = await get('/weather', t)
    assert.equal(unpaid.status, 402)
    assert.equal(parsePay(unpaid.headers.pay).price, '10')
    assert.equal(unpaid.headers['pay-balance'], '0')

    const result = await PSK2.sendRequest(sender as never, { destinationAccount: pay.destination, sharedSecret: pay.secret, sourceAmount: '25', minDestinationAmount: '25', data: token })
    assert.ok(PSK2.isPskResponse(result))
    for (const left of ['15', '5']) {
      const paid = await get('/weather', t)
      assert.equal(paid.status, 200)
      assert.equal(paid.body, 'sunny\n')
      assert.equal(paid.headers['pay-balance'], left)
    }
    const short = await get('/weather', t)
    assert.equal(short.status, 402)
    assert.equal(short.headers['pay-balance'], '5')
    assert.equal(await shopBalance(), shopBefore + 25n, 'the shop\'s account holds what was paid')
  })

  it('takes draft-3 32-byte tokens too, and refuses a payment that names no token (F99, nothing credited)', async () => {
    const token = randomBytes(32)
    await pay(token, '10')
    assert.equal((await get('/weather', token.toString('base64url'))).status, 200)
    const shopBefore = await shopBalance()
    const probe = await request(`${base}/weather`, { method: 'OPTIONS' })
    const { destination, secret } = parsePay(probe.headers.pay)
    await probe.body.dump()
    const noToken = await PSK2.sendRequest(sender as never, { destinationAccount: destination, sharedSecret: secret, sourceAmount: '10', data: Buffer.from('short') })
    assert.ok(PSK2.isPskError(noToken))
    assert.equal(noToken.code, 'F99')
    assert.equal(await shopBalance(), shopBefore)
  })

  it('is paid by the real client ilp-fetch@1.3.3 through a BTP plugin of the node', async () => {
    const shopBefore = await shopBalance()
    const res = await ilpFetch(`${base}/weather`, { method: 'GET', plugin: sender, maxPrice: 1000 })
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'sunny\n')
    assert.ok((await shopBalance()) >= shopBefore + 10n, 'ilp-fetch paid at least the price')
  })

  it('200 concurrent paid requests on a token funded for 100: exactly 100 succeed, the balance ends at 0', async () => {
    const token = randomBytes(16)
    await pay(token, '1000')
    const t = token.toString('base64url')
    const answers = await Promise.all(Array.from({ length: 200 }, () => get('/weather', t)))
    const ok = answers.filter((a) => a.status === 200).length
    const refused = answers.filter((a) => a.status === 402).length
    assert.equal(ok, 100)
    assert.equal(refused, 100)
    const probe = await request(`${base}/weather`, { method: 'OPTIONS', headers: { 'pay-token': t } })
    await probe.body.dump()
    assert.equal(probe.headers['pay-balance'], '0')
    const balances = answers.filter((a) => a.status === 200).map((a) => Number(a.headers['pay-balance'])).sort((x, y) => x - y)
    assert.deepEqual(balances, Array.from({ length: 100 }, (_, i) => i * 10), 'each success saw its own balance')
  })

  it('answers 400 with a clear message for bad Pay-Tokens', async () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['   ', /empty/],
      ['a'.repeat(44), /44 characters/],
      ['AAAAAAAAAAAAAAAAAAAA$A', /not base64url/],
      ['AAAAAAAAAAAAAAAAAAAAAA==', /not base64url/],
      ['AAAAAAAAAA', /10 characters/],
    ]
    for (const [token, message] of cases) {
      const res = await request(`${base}/weather`, { headers: { 'pay-token': token } })
      assert.equal(res.statusCode, 400, JSON.stringify(token))
      assert.match(await res.body.text(), message)
    }
    const none = await get('/weather')
    assert.equal(none.status, 402, 'no token at all: payment required')
    const free = await get('/free')
    assert.equal(free.status, 200, 'a route priced 0 needs no token')
    assert.equal(free.body, 'free\n')
  })

  it('proxies a paid request to its upstream (body, headers, status) without the Pay-Token; 502 when the upstream is down', async () => {
    const token = randomBytes(16)
    await pay(token, '6')
    const res = await request(`${base}/echo?x=1`, {
      // `constructor`: a header named like an object's built-in is forwarded as any other.
      method: 'POST', headers: { 'pay-token': token.toString('base64url'), 'content-type': 'text/plain', 'x-custom': 'kept', constructor: 'plain' }, body: 'hello upstream',
    })
    assert.equal(res.statusCode, 201)
    assert.equal(res.headers['x-upstream'], 'yes')
    assert.equal(res.headers['pay-balance'], '1')
    assert.deepEqual(await res.body.json(), { echoed: 'hello upstream' })
    const seen = seenUpstream[seenUpstream.length - 1]
    assert.equal(seen.method, 'POST')
    assert.equal(seen.url, '/echo?x=1')
    assert.equal(seen.headers['x-custom'], 'kept')
    assert.equal(seen.headers.constructor, 'plain')
    assert.equal(seen.headers['pay-token'], undefined)
    const down = await get('/down', token.toString('base64url'))
    assert.equal(down.status, 502)
    assert.equal(down.headers['pay-balance'], '0')
  })

  it('streams the upstream\'s answer: its first part before the upstream ends, 12 MiB whole, a client that leaves lets go of the upstream, an answer cut short fails at the client', async () => {
    const token = randomBytes(16)
    await pay(token, '4')
    const t = token.toString('base64url')

    const slow = await within(5000, request(`${base}/slow`, { headers: { 'pay-token': t } }), 'the status line while the upstream holds the rest')
    assert.equal(slow.statusCode, 200)
    assert.equal(slow.headers['pay-balance'], '3')
    const chunks = slow.body[Symbol.asyncIterator]()
    const first = await within(5000, chunks.next(), 'the first part while the upstream holds the rest')
    assert.equal(String(first.value), 'first\n')
    releaseSlow()
    let rest = ''
    for (let c = await chunks.next(); c.done !== true; c = await chunks.next()) rest += String(c.value)
    assert.equal(rest, 'second\n')

    const big = await request(`${base}/big`, { headers: { 'pay-token': t } })
    assert.equal(big.statusCode, 200)
    assert.equal(big.headers['pay-balance'], '2')
    const received = Buffer.from(await big.body.arrayBuffer())
    assert.equal(received.length, BIG.length)
    assert.equal(createHash('sha256').update(received).digest('hex'), createHash('sha256').update(BIG).digest('hex'))
    assert.equal(bigAbandoned, 0)

    // A client that leaves after the first part: the node lets go of the upstream's answer too.
    const left = await request(`${base}/big`, { headers: { 'pay-token': t } })
    assert.equal(left.headers['pay-balance'], '1')
    await left.body[Symbol.asyncIterator]().next()
    left.body.destroy()
    for (let i = 0; i < 100 && bigAbandoned === 0; i++) await sleep(20)
    assert.equal(bigAbandoned, 1, 'the upstream\'s answer was abandoned, not read to its end')

    const cut = await request(`${base}/cut`, { headers: { 'pay-token': t } })
    assert.equal(cut.statusCode, 200)
    assert.equal(cut.headers['pay-balance'], '0')
    await assert.rejects(cut.body.text(), 'a truncated answer is not delivered as a whole one')
    assert.equal((await get('/weather')).status, 402, 'the node serves on after a cut answer')
  })

  it('scripts/ilp-curl.js pays on 402 through a BTP account and retries: the paid answer, Pay-Balance 0', async () => {
    const script = join(__dirname, '..', '..', '..', 'scripts', 'ilp-curl.js')
    const via = `btp+ws://sender:sender-token@127.0.0.1:${node.port}`
    const before = await shopBalance()
    const { stdout, stderr } = await execFileAsync(process.execPath, [script, `${base}/weather`, '--via', via, '--max-price', '50'], { timeout: 20_000 })
    assert.equal(stdout, 'sunny\n')
    assert.match(stderr, /200 OK; paid 10; Pay-Balance 0/)
    assert.equal(await shopBalance(), before + 10n)
    await assert.rejects(execFileAsync(process.execPath, [script, `${base}/weather`, '--via', via, '--max-price', '5']), /above --max-price 5/)
  })

  it('a payment with too little time left is refused (R02) and credits nothing', async () => {
    const probe = await request(`${base}/weather`, { method: 'OPTIONS' })
    const { destination } = parsePay(probe.headers.pay)
    await probe.body.dump()
    const before = await shopBalance()
    // The node keeps 1 s back from the expiry when it forwards; 1.2 s leaves the payee 200 ms.
    const reply = await sender.sendData(prepare({ destination, amount: '10', expiresAt: new Date(Date.now() + 1200), data: randomBytes(60) }))
    assert.equal(asReject(reply).code, 'R02')
    assert.equal(await shopBalance(), before)
  })
})
