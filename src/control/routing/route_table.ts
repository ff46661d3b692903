// The route table of the node: which account each prefix goes to, and what we advertise for it.
// It is data and selection only: no timers, no sockets, no clock. The CCP speaker
// (ccp_speaker.ts) feeds it the routes peers teach us and reads back its forwarding log; the
// composition (route_manager.ts) hands its entries to the shards. Kept apart so that the rules
// below can be tested with real objects and no peers.
//
//   local routes      the node's own address, each child's address, the default route to the
//                     parent; configured routes (config.routes) win over everything for their prefix
//   learned routes    per peer, as the speaker hands them in; withdrawn by the peer, or all of a
//                     peer's at once when the speaker forgets it (hold-down passed, no longer taught)
//   best route        configured > local > learned (child > peer > parent, then shorter path,
//                     then account id), per prefix
//   forwarding table  what we advertise: the best route with our address prepended to its path
//                     and its auth hashed once more (SHA-256, as ilp-connector does); every change
//                     is an epoch in a log, so a peer can sync from any epoch

import { createHash, createHmac, randomBytes } from 'node:crypto'
import type { CcpRoute } from '../../codec/ccp'
import { isValidAddress } from '../../codec/ilp_packet'
import type { AccountTable } from '../../config/account_table'
import type { Config } from '../../config/schema'

const RELATION_PRIORITY: Record<string, number> = { parent: 0, peer: 1, child: 2 }
/** The most hops a learned route's path may list (ilp-connector's paths are a handful). */
const MAX_PATH_HOPS = 32

/** How a route was learned: a CCP route update or a JSON route broadcast. */
export type LearnedVia = 'ccp' | 'json'

interface LearnedRoute {
  path: string[]
  auth: Buffer
  via: LearnedVia
}

/** A route as the admin API shows it: where a prefix goes, and where that came from. */
export interface RouteView {
  prefix: string
  nextHop: string
  source: 'config' | 'admin' | 'node' | 'child' | 'parent' | LearnedVia
  path: string[]
}

/** A route to a prefix: the account it goes to (-1: the node itself), its path and its auth. */
export interface Route {
  nextHop: number
  path: string[]
  auth: Buffer
}

/** One epoch of the forwarding log: a prefix and what we now advertise for it (null: withdrawn). */
export interface LogEntry {
  prefix: string
  route: Route | null
}

/** What the table reads of the config: our address and the configured routes. */
export type TableConfig = Pick<Config, 'ilpAddress' | 'routes'>

export class RouteTable {
  private local = new Map<string, Route>()
  /** Configured prefix → account index (-1 if its account is not live). */
  private configured = new Map<string, number>()
  /** Configured prefixes that were set through the admin API (shown as source "admin"). */
  private fromAdmin = new Set<string>()
  private readonly learned = new Map<number, Map<string, LearnedRoute>>()
  private readonly forwarding = new Map<string, { epoch: number; route: Route | null }>()
  /** Epoch i's entry, or null once a later epoch superseded it for the same prefix. */
  private readonly epochLog: (LogEntry | null)[] = []
  /** Only routes under our global prefix (e.g. "g", "test") are taken from peers and advertised. */
  private readonly globalPrefix: string
  private ilpAddress: string
  private changes = 0
  /** The live parent's index, or -1 (the default route goes to it). */
  private parent = -1
  /** Prefixes recomputed since the shards last got the changes (takeChanges). */
  private readonly unpublished = new Set<string>()

  /**
   * `secret` keys the HMAC that is the auth of our own routes (random per run unless a test
   * fixes it). The table starts empty: reconfigure fills in the local and configured routes.
   */
  constructor(
    private readonly accounts: AccountTable,
    ilpAddress: string,
    private readonly secret: Buffer = randomBytes(32),
  ) {
    this.ilpAddress = ilpAddress
    this.globalPrefix = ilpAddress.split('.')[0]
  }

  /** The next epoch to be recorded: the forwarding log's length. */
  get epoch(): number {
    return this.epochLog.length
  }

  /** Grows with every recomputation of a prefix: the entries may differ from the last read. */
  get version(): number {
    return this.changes
  }

  /**
   * The accounts or configured routes changed: local and configured routes are made again from
   * `config` and the account table, and the learned routes of the accounts in `forget` (deleted,
   * or no longer taught by) are dropped. With `changed` (the accounts a change touched), only
   * their own routes and the default route are made again, so a change costs what it changes;
   * without it (at start), every account's. Every prefix that may have moved is recomputed once,
   * in a fixed order (old local and configured prefixes, forgotten ones, new ones), so the
   * forwarding log gets at most one epoch per prefix.
   */
  reconfigure(config: TableConfig, fromAdmin: ReadonlySet<string>, forget: readonly number[] = [], changed: readonly number[] | null = null): void {
    const whole = changed === null || config.ilpAddress !== this.ilpAddress
    const touched = whole ? new Set<string>([...this.local.keys(), ...this.configured.keys()]) : new Set<string>()
    this.ilpAddress = config.ilpAddress
    this.fromAdmin = new Set(fromAdmin)
    for (const account of forget) {
      for (const prefix of this.learned.get(account)?.keys() ?? []) touched.add(prefix)
      this.learned.delete(account)
    }
    const configured = new Map<string, number>()
    for (const route of config.routes) configured.set(route.targetPrefix, this.accounts.indexOfLive(route.peerId))
    const moved: string[] = []
    for (const [prefix, account] of this.configured) if (configured.get(prefix) !== account) moved.push(prefix)
    for (const [prefix, account] of configured) if (this.configured.get(prefix) !== account) moved.push(prefix)
    this.configured = configured
    if (whole) {
      this.local = this.localRoutes()
      for (const prefix of [...this.local.keys(), ...this.configured.keys()]) touched.add(prefix)
    } else {
      for (const prefix of [...this.localRoutesOf(changed), ...moved]) touched.add(prefix)
    }
    for (const prefix of touched) this.updatePrefix(prefix)
  }

  /**
   * Routes from `account`: `withdrawn` are dropped, `routes` are taken unless they lie outside
   * our global prefix or already pass through us. A CCP update carries only what changed, so each
   * route in it counts as a change; a JSON broadcast repeats the whole table every time, so one of
   * its routes counts only if it is new or its path differs. Returns the changed prefixes (in that
   * order, withdrawn first; a prefix may repeat).
   */
  learn(account: number, withdrawn: readonly string[], routes: readonly CcpRoute[], via: LearnedVia): string[] {
    let known = this.learned.get(account)
    if (known === undefined) this.learned.set(account, (known = new Map()))
    const changed: string[] = []
    for (const prefix of withdrawn) if (known.delete(prefix)) changed.push(prefix)
    for (const route of routes) {
      if (!this.acceptable(route)) continue
      const before = known.get(route.prefix)
      known.set(route.prefix, { path: route.path, auth: route.auth, via })
      if (via === 'ccp' || before === undefined || before.path.join(' ') !== route.path.join(' ')) changed.push(route.prefix)
    }
    for (const prefix of changed) this.updatePrefix(prefix)
    return changed
  }

  /** Drops every route learned from `account`; returns their prefixes. */
  forget(account: number): string[] {
    const known = this.learned.get(account)
    if (known === undefined) return []
    const prefixes = [...known.keys()]
    known.clear()
    for (const prefix of prefixes) this.updatePrefix(prefix)
    return prefixes
  }

  /** How many routes we hold from `account`. */
  learnedCount(account: number): number {
    return this.learned.get(account)?.size ?? 0
  }

  /** The routing table as the shards use it: prefix → account index (the node's own prefix left out). */
  entries(): [string, number][] {
    const entries: [string, number][] = []
    for (const prefix of this.allPrefixes()) {
      const best = this.best(prefix)
      if (best !== null && best.nextHop >= 0) entries.push([prefix, best.nextHop])
    }
    return entries
  }

  /**
   * The entries recomputed since the last call, each with its account now (-1: no route any
   * more): what the shards need to follow the table without a copy of all of it.
   */
  takeChanges(): [string, number][] {
    const changes: [string, number][] = []
    for (const prefix of this.unpublished) {
      const best = this.best(prefix)
      changes.push([prefix, best !== null && best.nextHop >= 0 ? best.nextHop : -1])
    }
    this.unpublished.clear()
    return changes
  }

  /** The whole table with each route's origin (for GET /admin/routes), by prefix. */
  describe(): RouteView[] {
    // A next hop of -1 is the node itself (its own address, answered by its shards).
    const id = (account: number) => (account < 0 ? '(this node)' : this.accounts.get(account).id)
    const views: RouteView[] = []
    for (const prefix of [...this.allPrefixes()].sort()) {
      const configured = this.configured.get(prefix)
      if (configured !== undefined) {
        views.push({ prefix, nextHop: id(configured), source: this.fromAdmin.has(prefix) ? 'admin' : 'config', path: [] })
        continue
      }
      const local = this.local.get(prefix)
      if (local !== undefined) {
        views.push({ prefix, nextHop: id(local.nextHop), source: local.nextHop < 0 ? 'node' : prefix === '' ? 'parent' : 'child', path: [] })
        continue
      }
      const best = this.best(prefix)
      if (best === null) continue
      const via = this.learned.get(best.nextHop)?.get(prefix)?.via ?? 'ccp'
      views.push({ prefix, nextHop: id(best.nextHop), source: via, path: best.path })
    }
    return views
  }

  /** The forwarding log from epoch `from`, at most `max` entries (null: superseded since). */
  logSince(from: number, max: number): readonly (LogEntry | null)[] {
    return this.epochLog.slice(from, from + max)
  }

  /** Every prefix we advertise or once did, with what we advertise now and the epoch it was set in. */
  advertised(): IterableIterator<[string, { epoch: number; route: Route | null }]> {
    return this.forwarding.entries()
  }

  /** The best route to exactly `prefix`, or null. */
  best(prefix: string): Route | null {
    const configured = this.configured.get(prefix)
    if (configured !== undefined) return { nextHop: configured, path: [], auth: this.hmac(prefix) }
    const local = this.local.get(prefix)
    if (local !== undefined) return local
    let best: Route | null = null
    for (const [account, known] of this.learned) {
      const route = known.get(prefix)
      if (route === undefined) continue
      const candidate = { nextHop: account, path: route.path, auth: route.auth }
      if (best === null || this.better(candidate, best)) best = candidate
    }
    return best
  }

  /** Our address, each live child's, and the default route to a live parent (unless configured). */
  private localRoutes(): Map<string, Route> {
    const local = new Map<string, Route>()
    local.set(this.ilpAddress, { nextHop: -1, path: [], auth: this.hmac(this.ilpAddress) })
    this.parent = this.accounts.accounts.findIndex((a, i) => a.relation === 'parent' && this.accounts.isLive(i))
    if (this.parent >= 0 && !this.configured.has('')) local.set('', { nextHop: this.parent, path: [], auth: this.hmac('') })
    this.accounts.accounts.forEach((a, i) => {
      if (a.relation === 'child' && this.accounts.isLive(i)) {
        const address = `${this.ilpAddress}.${a.id}`
        local.set(address, { nextHop: i, path: [], auth: this.hmac(address) })
      }
    })
    return local
  }

  /**
   * The local routes of the accounts in `changed` made again (a child's address; the default
   * route, if the parent is among them or a configured default route came or went): the
   * prefixes they touch. The config allows one parent at most.
   */
  private localRoutesOf(changed: readonly number[]): string[] {
    const touched: string[] = []
    for (const i of changed) {
      const a = this.accounts.get(i)
      const address = `${this.ilpAddress}.${a.id}`
      if (this.local.get(address)?.nextHop === i) this.local.delete(address)
      if (a.relation === 'child' && this.accounts.isLive(i)) this.local.set(address, { nextHop: i, path: [], auth: this.hmac(address) })
      touched.push(address)
      if (a.relation === 'parent' && this.accounts.isLive(i)) this.parent = i
      else if (this.parent === i) this.parent = -1
    }
    const defaultHop = this.parent >= 0 && !this.configured.has('') ? this.parent : -1
    if ((this.local.get('')?.nextHop ?? -1) !== defaultHop) {
      if (defaultHop < 0) this.local.delete('')
      else this.local.set('', { nextHop: defaultHop, path: [], auth: this.hmac('') })
      touched.push('')
    }
    return touched
  }

  /**
   * A learned route is taken only if its prefix is under the global prefix and an ILP address
   * (RFC 15: at most 1023 characters of the address alphabet), its path is short and made of
   * addresses, and it does not come back through us. CCP itself bounds none of these, and every
   * prefix taken costs memory in every shard's routing table.
   */
  private acceptable(route: CcpRoute): boolean {
    return route.prefix.startsWith(this.globalPrefix) && route.prefix.length > this.globalPrefix.length && isValidAddress(route.prefix) &&
      route.path.length <= MAX_PATH_HOPS && route.path.every(isValidAddress) && !route.path.includes(this.ilpAddress)
  }

  private allPrefixes(): Set<string> {
    const prefixes = new Set<string>([...this.local.keys(), ...this.configured.keys()])
    for (const known of this.learned.values()) for (const prefix of known.keys()) prefixes.add(prefix)
    return prefixes
  }

  private better(a: Route, b: Route): boolean {
    const wa = RELATION_PRIORITY[this.accounts.get(a.nextHop).relation]
    const wb = RELATION_PRIORITY[this.accounts.get(b.nextHop).relation]
    if (wa !== wb) return wa > wb
    if (a.path.length !== b.path.length) return a.path.length < b.path.length
    return this.accounts.get(a.nextHop).id < this.accounts.get(b.nextHop).id
  }

  /**
   * Recomputes a prefix; records a new epoch if what we advertise for it changed. Not advertised:
   * the default route, our global prefix itself, prefixes outside it, and our own children's
   * addresses (a peer reaches them through our address).
   */
  private updatePrefix(prefix: string): void {
    this.changes++
    this.unpublished.add(prefix)
    const best = this.best(prefix)
    // Decided before the auth is hashed: a hub's children are most of its prefixes, and none is advertised.
    const ownChild = best !== null && prefix.startsWith(`${this.ilpAddress}.`) && best.path.length === 0
    const hidden = best === null || !prefix.startsWith(this.globalPrefix) || prefix === this.globalPrefix || prefix === '' || ownChild
    const advertised: Route | null = hidden ? null : { nextHop: best.nextHop, path: [this.ilpAddress, ...best.path], auth: sha256(best.auth) }
    const current = this.forwarding.get(prefix)
    // A prefix we never advertised and still do not: nothing for peers to hear.
    if (current === undefined && advertised === null) return
    const currentHop = current?.route?.nextHop
    if (current !== undefined && currentHop === advertised?.nextHop && (current.route === null) === (advertised === null)) return
    const epoch = this.epochLog.length
    if (current !== undefined) this.epochLog[current.epoch] = null
    this.epochLog.push({ prefix, route: advertised })
    this.forwarding.set(prefix, { epoch, route: advertised })
  }

  private hmac(prefix: string): Buffer {
    return createHmac('sha256', this.secret).update(prefix, 'utf8').digest()
  }
}

function sha256(b: Buffer): Buffer {
  return createHash('sha256').update(b).digest()
}
