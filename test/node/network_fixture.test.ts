// Goal: the withNetwork fixture (test/support/network.ts) keeps its promises, since suites rely on
// them instead of checking for themselves. Three nodes whose BTP links form a cycle (so no node can
// start after all those it dials), with an ILP-over-HTTP link besides, start with every BTP link up
// on both ends, and packets cross a BTP link and the HTTP link. A link that never comes up fails
// the start within the bound, with a message naming the link and the end that lacks it, and the
// nodes that had started are stopped (their ports free again). A spec naming an account or a
// party that is not there is refused before anything starts.

import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { describe, it } from 'node:test'
import { asFulfill, freePort, fulfillmentPair, IlpPacket, prepare } from '../support/helpers'
import { startNetwork, withNetwork } from '../support/network'
import { captureStderrPerTest } from '../support/stderr_capture'

const USD = { assetCode: 'USD', assetScale: 9 }
/** A peer that exchanges no routes: these tests route by configured routes only. */
const PEER = { relation: 'peer', ...USD, sendRoutes: false, receiveRoutes: false }
const child = (name: string) => ({ relation: 'child', ...USD, btp: { token: `${name}-token` } })

/** Whether nothing listens on the port now (a stopped node has let it go). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

describe('withNetwork: a cycle of BTP links, and an HTTP link', () => {
  const net = withNetwork({
    nodes: {
      a: { ilpAddress: 'test.a', accounts: { b: PEER, c: PEER, h: PEER, alice: child('alice') }, routes: [{ targetPrefix: 'test.b', peerId: 'b' }, { targetPrefix: 'test.c', peerId: 'h' }] },
      b: { ilpAddress: 'test.b', accounts: { a: PEER, c: PEER, bob: child('bob') } },
      c: { ilpAddress: 'test.c', accounts: { a: PEER, b: PEER, h: PEER, carl: child('carl') } },
    },
    // a dials b, b dials c, c dials a; a's account h and c's account h POST to each other.
    links: [{ from: 'a.b', to: 'b.a' }, { from: 'b.c', to: 'c.b' }, { from: 'c.a', to: 'a.c' }, { from: 'a.h', to: 'c.h', transport: 'http' }],
    clients: ['a.alice', 'b.bob', 'c.carl'],
  })

  it('has every BTP link up on both ends once the before hook has run', () => {
    for (const [node, account] of [['a', 'b'], ['b', 'a'], ['b', 'c'], ['c', 'b'], ['c', 'a'], ['a', 'c']]) {
      assert.ok(net.nodes[node].ioThreads.linkOf(account) >= 0, `${node}'s account ${account} is linked`)
    }
  })

  it('carries alice\'s packets to bob over a → b (BTP) and to carl over a → c (HTTP)', async () => {
    const { alice } = net.clients.a
    for (const [to, destination] of [[net.clients.b.bob, 'test.b.bob'], [net.clients.c.carl, 'test.c.carl']] as const) {
      const { fulfillment, condition } = fulfillmentPair()
      to.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))
      assert.deepEqual(asFulfill(await alice.sendData(prepare({ destination, amount: '5', executionCondition: condition }))).fulfillment, fulfillment)
    }
    assert.equal(net.nodes.c.balance('h'), 5n)
  })
})

describe('withNetwork: a start that fails', () => {
  /** The refused dial is logged as an error: asserted, not printed. */
  const logs = captureStderrPerTest()

  it('fails within the bound when a link never comes up, naming it, and stops the nodes it started', async () => {
    // b and c both dial a's account x, and x takes the last link's token: b's dial is refused.
    const ports = [await freePort(), await freePort(), await freePort()]
    const started = Date.now()
    const error = await startNetwork({
      nodes: {
        a: { ilpAddress: 'test.a', port: ports[0], accounts: { x: PEER } },
        b: { ilpAddress: 'test.b', port: ports[1], accounts: { a: PEER } },
        c: { ilpAddress: 'test.c', port: ports[2], accounts: { a: PEER } },
      },
      links: [{ from: 'b.a', to: 'a.x' }, { from: 'c.a', to: 'a.x' }],
      linkTimeoutMs: 1500,
    }).then(() => null, (err: Error) => err)
    assert.ok(error !== null, 'the start failed')
    assert.match(error.message, /BTP link b\.a → a\.x never came up: b's account a has no link, a's account x linked \(waited 1500 ms\)/)
    assert.ok(Date.now() - started < 15_000, 'within the bound, and the start-up')
    for (const port of ports) assert.equal(await portFree(port), true, `port ${port} is free again`)
    await logs.waitFor(/peer refused our BTP auth account=a /)
    logs.assertErrors([/btp-out( io\d+)?: peer refused our BTP auth account=a /])
  })

  it('refuses a spec naming an account or a party that is not there, before starting anything', async () => {
    await assert.rejects(startNetwork({ nodes: { a: {} }, links: [{ from: 'a.x', to: 'b.y' }] }), /link end "b\.y" names no node's account .* nor a party/)
    await assert.rejects(startNetwork({ nodes: { a: {} }, clients: ['z.alice'] }), /client "z\.alice" names no node's account/)
    const party = { after: ['q'], start: async () => undefined, stop: async () => undefined }
    await assert.rejects(startNetwork({ nodes: { a: {} }, parties: { p: party } }), /p starts after q, which is neither a node nor a party/)
  })
})
