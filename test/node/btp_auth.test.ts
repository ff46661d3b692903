// Goal: BTP authentication and framing errors are refused clearly and harm nobody else.
// Method: real clients (ilp-plugin-btp 1.5.0 with a username, the Jan-2018 1.1.5 with an empty
// one) and a raw WebSocket for what no library would send; after each bad client, alice must
// still be served.

import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import WebSocket from 'ws'
import BtpPlugin115 from 'ilp-plugin-btp-1.1.5'
import * as Btp from 'btp-packet'
import * as ILDCP from 'ilp-protocol-ildcp'
import { BtpPlugin, NODE_ADDRESS, peerBalance, withNode } from '../support/helpers'
import type { RunningNode } from '../../src/node'

interface RawClient {
  ws: WebSocket
  frames: Buffer[]
  closed: Promise<number>
  next(): Promise<Buffer>
}

async function rawClient(port: number): Promise<RawClient> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`)
  const frames: Buffer[] = []
  const waiters: ((b: Buffer) => void)[] = []
  ws.on('message', (data: Buffer) => {
    const w = waiters.shift()
    if (w) w(data)
    else frames.push(data)
  })
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  return {
    ws,
    frames,
    closed,
    next: () => {
      const f = frames.shift()
      return f ? Promise.resolve(f) : new Promise((resolve) => waiters.push(resolve))
    },
  }
}

interface DecodedBtp {
  type: number
  requestId: number
  data: { code?: string; name?: string; data?: string; protocolData: unknown[] }
}

function decodeBtp(frame: Buffer): DecodedBtp {
  return Btp.deserialize(frame) as unknown as DecodedBtp
}

function authMessage(requestId: number, username: string | null, token: string | null): Buffer {
  const entries = [{ protocolName: 'auth', contentType: 0, data: Buffer.alloc(0) }]
  if (username !== null) entries.push({ protocolName: 'auth_username', contentType: 1, data: Buffer.from(username) })
  if (token !== null) entries.push({ protocolName: 'auth_token', contentType: 1, data: Buffer.from(token) })
  return Btp.serializeMessage(requestId, entries)
}

describe('BTP authentication and framing', () => {
  let node: RunningNode
  let alice: BtpPlugin
  const fixture = withNode(2, undefined, ['alice'])
  before(() => ({ node, clients: { alice } } = fixture))

  async function aliceStillServed(): Promise<void> {
    assert.equal(typeof (await peerBalance(alice)), 'bigint')
  }

  it('accepts the exact auth message ilp-plugin-btp sends with a Response', async () => {
    const c = await rawClient(node.port)
    c.ws.send(authMessage(0x01020304, 'alice', 'alice-token'))
    assert.equal((await c.next()).toString('hex'), '0101020304020100')
    c.ws.close()
  })

  for (const [name, username, token, reason] of [
    ['a wrong token', 'alice', 'wrong-token', 'invalid auth_token'],
    ['an unknown account', 'mallory', 'alice-token', 'unknown account'],
    ['another account\'s token (alice\'s token, username bob)', 'bob', 'alice-token', 'invalid auth_token'],
    ['a missing token', 'alice', null, 'missing auth_token'],
    ['an unknown token without a username', '', 'nobody-has-this', 'invalid auth_token'],
  ] as const) {
    it(`refuses ${name} with a BTP error, closes the socket, and keeps serving others`, async () => {
      const c = await rawClient(node.port)
      c.ws.send(authMessage(77, username, token))
      const error = decodeBtp(await c.next())
      assert.equal(error.type, Btp.TYPE_ERROR)
      assert.equal(error.requestId, 77)
      assert.equal(error.data.code, 'F00')
      assert.equal(error.data.name, 'NotAcceptedError')
      assert.equal(String(error.data.data), reason)
      await c.closed
      await aliceStillServed()
    })
  }

  it('refuses a first frame that is not auth', async () => {
    const c = await rawClient(node.port)
    c.ws.send(Btp.serializeMessage(5, [{ protocolName: 'ilp', contentType: 0, data: Buffer.from([1]) }]))
    const error = decodeBtp(await c.next())
    assert.equal(error.type, Btp.TYPE_ERROR)
    assert.equal(error.data.code, 'F00')
    await c.closed
  })

  it('ilp-plugin-btp@1.5.0 with a wrong token fails to connect', async () => {
    const bad = new BtpPlugin({ server: `btp+ws://alice:nope@127.0.0.1:${node.port}`, reconnectInterval: 60_000 } as never)
    await assert.rejects(Promise.race([bad.connect(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 3000))]))
    await bad.disconnect().catch(() => {})
    await aliceStillServed()
  })

  it('answers a malformed frame from an authenticated client with a BTP error and keeps the session', async () => {
    const c = await rawClient(node.port)
    c.ws.send(authMessage(1, 'alice', 'alice-token'))
    await c.next()
    c.ws.send(Buffer.from([6, 0, 0, 0, 9, 0x7f, 1, 2]))
    const error = decodeBtp(await c.next())
    assert.equal(error.type, Btp.TYPE_ERROR)
    assert.equal(error.requestId, 9)
    assert.equal(error.data.code, 'F01')
    c.ws.send('a text frame')
    assert.equal(decodeBtp(await c.next()).type, Btp.TYPE_ERROR)
    // Still authenticated and served: an unknown side protocol gets an empty Response.
    c.ws.send(Btp.serializeMessage(10, [{ protocolName: 'custom', contentType: 2, data: Buffer.from('{}') }]))
    const response = decodeBtp(await c.next())
    assert.equal(response.type, Btp.TYPE_RESPONSE)
    assert.equal(response.requestId, 10)
    assert.deepEqual(response.data.protocolData, [])
    c.ws.close()
    await aliceStillServed()
  })

  it('refuses a BTP transfer (no settlement) with a BTP error', async () => {
    const c = await rawClient(node.port)
    c.ws.send(authMessage(1, 'alice', 'alice-token'))
    await c.next()
    c.ws.send(Btp.serializeTransfer({ amount: '10' }, 3, []))
    const error = decodeBtp(await c.next())
    assert.equal(error.type, Btp.TYPE_ERROR)
    assert.equal(error.requestId, 3)
    c.ws.close()
  })

  it('closes a frame over the size limit without affecting others', async () => {
    const c = await rawClient(node.port)
    c.ws.send(authMessage(1, 'alice', 'alice-token'))
    await c.next()
    c.ws.send(Buffer.alloc(node.config.maxFrameBytes + 1))
    const code = await c.closed
    assert.notEqual(code, 1000)
    await aliceStillServed()
  })

  it('serves the Jan-2018 ilp-plugin-btp@1.1.5 (empty username, token names the account)', async () => {
    const plugin = new BtpPlugin115({ server: `btp+ws://:bob-token@127.0.0.1:${node.port}` })
    await plugin.connect()
    const info = await ILDCP.fetch((data: Buffer) => plugin.sendData(data))
    assert.equal(info.clientAddress, `${NODE_ADDRESS}.bob`)
    await plugin.disconnect()
  })
})
