// Routing on the main thread, as the rest of the node sees it: one object that joins the route
// table (route_table.ts: local, configured and learned routes, best-route selection, the
// forwarding log) and the CCP speaker (ccp_speaker.ts: route control and updates with peers,
// JSON broadcasts, hold-down, retries). The two are apart so that the table can be tested
// without peers or timers; this facade keeps one entry point for node.ts and control/ops/.
// A new routing table goes to every shard as a snapshot (the shards never stop for it).

import type { AccountTable } from '../../config/account_table'
import type { Config } from '../../config/schema'
import type { Logger } from '../../log'
import { CcpSpeaker, type ControlSender } from './ccp_speaker'
import { RouteTable, type RouteView } from './route_table'

export type { ControlSender } from './ccp_speaker'
export type { RouteView } from './route_table'

export class RouteManager {
  private readonly routes: RouteTable
  private readonly speaker: CcpSpeaker
  private started = false
  private publishedVersion = -1

  constructor(
    config: Config,
    private readonly accountsNow: AccountTable,
    sendControl: ControlSender,
    /** The entries that changed (account -1: none), or with `replace` the whole table. */
    private readonly onTable: (entries: [string, number][], replace: boolean) => void,
    log: Logger,
    /** Configured prefixes set through the admin API. */
    fromAdmin: ReadonlySet<string> = new Set(),
  ) {
    this.routes = new RouteTable(accountsNow, config.ilpAddress)
    this.speaker = new CcpSpeaker(config, { accounts: accountsNow, table: this.routes, sendControl, onLearned: () => this.publish(), log })
    this.reconfigure(config, null, fromAdmin)
  }

  /**
   * The accounts or configured routes changed (admin API, reload; at start, all of them):
   * the routes of the accounts in `changed` are made again from their config. A deleted
   * account's learned routes go with it; an account that still takes routes keeps what it
   * taught us. The shards get the new table at once (once started).
   *   1. the speaker settles whom it sends routes to and takes them from;
   *   2. the table drops what it no longer takes and recomputes the touched prefixes;
   *   3. peers hear of the new epochs, and linked accounts new to routing start as on link up.
   */
  reconfigure(config: Config, changed: readonly number[] | null, fromAdmin: ReadonlySet<string>): void {
    const { stopped, starting } = this.speaker.reconfigure(config, changed ?? this.accountsNow.accounts.map((_, i) => i))
    const epoch = this.routes.epoch
    this.routes.reconfigure(config, fromAdmin, stopped, changed)
    if (this.routes.epoch !== epoch) this.speaker.advertise()
    this.speaker.startExchanges(starting)
    if (this.started) this.publish()
  }

  start(): void {
    this.started = true
    this.speaker.start()
    this.publish()
  }

  stop(): void {
    this.speaker.stop()
  }

  /** The routing table as the shards use it: prefix → account index (-1: the node itself). */
  table(): [string, number][] {
    return this.routes.entries()
  }

  /** The whole table with each route's origin (for GET /admin/routes), by prefix. */
  describe(): RouteView[] {
    return this.routes.describe()
  }

  /** A link to `account` came up (see CcpSpeaker.peerConnected). */
  peerConnected(account: number): void {
    this.speaker.peerConnected(account)
  }

  /** A link went down: stop sending updates on it (the peer asks again when it comes back). */
  peerDisconnected(account: number): void {
    this.speaker.peerDisconnected(account)
  }

  /** peer.route.control / peer.route.update data from `account`: null to fulfill, or why to reject (F00). */
  handle(account: number, destination: string, data: Uint8Array): string | null {
    return this.speaker.handle(account, destination, data)
  }

  /** A JSON broadcast_routes from `account`: the JSON reply, or why to reject (F00); throws RouteBroadcastError (F01). */
  handleBroadcast(account: number, bytes: Uint8Array): Buffer | string {
    return this.speaker.handleBroadcast(account, bytes)
  }

  /**
   * Hands the shards what changed in the table since they last got it: the whole table the
   * first time, then only the entries recomputed.
   */
  private publish(): void {
    if (this.publishedVersion === this.routes.version) return
    const first = this.publishedVersion < 0
    this.publishedVersion = this.routes.version
    const changes = this.routes.takeChanges()
    if (first) this.onTable(this.routes.entries(), true)
    else this.onTable(changes, false)
  }
}
