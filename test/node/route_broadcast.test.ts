// Goal: the seed's JSON route broadcasts. The codec reads all three 2017–18 generations and
// refuses what is not a broadcast; a broadcast from a peer (over BTP, through a worker shard, and
// over ILP-over-HTTP) changes where packets go, shown by sending packets before and after; and two
// nodes configured for JSON broadcasts learn each other's routes and withdrawals.

import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { request } from 'undici'
import { decodeRouteBroadcast, encodeRouteBroadcast, RouteBroadcastError } from '../../src/codec/route_broadcast'
import type { RunningNode } from '../../src/node'
import {
  asFulfill, asReject, BtpPlugin, fulfillmentPair, IlpPacket, prepare, sendUntilUnreachable, sendWhenRouted, sleep, withNode,
} from '../support/helpers'
import { withNetwork } from '../support/network'

const USD = { assetCode: 'USD', assetScale: 9 }
const json = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8')

describe('route broadcast codec', () => {
  it('reads the seed / ilp-connector v17 form (ledger prefixes with a trailing dot)', () => {
    const b = decodeRouteBroadcast(json({
      method: 'broadcast_routes',
      data: {
        hold_down_time: 60000,
        unreachable_through_me: ['test.gone.'],
        new_routes: [{ destination_ledger: 'test.pat.', min_message_window: 1, source_ledger: 'test.node.', source_account: 'test.node.pat', points: [[0, 0], [10, 10]] }],
      },
    }))
    assert.deepEqual(b.newRoutes, [{ prefix: 'test.pat', path: [], auth: null }])
    assert.deepEqual(b.withdrawnRoutes, ['test.gone'])
    assert.equal(b.holdDownTimeMs, 60000)
    assert.equal(b.toEpoch, null)
  })

  it('reads the Jan 2018 form, also wrapped in "custom" as that sender did', () => {
    const data = { hold_down_time: 45000, unreachable_through_me: [], new_routes: [{ prefix: 'test.pat', path: ['test.pat'] }], request_full_table: false }
    for (const message of [{ method: 'broadcast_routes', data }, { custom: { method: 'broadcast_routes', data }, timeout: 30000 }]) {
      const b = decodeRouteBroadcast(json(message))
      assert.deepEqual(b.newRoutes, [{ prefix: 'test.pat', path: ['test.pat'], auth: null }])
    }
  })

  it('reads the Feb 2018 form (epochs, auth, withdrawn_routes)', () => {
    const auth = Buffer.alloc(32, 7)
    const b = decodeRouteBroadcast(json({
      method: 'broadcast_routes',
      data: {
        speaker: 'test.pat', routing_table_id: '3b069822-a754-4e44-8a60-0f9f7084144d', hold_down_time: 45000, from_epoch: 3, to_epoch: 5,
        new_routes: [{ prefix: 'test.pat.a', path: ['test.pat'], auth: auth.toString('base64') }], withdrawn_routes: ['test.pat.b'],
      },
    }))
    assert.deepEqual(b.newRoutes, [{ prefix: 'test.pat.a', path: ['test.pat'], auth }])
    assert.deepEqual(b.withdrawnRoutes, ['test.pat.b'])
    assert.equal(b.toEpoch, 5)
  })

  it('round-trips what the node sends', () => {
    const auth = Buffer.alloc(32, 1)
    const bytes = encodeRouteBroadcast({
      speaker: 'test.node', routingTableId: '3b069822-a754-4e44-8a60-0f9f7084144d', fromEpoch: 0, toEpoch: 2, holdDownTimeMs: 45000,
      routes: [{ prefix: 'test.node', path: ['test.node'], auth }], withdrawn: ['test.old'],
    })
    assert.equal(bytes[0], 0x7b)
    const b = decodeRouteBroadcast(bytes)
    assert.deepEqual(b.newRoutes, [{ prefix: 'test.node', path: ['test.node'], auth }])
    assert.deepEqual(b.withdrawnRoutes, ['test.old'])
    const seedReader = JSON.parse(bytes.toString()) as { data: { new_routes: { destination_ledger: string; min_message_window: number }[] } }
    assert.equal(seedReader.data.new_routes[0].destination_ledger, 'test.node')
    assert.equal(seedReader.data.new_routes[0].min_message_window, 1)
  })

  it('drops single routes with unusable prefixes, and keeps the rest', () => {
    const b = decodeRouteBroadcast(json({
      method: 'broadcast_routes',
      data: { new_routes: [{ prefix: 'bad prefix' }, { prefix: 42 }, null, 'test.x', { destination_ledger: '' }, { prefix: 'test.ok', path: [1] }], unreachable_through_me: [5, 'test.w'] },
    }))
    assert.deepEqual(b.newRoutes, [{ prefix: 'test.ok', path: [], auth: null }])
    assert.deepEqual(b.withdrawnRoutes, ['test.w'])
    assert.equal(b.holdDownTimeMs, null)
  })

  it('refuses what is not a broadcast, each with a clear message', () => {
    const cases: [string | Buffer, RegExp][] = [
      ['{', /not valid JSON/],
      ['{"method":"broadcast_routes","data":{}', /not valid JSON/],
      [Buffer.from([0x7b, 0xff, 0xfe]), /not valid JSON/],
      ['[]', /JSON object/],
      ['{"method":"get_routes","data":{}}', /unknown JSON method "get_routes"/],
      ['{"data":{}}', /unknown JSON method/],
      ['{"method":"broadcast_routes"}', /"data" object/],
      ['{"method":"broadcast_routes","data":[]}', /"data" object/],
      ['{"method":"broadcast_routes","data":{"new_routes":{}}}', /"new_routes" must be an array/],
      ['{"method":"broadcast_routes","data":{"unreachable_through_me":"test.a"}}', /must be an array/],
      [JSON.stringify({ method: 'broadcast_routes', data: { withdrawn_routes: new Array(10_001).fill('test.a') } }), /more than 10000 routes/],
    ]
    for (const [input, message] of cases) {
      const bytes = typeof input === 'string' ? Buffer.from(input) : input
      assert.throws(() => decodeRouteBroadcast(bytes), (err: Error) => err instanceof RouteBroadcastError && message.test(err.message), String(input).slice(0, 60))
    }
  })
})

describe('JSON route broadcasts from a peer change routing (SHARDS=2: through a worker shard)', () => {
  let node: RunningNode
  let alice: BtpPlugin
  let pat: BtpPlugin
  let bob: BtpPlugin
  const { fulfillment, condition } = fulfillmentPair()
  const fixture = withNode(2, {
    ilpAddress: 'test.node',
    accounts: {
      alice: { relation: 'child', ...USD, btp: { token: 'alice-token' } },
      bob: { relation: 'child', ...USD, btp: { token: 'bob-token' } },
      pat: { relation: 'peer', ...USD, routeProtocol: 'json', btp: { token: 'pat-token' } },
      hal: { relation: 'peer', ...USD, http: { incomingToken: 'hal-token' } },
    },
  }, ['alice', 'bob', 'pat'])

  before(() => {
    ({ node, clients: { alice, bob, pat } } = fixture)
    pat.registerDataHandler(async (data) => {
      if (data[0] === 0x7b) return Buffer.from('{}')
      return IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.from('pat') })
    })
  })

  const toPat = () => prepare({ destination: 'test.pat.shop', amount: '7', executionCondition: condition })

  it('v17 / seed form: new_routes makes a prefix reachable, unreachable_through_me makes it F02 again', async () => {
    assert.equal(asReject(await alice.sendData(toPat())).code, 'F02', 'before: no route')
    const reply = await pat.sendData(json({ method: 'broadcast_routes', data: { hold_down_time: 45000, unreachable_through_me: [], new_routes: [{ destination_ledger: 'test.pat.', min_message_window: 1 }] } }))
    assert.equal(reply.toString(), '{}')
    assert.deepEqual(asFulfill(await sendWhenRouted(alice, toPat)).data, Buffer.from('pat'), 'after: routed to pat')
    const withdrawn = await pat.sendData(json({ method: 'broadcast_routes', data: { hold_down_time: 45000, unreachable_through_me: ['test.pat.'], new_routes: [] } }))
    assert.equal(withdrawn.toString(), '{}')
    assert.equal(asReject(await sendUntilUnreachable(alice, toPat)).code, 'F02', 'after the withdrawal: no route')
  })

  it('Feb 2018 form: answered with next_requested_epoch; a configured route still wins over a learned one', async () => {
    const reply = await pat.sendData(json({
      method: 'broadcast_routes',
      data: {
        speaker: 'test.pat', routing_table_id: '3b069822-a754-4e44-8a60-0f9f7084144d', hold_down_time: 45000, from_epoch: 0, to_epoch: 4,
        new_routes: [{ prefix: 'test.pat', path: ['test.pat'], auth: Buffer.alloc(32).toString('base64') }, { prefix: 'test.node.bob', path: ['test.pat'] }],
        withdrawn_routes: [],
      },
    }))
    assert.deepEqual(JSON.parse(reply.toString()), { next_requested_epoch: 4 })
    asFulfill(await sendWhenRouted(alice, toPat))
    // test.node.bob is bob's own child route: pat's claim to it changes nothing.
    const { fulfillment: f2, condition: c2 } = fulfillmentPair()
    bob.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment: f2, data: Buffer.from('bob') }))
    assert.deepEqual(asFulfill(await alice.sendData(prepare({ destination: 'test.node.bob', executionCondition: c2 }))).data, Buffer.from('bob'))
  })

  it('Jan 2018 form wrapped in "custom", and a withdrawal by withdrawn_routes', async () => {
    const reply = await pat.sendData(json({ custom: { method: 'broadcast_routes', data: { hold_down_time: 45000, unreachable_through_me: [], new_routes: [{ prefix: 'test.jan', path: ['test.pat'] }] } }, timeout: 30000 }))
    assert.equal(reply.toString(), '{}')
    const toJan = () => prepare({ destination: 'test.jan.x', amount: '1', executionCondition: condition })
    asFulfill(await sendWhenRouted(alice, toJan))
    await pat.sendData(json({ method: 'broadcast_routes', data: { withdrawn_routes: ['test.jan'], new_routes: [] } }))
    assert.equal(asReject(await sendUntilUnreachable(alice, toJan)).code, 'F02')
  })

  it('malformed broadcasts get F01, a broadcast from a child F00 unread, and nothing changes', async () => {
    for (const bad of ['{', '{"method":"frobnicate","data":{}}', '{"method":"broadcast_routes","data":{"new_routes":7}}']) {
      const reject = asReject(await pat.sendData(Buffer.from(bad)))
      assert.equal(reject.code, 'F01', bad)
      assert.equal(reject.triggeredBy, 'test.node')
    }
    const fromChild = asReject(await alice.sendData(json({ method: 'broadcast_routes', data: { new_routes: [{ prefix: 'test.evil' }] } })))
    assert.equal(fromChild.code, 'F00')
    assert.match(fromChild.message, /not to receive routes/)
    // Not even read: a malformed one from the child is refused the same way, not F01.
    assert.equal(asReject(await alice.sendData(Buffer.from('{'))).code, 'F00')
    asFulfill(await alice.sendData(toPat()))
  })

  it('over ILP-over-HTTP: a JSON body is a broadcast, answered with JSON', async () => {
    const post = async (body: Buffer) => {
      const res = await request(`http://127.0.0.1:${node.port}/ilp`, {
        method: 'POST', headers: { authorization: 'Bearer hal-token', 'content-type': 'application/octet-stream' }, body,
      })
      return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) }
    }
    const reply = await post(json({ method: 'broadcast_routes', data: { hold_down_time: 45000, new_routes: [{ prefix: 'test.hal', path: ['test.hal'] }], unreachable_through_me: [] } }))
    assert.equal(reply.status, 200)
    assert.equal(reply.body.toString(), '{}')
    // hal has no outgoing URL, so a packet routed to it fails at the link (T01), not at routing (F02).
    // Routes reach the worker shards a moment after the answer: ask until the route is there.
    let toHal = asReject(await alice.sendData(prepare({ destination: 'test.hal.x' })))
    for (let i = 0; i < 50 && toHal.code === 'F02'; i++) {
      await sleep(50)
      toHal = asReject(await alice.sendData(prepare({ destination: 'test.hal.x' })))
    }
    assert.equal(toHal.code, 'T01')
    const bad = await post(Buffer.from('{"method":"broadcast_routes"}'))
    assert.equal(bad.status, 200)
    assert.equal(asReject(bad.body).code, 'F01')
  })
})

describe('two nodes peered with JSON route broadcasts (routeProtocol "json")', () => {
  let carol: BtpPlugin
  let dave: BtpPlugin
  let pat: BtpPlugin
  const net = withNetwork({
    nodes: {
      a: {
        ilpAddress: 'test.a',
        routeBroadcastInterval: 500,
        accounts: {
          b: { relation: 'peer', ...USD, routeProtocol: 'json' },
          carol: { relation: 'child', ...USD, btp: { token: 'carol-token' } },
          pat: { relation: 'peer', ...USD, routeProtocol: 'json', btp: { token: 'pat-token' } },
        },
      },
      b: {
        ilpAddress: 'test.b',
        routeBroadcastInterval: 500,
        accounts: {
          a: { relation: 'peer', ...USD, routeProtocol: 'json' },
          dave: { relation: 'child', ...USD, btp: { token: 'dave-token' } },
        },
      },
    },
    links: [{ from: 'b.a', to: 'a.b' }],
    clients: ['a.carol', 'b.dave', 'a.pat'],
  })

  before(() => {
    ({ clients: { a: { carol, pat }, b: { dave } } } = net)
  })

  it('each node learns the other\'s address, and packets flow both ways', async () => {
    const { fulfillment, condition } = fulfillmentPair()
    carol.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.from('carol') }))
    dave.registerDataHandler(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.from('dave') }))
    const toCarol = await sendWhenRouted(dave, () => prepare({ destination: 'test.a.carol', amount: '3', executionCondition: condition }))
    assert.deepEqual(asFulfill(toCarol).data, Buffer.from('carol'))
    const toDave = await sendWhenRouted(carol, () => prepare({ destination: 'test.b.dave', amount: '3', executionCondition: condition }))
    assert.deepEqual(asFulfill(toDave).data, Buffer.from('dave'))
  })

  it('a route a learns from pat reaches b, and so does its withdrawal (F02 at b afterwards)', async () => {
    const { fulfillment, condition } = fulfillmentPair()
    const seen: Buffer[] = []
    pat.registerDataHandler(async (data) => {
      if (data[0] === 0x7b) {
        seen.push(data)
        return Buffer.from('{}')
      }
      return IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
    })
    const toPat = () => prepare({ destination: 'test.pat.x', amount: '2', executionCondition: condition })
    assert.equal(asReject(await dave.sendData(toPat())).code, 'F02', 'before the announcement')
    await pat.sendData(json({ method: 'broadcast_routes', data: { hold_down_time: 45000, new_routes: [{ prefix: 'test.pat', path: ['test.pat'] }], unreachable_through_me: [] } }))
    asFulfill(await sendWhenRouted(dave, toPat))
    await pat.sendData(json({ method: 'broadcast_routes', data: { hold_down_time: 45000, new_routes: [], unreachable_through_me: ['test.pat'] } }))
    assert.equal(asReject(await sendUntilUnreachable(dave, toPat)).code, 'F02')
    // Meanwhile a has been broadcasting its own table to pat, in the JSON form.
    assert.ok(seen.length > 0, 'pat received broadcasts')
    const last = decodeRouteBroadcast(seen[seen.length - 1])
    const prefixes = last.newRoutes.map((r) => r.prefix)
    assert.ok(prefixes.includes('test.a') && prefixes.includes('test.b'), `a advertises itself and b to pat (got ${prefixes.join(',')})`)
    assert.ok(!prefixes.includes('test.pat'), 'never advertises pat\'s own route back to pat')
  })
})
