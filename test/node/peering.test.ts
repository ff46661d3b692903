// Goal: route exchange. First against a CCP speaker we drive by hand with ilp-protocol-ccp (a
// real codec) over a real BTP client: a route it announces carries packets, and once withdrawn
// the same packets get F02. Then with ilp-connector@23 as a peer, over BTP and over
// ILP-over-HTTP (ilp-plugin-http): each learns the other's routes by CCP, packets flow both ways
// by the learned routes, and a route the node withdraws stops the connector's traffic to it.

import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { before, describe, it } from 'node:test'
import * as Ccp from 'ilp-protocol-ccp'
import {
  ADMIN_TOKEN, adminRequest, asFulfill, asReject, BtpPlugin, freePort, fulfillmentPair, IlpPacket, prepare, sendUntilUnreachable, sendWhenRouted, sleep, withNode,
} from '../support/helpers'
import { ConnectorParty, connectorConfig, withNetwork } from '../support/network'

const USD = { assetCode: 'USD', assetScale: 9 }

describe('CCP from a peer: announce, route, withdraw', () => {
  let alice: BtpPlugin
  let pat: BtpPlugin
  const tableId = randomUUID()
  const fixture = withNode(2, {
    ilpAddress: 'test.node',
    accounts: {
      alice: { relation: 'child', ...USD, btp: { token: 'alice-token' } },
      pat: { relation: 'peer', ...USD, btp: { token: 'pat-token' } },
    },
    adminToken: ADMIN_TOKEN,
  }, ['alice', 'pat'])

  before(() => {
    ({ alice, pat } = fixture.clients)
  })

  function update(epoch: number, newRoutes: { prefix: string }[], withdrawnRoutes: string[]): Buffer {
    return Ccp.serializeCcpRouteUpdateRequest({
      speaker: 'test.pat', routingTableId: tableId, currentEpochIndex: epoch + 1, fromEpochIndex: epoch, toEpochIndex: epoch + 1,
      holdDownTime: 45000,
      newRoutes: newRoutes.map((r) => ({ prefix: r.prefix, path: ['test.pat'], auth: Buffer.alloc(32), props: [] })),
      withdrawnRoutes,
    })
  }

  it('routes by an announced route, and answers F02 once it is withdrawn', async () => {
    const { fulfillment, condition } = fulfillmentPair()
    pat.registerDataHandler(async (data) => {
      if (data.includes(Buffer.from('peer.route'))) return Ccp.serializeCcpResponse()
      return IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
    })
    const toPat = () => prepare({ destination: 'test.pat.shop', executionCondition: condition })
    assert.equal(asReject(await alice.sendData(toPat())).code, 'F02', 'no route before the announcement')
    asFulfill(await pat.sendData(update(0, [{ prefix: 'test.pat' }], [])))
    asFulfill(await sendWhenRouted(alice, toPat))
    asFulfill(await pat.sendData(update(1, [], ['test.pat'])))
    assert.equal(asReject(await sendUntilUnreachable(alice, toPat)).code, 'F02')
  })

  it('answers route control by sending its routes, and rejects malformed CCP with F01', async () => {
    const updates: Ccp.CcpRouteUpdateRequest[] = []
    pat.deregisterDataHandler()
    pat.registerDataHandler(async (data) => {
      const p = IlpPacket.deserializeIlpPrepare(data)
      if (p.destination === 'peer.route.update') updates.push(Ccp.deserializeCcpRouteUpdateRequest(data))
      return Ccp.serializeCcpResponse()
    })
    asFulfill(await pat.sendData(Ccp.serializeCcpRouteControlRequest({
      mode: Ccp.Mode.MODE_SYNC, lastKnownRoutingTableId: '00000000-0000-0000-0000-000000000000', lastKnownEpoch: 0, features: [],
    })))
    const deadline = Date.now() + 5000
    while (updates.length === 0 && Date.now() < deadline) await sleep(20)
    assert.ok(updates.length > 0, 'the node sent a route update')
    const prefixes = updates.flatMap((u) => u.newRoutes.map((r) => r.prefix))
    assert.ok(prefixes.includes('test.node'), `advertises its own address (got ${prefixes.join(',')})`)
    assert.equal(updates[0].speaker, 'test.node')
    const own = updates[0].newRoutes.find((r) => r.prefix === 'test.node')!
    assert.deepEqual(own.path, ['test.node'])
    const bad = IlpPacket.serializeIlpPrepare({
      amount: '0', destination: 'peer.route.update', executionCondition: Ccp.PEER_PROTOCOL_CONDITION, expiresAt: new Date(Date.now() + 10000), data: Buffer.from([1, 2, 3]),
    })
    assert.equal(asReject(await pat.sendData(bad)).code, 'F01')
  })

  it('learns only routes whose prefix and path are ILP addresses, with a short path', async () => {
    const route = (prefix: string, path = ['test.pat']) => ({ prefix, path, auth: Buffer.alloc(32), props: [] })
    asFulfill(await pat.sendData(Ccp.serializeCcpRouteUpdateRequest({
      speaker: 'test.pat', routingTableId: tableId, currentEpochIndex: 3, fromEpochIndex: 2, toEpochIndex: 3,
      holdDownTime: 0xffffffff,
      newRoutes: [
        route('test.pat.ok'),
        route(`test.pat.${'x'.repeat(1100)}`),
        route('test.pat.not an address'),
        route('test.pat.bad-path', ['test.pat', 'not an address']),
        route('test.pat.long-path', Array.from({ length: 40 }, (_, i) => `test.hop${i}`)),
      ],
      withdrawnRoutes: [],
    })))
    const prefixes = async () => ((await adminRequest(fixture.node.port, 'GET', '/admin/routes')).body.routes as { prefix: string }[]).map((r) => r.prefix)
    const deadline = Date.now() + 5000
    while (!(await prefixes()).includes('test.pat.ok') && Date.now() < deadline) await sleep(20)
    const learned = (await prefixes()).filter((p) => p.startsWith('test.pat.'))
    assert.deepEqual(learned, ['test.pat.ok'])
  })
})

for (const transport of ['BTP', 'ILP-over-HTTP'] as const) {
  describe(`interop: the node and ilp-connector@23 as peers over ${transport}, routes by CCP`, () => {
    let alice: BtpPlugin
    let pat: BtpPlugin
    let zoe: BtpPlugin
    let linkPort: number
    let nodePort: number

    before(async () => {
      linkPort = await freePort()
      nodePort = await freePort()
    })
    const conn = new ConnectorParty((zoePort) => connectorConfig('test.conn', {
      ilpnode: {
        relation: 'peer', ...USD,
        ...transport === 'BTP'
          ? { plugin: 'ilp-plugin-btp', options: { listener: { port: linkPort, secret: 'link-secret' } } }
          : { plugin: 'ilp-plugin-http', options: { incoming: { port: linkPort, staticToken: 'node-to-conn' }, outgoing: { url: `http://127.0.0.1:${nodePort}/ilp`, staticToken: 'conn-to-node' } } },
      },
      zoe: { relation: 'child', ...USD, plugin: 'ilp-plugin-btp', options: { listener: { port: zoePort, secret: 'zoe-secret' } } },
    }, { routeBroadcastInterval: 1000 }),
    // Each side asks the other for routes when its link comes up. Over BTP the node dials the
    // connector, so the connector goes first (the link says so); over HTTP there is no link to
    // come up, and the connector asks only once at start (then every 30 s), so there the node
    // goes first.
    transport === 'BTP' ? [] : ['node'])
    const net = withNetwork({
      parties: { conn },
      nodes: {
        node: () => ({
          ilpAddress: 'test.node',
          port: nodePort,
          routeBroadcastInterval: 1000,
          accounts: {
            conn: {
              relation: 'peer', ...USD,
              ...transport === 'BTP'
                ? { btp: { url: `btp+ws://ilpnode:link-secret@127.0.0.1:${linkPort}` } }
                : { http: { incomingToken: 'conn-to-node', url: `http://127.0.0.1:${linkPort}/`, outgoingToken: 'node-to-conn' } },
            },
            alice: { relation: 'child', ...USD, btp: { token: 'alice-token' } },
            pat: { relation: 'peer', ...USD, btp: { token: 'pat-token' } },
          },
        }),
      },
      links: [{ from: 'node.conn', to: 'conn', transport: transport === 'BTP' ? 'btp' : 'http' }],
      clients: ['node.alice', 'node.pat'],
    })

    before(() => {
      ({ clients: { node: { alice, pat } } } = net)
      zoe = conn.zoe
    })

    it('alice → node → ilp-connector → zoe, by the route the node learned (test.conn)', async () => {
      const { fulfillment, condition } = fulfillmentPair()
      zoe.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.from('zoe') }))
      const reply = await sendWhenRouted(alice, () => prepare({ destination: 'test.conn.zoe', amount: '5', executionCondition: condition }))
      assert.deepEqual(asFulfill(reply).data, Buffer.from('zoe'))
    })

    it('zoe → ilp-connector → node → alice, by the route the connector learned (test.node)', async () => {
      const { fulfillment, condition } = fulfillmentPair()
      alice.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))
      const reply = await sendWhenRouted(zoe, () => prepare({ destination: 'test.node.alice', amount: '5', executionCondition: condition }))
      assert.deepEqual(asFulfill(reply).fulfillment, fulfillment)
    })

    it('a route withdrawn at the node stops the connector\'s traffic to that prefix (F02)', async () => {
      // pat announces test.pat to the node; the node passes it on to the connector.
      const { fulfillment, condition } = fulfillmentPair()
      const tableId = randomUUID()
      pat.registerDataHandler(async (data) => {
        if (IlpPacket.deserializeIlpPrepare(data).destination.startsWith('peer.')) return Ccp.serializeCcpResponse()
        return IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
      })
      const announce = (epoch: number, add: boolean) => Ccp.serializeCcpRouteUpdateRequest({
        speaker: 'test.pat', routingTableId: tableId, currentEpochIndex: epoch + 1, fromEpochIndex: epoch, toEpochIndex: epoch + 1, holdDownTime: 45000,
        newRoutes: add ? [{ prefix: 'test.pat', path: ['test.pat'], auth: Buffer.alloc(32), props: [] }] : [],
        withdrawnRoutes: add ? [] : ['test.pat'],
      })
      asFulfill(await pat.sendData(announce(0, true)))
      const toPat = () => prepare({ destination: 'test.pat.x', amount: '3', executionCondition: condition })
      asFulfill(await sendWhenRouted(zoe, toPat))
      asFulfill(await pat.sendData(announce(1, false)))
      const reply = await sendUntilUnreachable(zoe, toPat)
      assert.equal(asReject(reply).code, 'F02')
    })
  })
}
