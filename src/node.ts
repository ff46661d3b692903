// Assembles a node: durable store and recovery, the control plane (routes, supervision) on the
// main thread, the shards, and the I/O fronts that carry BTP and HTTP on one port (on the main
// thread, or on IO_THREADS worker threads). `startNode` is what main.ts, the tests and the benches run.

import { randomBytes } from 'node:crypto'
import { ADDRESS_FROM_PARENT, type Config } from './config/schema'
import { developmentTokensIn, DEVELOPMENT_TOKENS } from './config/load'
import { AccountTable, shardOfAccount } from './config/account_table'
import { configureLog, logger, type Logger } from './log'
import type { ControlPlane } from './io/io_front'
import { chooseLayout } from './control/threads/layout'
import { LinkTable } from './shared/link_table'
import { PeerReach } from './shared/peer_reach'
import { createSharedLimits } from './shared/client_table'
import { ClientGate } from './io/client_gate'
import { refuseUnknownUpgrades } from './io/http/upgrade_refusal'
import { ioCountersBytes } from './shared/packet_counters'
import { DataDirUnusableError, lockDataDir, type DataDirLock } from './store/data_dir_lock'
import { createStorageHealth, StorageHealth, StorageReserve } from './store/storage_health'
import { StorageWatch } from './control/ops/storage_watch'
import { openStore, payeeSecret, readBalance, recoverOnStart, type Store } from './store/balance_store'
import { withAddressFromParent } from './control/routing/ildcp_client'
import { isRouteBroadcast, RouteBroadcastError } from './codec/route_broadcast'
import { claimFreePort, listenUws, PortInUseError } from './io/listen'
import { HTTP2_NOT_REFUSED, http2NotRefusedReason, refuseHttp2PriorKnowledge } from './io/http/http2_refusal'
import { metricsAccess, registerMetrics } from './io/ops/metrics_endpoint'
import { registerAdmin } from './io/ops/admin_endpoint'
import { loadUws, type UwsModule } from './io/uws'
import { RouteManager } from './control/routing/route_manager'
import { RateFeed } from './control/rates/rate_feed'
import { Metrics } from './control/ops/metrics'
import { AdminApi } from './control/ops/admin_api'
import { SettlementLogPruner } from './control/ops/settlement_log_pruner'
import { Reconfigurer, startingConfig } from './control/ops/reconfigure'
import type { Outcome } from './io/ops/admin_errors'
import { adminRoutePrefixes } from './control/ops/config_overlay'
import { readHoldsOf } from './shared/holds'
import { encodeFulfill, encodeReject, PrepareView } from './codec/ilp_packet'
import { F00_BAD_REQUEST, F01_INVALID_PACKET, T00_INTERNAL_ERROR } from './codec/ilp_errors'
import { PEER_PROTOCOL_CONDITION, PEER_PROTOCOL_FULFILLMENT } from './codec/peer_protocol'

export interface RunningNode {
  /** The config running now (accounts and routes change with the admin API and reloads). */
  readonly config: Config
  /** The port actually listened on (useful with PORT=0). */
  readonly port: number
  /** The admin API's own port (ADMIN_PORT), or null when it answers on `port`. */
  readonly adminPort: number | null
  /** Committed balance of an account as stored (positive = the peer owes this node). */
  balance(accountId: string): bigint
  stop(): Promise<void>
  /**
   * Graceful shutdown, part one: stops taking connections and prepares (new prepares get T00)
   * and waits, at most `timeoutMs`, until every prepare already taken has been answered and
   * every ring is empty. Resolves with what was still in flight (0 when drained); stop() follows.
   */
  drain(timeoutMs: number): Promise<number>
  /**
   * SIGHUP, POST /admin/reload: reads CONFIG again and applies its accounts and routes; a file
   * that does not parse changes nothing. Resolves with the admin API's answer.
   */
  reload(): Promise<Outcome>
  /** Resolves if the node stops itself on a fatal error (its shards could not start). */
  readonly failed: Promise<string>
  /** Restarts of the shards after a thread died; and fault injection for tests. */
  readonly shards: { restarts(): number; terminate(index: number): Promise<void> }
  /**
   * The I/O thread holding an account's newest BTP link (-1: none); and fault injection for
   * tests: an I/O worker thread fails as a bug in it would (IO_THREADS > 1).
   */
  readonly ioThreads: { linkOf(accountId: string): number; crash(index: number): void }
}

export async function startNode(configured: Config): Promise<RunningNode> {
  configureLog(configured.logLevel, configured.logFormat)
  const uws = loadUws()
  // One node per data directory and port: both are checked before anything else is touched.
  const lock = lockDataDir(configured.dataDir)
  try {
    if (configured.port !== 0) await claimFreePort(configured.host, configured.port)
    return await startLocked(configured, uws, lock)
  } catch (err) {
    lock.release()
    throw err
  }
}

async function startLocked(configured: Config, uws: UwsModule, lock: DataDirLock): Promise<RunningNode> {
  const log = logger('node')
  const { config, store, health, storage, overlay } = await openStorage(configured, log)
  const tables = createTables(config)
  let reportFatal: (reason: string) => void = () => {}
  const failed = new Promise<string>((resolve) => { reportFatal = resolve })
  const fatal = (reason: string) => {
    log.error('fatal: stopping the node', { reason })
    reportFatal(reason)
  }
  const planes = await startPlanes(config, store, uws, tables, health, overlay, fatal)
  const { io, dataPlane, routes, changes } = planes
  // Before the I/O threads: a port that cannot be had stops start-up while nothing listens yet.
  const adminListener = config.adminListen === null ? null : await listenAdmin(config, uws, planes.plane, tables.limits)
  const port = await io.listen(dataPlane.currentWiring())
  routes.start()
  storage.start()
  // Accounts reached over ILP-over-HTTP have no link to come up: they are up from the start.
  changes.start()
  const storageHealth = new StorageHealth(health)
  const pruner = new SettlementLogPruner(store, config.settlementLogRetentionMs, logger('settlements'), Date.now, () => storageHealth.ok)
  pruner.start()
  warnOfWeakTokens(config, log)
  log.info('metrics', { access: metricsAccess(config) })
  log.info('ilp-node listening', {
    address: config.ilpAddress, host: config.host, port, ioThreads: config.ioThreads, shards: config.shards,
    accounts: config.accounts.length, durability: config.durability,
  })
  const stopAll = async () => {
    routes.stop()
    planes.rates.stop()
    storage.stop()
    pruner.stop()
    adminListener?.close()
    await io.stop()
    await dataPlane.stop()
    await store.root.close()
    lock.release()
    log.info('ilp-node stopped')
  }
  return runningNode(planes, tables, store, port, adminListener?.port ?? null, failed, stopAll)
}

/**
 * The store, recovered, and the config the node starts with: its address (asked of the parent
 * when not set), the admin API's changes laid over the file, the payees' secrets. Fails closed
 * from the start: a node that cannot keep its reserve, or cannot write, does not take traffic
 * (exit 73), rather than answer /health and die at its first commit.
 */
async function openStorage(configured: Config, log: Logger) {
  let config = configured.ilpAddress === ADDRESS_FROM_PARENT ? await withAddressFromParent(configured, logger('ildcp')) : configured
  const health = createStorageHealth()
  const store = storageStep(config.dataDir, 'cannot open the store', () => openStore(config.dataDir, config.durability))
  const reserve = new StorageReserve(config.dataDir, config.storageReserveBytes)
  try {
    reserve.take()
  } catch (err) {
    throw new DataDirUnusableError(config.dataDir, err as Error, `no room for the storage reserve of ${config.storageReserveBytes} bytes (limits.storageReserveBytes): free some space`)
  }
  log.info('storage reserve taken', { bytes: config.storageReserveBytes, where: reserve.where })
  const starting = startingConfig(config, store, logger('admin'))
  config = starting.config
  storageStep(config.dataDir, 'cannot write the store', () => {
    recover(config, store)
    store.root.transactionSync(() => store.meta.put('started-at', Buffer.from(new Date().toISOString(), 'latin1')))
  })
  config = storageStep(config.dataDir, 'cannot write the store', () => withPayeeSecrets(config, store))
  return { config, store, health, storage: new StorageWatch(health, reserve, logger('storage')), overlay: starting.overlay }
}

/** The tables every thread shares: accounts, links, peers' reach, client limits, I/O counters. */
function createTables(config: Config) {
  const accounts = new AccountTable(config)
  const links = LinkTable.create(accounts.capacity, config.ioThreads)
  return {
    accounts,
    links,
    linkTable: new LinkTable(links, accounts.capacity, config.ioThreads),
    reach: PeerReach.create(accounts.capacity),
    limits: createSharedLimits(),
    ioCounters: config.metrics.enabled ? new SharedArrayBuffer(ioCountersBytes(config.ioThreads, config.maxAccounts)) : null,
    // A peer's link counts as up from its first link on any I/O thread to its last.
    linkCount: new Int32Array(accounts.capacity),
  }
}

type Tables = ReturnType<typeof createTables>

/**
 * The control plane (routes, rates, changes, the admin API and metrics) and the data plane (the
 * shards and the sockets, wherever the layout puts them: chosen once, in control/threads/layout.ts). The
 * shards run when this returns; the sockets take connections only at io.listen.
 */
async function startPlanes(config: Config, store: Store, uws: UwsModule, t: Tables, health: SharedArrayBuffer, overlay: ReturnType<typeof startingConfig>['overlay'], fatal: (reason: string) => void) {
  const { accounts, linkCount } = t
  let metrics: Metrics | null = null
  let admin: AdminApi | null = null
  const plane: ControlPlane = {
    linkUp: (account) => { if (++linkCount[account] === 1) routes.peerConnected(account) },
    linkDown: (account) => { if (--linkCount[account] === 0) routes.peerDisconnected(account) },
    // Never rejects: a failure is answered T00 here, for the main thread's front and the workers' alike.
    control: async (account, prepare) => {
      try {
        return answerControl(config, routes, account, prepare)
      } catch (err) {
        logger('routing').warn('routing message could not be answered', { account: accounts.get(account).id, error: (err as Error).message })
        return encodeReject(T00_INTERNAL_ERROR, config.ilpAddress, 'control plane unavailable')
      }
    },
    metrics: () => metrics === null ? Promise.reject(new Error('metrics are off')) : metrics.text(),
    admin: async (request) => admin!.handle(request),
  }
  const { io, shards: dataPlane } = chooseLayout({ config, store, uws, links: t.links, reach: t.reach, limits: t.limits, ioCounters: t.ioCounters, health, plane, fatal })
  const routes = new RouteManager(config, accounts,
    (account, prepare) => io.sendControl(account, prepare, CONTROL_TIMEOUT_MS),
    (entries, replace) => dataPlane.setRoutes(entries, replace),
    logger('routing'),
    adminRoutePrefixes(overlay))
  const rates = new RateFeed(config, (snapshot) => dataPlane.setRates(snapshot), logger('rates'))
  await dataPlane.start(routes.table(), rates.current)
  // The first fetch of fetched rates before traffic starts (bounded; a failure is logged).
  await rates.start()
  const changes = new Reconfigurer(config, overlay, {
    store, accounts, shards: dataPlane, io, routes, rates,
    holdsOf: (account) => readHoldsOf(dataPlane.currentWiring().holds, accounts.capacity, account),
    linkUp: (account) => plane.linkUp(account),
    linkDown: (account) => plane.linkDown(account),
    log: logger('admin'),
  })
  admin = new AdminApi({
    config, accounts, store, wiring: () => dataPlane.currentWiring(), links: t.linkTable, linkCount, reach: new PeerReach(t.reach, accounts.capacity), routes, changes, rates,
    adjust: (account, amount, key, reason) => dataPlane.adjust(accounts.ownerShard[account], account, amount, key, reason),
  })
  if (config.metrics.enabled) metrics = new Metrics({ config, accounts, store, wiring: () => dataPlane.currentWiring(), limits: t.limits, ioCounters: t.ioCounters })
  return { plane, io, dataPlane, routes, rates, changes }
}

/** What startNode hands its caller: the running node's views, its drain and its stop. */
function runningNode(
  planes: Awaited<ReturnType<typeof startPlanes>>, t: Tables, store: Store, port: number, adminPort: number | null, failed: Promise<string>, stopAll: () => Promise<void>,
): RunningNode {
  const { io, dataPlane, changes } = planes
  let stopped = false
  return {
    get config() {
      return changes.current
    },
    reload: () => changes.reload(),
    port,
    adminPort,
    failed,
    async drain(timeoutMs) {
      io.drain()
      const deadline = Date.now() + timeoutMs
      // Idle twice in a row, a tick apart: a reply read from a ring is on its socket by then.
      let idleTicks = 0
      for (;;) {
        const inFlight = dataPlane.inFlight()
        idleTicks = inFlight === 0 ? idleTicks + 1 : 0
        if (idleTicks >= 2 || Date.now() >= deadline) return inFlight
        await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS))
      }
    },
    balance: (accountId) => readBalance(store, accountId),
    shards: { restarts: () => dataPlane.restarts, terminate: (index) => dataPlane.terminateShard(index) },
    ioThreads: {
      linkOf: (accountId) => t.linkTable.linkedThread(t.accounts.indexOfLive(accountId)),
      crash: (index) => io.crash(index),
    },
    async stop() {
      if (stopped) return
      stopped = true
      await stopAll()
    },
  }
}

/** Tokens this short fall to guessing sooner (README: "Security"); they still work, as ilp-connector's configs need. */
const SHORT_TOKEN = 16

/**
 * One warning for the README's development tokens (their length is the least of their faults),
 * then one per account for any other short token.
 */
function warnOfWeakTokens(config: Config, log: Logger): void {
  const development = developmentTokensIn(config)
  if (development.length > 0) {
    const loopback = ['127.0.0.1', 'localhost', '::1'].includes(config.host)
    if (loopback) log.warn('running with the development tokens from the README: fine for trying the node out; set your own tokens for real use', { usedBy: development.join(',') })
    else log.warn('the development tokens from the README are in use on an address beyond loopback: anyone who can reach the node can use them', { usedBy: development.join(','), host: config.host })
  }
  for (const a of config.accounts) {
    const short = [['btp.token', a.btpToken], ['http.incomingToken', a.httpIncomingToken]]
      .filter(([, token]) => token !== null && token.length < SHORT_TOKEN && !DEVELOPMENT_TOKENS.has(token)).map(([field]) => field)
    if (short.length > 0) log.warn(`account token shorter than ${SHORT_TOKEN} characters: use a long random one (e.g. openssl rand -hex 32)`, { account: a.id, fields: short.join(',') })
  }
}

/**
 * The admin API and /metrics on a listener of their own (ADMIN_HOST:ADMIN_PORT), on the main
 * thread, which makes their answers anyway.
 */
async function listenAdmin(config: Config, uws: UwsModule, plane: ControlPlane, limits: SharedArrayBuffer): Promise<{ port: number; close(): void }> {
  const app = refuseUnknownUpgrades(uws.App())
  // The same table of clients as the node's port: a guesser gets no fresh tries here.
  const gate = new ClientGate(config, limits, logger('clients'))
  registerMetrics(app, config, 'admin', () => plane.metrics(), gate, logger('metrics'))
  registerAdmin(app, config.adminToken, (request) => plane.admin(request), gate, logger('admin'))
  app.any('/*', (res) => { res.writeStatus('404 Not Found').writeHeader('Content-Type', 'text/plain').end('not found\n') })
  const { host, port } = config.adminListen!
  const listening = await listenUws(uws, app, host, port, false).catch((err: Error) => {
    throw err instanceof PortInUseError ? new PortInUseError(`ADMIN_PORT ${port} on ${host} is in use by another process; stop it or choose another ADMIN_PORT`) : err
  })
  if (!refuseHttp2PriorKnowledge(listening.socket)) logger('admin').warn(HTTP2_NOT_REFUSED, { reason: http2NotRefusedReason() })
  logger('admin').info('admin API listening', { host, port: listening.port })
  return {
    port: listening.port,
    close: () => {
      uws.us_listen_socket_close(listening.socket)
      ;(app as unknown as { close(): void }).close()
    },
  }
}

/** How often a drain checks whether the data plane is idle. */
const DRAIN_POLL_MS = 10

/** How long a CCP request to a peer may take. */
const CONTROL_TIMEOUT_MS = 10_000

/**
 * The answer to a routing message from `account`: a CCP prepare (peer.route.control /
 * peer.route.update) gets a Fulfill, a JSON broadcast_routes gets JSON; either gets a Reject if
 * it is malformed (F01) or we take no routes from that account (F00).
 */
function answerControl(config: Config, routes: RouteManager, account: number, prepare: Uint8Array): Buffer {
  if (isRouteBroadcast(prepare)) {
    try {
      const answer = routes.handleBroadcast(account, prepare)
      return typeof answer === 'string' ? encodeReject(F00_BAD_REQUEST, config.ilpAddress, answer) : answer
    } catch (err) {
      if (!(err instanceof RouteBroadcastError)) throw err
      return encodeReject(F01_INVALID_PACKET, config.ilpAddress, err.message)
    }
  }
  const view = new PrepareView()
  if (!view.parse(prepare, 0, prepare.length)) return encodeReject(F01_INVALID_PACKET, config.ilpAddress, `invalid prepare: ${view.error}`)
  if (!PEER_PROTOCOL_CONDITION.equals(prepare.subarray(view.conditionOffset, view.conditionOffset + 32))) {
    return encodeReject(F01_INVALID_PACKET, config.ilpAddress, 'peer protocol request with the wrong condition')
  }
  const destination = view.destination()
  if (destination !== 'peer.route.control' && destination !== 'peer.route.update') {
    return encodeReject(F01_INVALID_PACKET, config.ilpAddress, `unknown peer protocol ${destination}`)
  }
  try {
    const refusal = routes.handle(account, destination, prepare.subarray(view.dataOffset, view.dataOffset + view.dataLength))
    if (refusal !== null) return encodeReject(F00_BAD_REQUEST, config.ilpAddress, refusal)
  } catch (err) {
    return encodeReject(F01_INVALID_PACKET, config.ilpAddress, `invalid CCP message: ${(err as Error).message}`)
  }
  return encodeFulfill(PEER_PROTOCOL_FULFILLMENT, Buffer.alloc(0))
}

/** A start-up step that writes DATA_DIR: its failure is one line and exit 73 (main.ts), not a stack. */
function storageStep<T>(dataDir: string, step: string, run: () => T): T {
  try {
    return run()
  } catch (err) {
    if (err instanceof DataDirUnusableError) throw err
    throw new DataDirUnusableError(dataDir, err as Error, step)
  }
}

/** Payees without a configured secret get the one stored in LMDB, made on their first start. */
function withPayeeSecrets(config: Config, store: Store): Config {
  if (!config.accounts.some((a) => a.payee !== null && a.payee.secret === null)) return config
  const accounts = config.accounts.map((a) => {
    if (a.payee === null || a.payee.secret !== null) return a
    const secret = payeeSecret(store, a.id, () => new Uint8Array(randomBytes(32)))
    return Object.freeze({ ...a, payee: Object.freeze({ ...a.payee, secret }) })
  })
  return Object.freeze({ ...config, accounts: Object.freeze(accounts) })
}

function recover(config: Config, store: Store): void {
  const log = logger('recovery')
  const report = recoverOnStart(store, (id) => shardOfAccount(id, config.shards))
  if (report.releasedHolds > 0) {
    for (const [account, amount] of report.releasedAmountByAccount) {
      log.warn('released holds of prepares that were in flight when the node last stopped', { account, amount })
    }
  }
  const known = new Set(config.accounts.map((a) => a.id))
  log.info('balances recovered', { accounts: report.accounts, records: report.foldedRecords, releasedHolds: report.releasedHolds })
  for (const { key } of store.balances.getRange({})) {
    if (!known.has(key[0])) log.warn('stored balance for an account that is no longer configured; kept as is', { account: key[0] })
  }
}
