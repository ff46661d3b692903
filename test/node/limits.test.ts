// Goal: limits and back-pressure, each with a clear answer instead of growing memory: a next hop
// that stops reading gets T02 for what its socket cannot take; an account with
// maxInFlightPerAccount prepares in flight gets T03 (others are not affected); connections over
// maxConnections are refused (503); repeated bad authentication from one address is slowed, and
// a good token works once the address has waited (test/node/hostile_clients.test.ts has the rest).

import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { request } from 'undici'
import { BenchWebSocket } from '../support/ws_client'
import { BTP_RESPONSE, encodeMessage } from '../../src/codec/btp_packet'
import type { RunningNode } from '../../src/node'
import { asReject, BtpPlugin, connectPlugin, peerBalance, prepare, testConfigJson, withNode } from '../support/helpers'

async function rawClient(port: number, user: string, token: string): Promise<{ ws: BenchWebSocket; auth: Promise<Buffer> }> {
  const ws = await BenchWebSocket.open(port)
  const auth = new Promise<Buffer>((resolve) => { ws.onMessage = resolve })
  ws.send(encodeMessage(1, [
    { protocolName: 'auth', contentType: 0, data: Buffer.alloc(0) },
    { protocolName: 'auth_username', contentType: 1, data: Buffer.from(user) },
    { protocolName: 'auth_token', contentType: 1, data: Buffer.from(token) },
  ]))
  return { ws, auth }
}

describe('limits and back-pressure', () => {
  let node: RunningNode
  let alice: BtpPlugin
  let carl: BtpPlugin
  const fixture = withNode(0, { ...testConfigJson(), limits: { maxInFlightPerAccount: 3, maxConnections: 6, reservedConnections: 0 } }, ['alice', 'carl'])
  before(() => ({ node, clients: { alice, carl } } = fixture))

  it('T03 once an account has maxInFlightPerAccount prepares in flight; another account still gets through', async () => {
    const bob = await connectPlugin(node.port, 'bob', 'bob-token')
    let held = 0
    bob.registerDataHandler(() => {
      held++
      return new Promise(() => {}) // bob holds everything
    })
    const expiresAt = () => new Date(Date.now() + 2500)
    const pending = [1, 2, 3].map(() => alice.sendData(prepare({ destination: 'test.node.bob', amount: '1', expiresAt: expiresAt() })))
    while (held < 3) await new Promise((resolve) => setTimeout(resolve, 10))
    const fourth = asReject(await alice.sendData(prepare({ destination: 'test.node.bob', amount: '1', expiresAt: expiresAt() })))
    assert.equal(fourth.code, 'T03')
    assert.match(fourth.message, /for this account/)
    const fromCarl = carl.sendData(prepare({ destination: 'test.node.bob', amount: '1', expiresAt: expiresAt() }))
    while (held < 4) await new Promise((resolve) => setTimeout(resolve, 10))
    for (const reply of await Promise.all([...pending, fromCarl])) assert.equal(asReject(reply).code, 'R00')
    assert.equal(await peerBalance(alice), 0n, 'the holds were released')
    await bob.disconnect()
  })

  it('refuses connections over maxConnections with 503, and takes them again when some close', async () => {
    const open: BenchWebSocket[] = []
    // alice and carl hold two connections; four more reach the limit of 6.
    for (let i = 0; i < 4; i++) open.push(await BenchWebSocket.open(node.port))
    await assert.rejects(BenchWebSocket.open(node.port), /503/)
    const res = await request(`http://127.0.0.1:${node.port}/ilp`, { method: 'POST', headers: { authorization: 'Bearer x' }, body: Buffer.alloc(1) })
    assert.equal(res.statusCode, 503)
    await res.body.dump()
    open.pop()!.close()
    await new Promise((resolve) => setTimeout(resolve, 50))
    open.push(await BenchWebSocket.open(node.port))
    for (const ws of open) ws.close()
  })

  it('slows repeated bad authentication from one address; a good token works once it has waited', async () => {
    await new Promise((resolve) => setTimeout(resolve, 100))
    const times: number[] = []
    for (let i = 0; i < 6; i++) {
      const t0 = Date.now()
      const c = await rawClient(node.port, 'alice', `guess-${i}`)
      const answer = await c.auth
      assert.equal(answer[0], 2, 'a BTP error') // TYPE_ERROR
      times.push(Date.now() - t0)
      c.ws.close()
    }
    assert.ok(times.slice(0, 5).every((t) => t < 200), `the first failures (limits.authFailuresFree) are answered at once (${times.join(', ')} ms)`)
    assert.ok(times[5] >= 900, `the 6th failure is held back for limits.authPenaltyMs (${times[5]} ms)`)
    const t0 = Date.now()
    const good = await connectPlugin(node.port, 'bob', 'bob-token')
    assert.ok(Date.now() - t0 < 200, 'a good token after the wait is not slowed')
    await good.disconnect()
  })
})

describe('back-pressure from a next hop that stops reading (default limits)', () => {
  let node: RunningNode
  let alice: BtpPlugin
  const fixture = withNode(0, undefined, ['alice'])
  before(() => ({ node, clients: { alice } } = fixture))

  it('T02 for prepares to a next hop whose socket is backed up, instead of buffering without bound', async () => {
    const bob = await rawClient(node.port, 'bob', 'bob-token')
    assert.equal((await bob.auth)[0], BTP_RESPONSE)
    bob.ws.pause() // bob stops reading: his socket and then the node's buffer for it fill up
    const data = Buffer.alloc(30_000, 7)
    const replies = await Promise.all(Array.from({ length: 1000 }, () =>
      alice.sendData(prepare({ destination: 'test.node.bob', amount: '0', data, expiresAt: new Date(Date.now() + 2500) }))))
    const codes = new Map<string, number>()
    for (const r of replies) codes.set(asReject(r).code, (codes.get(asReject(r).code) ?? 0) + 1)
    assert.ok((codes.get('T02') ?? 0) > 0, `T02 for what could not be queued (${JSON.stringify([...codes])})`)
    assert.ok((codes.get('T02') ?? 0) < 1000, 'what fit was sent (and expired unanswered: R00)')
    bob.ws.close()
  })
})
