// Assembles a node: durable store and recovery, the shards, and the uWebSockets.js server that
// carries BTP and HTTP on one port. `startNode` is what main.ts, the tests and the benches run.

import { ADDRESS_FROM_PARENT, type Config } from './config/schema'
import { logger, setLogLevel } from './log'
import { AccountTable, shardOfAccount } from './shard/account_table'
import { ShardSet } from './shard/shard_set'
import { openStore, payeeSecret, readBalance, recoverOnStart, type Store } from './store/balance_store'
import { randomBytes } from 'node:crypto'
import { LocalDelivery } from './payee/local_delivery'
import { SpspServer } from './payee/spsp_server'
import { ShopServer } from './shop/shop_server'
import { BtpDialer } from './transport/btp_client'
import { BtpServer } from './transport/btp_server'
import { withAddressFromParent } from './transport/ildcp_client'
import { Connections } from './transport/connections'
import { isRouteBroadcast, RouteBroadcastError } from './codec/route_broadcast'
import { IlpHttpClient } from './transport/http_ilp_client'
import { IlpHttpServer } from './transport/http_ilp_server'
import { loadUws } from './transport/uws'
import { claimFreePort, listenUws } from './transport/listen'
import { lockDataDir } from './store/data_dir_lock'
import { RouteManager } from './routing/route_manager'
import { encodeFulfill, encodeReject, PrepareView } from './codec/ilp_packet'
import { F00_BAD_REQUEST, F01_INVALID_PACKET, T00_INTERNAL_ERROR } from './codec/ilp_errors'
import { PEER_PROTOCOL_CONDITION, PEER_PROTOCOL_FULFILLMENT } from './codec/peer_protocol'

export interface RunningNode {
  readonly config: Config
  /** The port actually listened on (useful with PORT=0). */
  readonly port: number
  /** Committed balance of an account as stored (positive = the peer owes this node). */
  balance(accountId: string): bigint
  stop(): Promise<void>
  /** Resolves if the node stops itself on a fatal error (its shards could not start). */
  readonly failed: Promise<string>
  /** Restarts of the shards after a worker died; and fault injection for tests. */
  readonly shards: { restarts(): number; terminate(index: number): Promise<void> }
}

export async function startNode(configured: Config): Promise<RunningNode> {
  setLogLevel(configured.logLevel)
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

async function startLocked(configured: Config, uws: ReturnType<typeof loadUws>, lock: ReturnType<typeof lockDataDir>): Promise<RunningNode> {
  const log = logger('node')
  let config = configured.ilpAddress === ADDRESS_FROM_PARENT ? await withAddressFromParent(configured, logger('ildcp')) : configured
  const store = openStore(config.dataDir, config.durability)
  recover(config, store)
  config = withPayeeSecrets(config, store)

  const accounts = new AccountTable(config)
  const connections = new Connections()
  let reportFatal: (reason: string) => void = () => {}
  const failed = new Promise<string>((resolve) => { reportFatal = resolve })
  let btp: BtpServer | null = null
  let httpOut: IlpHttpClient | null = null
  let payees: LocalDelivery | null = null
  const routes = new RouteManager(config, accounts,
    (account, prepare) => (httpOut!.serves(account) ? httpOut!.sendControl(account, prepare) : btp!.sendControl(account, prepare, CONTROL_TIMEOUT_MS)),
    (entries) => shards.setRoutes(entries),
    logger('routing'))
  const shards: ShardSet = new ShardSet(config, store, {
    reply: (connId, requestId, account, ilp) => {
      if (!connections.reply(connId, requestId, ilp)) log.debug('reply for a connection that has closed', { account: accounts.accounts[account].id })
    },
    forward: (shard, account, pendingId, ilp) => {
      if (accounts.accounts[account].payee !== null) payees!.forward(shard, account, pendingId, ilp)
      else if (httpOut!.serves(account)) httpOut!.forward(shard, account, pendingId, ilp)
      else btp!.forward(shard, account, pendingId, ilp)
    },
    control: (connId, requestId, account, prepare) => {
      connections.reply(connId, requestId, answerControl(config, routes, account, prepare))
    },
    flush: () => btp!.flush(),
    restarting: () => {
      connections.abandonAll(encodeReject(T00_INTERNAL_ERROR, config.ilpAddress, 'the node restarted its shards; try again'))
      btp!.flush()
    },
    fatal: (reason) => {
      log.error('fatal: stopping the node', { reason })
      reportFatal(reason)
    },
  }, logger('shards'))
  await shards.start(routes.table())
  payees = new LocalDelivery(shards, connections)
  const spsp = new SpspServer(config, store, logger('spsp'))
  const shop = config.shop === null ? null : new ShopServer(config, accounts, shards, connections, store, logger('shop'))
  btp = new BtpServer(config, accounts, shards, connections, logger('btp'))
  btp.onLinkUp = (account) => routes.peerConnected(account)
  btp.onLinkDown = (account) => routes.peerDisconnected(account)
  httpOut = new IlpHttpClient(config, accounts, shards, logger('http-out'))
  const dialer = new BtpDialer(config, accounts, btp, logger('btp-out'))
  const httpIn = new IlpHttpServer(config, accounts, shards, connections, logger('http-in'))

  const app = uws.App()
  app.ws('/*', btp.behavior())
  httpIn.register(app)
  app.get('/health', (res) => {
    res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end('{"status":"ok"}')
  })
  spsp.register(app)
  shop?.register(app)
  app.any('/*', (res, req) => {
    if (req.getMethod() === 'get' && spsp.wantsSpsp(req)) return spsp.notFound(res)
    res.writeStatus('404 Not Found').writeHeader('Content-Type', 'text/plain').end('not found\n')
  })
  const { socket: listenSocket, port } = await listenUws(uws, app, config.host, config.port, false)
  routes.start()
  dialer.start()
  for (const account of httpOut.accountsServed()) routes.peerConnected(account)
  log.info('ilp-node listening', {
    address: config.ilpAddress, host: config.host, port, shards: config.shards, accounts: config.accounts.length, durability: config.durability,
  })

  let stopped = false
  return {
    config,
    port,
    failed,
    balance: (accountId) => readBalance(store, accountId),
    shards: { restarts: () => shards.restarts, terminate: (index) => shards.terminateShard(index) },
    async stop() {
      if (stopped) return
      stopped = true
      uws.us_listen_socket_close(listenSocket)
      dialer.close()
      routes.stop()
      btp!.close()
      await shards.stop()
      await httpOut!.close()
      await shop?.close()
      await store.root.close()
      lock.release()
      log.info('ilp-node stopped')
    },
  }
}

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
