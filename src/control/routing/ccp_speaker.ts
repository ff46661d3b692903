// The CCP speaker: the part of routing that talks to peers, with CCP (codec/ccp.ts, the
// "Connector-to-Connector Protocol" draft as ilp-connector@23 speaks it) or the older JSON route
// broadcasts (codec/route_broadcast.ts). It owns everything with a clock or a socket: sync mode
// and epochs per peer, hold-down expiry, the retries of route control, the update timers. The
// routes themselves live in the route table (route_table.ts): learned ones go in, and what we
// advertise comes out of its forwarding log.
//
//   receiving   per account we take routes from: its routing table id, the epoch we have reached,
//               and when its routes expire unless renewed (its hold-down time)
//   sending     per account we give routes to: whether it syncs (asked with route control; a JSON
//               peer always does while linked), and the epoch it has reached; an update goes out
//               at once when the log grows, else every routeBroadcastInterval
// A link coming up starts both directions; a link going down stops our updates on it.

import { randomBytes } from 'node:crypto'
import { decodeRouteControl, decodeRouteUpdate, encodeRouteControl, encodeRouteUpdate, MODE_SYNC, type CcpRoute } from '../../codec/ccp'
import { peerProtocolPrepare } from '../../codec/peer_protocol'
import { decodeRouteBroadcast, encodeRouteBroadcast, encodeRouteBroadcastReply } from '../../codec/route_broadcast'
import type { AccountTable } from '../../config/account_table'
import type { Config, RouteProtocol } from '../../config/schema'
import type { Logger } from '../../log'
import type { RouteTable } from './route_table'

const MAX_EPOCHS_PER_UPDATE = 50
/** How long routes we advertise stay valid at the receiver without a refresh (ms). */
const ROUTE_EXPIRY_MS = 45_000
const ZERO_TABLE_ID = Buffer.alloc(16)
/**
 * The longest a peer's hold-down time keeps its routes without an update: a peer may ask for
 * more (CCP's u32 allows 49 days, JSON any number), which would keep its routes for good.
 */
const MAX_HOLD_DOWN_MS = 5 * 60_000
const ZERO_AUTH = Buffer.alloc(32)
/** Route control to a peer that cannot be reached is retried after 1 s, 2 s, 4 s … up to 30 s. */
const CONTROL_RETRY_FIRST_MS = 1000
const CONTROL_RETRY_MAX_MS = 30_000

/** Sends a peer-protocol prepare to an account over its own transport; resolves with the reply. */
export type ControlSender = (account: number, prepare: Uint8Array) => Promise<Uint8Array>

interface Receiver {
  routingTableId: Buffer
  epoch: number
  expiresAtMs: number
}

interface Sender {
  protocol: RouteProtocol
  syncing: boolean
  lastKnownEpoch: number
  timer: NodeJS.Timeout | null
}

/** What the speaker needs from the node. */
export interface SpeakerDeps {
  accounts: AccountTable
  table: RouteTable
  sendControl: ControlSender
  /** Routes learned or expired changed the table (the composition publishes it to the shards). */
  onLearned: () => void
  log: Logger
}

/** Which accounts a reconfiguration stopped taking routes from, and which now start exchanging them. */
export interface SpeakerChanges {
  stopped: number[]
  starting: number[]
}

export class CcpSpeaker {
  private readonly receivers = new Map<number, Receiver>()
  private readonly senders = new Map<number, Sender>()
  private readonly routingTableId = randomBytes(16)
  private sendRoutes: boolean[] = []
  private receiveRoutes: boolean[] = []
  private readonly connected = new Set<number>()
  private readonly controlRetries = new Map<number, NodeJS.Timeout>()
  private cleanupTimer: NodeJS.Timeout | null = null
  private stopped = false

  constructor(private config: Config, private readonly d: SpeakerDeps) {}

  /**
   * The accounts in `changed` are configured anew: whether we send routes to each and take
   * routes from it. Returns the accounts we no longer take routes from (their learned routes
   * are for the table to drop) and those that now start exchanging routes (see startExchanges).
   */
  reconfigure(config: Config, changed: readonly number[]): SpeakerChanges {
    this.config = config
    const stopped: number[] = []
    const starting: number[] = []
    for (const i of changed) {
      const a = this.d.accounts.get(i)
      const live = this.d.accounts.isLive(i)
      this.sendRoutes[i] = live && (a.sendRoutes ?? a.relation !== 'child')
      this.receiveRoutes[i] = live && (a.receiveRoutes ?? a.relation !== 'child')
      const receiver = this.receivers.get(i)
      if (!this.receiveRoutes[i] && receiver !== undefined) {
        stopped.push(i)
        this.receivers.delete(i)
        // A route control retry would ask for routes we no longer take.
        clearTimeout(this.controlRetries.get(i))
        this.controlRetries.delete(i)
      } else if (this.receiveRoutes[i] && receiver === undefined) {
        this.receivers.set(i, { routingTableId: ZERO_TABLE_ID, epoch: 0, expiresAtMs: 0 })
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
    return { stopped, starting }
  }

  /** Accounts that now exchange routes with us and are linked already start as on link up. */
  startExchanges(accounts: readonly number[]): void {
    for (const i of new Set(accounts)) if (this.connected.has(i)) this.peerConnected(i)
  }

  /** Starts the hold-down sweep of learned routes. */
  start(): void {
    this.cleanupTimer = setInterval(() => this.expireLearnedRoutes(Date.now()), 1000)
    this.cleanupTimer.unref()
  }

  stop(): void {
    this.stopped = true
    for (const timer of this.controlRetries.values()) clearTimeout(timer)
    if (this.cleanupTimer !== null) clearInterval(this.cleanupTimer)
    for (const sender of this.senders.values()) if (sender.timer !== null) clearTimeout(sender.timer)
  }

  /** The table's forwarding log grew: every peer that syncs from us hears of it now. */
  advertise(): void {
    for (const account of this.senders.keys()) this.scheduleUpdate(account, 0)
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
    if (this.receiveRoutes[account] && this.d.accounts.get(account).routeProtocol === 'ccp') this.requestRoutes(account, CONTROL_RETRY_FIRST_MS)
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
    // Refused before it is read: a child (any number of them) must not make the node parse JSON.
    const receiver = this.receivers.get(account)
    if (receiver === undefined) return 'we are configured not to receive routes from you'
    const broadcast = decodeRouteBroadcast(bytes)
    receiver.expiresAtMs = Math.max(receiver.expiresAtMs, Date.now() + holdDownOf(broadcast.holdDownTimeMs ?? ROUTE_EXPIRY_MS))
    const routes = broadcast.newRoutes.map((route) => ({ prefix: route.prefix, path: route.path, auth: route.auth ?? ZERO_AUTH }))
    this.learn(account, broadcast.withdrawnRoutes, routes, 'json')
    return encodeRouteBroadcastReply(broadcast.toEpoch)
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
    this.d.sendControl(account, peerProtocolPrepare('peer.route.control', control)).then((reply) => {
      if (reply[0] !== 13) this.d.log.info('peer rejected our route control request', { account: this.d.accounts.get(account).id })
    }, (err: Error) => {
      if (!this.connected.has(account) || this.stopped) return
      this.d.log.info('route control request failed; will ask again', { account: this.d.accounts.get(account).id, error: err.message, retryMs })
      const timer = setTimeout(() => {
        this.controlRetries.delete(account)
        if (this.connected.has(account)) this.requestRoutes(account, Math.min(retryMs * 2, CONTROL_RETRY_MAX_MS))
      }, retryMs)
      timer.unref()
      this.controlRetries.set(account, timer)
    })
  }

  /**
   * A CCP route update is taken if it continues from the epoch we have reached (a new routing
   * table id starts again from 0); else it is ignored, and the peer's next update covers it.
   */
  private applyUpdate(account: number, receiver: Receiver, update: ReturnType<typeof decodeRouteUpdate>): void {
    receiver.expiresAtMs = Math.max(receiver.expiresAtMs, Date.now() + holdDownOf(update.holdDownTime))
    if (!receiver.routingTableId.equals(update.routingTableId)) {
      receiver.routingTableId = update.routingTableId
      receiver.epoch = 0
    }
    if (update.fromEpochIndex > receiver.epoch || receiver.epoch > update.toEpochIndex) return
    receiver.epoch = update.toEpochIndex
    this.learn(account, update.withdrawnRoutes, update.newRoutes, 'ccp')
  }

  /** Hands routes from `account` to the table; peers and shards hear of what changed. */
  private learn(account: number, withdrawn: readonly string[], routes: readonly CcpRoute[], via: 'ccp' | 'json'): void {
    const epoch = this.d.table.epoch
    const changed = this.d.table.learn(account, withdrawn, routes, via)
    if (this.d.table.epoch !== epoch) this.advertise()
    if (changed.length === 0) return
    this.d.log.info('routes learned from peer', { account: this.d.accounts.get(account).id, changed: changed.join(','), withdrawn: withdrawn.length })
    this.d.onLearned()
  }

  private expireLearnedRoutes(nowMs: number): void {
    let any = false
    for (const [account, receiver] of this.receivers) {
      const count = this.d.table.learnedCount(account)
      if (count === 0 || receiver.expiresAtMs > nowMs) continue
      this.d.log.info('routes from peer expired (no update within their hold-down time)', { account: this.d.accounts.get(account).id, count })
      const epoch = this.d.table.epoch
      this.d.table.forget(account)
      if (this.d.table.epoch !== epoch) this.advertise()
      any = true
    }
    if (any) this.d.onLearned()
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

  /** Sends a CCP peer the next epochs it has not had (at most MAX_EPOCHS_PER_UPDATE; more follow at once). */
  private async sendUpdate(account: number, sender: Sender): Promise<void> {
    if (sender.protocol === 'json') return this.sendBroadcast(account, sender)
    const from = sender.lastKnownEpoch
    const slice = this.d.table.logSince(from, MAX_EPOCHS_PER_UPDATE)
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
      currentEpochIndex: this.d.table.epoch,
      fromEpochIndex: from,
      toEpochIndex: to,
      holdDownTime: ROUTE_EXPIRY_MS,
      speaker: this.config.ilpAddress,
      newRoutes,
      withdrawnRoutes,
    })
    sender.lastKnownEpoch = to
    try {
      const reply = await this.d.sendControl(account, peerProtocolPrepare('peer.route.update', update))
      if (reply[0] !== 13) throw new Error('route update rejected')
      if (to < this.d.table.epoch) this.scheduleUpdate(account, 0)
    } catch (err) {
      sender.lastKnownEpoch = from
      this.d.log.debug('route update to peer failed', { account: this.d.accounts.get(account).id, error: (err as Error).message })
    }
  }

  /**
   * The JSON form has no sync protocol, so each broadcast carries our whole table (which also
   * refreshes the peer's hold-down), plus what was withdrawn since the last one it took.
   */
  private async sendBroadcast(account: number, sender: Sender): Promise<void> {
    const from = sender.lastKnownEpoch
    const to = this.d.table.epoch
    const routes: { prefix: string; path: string[]; auth: Buffer }[] = []
    const withdrawn: string[] = []
    for (const [prefix, { epoch, route }] of this.d.table.advertised()) {
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
      const reply = await this.d.sendControl(account, broadcast)
      if (reply[0] !== 0x7b) throw new Error('route broadcast rejected')
      sender.lastKnownEpoch = to
    } catch (err) {
      this.d.log.debug('route broadcast to peer failed', { account: this.d.accounts.get(account).id, error: (err as Error).message })
    }
  }
}

function uuid(b: Buffer): string {
  const h = b.toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

/** A peer's hold-down time, within 0 … MAX_HOLD_DOWN_MS. */
export function holdDownOf(ms: number): number {
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), MAX_HOLD_DOWN_MS) : MAX_HOLD_DOWN_MS
}
