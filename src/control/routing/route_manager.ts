// The control plane of routing, on the main thread: which account each prefix goes to, learned
// and advertised with CCP (codec/ccp.ts) the way ilp-connector@23 does it, so the two interoperate.
//
//   local routes      the node's own address, each child's address, the default route to the
//                     parent; configured routes (config.routes) win over everything for their prefix
//   learned routes    per peer (accounts with relation peer/parent, or receiveRoutes), from its
//                     peer.route.update messages; dropped after their hold-down time unless renewed
//   best route        configured > local > learned (child > peer > parent, then shorter path,
//                     then account id), per prefix
//   forwarding table  what we advertise: the best route with our address prepended to its path;
//                     every change is an epoch in a log, so a peer can sync from any epoch
// A new routing table goes to every shard as a snapshot (the shards never stop for it).

import { createHash, createHmac, randomBytes } from 'node:crypto'
import { decodeRouteControl, decodeRouteUpdate, encodeRouteControl, encodeRouteUpdate, MODE_SYNC, type CcpRoute } from '../../codec/ccp'
import { peerProtocolPrepare } from '../../codec/peer_protocol'
import type { Config, RouteProtocol } from '../../config/schema'
import { decodeRouteBroadcast, encodeRouteBroadcast, encodeRouteBroadcastReply } from '../../codec/route_broadcast'
import type { Logger } from '../../log'
import type { AccountTable } from '../../config/account_table'

const RELATION_PRIORITY: Record<string, number> = { parent: 0, peer: 1, child: 2 }
const MAX_EPOCHS_PER_UPDATE = 50
/** How long routes we advertise stay valid at the receiver without a refresh (ms). */
const ROUTE_EXPIRY_MS = 45_000
const ZERO_TABLE_ID = Buffer.alloc(16)
const ZERO_AUTH = Buffer.alloc(32)
/** Route control to a peer that cannot be reached is retried after 1 s, 2 s, 4 s … up to 30 s. */
const CONTROL_RETRY_FIRST_MS = 1000
const CONTROL_RETRY_MAX_MS = 30_000

interface LearnedRoute {
  path: string[]
  auth: Buffer
  /** How it was learned: a CCP route update or a JSON route broadcast. */
  via: 'ccp' | 'json'
}

/** A route as the admin API shows it: where a prefix goes, and where that came from. */
export interface RouteView {
  prefix: string
  nextHop: string
  source: 'config' | 'admin' | 'node' | 'child' | 'parent' | 'ccp' | 'json'
  path: string[]
}

interface Receiver {
  routingTableId: Buffer
  epoch: number
  expiresAtMs: number
  routes: Map<string, LearnedRoute>
}

interface Sender {
  protocol: RouteProtocol
  syncing: boolean
  lastKnownEpoch: number
  timer: NodeJS.Timeout | null
}

interface Best {
  nextHop: number
  path: string[]
  auth: Buffer
}

interface LogEntry {
  prefix: string
  route: Best | null
}

/** Sends a peer-protocol prepare to an account over its own transport; resolves with the reply. */
export type ControlSender = (account: number, prepare: Uint8Array) => Promise<Uint8Array>

export class RouteManager {
  private readonly receivers = new Map<number, Receiver>()
  private readonly senders = new Map<number, Sender>()
  private local = new Map<string, Best>()
  private configured = new Map<string, number>()
  /** Configured prefixes that were set through the admin API (shown as source "admin"). */
  private fromAdmin = new Set<string>()
  private readonly forwarding = new Map<string, { epoch: number; route: Best | null }>()
  private readonly epochLog: (LogEntry | null)[] = []
  private readonly routingTableId = randomBytes(16)
  private readonly routingSecret = randomBytes(32)
  private readonly globalPrefix: string
  private sendRoutes: boolean[] = []
  private receiveRoutes: boolean[] = []
  private readonly connected = new Set<number>()
  private readonly controlRetries = new Map<number, NodeJS.Timeout>()
  private cleanupTimer: NodeJS.Timeout | null = null
  private stopped = false
  private tableVersion = 0
  private publishedVersion = -1

  constructor(
    private config: Config,
    private readonly accounts: AccountTable,
    private readonly sendControl: ControlSender,
    private readonly onTable: (entries: [string, number][]) => void,
    private readonly log: Logger,
    /** Configured prefixes set through the admin API. */
    fromAdmin: ReadonlySet<string> = new Set(),
  ) {
    this.globalPrefix = config.ilpAddress.split('.')[0]
    this.reconfigure(config, accounts.accounts.map((_, i) => i), fromAdmin)
  }

  /**
   * The accounts or configured routes changed (admin API, reload; at start, all of them):
   * the routes of the accounts in `changed` are made again from their config. A deleted
   * account's learned routes go with it; an account that still takes routes keeps what it
   * taught us. The shards get the new table at once.
   */
  reconfigure(config: Config, changed: readonly number[], fromAdmin: ReadonlySet<string>): void {
    const before = new Set([...this.local.keys(), ...this.configured.keys()])
    this.config = config
    this.fromAdmin = new Set(fromAdmin)
    const touched = new Set<string>(before)
    /** Connected accounts we now exchange routes with and did not before: they start as on link up. */
    const starting: number[] = []
    for (const i of changed) {
      const a = this.accounts.get(i)
      const live = this.accounts.isLive(i)
      this.sendRoutes[i] = live && (a.sendRoutes ?? a.relation !== 'child')
      this.receiveRoutes[i] = live && (a.receiveRoutes ?? a.relation !== 'child')
      const receiver = this.receivers.get(i)
      if (!this.receiveRoutes[i] && receiver !== undefined) {
        for (const prefix of receiver.routes.keys()) touched.add(prefix)
        this.receivers.delete(i)
        // A route control retry would ask for routes we no longer take.
        clearTimeout(this.controlRetries.get(i))
        this.controlRetries.delete(i)
      } else if (this.receiveRoutes[i] && receiver === undefined) {
        this.receivers.set(i, { routingTableId: ZERO_TABLE_ID, epoch: 0, expiresAtMs: 0, routes: new Map() })
        starting.push(i)
      }
      const sender = this.senders.get(i)
      if (sender !== undefined && (!this.sendRoutes[i] || sender.protocol !== a.routeProtocol)) {
        if (sender.timer !== null) clearTimeout(sender.timer)
        this.senders.delete(i)
      }
      if (this.sendRoutes[i] && !this.senders.has(i)) {
        this.senders.set(i, { protocol: a.routeProtocol, syncing: false, lastKnownEpoch: 0, timer: null })
        starting.push(i)
      }
    }
    this.configured = new Map()
    for (const route of config.routes) this.configured.set(route.targetPrefix, this.accounts.indexOfLive(route.peerId))
    this.local = new Map()
    this.local.set(config.ilpAddress, { nextHop: -1, path: [], auth: this.hmac(config.ilpAddress) })
    const parent = this.accounts.accounts.findIndex((a, i) => a.relation === 'parent' && this.accounts.isLive(i))
    if (parent >= 0 && !this.configured.has('')) this.local.set('', { nextHop: parent, path: [], auth: this.hmac('') })
    this.accounts.accounts.forEach((a, i) => {
      if (a.relation === 'child' && this.accounts.isLive(i)) {
        const address = `${config.ilpAddress}.${a.id}`
        this.local.set(address, { nextHop: i, path: [], auth: this.hmac(address) })
      }
    })
    for (const prefix of [...this.local.keys(), ...this.configured.keys()]) touched.add(prefix)
    for (const prefix of touched) this.updatePrefix(prefix)
    for (const i of new Set(starting)) if (this.connected.has(i)) this.peerConnected(i)
    if (this.cleanupTimer !== null) this.publish()
  }

  start(): void {
    this.cleanupTimer = setInterval(() => this.expireLearnedRoutes(Date.now()), 1000)
    this.cleanupTimer.unref()
    this.publish()
  }

  stop(): void {
    this.stopped = true
    for (const timer of this.controlRetries.values()) clearTimeout(timer)
    if (this.cleanupTimer !== null) clearInterval(this.cleanupTimer)
    for (const sender of this.senders.values()) if (sender.timer !== null) clearTimeout(sender.timer)
  }

  /** The routing table as the shards use it: prefix → account index (-1: the node itself). */
  table(): [string, number][] {
    const entries: [string, number][] = []
    for (const prefix of this.allPrefixes()) {
      const best = this.best(prefix)
      if (best !== null && best.nextHop >= 0) entries.push([prefix, best.nextHop])
    }
    return entries
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
      const via = this.receivers.get(best.nextHop)?.routes.get(prefix)?.via ?? 'ccp'
      views.push({ prefix, nextHop: id(best.nextHop), source: via, path: best.path })
    }
    return views
  }

  /**
   * A link to `account` came up. A CCP peer is asked for its routes (if we take routes from it)
   * and will ask for ours; a peer that takes JSON broadcasts gets ours from now on, unasked.
   */
  peerConnected(account: number): void {
    this.connected.add(account)
    const sender = this.senders.get(account)
    if (sender !== undefined && sender.protocol === 'json') {
      sender.syncing = true
      sender.lastKnownEpoch = 0
      this.scheduleUpdate(account, 0)
    }
    if (this.receiveRoutes[account] && this.accounts.get(account).routeProtocol === 'ccp') this.requestRoutes(account, CONTROL_RETRY_FIRST_MS)
  }

  /** A link went down: stop sending updates on it (the peer asks again when it comes back). */
  peerDisconnected(account: number): void {
    this.connected.delete(account)
    const retry = this.controlRetries.get(account)
    if (retry !== undefined) clearTimeout(retry)
    this.controlRetries.delete(account)
    const sender = this.senders.get(account)
    if (sender === undefined) return
    sender.syncing = false
    if (sender.timer !== null) clearTimeout(sender.timer)
    sender.timer = null
  }

  /**
   * Sends route control; if the peer cannot be reached (an HTTP peer that is not up yet, a link
   * that drops) asks again with backoff while the link counts as up. A reject is an answer: the
   * peer does not send us routes, and asking again would not change that.
   */
  private requestRoutes(account: number, retryMs: number): void {
    const receiver = this.receivers.get(account)
    if (receiver === undefined) return // no longer taking routes from it (reconfigure)
    const control = encodeRouteControl({ mode: MODE_SYNC, lastKnownRoutingTableId: receiver.routingTableId, lastKnownEpoch: receiver.epoch, features: [] })
    this.sendControl(account, peerProtocolPrepare('peer.route.control', control)).then((reply) => {
      if (reply[0] !== 13) this.log.info('peer rejected our route control request', { account: this.accounts.get(account).id })
    }, (err: Error) => {
      if (!this.connected.has(account) || this.stopped) return
      this.log.info('route control request failed; will ask again', { account: this.accounts.get(account).id, error: err.message, retryMs })
      const timer = setTimeout(() => {
        this.controlRetries.delete(account)
        if (this.connected.has(account)) this.requestRoutes(account, Math.min(retryMs * 2, CONTROL_RETRY_MAX_MS))
      }, retryMs)
      timer.unref()
      this.controlRetries.set(account, timer)
    })
  }

  /**
   * Handles peer.route.control / peer.route.update data from `account`. Returns null to fulfill,
   * or the reason to reject it with F00 (as ilp-connector does for peers it does not talk CCP with).
   */
  handle(account: number, destination: string, data: Uint8Array): string | null {
    if (destination === 'peer.route.control') {
      const sender = this.senders.get(account)
      if (sender === undefined) return 'we are configured not to send routes to you'
      const control = decodeRouteControl(data)
      sender.syncing = control.mode === MODE_SYNC
      sender.lastKnownEpoch = control.lastKnownRoutingTableId.equals(this.routingTableId) ? control.lastKnownEpoch : 0
      this.scheduleUpdate(account, 0)
      return null
    }
    const receiver = this.receivers.get(account)
    if (receiver === undefined) return 'we are configured not to receive routes from you'
    this.applyUpdate(account, receiver, decodeRouteUpdate(data))
    return null
  }

  /**
   * Handles a JSON `broadcast_routes` from `account` (any generation, ilp-connector v17 to v20): the routes
   * it lists replace what we had learned from it for those prefixes, the ones it withdraws are
   * dropped, and all of its routes live for its hold-down time. Returns the JSON reply, or the
   * reason to reject with F00; throws RouteBroadcastError (→ F01) for a malformed broadcast.
   */
  handleBroadcast(account: number, bytes: Uint8Array): Buffer | string {
    const broadcast = decodeRouteBroadcast(bytes)
    const receiver = this.receivers.get(account)
    if (receiver === undefined) return 'we are configured not to receive routes from you'
    receiver.expiresAtMs = Math.max(receiver.expiresAtMs, Date.now() + (broadcast.holdDownTimeMs ?? ROUTE_EXPIRY_MS))
    const changed: string[] = []
    for (const prefix of broadcast.withdrawnRoutes) if (receiver.routes.delete(prefix)) changed.push(prefix)
    for (const route of broadcast.newRoutes) {
      const learned = { prefix: route.prefix, path: route.path, auth: route.auth ?? ZERO_AUTH, props: [] }
      if (!this.acceptable(learned)) continue
      const known = receiver.routes.get(route.prefix)
      receiver.routes.set(route.prefix, { path: learned.path, auth: learned.auth, via: 'json' })
      if (known === undefined || known.path.join(' ') !== learned.path.join(' ')) changed.push(route.prefix)
    }
    this.learned(account, changed, broadcast.withdrawnRoutes.length)
    return encodeRouteBroadcastReply(broadcast.toEpoch)
  }

  private learned(account: number, changed: string[], withdrawn: number): void {
    if (changed.length === 0) return
    this.log.info('routes learned from peer', { account: this.accounts.get(account).id, changed: changed.join(','), withdrawn })
    for (const prefix of changed) this.updatePrefix(prefix)
    this.publish()
  }

  private applyUpdate(account: number, receiver: Receiver, update: ReturnType<typeof decodeRouteUpdate>): void {
    receiver.expiresAtMs = Math.max(receiver.expiresAtMs, Date.now() + update.holdDownTime)
    if (!receiver.routingTableId.equals(update.routingTableId)) {
      receiver.routingTableId = update.routingTableId
      receiver.epoch = 0
    }
    if (update.fromEpochIndex > receiver.epoch || receiver.epoch > update.toEpochIndex) return
    const changed: string[] = []
    for (const prefix of update.withdrawnRoutes) if (receiver.routes.delete(prefix)) changed.push(prefix)
    for (const route of update.newRoutes.filter((r) => this.acceptable(r))) {
      receiver.routes.set(route.prefix, { path: route.path, auth: route.auth, via: 'ccp' })
      changed.push(route.prefix)
    }
    receiver.epoch = update.toEpochIndex
    this.learned(account, changed, update.withdrawnRoutes.length)
  }

  private acceptable(route: CcpRoute): boolean {
    return route.prefix.startsWith(this.globalPrefix) && route.prefix.length > this.globalPrefix.length && !route.path.includes(this.config.ilpAddress)
  }

  private expireLearnedRoutes(nowMs: number): void {
    let any = false
    for (const [account, receiver] of this.receivers) {
      if (receiver.routes.size === 0 || receiver.expiresAtMs > nowMs) continue
      this.log.info('routes from peer expired (no update within their hold-down time)', { account: this.accounts.get(account).id, count: receiver.routes.size })
      const prefixes = [...receiver.routes.keys()]
      receiver.routes.clear()
      for (const prefix of prefixes) this.updatePrefix(prefix)
      any = true
    }
    if (any) this.publish()
  }

  private allPrefixes(): Set<string> {
    const prefixes = new Set<string>([...this.local.keys(), ...this.configured.keys()])
    for (const receiver of this.receivers.values()) for (const prefix of receiver.routes.keys()) prefixes.add(prefix)
    return prefixes
  }

  private best(prefix: string): Best | null {
    const configured = this.configured.get(prefix)
    if (configured !== undefined) return { nextHop: configured, path: [], auth: this.hmac(prefix) }
    const local = this.local.get(prefix)
    if (local !== undefined) return local
    let best: Best | null = null
    for (const [account, receiver] of this.receivers) {
      const route = receiver.routes.get(prefix)
      if (route === undefined) continue
      const candidate = { nextHop: account, path: route.path, auth: route.auth }
      if (best === null || this.better(candidate, best)) best = candidate
    }
    return best
  }

  private better(a: Best, b: Best): boolean {
    const wa = RELATION_PRIORITY[this.accounts.get(a.nextHop).relation]
    const wb = RELATION_PRIORITY[this.accounts.get(b.nextHop).relation]
    if (wa !== wb) return wa > wb
    if (a.path.length !== b.path.length) return a.path.length < b.path.length
    return this.accounts.get(a.nextHop).id < this.accounts.get(b.nextHop).id
  }

  /** Recomputes a prefix; records a new epoch if what we advertise for it changed. */
  private updatePrefix(prefix: string): void {
    this.tableVersion++
    const best = this.best(prefix)
    let advertised: Best | null = null
    if (best !== null) {
      advertised = { nextHop: best.nextHop, path: [this.config.ilpAddress, ...best.path], auth: sha256(best.auth) }
      const ownChild = prefix.startsWith(`${this.config.ilpAddress}.`) && advertised.path.length === 1
      if (!prefix.startsWith(this.globalPrefix) || prefix === this.globalPrefix || prefix === '' || ownChild) advertised = null
    }
    const current = this.forwarding.get(prefix)
    // A prefix we never advertised and still do not: nothing for peers to hear.
    if (current === undefined && advertised === null) return
    const currentHop = current?.route?.nextHop
    if (current !== undefined && currentHop === advertised?.nextHop && (current.route === null) === (advertised === null)) return
    const epoch = this.epochLog.length
    if (current !== undefined) this.epochLog[current.epoch] = null
    this.epochLog.push({ prefix, route: advertised })
    this.forwarding.set(prefix, { epoch, route: advertised })
    for (const account of this.senders.keys()) this.scheduleUpdate(account, 0)
  }

  private publish(): void {
    if (this.publishedVersion === this.tableVersion) return
    this.publishedVersion = this.tableVersion
    this.onTable(this.table())
  }

  private scheduleUpdate(account: number, delayMs: number): void {
    const sender = this.senders.get(account)!
    if (!sender.syncing) return
    if (sender.timer !== null) clearTimeout(sender.timer)
    sender.timer = setTimeout(() => {
      sender.timer = null
      this.sendUpdate(account, sender).finally(() => {
        if (sender.syncing && sender.timer === null) this.scheduleUpdate(account, this.config.routeBroadcastIntervalMs)
      })
    }, delayMs)
    sender.timer.unref()
  }

  private async sendUpdate(account: number, sender: Sender): Promise<void> {
    if (sender.protocol === 'json') return this.sendBroadcast(account, sender)
    const from = sender.lastKnownEpoch
    const slice = this.epochLog.slice(from, from + MAX_EPOCHS_PER_UPDATE)
    const newRoutes: CcpRoute[] = []
    const withdrawnRoutes: string[] = []
    for (const entry of slice) {
      if (entry === null) continue
      // Never advertise a route back to the peer it leads to.
      if (entry.route !== null && entry.route.nextHop !== account) newRoutes.push({ prefix: entry.prefix, path: entry.route.path, auth: entry.route.auth })
      else withdrawnRoutes.push(entry.prefix)
    }
    const to = from + slice.length
    const update = encodeRouteUpdate({
      routingTableId: this.routingTableId,
      currentEpochIndex: this.epochLog.length,
      fromEpochIndex: from,
      toEpochIndex: to,
      holdDownTime: ROUTE_EXPIRY_MS,
      speaker: this.config.ilpAddress,
      newRoutes,
      withdrawnRoutes,
    })
    sender.lastKnownEpoch = to
    try {
      const reply = await this.sendControl(account, peerProtocolPrepare('peer.route.update', update))
      if (reply[0] !== 13) throw new Error('route update rejected')
      if (to < this.epochLog.length) this.scheduleUpdate(account, 0)
    } catch (err) {
      sender.lastKnownEpoch = from
      this.log.debug('route update to peer failed', { account: this.accounts.get(account).id, error: (err as Error).message })
    }
  }

  /**
   * The JSON form has no sync protocol, so each broadcast carries our whole table (which also
   * refreshes the peer's hold-down), plus what was withdrawn since the last one it took.
   */
  private async sendBroadcast(account: number, sender: Sender): Promise<void> {
    const from = sender.lastKnownEpoch
    const to = this.epochLog.length
    const routes: { prefix: string; path: string[]; auth: Buffer }[] = []
    const withdrawn: string[] = []
    for (const [prefix, { epoch, route }] of this.forwarding) {
      if (route !== null && route.nextHop !== account) routes.push({ prefix, path: route.path, auth: route.auth })
      else if (epoch >= from) withdrawn.push(prefix)
    }
    const broadcast = encodeRouteBroadcast({
      speaker: this.config.ilpAddress,
      routingTableId: uuid(this.routingTableId),
      fromEpoch: from,
      toEpoch: to,
      holdDownTimeMs: ROUTE_EXPIRY_MS,
      routes,
      withdrawn,
    })
    try {
      const reply = await this.sendControl(account, broadcast)
      if (reply[0] !== 0x7b) throw new Error('route broadcast rejected')
      sender.lastKnownEpoch = to
    } catch (err) {
      this.log.debug('route broadcast to peer failed', { account: this.accounts.get(account).id, error: (err as Error).message })
    }
  }

  private hmac(prefix: string): Buffer {
    return createHmac('sha256', this.routingSecret).update(prefix, 'utf8').digest()
  }
}

function uuid(b: Buffer): string {
  const h = b.toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

function sha256(b: Buffer): Buffer {
  return createHash('sha256').update(b).digest()
}
