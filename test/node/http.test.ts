// Goal: ILP over HTTP in every form the node speaks, with real peers where they exist.
//   in:  ilp-plugin-http@1.6.1 as carol's client (RFC 35 sync, static bearer token); raw http-oer
//        and http-head requests (their 2018 plugins are not on npm or are broken)
//   out: dave is an ilp-plugin-http@1.6.1 server; the node POSTs his prepares to it
// Each forwards a fulfilled packet and a rejected one; bad tokens, content types and sizes get
// clear HTTP errors. Runs with SHARDS=0 and SHARDS=2.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import PluginHttp from 'ilp-plugin-http'
import * as ILDCP from 'ilp-protocol-ildcp'
import {
  asFulfill, asReject, BtpPlugin, connectPlugin, freePort, fulfillmentPair, IlpPacket, layoutName, tempDir, NODE_ADDRESS, removeDir, prepare,
  startTestNode, testConfigJson,
} from '../support/helpers'
import type { RunningNode } from '../../src/node'

for (const shards of [0, 2]) {
  describe(`ILP over HTTP with ${layoutName(shards)}`, () => {
    let node: RunningNode
    let dir: string
    let bob: BtpPlugin
    let alice: BtpPlugin
    let carol: PluginHttp
    let dave: PluginHttp
    let bobHandler: (p: Buffer) => Promise<Buffer>
    let daveHandler: (p: Buffer) => Promise<Buffer>
    let url: string

    before(async () => {
      dir = tempDir()
      // dave listens before the node starts and its clients connect: the port freePort() found was
      // taken in between now and then (EADDRINUSE in a full run, with other tests on the machine).
      // dave only answers here; he never sends, so his outgoing URL is not the node's.
      const davePort = await freePort()
      dave = new PluginHttp({ incoming: { port: davePort, staticToken: 'node-to-dave' }, outgoing: { url: 'http://127.0.0.1:9/unused', staticToken: 'dave-token' } })
      dave.registerDataHandler((p: Buffer) => daveHandler(p))
      await dave.connect()
      const json = testConfigJson()
      const accounts = json.accounts as Record<string, unknown>
      accounts.carol = { relation: 'child', assetCode: 'USD', assetScale: 9, http: { incomingToken: 'carol-token' } }
      accounts.dave = {
        relation: 'peer', assetCode: 'USD', assetScale: 9,
        http: { incomingToken: 'dave-token', url: `http://127.0.0.1:${davePort}/ilp`, outgoingToken: 'node-to-dave' },
      }
      // erin's URL has nothing listening behind it.
      accounts.erin = { relation: 'peer', assetCode: 'USD', assetScale: 9, http: { url: `http://127.0.0.1:${await freePort()}/`, outgoingToken: 'x' } }
      json.routes = [...(json.routes as unknown[]), { targetPrefix: 'test.dave', peerId: 'dave' }, { targetPrefix: 'test.erin', peerId: 'erin' }]
      node = await startTestNode(shards, dir, json)
      url = `http://127.0.0.1:${node.port}`
      alice = await connectPlugin(node.port, 'alice', 'alice-token')
      bob = await connectPlugin(node.port, 'bob', 'bob-token')
      bob.registerDataHandler((p) => bobHandler(p))
      carol = new PluginHttp({ incoming: { port: await freePort(), staticToken: 'unused-by-node' }, outgoing: { url: `${url}/ilp`, staticToken: 'carol-token' } })
      await carol.connect()
    })

    after(async () => {
      await Promise.all([alice.disconnect(), bob.disconnect(), carol.disconnect(), dave.disconnect()])
      await node.stop()
      removeDir(dir)
    })

    it('answers IL-DCP to an ilp-plugin-http client', async () => {
      const info = await ILDCP.fetch((data: Buffer) => carol.sendData(data))
      assert.equal(info.clientAddress, `${NODE_ADDRESS}.carol`)
      assert.equal(info.assetCode, 'USD')
    })

    it('forwards from an ilp-plugin-http client to BTP: fulfilled and rejected', async () => {
      const { fulfillment, condition } = fulfillmentPair()
      bobHandler = async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.from('ok') })
      const fulfill = asFulfill(await carol.sendData(prepare({ destination: `${NODE_ADDRESS}.bob`, executionCondition: condition })))
      assert.deepEqual(fulfill.fulfillment, fulfillment)
      bobHandler = async () => IlpPacket.serializeIlpReject({ code: 'F99', triggeredBy: `${NODE_ADDRESS}.bob`, message: 'nope', data: Buffer.alloc(0) })
      assert.equal(asReject(await carol.sendData(prepare({ destination: `${NODE_ADDRESS}.bob` }))).code, 'F99')
    })

    it('forwards from BTP to an ilp-plugin-http server over outgoing HTTP: fulfilled and rejected', async () => {
      const { fulfillment, condition } = fulfillmentPair()
      let seen: IlpPacket.IlpPrepare | null = null
      daveHandler = async (p) => {
        seen = IlpPacket.deserializeIlpPrepare(p)
        return IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.from('from dave') })
      }
      const fulfill = asFulfill(await alice.sendData(prepare({ destination: 'test.dave.shop', amount: '42', executionCondition: condition })))
      assert.deepEqual(fulfill.data, Buffer.from('from dave'))
      assert.equal(seen!.amount, '42')
      assert.equal(seen!.destination, 'test.dave.shop')
      daveHandler = async () => IlpPacket.serializeIlpReject({ code: 'F02', triggeredBy: 'test.dave', message: 'no such shop', data: Buffer.alloc(0) })
      const reject = asReject(await alice.sendData(prepare({ destination: 'test.dave.nope' })))
      assert.equal(reject.code, 'F02')
      assert.equal(reject.triggeredBy, 'test.dave')
    })

    it('turns an HTTP error from the next hop into T00 and an unreachable one into T01', async () => {
      // `expose` (Koa's flag, inside ilp-plugin-http) answers 500 all the same, without printing the stack.
      daveHandler = async () => { throw Object.assign(new Error('dave is broken'), { expose: true }) }
      const broken = asReject(await alice.sendData(prepare({ destination: 'test.dave.x' })))
      assert.equal(broken.code, 'T00')
      assert.equal(broken.triggeredBy, NODE_ADDRESS)
      const unreachable = asReject(await alice.sendData(prepare({ destination: 'test.erin.x' })))
      assert.equal(unreachable.code, 'T01')
      assert.equal(unreachable.triggeredBy, NODE_ADDRESS)
    })

    it('serves http-oer: a raw OER prepare POSTed to / gets a raw OER answer: fulfilled, rejected by the node, rejected by the next hop', async () => {
      const { fulfillment, condition } = fulfillmentPair()
      bobHandler = async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
      const res = await fetch(`${url}/`, {
        method: 'POST',
        headers: { Authorization: 'Bearer carol-token' },
        body: prepare({ destination: `${NODE_ADDRESS}.bob`, executionCondition: condition }),
      })
      assert.equal(res.status, 200)
      assert.deepEqual(asFulfill(Buffer.from(await res.arrayBuffer())).fulfillment, fulfillment)
      const rejected = await fetch(`${url}/ilp/anything`, {
        method: 'POST',
        headers: { Authorization: 'Bearer carol-token', 'Content-Type': 'application/octet-stream' },
        body: prepare({ destination: 'test.nowhere.x' }),
      })
      assert.equal(rejected.status, 200)
      assert.equal(asReject(Buffer.from(await rejected.arrayBuffer())).code, 'F02')
      // A reject from the next hop comes back as it left bob.
      bobHandler = async () => IlpPacket.serializeIlpReject({ code: 'F99', triggeredBy: `${NODE_ADDRESS}.bob`, message: 'bob says no', data: Buffer.from('why') })
      const relayed = await fetch(`${url}/`, {
        method: 'POST',
        headers: { Authorization: 'Bearer carol-token' },
        body: prepare({ destination: `${NODE_ADDRESS}.bob` }),
      })
      assert.equal(relayed.status, 200)
      const reject = asReject(Buffer.from(await relayed.arrayBuffer()))
      assert.deepEqual([reject.code, reject.triggeredBy, reject.message, reject.data.toString()], ['F99', `${NODE_ADDRESS}.bob`, 'bob says no', 'why'])
    })

    it('serves http-head: fields in headers, the answer in headers: fulfilled, rejected by the node, rejected by the next hop', async () => {
      const { fulfillment, condition } = fulfillmentPair()
      bobHandler = async (p) => IlpPacket.serializeIlpFulfill({ fulfillment, data: IlpPacket.deserializeIlpPrepare(p).data })
      const headers = (destination: string) => ({
        Authorization: 'Bearer carol-token',
        'ILP-Destination': destination,
        'ILP-Condition': condition.toString('base64'),
        'ILP-Expiry': new Date(Date.now() + 10_000).toISOString(),
        'ILP-Amount': '25',
      })
      const ok = await fetch(`${url}/`, { method: 'POST', headers: headers(`${NODE_ADDRESS}.bob`), body: Buffer.from('head data') })
      assert.equal(ok.status, 200)
      assert.equal(ok.headers.get('ilp-fulfillment'), fulfillment.toString('base64'))
      assert.equal(Buffer.from(await ok.arrayBuffer()).toString(), 'head data')
      const no = await fetch(`${url}/`, { method: 'POST', headers: headers('test.nowhere.x'), body: Buffer.alloc(0) })
      assert.equal(no.status, 400)
      assert.equal(no.headers.get('ilp-error-code'), 'F02')
      assert.equal(no.headers.get('ilp-error-name'), 'Unreachable')
      assert.equal(no.headers.get('ilp-error-triggered-by'), NODE_ADDRESS)
      // A reject from the next hop: its fields in the ILP-Error-* headers.
      bobHandler = async () => IlpPacket.serializeIlpReject({ code: 'F99', triggeredBy: `${NODE_ADDRESS}.bob`, message: 'bob says no', data: Buffer.alloc(0) })
      const relayed = await fetch(`${url}/`, { method: 'POST', headers: headers(`${NODE_ADDRESS}.bob`), body: Buffer.from('head data') })
      assert.equal(relayed.status, 400)
      assert.equal(relayed.headers.get('ilp-error-code'), 'F99')
      assert.equal(relayed.headers.get('ilp-error-triggered-by'), `${NODE_ADDRESS}.bob`)
      assert.equal(relayed.headers.get('ilp-error-message'), 'bob says no')
      const bad = await fetch(`${url}/`, { method: 'POST', headers: { ...headers(`${NODE_ADDRESS}.bob`), 'ILP-Amount': '-5' }, body: Buffer.alloc(0) })
      assert.equal(bad.status, 400)
      assert.match(await bad.text(), /ILP-Amount/)
    })

    it('refuses bad tokens (401), wrong content types (415), oversized bodies (413); garbage gets an F01 reject', async () => {
      const body = prepare({ destination: `${NODE_ADDRESS}.bob` })
      const missing = await fetch(`${url}/ilp`, { method: 'POST', body })
      assert.equal(missing.status, 401)
      assert.match(await missing.text(), /Bearer/)
      const wrong = await fetch(`${url}/ilp`, { method: 'POST', headers: { Authorization: 'Bearer alice-token' }, body })
      assert.equal(wrong.status, 401, 'a BTP token is not an HTTP token')
      const json = await fetch(`${url}/ilp`, { method: 'POST', headers: { Authorization: 'Bearer carol-token', 'Content-Type': 'application/json' }, body: '{}' })
      assert.equal(json.status, 415)
      const big = await fetch(`${url}/ilp`, { method: 'POST', headers: { Authorization: 'Bearer carol-token' }, body: Buffer.alloc(node.config.maxHttpBodyBytes + 1) })
      assert.equal(big.status, 413)
      const garbage = await fetch(`${url}/ilp`, { method: 'POST', headers: { Authorization: 'Bearer carol-token' }, body: Buffer.from('hello') })
      assert.equal(garbage.status, 200)
      const reject = asReject(Buffer.from(await garbage.arrayBuffer()))
      assert.equal(reject.code, 'F01')
      assert.equal(reject.triggeredBy, NODE_ADDRESS)
      // Still serving.
      assert.equal((await fetch(`${url}/ilp`)).status, 200)
    })
  })
}
