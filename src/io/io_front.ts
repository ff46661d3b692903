// One I/O thread's front: its uWebSockets.js app on the node's port (BTP, ILP over HTTP, SPSP, the
// shop, health), its outgoing links (dialled BTP, ILP over HTTP) and its port to the
// shards. With IO_THREADS=1 the main thread runs the one front; with more, each I/O worker thread
// runs its own (io/io_worker.ts) and the kernel spreads the connections over them (SO_REUSEPORT).
//
// What a front asks of the control plane (the route manager on the main thread) goes through
// ControlPlane, a direct call on the main thread or a request on a worker's RequestPort
// (io/io_worker.ts); packets never do.

import type { us_listen_socket } from 'uWebSockets.js'
import { T00_INTERNAL_ERROR } from '../codec/ilp_errors'
import { encodeReject } from '../codec/ilp_packet'
import { AccountTable, type AccountChange, type AccountSlots } from '../config/account_table'
import type { Config } from '../config/schema'
import { logger } from '../log'
import { SpspServer } from './payee/spsp_server'
import { LinkTable } from '../shared/link_table'
import { PeerReach } from '../shared/peer_reach'
import { ShopServer } from './shop/shop_server'
import type { Store } from '../store/balance_store'
import { BtpDialer } from './btp/btp_dialer'
import { BtpLinks } from './btp/btp_links'
import { BtpEndpoint } from './btp/btp_endpoint'
import { BtpSession } from './btp/btp_session'
import { BtpServer } from './btp/btp_server'
import { Connections } from './connections'
import { IlpHttpClient } from './http/http_ilp_client'
import { IlpHttpServer } from './http/http_ilp_server'
import { listenUws } from './listen'
import { HTTP2_NOT_REFUSED, http2NotRefusedReason, refuseHttp2PriorKnowledge } from './http/http2_refusal'
import type { UwsModule } from './uws'
import { ShardPort } from './shard_port'
import { registerMetrics } from './ops/metrics_endpoint'
import { registerAdmin } from './ops/admin_endpoint'
import type { AdminRequest, AdminResponse } from './ops/admin_endpoint'
import { IoCounters } from '../shared/packet_counters'
import { ConnectionCount } from '../shared/client_table'
import { ClientGate } from './client_gate'
import { refuseUnknownUpgrades } from './http/upgrade_refusal'

export interface ControlPlane {
  /** `account`'s first link on this thread came up / its last one went down. */
  linkUp(account: number): void
  linkDown(account: number): void
  /** A CCP prepare or JSON route broadcast from `account`: the control plane's answer (a reject if it fails; never rejects). */
  control(account: number, prepare: Uint8Array): Promise<Uint8Array>
  /** The Prometheus exposition of the whole node (made on the main thread). */
  metrics(): Promise<string>
  /** An /admin request's answer (made on the main thread). */
  admin(request: AdminRequest): Promise<AdminResponse>
}

type Send = (shard: number, account: number, pendingId: number, expiresAtS: number, ilp: Uint8Array) => void

export class IoFront {
  readonly port: ShardPort
  readonly connections: Connections
  private readonly accounts: AccountTable
  private readonly links: LinkTable
  private readonly btp: BtpEndpoint
  private readonly httpOut: IlpHttpClient
  private readonly dialer: BtpDialer
  private readonly btpLinks: BtpLinks
  private readonly btpServer: BtpServer
  private readonly httpIn: IlpHttpServer
  private readonly shop: ShopServer | null
  private readonly app: ReturnType<UwsModule['App']>
  /** How each account's prepares leave this thread, chosen once from its config. */
  private readonly sendTo: Send[]
  private listenSocket: us_listen_socket | null = null
  private readonly restartReject: Buffer

  constructor(
    private readonly config: Config,
    readonly io: number,
    linksSab: SharedArrayBuffer,
    /** Whether each ILP-over-HTTP peer answers, for the admin API (shared/peer_reach.ts). */
    reachSab: SharedArrayBuffer,
    limitsSab: SharedArrayBuffer,
    /** Every I/O thread's counts for /metrics (shared/packet_counters.ts); null with metrics off. */
    countersSab: SharedArrayBuffer | null,
    store: Store,
    private readonly uws: UwsModule,
    private readonly controlPlane: ControlPlane,
    /** The accounts now (the config's, or as changed since start). */
    slots?: AccountSlots,
  ) {
    const scope = (name: string) => logger(config.ioThreads > 1 ? `${name} io${io}` : name)
    this.accounts = new AccountTable(config, slots)
    this.links = new LinkTable(linksSab, config.maxAccounts, config.ioThreads)
    this.connections = new Connections(io, new ConnectionCount(limitsSab))
    // One gate for every surface of this thread, over the node's shared table of clients.
    const gate = new ClientGate(config, limitsSab, scope('clients'))
    this.restartReject = encodeReject(T00_INTERNAL_ERROR, config.ilpAddress, 'the node restarted its shards; try again')
    this.port = new ShardPort(io, this.accounts, {
      reply: (connId, requestId, account, ilp) => {
        if (!this.connections.reply(connId, requestId, ilp)) scope('node').debug('reply for a connection that has closed', { account: this.accounts.get(account).id })
      },
      forward: (shard, account, pendingId, expiresAtS, ilp) => this.sendTo[account](shard, account, pendingId, expiresAtS, ilp),
      control: (connId, requestId, account, prepare) => this.control(connId, requestId, account, prepare),
      settle: (shard, account, settlement) => this.btp.sendSettlement(shard, account, settlement),
      transferAnswer: (connId, requestId, account, answer) => {
        const target = this.connections.target(connId)
        if (target instanceof BtpSession) this.btp.answerTransfer(target, requestId, answer)
        else scope('btp').debug('answer to a settlement for a connection that has closed', { account: this.accounts.get(account).id })
      },
      flush: () => {
        this.btp.flush()
        this.httpOut.flush()
      },
    }, scope('shards'), config.ilpAddress, countersSab === null ? null : new IoCounters(countersSab, io, config.ioThreads, config.maxAccounts))

    const btpLinks = new BtpLinks(config.maxAccounts, this.links, io, config.maxLinksPerAccount,
      (account) => controlPlane.linkUp(account),
      (account) => controlPlane.linkDown(account))
    this.btp = new BtpEndpoint(config, this.accounts, this.port, this.connections, btpLinks, scope('btp'))
    const btpServer = new BtpServer(config, this.accounts, this.btp, this.connections, btpLinks, gate, scope('btp'))
    this.httpOut = new IlpHttpClient(config, this.accounts, this.port, new PeerReach(reachSab, config.maxAccounts), scope('http-out'))
    this.dialer = new BtpDialer(config, this.accounts, this.btp, btpLinks, scope('btp-out'), (account) => this.links.home(account) === io)
    // Payees have no link: their shards answer payments to them directly (shard/shard.ts, step 9).
    this.sendTo = this.accounts.accounts.map((_, i) => this.sendOf(i))
    this.btpLinks = btpLinks
    this.btpServer = btpServer

    const spsp = new SpspServer(config, store, gate, scope('spsp'))
    this.shop = config.shop === null ? null : new ShopServer(config, this.accounts, this.port, this.connections, store, scope('shop'))
    const httpIn = new IlpHttpServer(config, this.accounts, this.port, this.connections, gate)
    this.httpIn = httpIn
    const app = refuseUnknownUpgrades(uws.App())
    app.ws('/*', btpServer.behavior())
    httpIn.register(app)
    // 503 while the node takes no new work: its storage fails (it fails closed), or its shards restart.
    app.get('/health', (res) => {
      const reason = this.port.unavailable()
      if (reason === null) return void res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end('{"status":"ok"}')
      res.writeStatus('503 Service Unavailable').writeHeader('Content-Type', 'application/json').end(JSON.stringify({ status: 'unavailable', reason }))
    })
    spsp.register(app)
    // On the node's port unless they have a listener of their own (config.adminListen, node.ts).
    if (config.adminListen === null) {
      registerMetrics(app, config, 'node', () => controlPlane.metrics(), gate, scope('metrics'))
      registerAdmin(app, config.adminToken, (request) => controlPlane.admin(request), gate, scope('admin'))
    }
    this.shop?.register(app)
    app.any('/*', (res, req) => {
      if (req.getMethod() === 'get' && spsp.wantsSpsp(req)) return spsp.notFound(res)
      res.writeStatus('404 Not Found').writeHeader('Content-Type', 'text/plain').end('not found\n')
    })
    this.app = app
  }

  private sendOf(account: number): Send {
    if (this.httpOut.serves(account)) return (shard, peer, pendingId, expiresAtS, ilp) => this.httpOut.forward(shard, peer, pendingId, expiresAtS, ilp)
    return (shard, peer, pendingId, _expiresAtS, ilp) => this.btp.forward(shard, peer, pendingId, ilp)
  }

  /**
   * The main thread changed the accounts (control/ops/reconfigure.ts). Tokens are looked up in the
   * new table from the next auth message or request; the links of the accounts in `relink`
   * (deleted, or changed in how they connect) close, and only those; dialled links follow their
   * account's URL.
   */
  applyAccounts(changes: readonly AccountChange[], relink: readonly number[]): void {
    const changed = this.accounts.applyChanges(changes)
    this.btpServer.accountsChanged()
    this.httpIn.accountsChanged()
    for (const i of changed) {
      this.httpOut.accountChanged(i)
      this.sendTo[i] = this.sendOf(i)
      this.dialer.accountChanged(i)
    }
    for (const i of relink) this.btpLinks.closeAll(i, this.accounts.isLive(i) ? 'account changed' : 'account deleted')
  }

  /** Listens on the node's port (shared with the other I/O threads, or exclusively when alone). */
  async listen(port: number): Promise<number> {
    const listening = await listenUws(this.uws, this.app, this.config.host, port, this.config.ioThreads > 1)
    this.listenSocket = listening.socket
    if (!refuseHttp2PriorKnowledge(listening.socket)) logger('http-in').warn(HTTP2_NOT_REFUSED, { reason: http2NotRefusedReason() })
    return listening.port
  }

  /** Starts dialling this thread's outgoing BTP links. */
  start(): void {
    this.dialer.start()
  }

  /** The shards are restarting: everything waiting on them is answered T00 now. */
  shardsRestarting(): void {
    this.port.detach()
    this.connections.abandonAll(this.restartReject)
    this.httpOut.shardsRestarting()
    this.btp.flush()
  }

  /** Sends a control-plane prepare (CCP) to `account` over its link and resolves with the answer. */
  sendControl(account: number, prepare: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return this.httpOut.serves(account) ? this.httpOut.sendControl(account, prepare) : this.btp.sendControl(account, prepare, timeoutMs)
  }

  private control(connId: number, requestId: number, account: number, prepare: Uint8Array): void {
    // The ring's bytes are reused after this call: the control plane gets its own copy.
    void this.controlPlane.control(account, Buffer.from(prepare)).then((answer) => {
      this.connections.reply(connId, requestId, answer)
      this.btp.flush()
    })
  }

  /**
   * The node is shutting down: no new connections (the listen socket closes), no new prepares
   * (T00); the links stay up so that the prepares already taken are answered.
   */
  drain(): void {
    if (this.listenSocket !== null) this.uws.us_listen_socket_close(this.listenSocket)
    this.listenSocket = null
    this.port.refuseNewPrepares()
  }

  /** Stops taking connections and closes every link; the app closes last (see io_worker.ts). */
  async close(): Promise<void> {
    if (this.listenSocket !== null) this.uws.us_listen_socket_close(this.listenSocket)
    this.listenSocket = null
    await this.dialer.close()
    this.btp.close()
    this.port.stop()
    await this.httpOut.close()
    await this.shop?.close()
  }

  /** Closes every socket of this thread's app at once (a worker must, before its thread ends). */
  closeApp(): void {
    ;(this.app as unknown as { close(): void }).close()
  }
}
