// Goal: the route table on its own (no speaker, no peers, no timers) picks the route the node
// forwards on and keeps the forwarding log its peers sync from. Real objects throughout: a parsed
// config, its account table, the table fed as the CCP speaker would feed it. Checked: the best
// route's order (configured > local > learned; child > peer > parent, then shorter path, then
// account id), routes withdrawn or forgotten falling back to the next best, routes refused (not
// under our global prefix, or already through us), and the epochs of the forwarding log: one per
// change of next hop, superseded entries blanked, nothing for prefixes we do not advertise (the
// default route, our children's addresses).

import assert from 'node:assert/strict'
import { createHash, createHmac } from 'node:crypto'
import { describe, it } from 'node:test'
import { AccountTable } from '../../src/config/account_table'
import { parseConfig } from '../../src/config/parse'
import type { Config } from '../../src/config/schema'
import { holdDownOf } from '../../src/control/routing/ccp_speaker'
import { RouteTable } from '../../src/control/routing/route_table'

const ME = 'test.node'
const SECRET = Buffer.alloc(32, 7)
const AUTH = Buffer.alloc(32, 1)

function config(routes: { targetPrefix: string; peerId: string }[] = []): Config {
  const account = (relation: string, id: string) => ({ relation, assetCode: 'USD', assetScale: 9, btp: { token: `${id}-token-long-enough` } })
  return parseConfig({
    ilpAddress: ME,
    dataDir: '/nonexistent',
    accounts: { alice: account('child', 'alice'), carl: account('peer', 'carl'), dave: account('peer', 'dave'), pam: account('parent', 'pam') },
    routes,
  }, {}, { cores: 2, shards: 0 })
}

/** A table over `cfg`, as the composition makes it at start. */
function tableOf(cfg: Config, fromAdmin: ReadonlySet<string> = new Set()): { table: RouteTable; accounts: AccountTable; at: (id: string) => number } {
  const accounts = new AccountTable(cfg)
  const table = new RouteTable(accounts, cfg.ilpAddress, SECRET)
  table.reconfigure(cfg, fromAdmin)
  return { table, accounts, at: (id) => accounts.indexOfLive(id) }
}

const route = (prefix: string, path: string[]) => ({ prefix, path, auth: AUTH })
const nextHop = (table: RouteTable, prefix: string) => table.best(prefix)?.nextHop

describe('route table', () => {
  it('has the local routes: our address, each child, the default route to the parent', () => {
    const { table, at } = tableOf(config())
    assert.deepEqual(table.describe().map((v) => [v.prefix, v.nextHop, v.source]), [
      ['', 'pam', 'parent'],
      [ME, '(this node)', 'node'],
      [`${ME}.alice`, 'alice', 'child'],
    ])
    // The shards get every route but our own address (their own prefix).
    assert.deepEqual(new Map(table.entries()), new Map([['', at('pam')], [`${ME}.alice`, at('alice')]]))
  })

  it('picks child > peer > parent, then the shorter path, then the lower account id', () => {
    const { table, at } = tableOf(config())
    table.learn(at('pam'), [], [route('test.x', ['test.p'])], 'ccp')
    assert.equal(nextHop(table, 'test.x'), at('pam'))
    table.learn(at('dave'), [], [route('test.x', ['test.d', 'test.e', 'test.f'])], 'ccp')
    assert.equal(nextHop(table, 'test.x'), at('dave'), 'a peer beats the parent, whatever the path')
    table.learn(at('carl'), [], [route('test.x', ['test.c', 'test.e', 'test.f'])], 'ccp')
    assert.equal(nextHop(table, 'test.x'), at('carl'), 'same relation and length: the lower id')
    table.learn(at('dave'), [], [route('test.x', ['test.d'])], 'ccp')
    assert.equal(nextHop(table, 'test.x'), at('dave'), 'same relation: the shorter path')
    table.learn(at('alice'), [], [route('test.x', ['test.a', 'test.b', 'test.c', 'test.e'])], 'ccp')
    assert.equal(nextHop(table, 'test.x'), at('alice'), 'a child beats a peer, whatever the path')
    const view = table.describe().find((v) => v.prefix === 'test.x')
    assert.deepEqual(view, { prefix: 'test.x', nextHop: 'alice', source: 'ccp', path: ['test.a', 'test.b', 'test.c', 'test.e'] })
  })

  it('lets a configured route win over local and learned ones, shown as config or admin', () => {
    const cfg = config([{ targetPrefix: 'test.x', peerId: 'dave' }, { targetPrefix: `${ME}.alice`, peerId: 'carl' }, { targetPrefix: '', peerId: 'carl' }])
    const { table, at } = tableOf(cfg, new Set(['']))
    table.learn(at('alice'), [], [route('test.x', ['test.a'])], 'json')
    assert.equal(nextHop(table, 'test.x'), at('dave'))
    assert.equal(nextHop(table, `${ME}.alice`), at('carl'))
    assert.equal(nextHop(table, ''), at('carl'), 'a configured default route replaces the parent')
    const sources = new Map(table.describe().map((v) => [v.prefix, v.source]))
    assert.equal(sources.get('test.x'), 'config')
    assert.equal(sources.get(''), 'admin')
    // Without the configured route, the learned one is back.
    table.reconfigure(config(), new Set())
    assert.equal(nextHop(table, 'test.x'), at('alice'))
    assert.equal(table.describe().find((v) => v.prefix === 'test.x')?.source, 'json')
  })

  it('falls back when a learned route is withdrawn, and drops a forgotten peer\'s routes', () => {
    const { table, at } = tableOf(config())
    table.learn(at('carl'), [], [route('test.x', ['test.c']), route('test.y', ['test.c'])], 'ccp')
    table.learn(at('dave'), [], [route('test.x', ['test.d', 'test.e'])], 'ccp')
    assert.equal(nextHop(table, 'test.x'), at('carl'))
    assert.deepEqual(table.learn(at('carl'), ['test.x', 'test.unknown'], [], 'ccp'), ['test.x'])
    assert.equal(nextHop(table, 'test.x'), at('dave'))
    assert.equal(table.learnedCount(at('carl')), 1)
    assert.deepEqual(table.forget(at('carl')), ['test.y'])
    assert.equal(table.best('test.y'), null)
    assert.equal(table.learnedCount(at('carl')), 0)
    // A reconfiguration that stops taking routes from dave drops his too.
    table.reconfigure(config(), new Set(), [at('dave')])
    assert.equal(table.best('test.x'), null)
    assert.ok(!table.describe().some((v) => v.prefix === 'test.x'))
  })

  it('refuses routes outside our global prefix, the global prefix itself, and paths through us', () => {
    const { table, at } = tableOf(config())
    const changed = table.learn(at('carl'), [], [route('g.x', ['g.c']), route('test', ['test.c']), route('test.loop', ['test.c', ME]), route('test.ok', ['test.c'])], 'ccp')
    assert.deepEqual(changed, ['test.ok'])
    assert.equal(table.learnedCount(at('carl')), 1)
  })

  it('counts a repeated JSON route as a change only if its path differs; a CCP route always', () => {
    const { table, at } = tableOf(config())
    assert.deepEqual(table.learn(at('carl'), [], [route('test.x', ['test.c'])], 'json'), ['test.x'])
    assert.deepEqual(table.learn(at('carl'), [], [route('test.x', ['test.c'])], 'json'), [])
    assert.deepEqual(table.learn(at('carl'), [], [route('test.x', ['test.c', 'test.d'])], 'json'), ['test.x'])
    assert.deepEqual(table.learn(at('carl'), [], [route('test.x', ['test.c', 'test.d'])], 'ccp'), ['test.x'])
  })

  it('logs an epoch per change of what we advertise, blanking the entry it supersedes', () => {
    const { table, at } = tableOf(config())
    // At start, our own address is epoch 0; our child's address (reached through ours) and the
    // default route are not advertised.
    assert.equal(table.epoch, 1)
    const ownAuth = createHash('sha256').update(createHmac('sha256', SECRET).update(ME, 'utf8').digest()).digest()
    assert.deepEqual(table.logSince(0, 50), [{ prefix: ME, route: { nextHop: -1, path: [ME], auth: ownAuth } }])
    table.learn(at('carl'), [], [route('test.x', ['test.c'])], 'ccp')
    assert.equal(table.epoch, 2)
    assert.deepEqual(table.logSince(1, 50), [{ prefix: 'test.x', route: { nextHop: at('carl'), path: [ME, 'test.c'], auth: createHash('sha256').update(AUTH).digest() } }])
    // The same next hop again (even by another path) is no news for peers.
    table.learn(at('carl'), [], [route('test.x', ['test.c', 'test.e'])], 'ccp')
    assert.equal(table.epoch, 2)
    // A new next hop is: epoch 2 supersedes epoch 1.
    table.learn(at('alice'), [], [route('test.x', ['test.a'])], 'ccp')
    assert.equal(table.epoch, 3)
    assert.deepEqual(table.logSince(1, 50).map((e) => e?.route?.nextHop ?? e), [null, at('alice')])
    // Alice forgotten: back to carl (epoch 3); carl forgotten too: epoch 4 is the withdrawal, and
    // the prefix stays among the advertised (a JSON peer hears of it as withdrawn).
    table.forget(at('alice'))
    assert.deepEqual(table.logSince(3, 50).map((e) => e?.route?.nextHop), [at('carl')])
    table.forget(at('carl'))
    assert.equal(table.epoch, 5)
    assert.deepEqual(table.logSince(1, 50), [null, null, null, { prefix: 'test.x', route: null }])
    assert.deepEqual([...table.advertised()].map(([prefix, { epoch, route }]) => [prefix, epoch, route?.nextHop ?? null]), [[ME, 0, -1], ['test.x', 4, null]])
    assert.deepEqual(table.logSince(2, 1), [null], 'a slice of the log from an epoch')
  })

  it('advertises a configured route with our HMAC as its auth, hashed once', () => {
    const { table, at } = tableOf(config([{ targetPrefix: 'test.far', peerId: 'carl' }]))
    assert.equal(table.epoch, 2) // our address, then the configured route
    const ours = createHmac('sha256', SECRET).update('test.far', 'utf8').digest()
    assert.deepEqual(table.logSince(1, 1), [{ prefix: 'test.far', route: { nextHop: at('carl'), path: [ME], auth: createHash('sha256').update(ours).digest() } }])
    // Reconfiguring to the same routes records nothing new; moving the route does, once.
    const version = table.version
    table.reconfigure(config([{ targetPrefix: 'test.far', peerId: 'carl' }]), new Set())
    assert.equal(table.epoch, 2)
    assert.ok(table.version > version, 'each recomputation counts, so the shards get the table again')
    table.reconfigure(config([{ targetPrefix: 'test.far', peerId: 'dave' }]), new Set())
    assert.equal(table.epoch, 3)
  })
})

describe('a peer\'s hold-down time', () => {
  it('keeps its routes at most 5 minutes without an update, whatever it asks for', () => {
    assert.equal(holdDownOf(45_000), 45_000)
    assert.equal(holdDownOf(0xffffffff), 300_000, 'CCP\'s largest (49 days)')
    assert.equal(holdDownOf(1e300), 300_000, 'a JSON broadcast may say anything')
    assert.equal(holdDownOf(Number.POSITIVE_INFINITY), 300_000)
    assert.equal(holdDownOf(Number.NaN), 300_000)
    assert.equal(holdDownOf(-5), 0)
  })
})
