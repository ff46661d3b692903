// Goal: through the node, ILP over HTTP out neither loses nor double-books money, whatever the
// next hop does: fulfills, answers 5xx (T00 upstream), closes mid-request (T01), never answers
// (R00 by the prepare's expiry; its late fulfill is dropped, never applied), under concurrency.
// Method: alice (ilp-plugin-btp) pays dave, an ILP-over-HTTP peer played by a node:http server
// that picks its behaviour from the prepare's destination. After each step the admin API's
// balances of alice and dave must have moved by exactly the fulfilled amounts, in opposite
// directions, and dave must have fulfilled exactly the prepares alice saw fulfilled. erin is a
// second account at dave's URL with `http.pipelining`: node:http takes pipelined requests, so the
// node may send several of erin's prepares on one connection at once. Runs in the
// layout the run sets (SHARDS=0 as is; IO_THREADS=2 SHARDS=2 in the second pass).

import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import {
  addHttpPeer, ADMIN_TOKEN, adminRequest, asReject, closeServer, fulfillmentPair, IlpPacket, layoutName, NODE_ADDRESS, prepare, sleep, testConfigJson,
  withNode,
} from '../support/helpers'

describe(`ILP over HTTP out: nothing lost or booked twice (${layoutName(0)})`, () => {
  let dave: Server
  /** Amounts dave fulfilled, and every prepare he saw. */
  let daveFulfilled = 0n
  let daveSaw = 0
  /** Requests each of dave's connections holds unanswered, and the most any held at once. */
  const openOnSocket = new Map<object, number>()
  let mostOnOneSocket = 0
  const { fulfillment, condition } = fulfillmentPair()

  /** The fulfill dave answers with (its data says who sent it). */
  const daveFulfill = IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.from('from dave') })

  /**
   * dave's behaviour by the destination's last segment: ok, fail (503), close, late (fulfills
   * after `late` ms), padded (fulfills with bytes after the packet in the body).
   */
  function answer(body: Buffer, res: import('node:http').ServerResponse): void {
    daveSaw++
    const p = IlpPacket.deserializeIlpPrepare(body)
    const how = p.destination.split('.').pop()!
    const fulfill = (padding = Buffer.alloc(0)) => {
      daveFulfilled += BigInt(p.amount)
      res.setHeader('content-type', 'application/octet-stream')
      res.end(Buffer.concat([daveFulfill, padding]))
    }
    if (how === 'ok') return fulfill()
    if (how === 'padded') return fulfill(Buffer.alloc(4000, 0xee))
    if (how === 'fail') return void res.writeHead(503).end('dave is down')
    if (how === 'close') return void res.socket?.destroy()
    if (how.startsWith('late')) return void setTimeout(() => { if (!res.socket?.destroyed) fulfill() }, Number(how.slice(4)))
    res.writeHead(400).end()
  }

  const balance = async (account: string): Promise<bigint> => {
    const res = await adminRequest(fixture.node.port, 'GET', `/admin/accounts/${account}`)
    assert.equal(res.status, 200)
    return BigInt(res.body.balance as string)
  }
  const send = (how: string, amount: number, expiresInMs = 10_000) => fixture.clients.alice.sendData(prepare({
    destination: `${NODE_ADDRESS}.dave.${how}`, amount: String(amount), executionCondition: condition, expiresAt: new Date(Date.now() + expiresInMs),
  }))

  /** Both parties moved by exactly `fulfilled` since `before` (alice owes it, the node owes dave), and dave agrees. */
  async function assertBooks(before: { alice: bigint; dave: bigint; daveFulfilled: bigint }, fulfilled: bigint): Promise<void> {
    assert.equal(daveFulfilled - before.daveFulfilled, fulfilled, 'dave fulfilled other amounts than alice was told')
    assert.equal((await balance('alice')) - before.alice, fulfilled)
    assert.equal((await balance('dave')) - before.dave, -fulfilled)
  }
  const books = async () => ({ alice: await balance('alice'), dave: await balance('dave'), daveFulfilled })

  before(async () => {
    dave = createServer((req, res) => {
      const socket = req.socket
      openOnSocket.set(socket, (openOnSocket.get(socket) ?? 0) + 1)
      mostOnOneSocket = Math.max(mostOnOneSocket, openOnSocket.get(socket)!)
      res.once('close', () => openOnSocket.set(socket, openOnSocket.get(socket)! - 1))
      const parts: Buffer[] = []
      req.on('data', (c: Buffer) => parts.push(c))
      req.on('end', () => answer(Buffer.concat(parts), res))
    })
    await new Promise<void>((resolve) => dave.listen(0, '127.0.0.1', resolve))
  })
  after(() => closeServer(dave))
  const fixture = withNode(0, () => {
    const json: Record<string, unknown> = { ...testConfigJson(), adminToken: ADMIN_TOKEN }
    const url = `http://127.0.0.1:${(dave.address() as AddressInfo).port}/ilp`
    const balance = { minimum: '-1000000000', maximum: '1000000000' }
    addHttpPeer(json, 'dave', url, { balance })
    addHttpPeer(json, 'erin', url, { balance }, { pipelining: 4 })
    return json
  }, ['alice'])

  it('fulfilled prepares move both balances by their amounts, once', async () => {
    const start = await books()
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => send('ok', i + 1)))
    assert.ok(replies.every((r) => r[0] === IlpPacket.Type.TYPE_ILP_FULFILL))
    await assertBooks(start, BigInt((50 * 51) / 2))
  })

  it('a 5xx from the next hop is T00 upstream; a connection closed mid-request is T01; neither books anything', async () => {
    const start = await books()
    const failed = asReject(await send('fail', 7))
    assert.deepEqual([failed.code, failed.triggeredBy], ['T00', NODE_ADDRESS])
    const closed = asReject(await send('close', 7))
    assert.deepEqual([closed.code, closed.triggeredBy], ['T01', NODE_ADDRESS])
    await assertBooks(start, 0n)
  })

  it('a fulfill with bytes after it in the body: booked once, and the sender gets the packet alone', async () => {
    const start = await books()
    const reply = await send('padded', 11)
    assert.deepEqual(Buffer.from(reply), daveFulfill, 'alice gets dave\'s fulfill without what followed it')
    await assertBooks(start, 11n)
  })

  it('a next hop that answers after the expiry: R00 upstream at the expiry, the late fulfill never booked', async () => {
    const start = await books()
    const sentAt = Date.now()
    // 2.5 s out at alice, 1.5 s at dave (the node keeps a 1 s window); dave answers after 4 s,
    // past the second after the expiry when the node gives up on the request (and closes its
    // connection, so dave's answer finds it closed).
    const reject = asReject(await send('late4000', 9, 2500))
    assert.equal(reject.code, 'R00')
    assert.ok(Date.now() - sentAt < 3000, 'the R00 waited for the next hop')
    await sleep(4500 - (Date.now() - sentAt))
    await assertBooks(start, 0n)
  })

  it('under concurrency with every behaviour mixed: each prepare answered once, the books agree', async () => {
    const start = await books()
    const hows = ['ok', 'fail', 'close', 'ok', 'late10']
    let sent = 0n
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => {
      const how = hows[i % hows.length]
      if (how === 'ok' || how === 'late10') sent += BigInt(i + 1)
      return send(how, i + 1)
    }))
    let fulfilled = 0n
    replies.forEach((r, i) => {
      const how = hows[i % hows.length]
      if (how === 'ok' || how === 'late10') {
        assert.equal(r[0], IlpPacket.Type.TYPE_ILP_FULFILL, `${how} #${i}: ${r[0] === IlpPacket.Type.TYPE_ILP_REJECT ? asReject(r).code : r[0]}`)
        fulfilled += BigInt(i + 1)
      } else {
        assert.equal(asReject(r).code, how === 'fail' ? 'T00' : 'T01')
      }
    })
    assert.equal(fulfilled, sent)
    await assertBooks(start, fulfilled)
  })

  it('an account with http.pipelining: several prepares on one connection at once, each answered once, the books agree', async () => {
    const start = { alice: await balance('alice'), erin: await balance('erin'), daveFulfilled }
    mostOnOneSocket = 0
    // More prepares at once than the 32 connections the node opens to an origin.
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => fixture.clients.alice.sendData(prepare({
      destination: `${NODE_ADDRESS}.erin.ok`, amount: String(i + 1), executionCondition: condition, expiresAt: new Date(Date.now() + 10_000),
    }))))
    assert.ok(replies.every((r) => r[0] === IlpPacket.Type.TYPE_ILP_FULFILL))
    const sum = BigInt((200 * 201) / 2)
    assert.equal(daveFulfilled - start.daveFulfilled, sum)
    assert.equal((await balance('alice')) - start.alice, sum)
    assert.equal((await balance('erin')) - start.erin, -sum)
    assert.ok(mostOnOneSocket > 1, `no connection carried more than ${mostOnOneSocket} request at once`)
    assert.ok(mostOnOneSocket <= 4, `a connection carried ${mostOnOneSocket} requests at once, more than http.pipelining`)
  })
})
