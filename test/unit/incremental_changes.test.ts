// Goal: what follows the accounts change by change (so that a change costs what it changes) ends
// where a fresh computation over all the accounts ends: a shard's fair shares of its pending
// table (shard/pending_shares.ts), the route table (control/routing/route_table.ts) and the shards'
// routes it hands out as changes. Method: a seeded sequence of single-account changes (added,
// changed in relation or owner shard, deleted, added back) applied to an account table; after
// each, the incremental state is compared with one built afresh from the same table.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AccountTable, type AccountChange } from '../../src/config/account_table'
import { parseConfig } from '../../src/config/parse'
import type { AccountConfig, Config } from '../../src/config/schema'
import { RouteTable } from '../../src/control/routing/route_table'
import { PendingShares } from '../../src/shard/pending_shares'
import { prng } from '../support/helpers'

const ME = 'test.node'
const RELATIONS = ['child', 'child', 'peer', 'parent'] as const

function config(accounts: number): Config {
  const json: Record<string, unknown> = {}
  for (let i = 0; i < accounts; i++) json[`a${i}`] = { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: `a${i}-token-long-enough` } }
  return parseConfig({ ilpAddress: ME, dataDir: '/nonexistent', shards: 2, accounts: json, limits: { maxAccounts: 64 } }, {}, { cores: 2, shards: 2 })
}

/** A random change of one account: a new one, or one of the table's with another relation, deleted or back. */
function randomChange(table: AccountTable, random: () => number, hasParent: (other: number) => boolean): AccountChange {
  const index = Math.floor(random() * (table.size + 1))
  if (index === table.size) return { index, account: { ...table.get(0), id: `n${index}`, relation: 'child' }, live: true }
  const was = table.get(index)
  let relation = RELATIONS[Math.floor(random() * RELATIONS.length)]
  // One parent at most, as the config's rules keep it.
  if (relation === 'parent' && hasParent(index)) relation = 'peer'
  const account: AccountConfig = Object.freeze({ ...was, relation })
  return { index, account, live: random() < 0.8 }
}

describe('changes made one account at a time', () => {
  it('keep the pending shares where a fresh computation puts them', () => {
    const cfg = config(12)
    const random = prng(24)
    const table = new AccountTable(cfg)
    const inFlight = new Map<number, number>()
    const shares = new PendingShares(40, table, 0, (a) => inFlight.get(a) ?? 0)
    for (let step = 0; step < 300; step++) {
      const account = Math.floor(random() * table.size)
      inFlight.set(account, Math.floor(random() * 6))
      // In flight moves as the shard takes and releases slots; here it is set between changes, so both start from it.
      shares.accountsChanged()
      const changed = table.applyChanges([randomChange(table, random, () => true)])
      shares.accountsChanged(changed)
      const fresh = new PendingShares(40, table, 0, (a) => inFlight.get(a) ?? 0)
      assert.equal(shares['share'], fresh['share'], `share after step ${step}`)
      assert.equal(shares['reserved'], fresh['reserved'], `reserved after step ${step}`)
    }
  })

  it('keep the route table, and the shards\' routes made of its changes, where a fresh table puts them', () => {
    const cfg = config(8)
    const random = prng(7)
    const table = new AccountTable(cfg)
    const routes = new RouteTable(table, ME, Buffer.alloc(32, 3))
    routes.reconfigure(cfg, new Set())
    const shardRoutes = new Map(routes.entries())
    routes.takeChanges()
    const parent = (other: number) => table.accounts.some((a, i) => i !== other && a.relation === 'parent' && table.isLive(i))
    for (let step = 0; step < 200; step++) {
      const changed = table.applyChanges([randomChange(table, random, parent)])
      routes.reconfigure(cfg, new Set(), [], changed)
      for (const [prefix, account] of routes.takeChanges()) {
        if (account < 0) shardRoutes.delete(prefix)
        else shardRoutes.set(prefix, account)
      }
      const fresh = new RouteTable(table, ME, Buffer.alloc(32, 3))
      fresh.reconfigure(cfg, new Set())
      const sorted = (entries: Iterable<[string, number]>) => [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      assert.deepEqual(sorted(routes.entries()), sorted(fresh.entries()), `table after step ${step}`)
      assert.deepEqual(sorted(shardRoutes), sorted(fresh.entries()), `shards' routes after step ${step}`)
    }
  })
})
