// Goal: a client on the public port cannot starve, flood or read the node. Method: the attacker
// plays from other loopback addresses (127.0.0.2, 127.0.0.3, …: the node listens on 127.0.0.1
// and sees each as its own client) with real sockets, while the accounts connect from 127.0.0.1:
//   - one address holding its maximum of anonymous WebSockets, and then many addresses holding
//     the whole anonymous share of limits.maxConnections: an account still connects, an
//     ILP-over-HTTP peer is still served;
//   - 400 parallel wrong tokens from one address (ILP over HTTP, BTP): answered no sooner than the
//     documented first wait (limits.authPenaltyMs), only the free ones are checked (a right token
//     among the rest is not taken), no other surface checks a token of the address meanwhile, and
//     the right token works once the wait is over;
//   - X-Forwarded-For counts only from a trusted proxy;
//   - /metrics is closed unless the operator opens it;
//   - an account's links are capped and counted for real;
//   - upgrades the node does not speak are refused and the connection closed.
// (The log flood: test/process/log_bounds.test.ts; ids and asset codes: test/node/admin_changes.test.ts and
// test/unit/config.test.ts; HTTP/2 with prior knowledge: test/node/http2_refusal.test.ts.)

import assert from 'node:assert/strict'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { connect } from 'node:net'
import { describe, it } from 'node:test'
import { encodeMessage, BTP_ERROR, BTP_RESPONSE } from '../../src/codec/btp_packet'
import { BenchWebSocket } from '../support/ws_client'
import {
  ADMIN_TOKEN, adminRequest, asReject, connectPlugin, layoutName, prepare, sleep, testConfigJson, withNode,
} from '../support/helpers'

const HTTP_TOKEN = 'hal-incoming-token-0123456789'

/** The test config, plus hal, an ILP-over-HTTP peer that posts to us. */
function configWith(extra: Record<string, unknown>): Record<string, unknown> {
  const base = testConfigJson()
  return {
    ...base,
    accounts: { ...(base.accounts as Record<string, unknown>), hal: { relation: 'child', assetCode: 'USD', assetScale: 9, http: { incomingToken: HTTP_TOKEN } } },
    ...extra,
  }
}

interface Answer { status: number; headers: IncomingHttpHeaders; body: Buffer }

/** One HTTP request on its own connection from `from`; resolves with the answer, never rejects on a status. */
function post(port: number, path: string, token: string, body: Buffer, from = '127.0.0.1', headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1', port, path, method: 'POST', localAddress: from, agent: false,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', ...headers },
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')))
    req.end(body)
  })
}

function get(port: number, path: string, headers: Record<string, string> = {}, from = '127.0.0.1'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET', localAddress: from, agent: false, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')))
    req.end()
  })
}

/** Opens anonymous BTP sockets from `from` until one is refused or `max` are open. */
async function holdAnonymous(port: number, from: string, max: number): Promise<{ open: BenchWebSocket[]; refusal: string | null }> {
  const open: BenchWebSocket[] = []
  for (let i = 0; i < max; i++) {
    try {
      open.push(await BenchWebSocket.open(port, '127.0.0.1', '/', from))
    } catch (err) {
      return { open, refusal: (err as Error).message }
    }
  }
  return { open, refusal: null }
}

/** A BTP auth message for `account` with `token`, on a raw socket from `from`: the first frame answered, or the upgrade's refusal. */
async function btpAuth(port: number, from: string, account: string, token: string): Promise<{ type: number; text: string; openedAt: number; answeredAt: number }> {
  let ws: BenchWebSocket
  try {
    ws = await BenchWebSocket.open(port, '127.0.0.1', '/', from)
  } catch (err) {
    return { type: -1, text: (err as Error).message, openedAt: NaN, answeredAt: NaN }
  }
  const openedAt = performance.now()
  const answer = new Promise<Buffer>((resolve) => {
    ws.onMessage = resolve
    ws.onClose = () => resolve(Buffer.alloc(0))
  })
  ws.send(encodeMessage(1, [
    { protocolName: 'auth', contentType: 0, data: Buffer.alloc(0) },
    { protocolName: 'auth_username', contentType: 1, data: Buffer.from(account) },
    { protocolName: 'auth_token', contentType: 1, data: Buffer.from(token) },
  ]))
  const frame = await answer
  const answeredAt = performance.now()
  ws.close()
  return { type: frame.length === 0 ? -2 : frame[0], text: frame.toString('latin1'), openedAt, answeredAt }
}

/** The seconds a refusal says to wait: Retry-After, or "try again in N s" in a BTP error. */
function waitSeconds(text: string): number {
  const match = /try again in (\d+) s/.exec(text) ?? /Retry-After: (\d+)/i.exec(text)
  return match === null ? 0 : Number(match[1])
}

describe(`one address cannot starve the others (${layoutName(0)})`, () => {
  // The finding's setting: 300 connections; anonymous sockets may take half.
  const fixture = withNode(0, configWith({ limits: { maxConnections: 300 } }), ['alice'])

  it('holds at most limits.anonymousPerAddress anonymous sockets; an account reconnects and an HTTP peer is served meanwhile', async () => {
    const port = fixture.node.port
    const attacker = await holdAnonymous(port, '127.0.0.2', 100)
    try {
      assert.equal(attacker.open.length, 32, 'the default limits.anonymousPerAddress')
      assert.match(attacker.refusal ?? '', /429 Too Many Requests/)
      // The attacker keeps knocking while the real account reconnects, five times.
      for (let i = 0; i < 5; i++) {
        await assert.rejects(BenchWebSocket.open(port, '127.0.0.1', '/', '127.0.0.2'), /429/)
        const alice = await connectPlugin(port, 'alice', 'alice-token')
        assert.equal(asReject(await alice.sendData(prepare({ destination: 'test.nowhere' }))).code, 'F02')
        await alice.disconnect()
      }
      const served = await post(port, '/ilp', HTTP_TOKEN, prepare({ destination: 'test.nowhere' }))
      assert.equal(served.status, 200)
      assert.equal(asReject(served.body).code, 'F02')
    } finally {
      for (const ws of attacker.open) ws.close()
    }
  })
})

describe(`many addresses cannot take the connections kept for accounts (${layoutName(0)})`, () => {
  const fixture = withNode(0, configWith({ limits: { maxConnections: 40, reservedConnections: 20, anonymousPerAddress: 4 } }))

  it('caps anonymous sockets at their share, closing the oldest for newcomers; accounts connect', async () => {
    const port = fixture.node.port
    const attackers: BenchWebSocket[] = []
    let closedByNode = 0
    try {
      // 8 addresses × 4 = 32 sockets for a share of 20.
      for (let a = 2; a < 10; a++) {
        const held = await holdAnonymous(port, `127.0.0.${a}`, 4)
        assert.equal(held.open.length, 4, `127.0.0.${a} opened its 4 (${held.refusal})`)
        for (const ws of held.open) {
          ws.onClose = () => { closedByNode++ }
          attackers.push(ws)
        }
      }
      await sleep(200)
      const stillOpen = attackers.filter((ws) => !ws.closed).length
      assert.ok(stillOpen <= 20, `anonymous sockets stay within their share (${stillOpen} open)`)
      assert.ok(closedByNode >= 12, `the oldest were closed (${closedByNode})`)
      // Accounts still connect: each takes an anonymous place for a round trip, then its own.
      const clients = await Promise.all(['alice', 'bob', 'carl'].map((a) => connectPlugin(port, a, `${a}-token`)))
      const served = await post(port, '/ilp', HTTP_TOKEN, prepare({ destination: 'test.nowhere' }))
      assert.equal(served.status, 200)
      await Promise.all(clients.map((c) => c.disconnect()))
    } finally {
      for (const ws of attackers) ws.close()
    }
  })
})

describe(`token guessing is slowed, on every surface at once (${layoutName(0)})`, () => {
  const fixture = withNode(0, configWith({ adminToken: ADMIN_TOKEN }))

  it('ILP over HTTP: 400 parallel wrong tokens take at least limits.authPenaltyMs; a right one among them is not taken; it works after the wait', async () => {
    const port = fixture.node.port
    const from = '127.0.0.2'
    const t0 = Date.now()
    const tokens = Array.from({ length: 400 }, (_, i) => (i === 399 ? HTTP_TOKEN : `guess-${i}-0123456789abcdef`))
    const burst = Promise.all(tokens.map((token) => post(port, '/ilp', token, prepare({ destination: 'test.nowhere' }), from)))
    // While the address waits, no other surface checks a token of it, the right one included
    // (their refusals are held to the end of the wait too, so they are sent together, now).
    await sleep(300)
    const [admin, btp, other] = await Promise.all([
      get(port, '/admin/accounts', { authorization: `Bearer ${ADMIN_TOKEN}` }, from),
      btpAuth(port, from, 'alice', 'alice-token'),
      // Another address is not held up at all.
      post(port, '/ilp', HTTP_TOKEN, prepare({ destination: 'test.nowhere' }), '127.0.0.3'),
    ])
    const answers = await burst
    const elapsed = Date.now() - t0
    const byStatus = new Map<number, number>()
    for (const a of answers) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1)
    assert.ok(elapsed >= 1000, `the burst took at least the first wait of 1000 ms (${elapsed} ms)`)
    assert.deepEqual([...byStatus.keys()].sort(), [401, 429], JSON.stringify([...byStatus]))
    // The free failures, and at most a few more that raced them in: the rest were not checked.
    assert.ok(byStatus.get(401)! >= 5 && byStatus.get(401)! <= 8, `tokens checked: ${byStatus.get(401)}`)
    assert.equal(answers[399].status, 429, 'the right token among the guesses was not checked')
    const wait = Math.max(...answers.map((a) => Number(a.headers['retry-after'] ?? 0)))
    assert.ok(wait >= 1 && wait <= 8, `Retry-After ${wait}`)
    assert.equal(admin.status, 429)
    assert.equal(btp.type, -1, 'the WebSocket upgrade itself is refused')
    assert.match(btp.text, /429/)
    assert.equal(other.status, 200)

    await sleep(wait * 1000 + 100)
    const after = await post(port, '/ilp', HTTP_TOKEN, prepare({ destination: 'test.nowhere' }), from)
    assert.equal(after.status, 200, 'the right token works once the wait is over')
    assert.equal(asReject(after.body).code, 'F02')
  })

  it('BTP: 400 parallel wrong tokens from one address: a few checked, the rest held or refused; the right token works after the wait', async () => {
    const port = fixture.node.port
    const from = '127.0.0.4'
    const t0 = Date.now()
    const answers = await Promise.all(Array.from({ length: 400 }, (_, i) => btpAuth(port, from, 'alice', i === 399 ? 'alice-token' : `guess-${i}`)))
    const elapsed = Date.now() - t0
    const invalid = answers.filter((a) => a.type === BTP_ERROR && a.text.includes('invalid auth_token')).length
    const waiting = answers.filter((a) => a.type === BTP_ERROR && a.text.includes('too many failed authentications')).length
    const upgradeRefused = answers.filter((a) => a.type === -1).length
    assert.equal(answers.filter((a) => a.type === BTP_RESPONSE).length, 0, 'no guess was taken')
    assert.ok(invalid >= 5 && invalid <= 8, `tokens checked: ${invalid}`)
    assert.equal(invalid + waiting + upgradeRefused, 400, JSON.stringify({ invalid, waiting, upgradeRefused }))
    // At most limits.anonymousPerAddress sockets at once: a socket that was answered (its token
    // checked and refused, or its wait over on a slow machine) closes, and its place may go to one
    // more: those answered before the last upgrade was taken.
    const opened = answers.filter((a) => a.type !== -1)
    const lastOpened = Math.max(...opened.map((a) => a.openedAt))
    const freed = Math.max(invalid, opened.filter((a) => a.answeredAt < lastOpened).length)
    assert.ok(opened.length <= 32 + freed, `at most limits.anonymousPerAddress sockets were open at once (${opened.length} upgrades taken, ${freed} places freed before the last)`)
    assert.ok(elapsed >= 1000, `the burst took at least the first wait of 1000 ms (${elapsed} ms)`)
    const wait = Math.max(...answers.map((a) => waitSeconds(a.text)))
    assert.ok(wait >= 1 && wait <= 8, `wait ${wait} s`)
    await sleep(wait * 1000 + 100)
    const alice = await connectPlugin(port, 'alice', 'alice-token')
    await alice.disconnect()
  })
})

describe(`X-Forwarded-For (${layoutName(0)})`, () => {
  const trusting = withNode(0, configWith({ limits: { trustedProxies: ['127.0.0.1'] } }))

  it('from a trusted proxy, names the client: one forwarded client waits, another does not', async () => {
    const port = trusting.node.port
    const guess = (i: number) => post(port, '/ilp', `guess-${i}-0123456789`, prepare({ destination: 'test.nowhere' }), '127.0.0.1', { 'x-forwarded-for': '198.51.100.7' })
    for (let i = 0; i < 5; i++) assert.equal((await guess(i)).status, 401)
    // The 6th failure starts the wait (its own answer held through it).
    const sixth = guess(5)
    await sleep(200)
    // Sent together: a refusal in the wait is held to its end.
    const [waiting, spoofed, other] = await Promise.all([
      post(port, '/ilp', HTTP_TOKEN, prepare({ destination: 'test.nowhere' }), '127.0.0.1', { 'x-forwarded-for': '198.51.100.7' }),
      // A client's own claim to the left of the proxy's entry is not believed.
      post(port, '/ilp', HTTP_TOKEN, prepare({ destination: 'test.nowhere' }), '127.0.0.1', { 'x-forwarded-for': '203.0.113.1, 198.51.100.7' }),
      post(port, '/ilp', HTTP_TOKEN, prepare({ destination: 'test.nowhere' }), '127.0.0.1', { 'x-forwarded-for': '198.51.100.8' }),
    ])
    assert.equal(waiting.status, 429)
    assert.equal(spoofed.status, 429)
    assert.equal(other.status, 200)
    assert.equal((await sixth).status, 401)
  })

  const plain = withNode(0, configWith({}))

  it('from anyone else, is ignored: varying it gives a guesser no fresh tries', async () => {
    const port = plain.node.port
    const guess = (i: number) => post(port, '/ilp', `guess-${i}-0123456789`, prepare({ destination: 'test.nowhere' }), '127.0.0.5', { 'x-forwarded-for': `198.51.100.${i}` })
    for (let i = 0; i < 5; i++) assert.equal((await guess(i)).status, 401)
    const sixth = guess(5)
    await sleep(200)
    assert.equal((await post(port, '/ilp', HTTP_TOKEN, prepare({ destination: 'test.nowhere' }), '127.0.0.5', { 'x-forwarded-for': '198.51.100.200' })).status, 429)
    assert.equal((await sixth).status, 401)
  })
})

describe(`/metrics is private by default (${layoutName(0)})`, () => {
  const closed = withNode(0, configWith({}))
  const withAdmin = withNode(0, configWith({ adminToken: ADMIN_TOKEN }))
  const open = withNode(0, configWith({ metrics: { public: true } }))
  const onAdminPort = withNode(0, configWith({ adminToken: ADMIN_TOKEN, adminPort: 0 }))

  it('with no token configured: 403 saying how to open it', async () => {
    const res = await get(closed.node.port, '/metrics')
    assert.equal(res.status, 403)
    assert.match(res.body.toString(), /metrics\.token or adminToken.*ADMIN_PORT.*metrics\.public: true/)
    assert.doesNotMatch(res.body.toString(), /alice/)
  })

  it('with an admin token: 401 without it, the exposition with it', async () => {
    assert.equal((await get(withAdmin.node.port, '/metrics')).status, 401)
    const res = await get(withAdmin.node.port, '/metrics', { authorization: `Bearer ${ADMIN_TOKEN}` })
    assert.equal(res.status, 200)
    assert.match(res.body.toString(), /ilp_node_/)
  })

  it('opened by metrics.public: true; open on ADMIN_PORT, and absent from the node\'s port then', async () => {
    assert.equal((await get(open.node.port, '/metrics')).status, 200)
    assert.equal((await get(onAdminPort.node.adminPort!, '/metrics')).status, 200)
    assert.equal((await get(onAdminPort.node.port, '/metrics')).status, 404)
  })
})

describe(`links per account (${layoutName(0)})`, () => {
  const fixture = withNode(0, configWith({ adminToken: ADMIN_TOKEN, limits: { maxLinksPerAccount: 3 } }))

  it('the admin API counts every link; the newest beyond limits.maxLinksPerAccount is refused', async () => {
    const port = fixture.node.port
    const links = await Promise.all([0, 1, 2].map(() => connectPlugin(port, 'alice', 'alice-token')))
    const shown = await adminRequest(port, 'GET', '/admin/accounts/alice')
    assert.equal(shown.body.links, 3)
    const fourth = await btpAuth(port, '127.0.0.1', 'alice', 'alice-token')
    assert.equal(fourth.type, BTP_ERROR)
    assert.match(fourth.text, /maximum of 3 links \(limits\.maxLinksPerAccount\)/)
    await links[0].disconnect()
    await sleep(50)
    assert.equal((await adminRequest(port, 'GET', '/admin/accounts/alice')).body.links, 2)
    const again = await connectPlugin(port, 'alice', 'alice-token')
    assert.equal((await adminRequest(port, 'GET', '/admin/accounts/alice')).body.links, 3)
    await Promise.all([again, links[1], links[2]].map((l) => l.disconnect()))
    // Refused with the right token: not a failure of the address (it is not made to wait).
    const fifth = await btpAuth(port, '127.0.0.1', 'alice', 'alice-token')
    assert.equal(fifth.type, BTP_RESPONSE)
  })
})

describe(`upgrades the node does not speak (${layoutName(0)})`, () => {
  const fixture = withNode(0, configWith({}))

  /** Sends a raw request; resolves with what came back and whether the node closed the connection. */
  function raw(port: number, text: string): Promise<{ reply: string; closed: boolean }> {
    return new Promise((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' }, () => socket.write(text))
      let reply = ''
      const done = (closed: boolean) => { clearTimeout(timer); socket.destroy(); resolve({ reply, closed }) }
      const timer = setTimeout(() => done(false), 2000)
      socket.on('data', (d: Buffer) => { reply += d.toString() })
      socket.on('end', () => done(true))
      socket.on('error', () => done(true))
    })
  }

  it('refuses an unknown upgrade and a malformed WebSocket handshake with 400 and closes; ignores h2c', async () => {
    const port = fixture.node.port
    const unknown = await raw(port, 'GET /health HTTP/1.1\r\nHost: x\r\nUpgrade: foo/1\r\nConnection: Upgrade\r\n\r\n')
    assert.match(unknown.reply, /^HTTP\/1\.1 400/)
    assert.match(unknown.reply, /cannot upgrade to "foo\/1": this node speaks HTTP\/1\.1 and WebSocket/)
    assert.ok(unknown.closed, 'the connection is closed')
    const malformed = await raw(port, 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n')
    assert.match(malformed.reply, /^HTTP\/1\.1 400/)
    assert.match(malformed.reply, /malformed WebSocket handshake/)
    assert.ok(malformed.closed)
    const h2c = await raw(port, 'GET /health HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n')
    assert.match(h2c.reply, /^HTTP\/1\.1 200/)
  })
})
