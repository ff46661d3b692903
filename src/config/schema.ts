// The node's configuration: every key, its default and its limits. `parseConfig` turns a JSON
// value into a frozen Config or throws a ConfigError naming the field. Account fields follow
// ilp-connector's where they mean the same thing, so operators can move their configs over.

import { decimalText, parseDecimal } from '../codec/decimal'
import { isValidAddress } from '../codec/ilp_packet'
import { INT64_MAX, INT64_MIN, UINT64_MAX } from '../codec/oer'
import { parseBlock } from '../codec/ip_address'
import { showKey, showValue } from '../display'

export type Relation = 'child' | 'peer' | 'parent'
export type Durability = 'process' | 'fsync'
export type LogLevel = 'error' | 'warn' | 'info' | 'debug'
export type LogFormat = 'text' | 'json'

export interface AccountConfig {
  readonly id: string
  readonly relation: Relation
  readonly assetCode: string
  readonly assetScale: number
  /** Incoming BTP: the token a client must present in the auth message. */
  readonly btpToken: string | null
  /** Outgoing BTP: the node dials this URL (btp+ws://[user]:token@host:port/path). */
  readonly btpUrl: string | null
  /** Incoming ILP-over-HTTP: the bearer token the peer presents. */
  readonly httpIncomingToken: string | null
  /** Outgoing ILP-over-HTTP: where this account's prepares are POSTed, and the token sent. */
  readonly httpUrl: string | null
  readonly httpOutgoingToken: string | null
  /** Limits of the balance; positive = the peer owes this node (ilp-connector's sign). */
  readonly balanceMinimum: bigint
  readonly balanceMaximum: bigint
  /**
   * Settlement (ilp-connector's meaning): when the balance falls below settleThreshold (the node
   * owes the peer more than it allows), the node pays the peer settleTo − balance outside ILP.
   * Null: the node never settles this account on its own.
   */
  readonly settleThreshold: bigint | null
  readonly settleTo: bigint
  /** How this account settles, both ways; null: it does not (a transfer from it is refused). */
  readonly settlement: SettlementConfig | null
  /** The fee on packets this account sends (decimal text, e.g. "0.002"); null: the node's spread. */
  readonly spread: string | null
  readonly maxPacketAmount: bigint
  /** CCP: advertise our routes to / accept routes from this account (default: unless a child). */
  readonly sendRoutes: boolean | null
  readonly receiveRoutes: boolean | null
  /**
   * How we send routes to this account: "ccp" (peer.route.*, ilp-connector ≥ v21) or "json"
   * (the seed's legacy `broadcast_routes`). Both are always accepted from it.
   */
  readonly routeProtocol: RouteProtocol
  /** Set for a payee: an account with no transport, paid by PSK2/STREAM at its address. */
  readonly payee: PayeeConfig | null
}

/** The settlement engines the node has (README: "Settlement"). */
export type SettlementEngineName = 'btp-transfer'

export interface SettlementConfig {
  readonly engine: SettlementEngineName
  /** How often a settlement the peer has not acknowledged is sent again (same id). */
  readonly retryMs: number
}

export type RateBackend = 'one-to-one' | 'static' | 'ecb'

/** Where exchange rates come from (README: "Exchange rates and the fee"). */
export interface RatesConfig {
  readonly backend: RateBackend
  /** static: the asset the table's rates are against; ecb: EUR; one-to-one: null. */
  readonly base: string | null
  /** static: units of each asset per unit of the base, as decimal text (the base's own is "1"); no prototype. */
  readonly table: Readonly<Record<string, string>>
  /** ecb: where the daily XML is fetched from. */
  readonly url: string | null
  readonly refreshMs: number
  /** ecb: rates not refreshed for this long are stale, and packets that need them are rejected. */
  readonly maxAgeMs: number | null
}

export const ECB_DAILY_URL = 'https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml'

export interface PayeeConfig {
  /** 32 bytes from which every shared secret is derived; null until start-up loads or makes it. */
  readonly secret: Uint8Array | null
  /** Shown to SPSP clients as receiver_info. */
  readonly name: string | null
  readonly imageUrl: string | null
  /** The shop's own payee: PSK2 payments to it credit the pay token named in their data. */
  readonly shop: boolean
}

export interface ShopRoute {
  readonly method: string
  readonly path: string
  /** Base units of the shop's asset per request; 0: a free route (no Pay-Token needed). */
  readonly price: bigint
  /** Where the paid request is proxied (origin, e.g. http://127.0.0.1:9000); null: `response`. */
  readonly upstream: string | null
  /** The built-in handler's answer (text) when there is no upstream. */
  readonly response: string
}

export interface ShopConfig {
  readonly routes: readonly ShopRoute[]
  readonly upstreamTimeoutMs: number
}

/** The internal payee account that receives the shop's payments (`~` keeps it apart from config ids). */
export const SHOP_ACCOUNT = '~shop'

export type RouteProtocol = 'ccp' | 'json'

export interface RouteConfig {
  readonly targetPrefix: string
  readonly peerId: string
}

export interface Config {
  readonly ilpAddress: string
  readonly host: string
  readonly port: number
  /** Shard worker threads; 0 runs the shard code inline on the main thread. */
  readonly shards: number
  /** Socket I/O threads: 1 runs every socket on the main thread, N > 1 on N worker threads. */
  readonly ioThreads: number
  readonly dataDir: string
  readonly logLevel: LogLevel
  /** text (one `key=value` line per event) or json (one JSON object per line). */
  readonly logFormat: LogFormat
  /** Wake the threads with the native futex/pipe wake-ups where built (ILP_NODE_NATIVE_WAKE=0: Atomics). */
  readonly nativeWake: boolean
  /** process: survives a crash of the process (kill -9); fsync: also an OS crash or power loss. */
  readonly durability: Durability
  readonly accounts: readonly AccountConfig[]
  readonly routes: readonly RouteConfig[]
  /** Bytes of each ring between the main thread and a shard. */
  readonly ringBytes: number
  /** In-flight prepares one shard tracks at once; beyond it new prepares get T03. */
  readonly pendingPerShard: number
  /** In-flight prepares one account may have at once (so one sender cannot take a whole shard); T03 beyond. */
  readonly maxInFlightPerAccount: number
  /** Open BTP connections and HTTP requests at once; more are refused (503). */
  readonly maxConnections: number
  /**
   * Of maxConnections, how many only authenticated accounts may use: anonymous sockets (BTP
   * before its auth message, refusals held back) are capped at maxConnections − this.
   */
  readonly reservedConnections: number
  /** Anonymous connections one client address (an IPv4 address, an IPv6 /64) may hold at once. */
  readonly anonymousPerAddress: number
  /** Failed authentications (any token: BTP, HTTP, admin, metrics) an address has before it must wait. */
  readonly authFailuresFree: number
  /** The first wait after them; each further failure doubles it, up to authPenaltyMaxMs. */
  readonly authPenaltyMs: number
  readonly authPenaltyMaxMs: number
  /** BTP links one account may have at once (both directions); a link beyond them is refused. */
  readonly maxLinksPerAccount: number
  /** Reverse proxies (addresses or CIDR blocks) whose X-Forwarded-For names the client. */
  readonly trustedProxies: readonly string[]
  /** Longest time a forwarded prepare may be held by the next hop (ilp-connector maxHoldTime). */
  readonly maxHoldTimeMs: number
  /** Time kept back from the incoming expiry when forwarding (ilp-connector minMessageWindow). */
  readonly minMessageWindowMs: number
  /** Largest ILP-over-HTTP request body accepted; larger ones get 413. */
  readonly maxHttpBodyBytes: number
  /** Largest BTP frame accepted on a WebSocket; larger frames close the connection. */
  readonly maxFrameBytes: number
  /** CCP: how often route updates (at least heartbeats) go to peers that asked for them. */
  readonly routeBroadcastIntervalMs: number
  /**
   * How long SIGTERM waits for the prepares in flight to be answered before the node stops
   * (DRAIN_MS; default limits.maxHoldTimeMs + 1 s, by which every one has expired).
   */
  readonly drainMs: number
  /** A prepare still in flight after this long is written to the in-flight journal. */
  readonly journalDelayMs: number
  /** How long an idle shard worker polls its rings before it sleeps (latency vs idle CPU). */
  readonly shardSpinMicros: number
  /**
   * Disk space kept in DATA_DIR/reserve for the commits the node owes when a commit fails (a full
   * disk): given back then, taken again once space returns (store/storage_health.ts). 0: none.
   */
  readonly storageReserveBytes: number
  /**
   * How long settlements that ended (acknowledged, refused) and transfers booked from peers stay
   * in the settlement logs before they are pruned (control/settlement_log_pruner.ts): a copy of a
   * transfer id within it is acknowledged without booking twice. Settlements still `sending` stay.
   */
  readonly settlementLogRetentionMs: number
  /** The payee `$host` resolves to (/.well-known/pay); null: that path answers 404. */
  readonly defaultPayee: string | null
  /** GET /metrics (Prometheus): counted in shared memory by every thread, gathered when scraped. */
  readonly metrics: {
    readonly enabled: boolean
    readonly token: string | null
    /** Served to anyone on the node's port without a token (off unless the operator opens it). */
    readonly public: boolean
  }
  /**
   * Where /admin and /metrics answer: null, on the node's own HOST:PORT; else only on this
   * address (ADMIN_HOST, default HOST) and port (ADMIN_PORT; 0 picks a free one), e.g. to keep
   * them off a public interface.
   */
  readonly adminListen: { readonly host: string; readonly port: number } | null
  /** Bearer token of the admin API (GET /payees/<name>); null: the admin API is off. */
  readonly adminToken: string | null
  /** Paid HTTP routes (HTTP-ILP draft 3); null: no shop. */
  readonly shop: ShopConfig | null
  /**
   * Accounts one run of the node has room for: configured ones, ones added by the admin API or
   * a reload, and ones deleted since start (each thread's tables are sized for them at start).
   */
  readonly maxAccounts: number
  readonly rates: RatesConfig
  /** The fee on every forwarded packet, as decimal text ("0.002" keeps 0.2 %); "0": none. */
  readonly spread: string
  /** What this config was made from, so that a reload or an admin change can make it again. */
  readonly source: ConfigSource
}

/** The inputs of parseConfig: the file's JSON (CONFIG, or the development config in DATA_DIR), the environment, the machine. */
export interface ConfigSource {
  readonly raw: unknown
  readonly env: EnvOverrides
  readonly machine: MachineDefaults
  /** The CONFIG file a reload re-reads; null for a config made in code. */
  readonly path: string | null
}

/** Stands for "ask the parent" until start-up learns the address (valid, so children validate). */
/** I/O threads are numbered in the top byte of a connection id (io/connections.ts). */
export const MAX_IO_THREADS = 64

export const ADDRESS_FROM_PARENT = 'private.address-from-parent'

export class ConfigError extends Error {
  readonly code = 'ILP_NODE_CONFIG'
  constructor(readonly field: string, readonly problem: string) {
    super(`invalid configuration: ${field}: ${problem}`)
  }
}

const ACCOUNT_ID = /^[a-zA-Z0-9_~-]{1,64}$/

/**
 * Names every plain object answers to (Object.prototype's own, and `prototype`): an account named
 * so would be found, or lost, by any lookup of ids in a plain object, here or in a tool that reads
 * the config or the admin API's answers.
 */
const OBJECT_NAMES: ReadonlySet<string> = new Set([...Object.getOwnPropertyNames(Object.prototype), 'prototype'])

const NAME_RULE = '1-64 characters of a-z A-Z 0-9 _ ~ -, other than the names JavaScript objects have built in (__proto__, constructor, prototype, toString, valueOf, ...)'

/** The rule of account ids and payee names (the admin API checks a path's id by it first). */
export const ACCOUNT_ID_RULE = `account ids are ${NAME_RULE}`

export function isAccountId(id: string): boolean {
  return ACCOUNT_ID.test(id) && !OBJECT_NAMES.has(id)
}

/** Asset codes: ISO 4217 and ticker-like codes, nothing that could hide or break the text it is shown in. */
const ASSET_CODE = /^[\x21-\x7e]{1,16}$/
const ASSET_CODE_RULE = '1-16 printable ASCII characters (no spaces), e.g. "USD"'

function checkedAssetCode(value: unknown, field: string): string {
  if (value === undefined) throw new ConfigError(field, `is required (${ASSET_CODE_RULE})`)
  if (typeof value !== 'string' || !ASSET_CODE.test(value)) throw new ConfigError(field, `must be ${ASSET_CODE_RULE}, not ${showValue(value)}`)
  return value
}

/** First path segments the node answers itself; a payee's SPSP endpoint is /<name>. */
const RESERVED_PATHS = ['health', 'ilp', 'payees']
const DECIMAL = /^-?[0-9]{1,20}$/

type Json = Record<string, unknown>

/** A JSON object (not null, not an array): what every section of a config is. */
export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Edit distance (insertions, deletions, substitutions) between two field names. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1))
    }
    previous = row
  }
  return previous[b.length]
}

/**
 * Refuses a field the node does not read (a typo such as `maxPacketAmmount` would otherwise be
 * ignored and its default used in silence), naming the nearest known one.
 */
function knownFields(obj: Json, at: string, known: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue
    const field = at === '' ? showKey(key) : `${at}.${showKey(key)}`
    const unsupported = UNSUPPORTED_FIELDS.get(key)
    if (unsupported !== undefined) throw new ConfigError(field, unsupported)
    let nearest = known[0]
    for (const k of known) if (editDistance(key, k) < editDistance(key, nearest)) nearest = k
    const hint = nearest !== undefined && editDistance(key, nearest) <= Math.max(2, Math.floor(nearest.length / 3)) ? `; did you mean "${nearest}"?` : ''
    throw new ConfigError(field, `is not a field the node knows${hint} (known here: ${known.join(', ')})`)
  }
}

/** ilp-connector fields this node does not implement: refused with why, not ignored. */
const UNSUPPORTED_FIELDS: ReadonlyMap<string, string> = new Map([
  ['throughput', 'throughput limits are not supported; use maxPacketAmount and balance.maximum'],
])

const TOP_FIELDS = [
  'ilpAddress', 'host', 'port', 'shards', 'ioThreads', 'dataDir', 'logLevel', 'logFormat', 'durability', 'accounts', 'payees', 'defaultPayee', 'shop',
  'adminToken', 'adminHost', 'adminPort', 'routes', 'routeBroadcastInterval', 'limits', 'drainMs', 'metrics', 'rates', 'spread',
] as const
const ACCOUNT_FIELDS = [
  'relation', 'assetCode', 'assetScale', 'btp', 'http', 'balance', 'maxPacketAmount', 'sendRoutes', 'receiveRoutes', 'routeProtocol', 'spread', 'settlement',
] as const
const LIMIT_FIELDS = [
  'ringBytes', 'pendingPerShard', 'maxInFlightPerAccount', 'maxConnections', 'maxHoldTimeMs', 'minMessageWindowMs', 'maxFrameBytes',
  'maxHttpBodyBytes', 'journalDelayMs', 'shardSpinMicros', 'maxAccounts', 'storageReserveBytes', 'settlementLogRetentionMs',
  'reservedConnections', 'anonymousPerAddress', 'authFailuresFree', 'authPenaltyMs', 'authPenaltyMaxMs', 'maxLinksPerAccount', 'trustedProxies',
] as const

function str(obj: Json, key: string, field: string, fallback?: string): string {
  const v = obj[key]
  if (v === undefined && fallback !== undefined) return fallback
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(field, 'must be a non-empty string')
  return v
}

function int(obj: Json, key: string, field: string, fallback: number, min: number, max: number): number {
  let v = obj[key]
  if (v === undefined) return fallback
  if (typeof v === 'string' && /^[0-9]+$/.test(v)) v = Number(v)
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(field, `must be an integer from ${min} to ${max}`)
  }
  return v
}

function amount(obj: Json, key: string, field: string, fallback: bigint, min: bigint, max: bigint): bigint {
  const v = obj[key]
  if (v === undefined) return fallback
  if (typeof v !== 'string' || !DECIMAL.test(v)) throw new ConfigError(field, 'must be a decimal integer string, e.g. "1000000"')
  const n = BigInt(v)
  if (n < min || n > max) throw new ConfigError(field, `must be from ${min} to ${max}`)
  return n
}

function oneOf<T extends string>(obj: Json, key: string, field: string, values: readonly T[], fallback: T): T {
  const v = obj[key]
  if (v === undefined) return fallback
  if (typeof v !== 'string' || !values.includes(v as T)) throw new ConfigError(field, `must be one of ${values.join(', ')}`)
  return v as T
}

function parseAccount(id: string, raw: unknown): AccountConfig {
  const at = `accounts.${showKey(id)}`
  if (!isAccountId(id)) throw new ConfigError(at, ACCOUNT_ID_RULE)
  if (!isObject(raw)) throw new ConfigError(at, 'must be an object')
  knownFields(raw, at, ACCOUNT_FIELDS)
  const relation = oneOf<Relation>(raw, 'relation', `${at}.relation`, ['child', 'peer', 'parent'], 'child')
  const assetCode = checkedAssetCode(raw.assetCode, `${at}.assetCode`)
  const assetScale = int(raw, 'assetScale', `${at}.assetScale`, -1, 0, 255)
  if (assetScale < 0) throw new ConfigError(`${at}.assetScale`, 'is required (an integer from 0 to 255)')
  let btpToken: string | null = null
  let btpUrl: string | null = null
  if (raw.btp !== undefined) {
    const b = raw.btp
    if (!isObject(b) || (b.token === undefined && b.url === undefined)) {
      throw new ConfigError(`${at}.btp`, 'must be an object like { "token": "..." } (they dial us) or { "url": "btp+ws://..." } (we dial them)')
    }
    knownFields(b, `${at}.btp`, ['token', 'url'])
    if (b.token !== undefined) btpToken = str(b, 'token', `${at}.btp.token`)
    if (b.url !== undefined) {
      btpUrl = str(b, 'url', `${at}.btp.url`)
      let url: URL | null = null
      try {
        url = new URL(btpUrl)
      } catch {
        // reported below
      }
      if (url === null || (url.protocol !== 'btp+ws:' && url.protocol !== 'btp+wss:')) {
        throw new ConfigError(`${at}.btp.url`, 'must be a URL like btp+ws://user:token@host:port')
      }
    }
  }
  let httpIncomingToken: string | null = null
  let httpUrl: string | null = null
  let httpOutgoingToken: string | null = null
  if (raw.http !== undefined) {
    const h = raw.http
    if (!isObject(h)) throw new ConfigError(`${at}.http`, 'must be an object like { "incomingToken": "...", "url": "...", "outgoingToken": "..." }')
    knownFields(h, `${at}.http`, ['incomingToken', 'url', 'outgoingToken'])
    if (h.incomingToken !== undefined) httpIncomingToken = str(h, 'incomingToken', `${at}.http.incomingToken`)
    if (h.url !== undefined) {
      httpUrl = str(h, 'url', `${at}.http.url`)
      let url: URL
      try {
        url = new URL(httpUrl)
      } catch {
        throw new ConfigError(`${at}.http.url`, `${showValue(httpUrl)} is not a URL`)
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${at}.http.url`, 'must be an http:// or https:// URL')
      if (h.outgoingToken === undefined) throw new ConfigError(`${at}.http.outgoingToken`, 'is required with http.url')
    }
    if (h.outgoingToken !== undefined) httpOutgoingToken = str(h, 'outgoingToken', `${at}.http.outgoingToken`)
  }
  if (btpUrl !== null && httpUrl !== null) {
    throw new ConfigError(`${at}`, 'has both btp.url and http.url; an account sends its prepares over one transport')
  }
  let balanceMinimum = INT64_MIN
  let balanceMaximum = INT64_MAX
  let settleThreshold: bigint | null = null
  let settleTo = 0n
  if (raw.balance !== undefined) {
    if (!isObject(raw.balance)) throw new ConfigError(`${at}.balance`, 'must be an object')
    knownFields(raw.balance, `${at}.balance`, ['minimum', 'maximum', 'settleThreshold', 'settleTo'])
    balanceMinimum = amount(raw.balance, 'minimum', `${at}.balance.minimum`, INT64_MIN, INT64_MIN, INT64_MAX)
    balanceMaximum = amount(raw.balance, 'maximum', `${at}.balance.maximum`, INT64_MAX, INT64_MIN, INT64_MAX)
    if (balanceMinimum > balanceMaximum) throw new ConfigError(`${at}.balance`, 'minimum is greater than maximum')
    if (raw.balance.settleThreshold !== undefined) settleThreshold = amount(raw.balance, 'settleThreshold', `${at}.balance.settleThreshold`, 0n, INT64_MIN, INT64_MAX)
    settleTo = amount(raw.balance, 'settleTo', `${at}.balance.settleTo`, 0n, INT64_MIN, INT64_MAX)
    if (raw.balance.settleTo !== undefined && settleThreshold === null) throw new ConfigError(`${at}.balance.settleTo`, 'needs balance.settleThreshold')
    if (settleThreshold !== null && settleThreshold > settleTo) throw new ConfigError(`${at}.balance.settleThreshold`, `is above settleTo (${settleTo}); the node settles up to settleTo once the balance falls below the threshold`)
    if (settleThreshold !== null && settleTo > balanceMaximum) throw new ConfigError(`${at}.balance.settleTo`, `is above balance.maximum (${balanceMaximum})`)
  }
  const settlement = parseSettlement(raw.settlement, at)
  if (settlement !== null && btpToken === null && btpUrl === null) {
    throw new ConfigError(`${at}.settlement`, 'the btp-transfer engine settles over the account\'s BTP link: it needs btp.token or btp.url')
  }
  if (settleThreshold !== null && settlement === null) {
    throw new ConfigError(`${at}.balance.settleThreshold`, 'needs a settlement engine: "settlement": { "engine": "btp-transfer" }')
  }
  const spread = raw.spread === undefined ? null : spreadText(raw.spread, `${at}.spread`)
  const maxPacketAmount = amount(raw, 'maxPacketAmount', `${at}.maxPacketAmount`, UINT64_MAX, 0n, UINT64_MAX)
  const flag = (key: string): boolean | null => {
    const v = raw[key]
    if (v === undefined) return null
    if (typeof v !== 'boolean') throw new ConfigError(`${at}.${key}`, 'must be true or false')
    return v
  }
  const sendRoutes = flag('sendRoutes')
  const receiveRoutes = flag('receiveRoutes')
  const routeProtocol = oneOf<RouteProtocol>(raw, 'routeProtocol', `${at}.routeProtocol`, ['ccp', 'json'], 'ccp')
  return Object.freeze({
    id, relation, assetCode, assetScale, btpToken, btpUrl, httpIncomingToken, httpUrl, httpOutgoingToken, balanceMinimum, balanceMaximum, settleThreshold, settleTo,
    settlement, spread, maxPacketAmount, sendRoutes, receiveRoutes, routeProtocol, payee: null,
  })
}

function parseSettlement(raw: unknown, at: string): SettlementConfig | null {
  if (raw === undefined) return null
  const field = `${at}.settlement`
  if (!isObject(raw)) throw new ConfigError(field, 'must be an object like { "engine": "btp-transfer" }')
  knownFields(raw, field, ['engine', 'retryMs'])
  if (raw.engine === undefined) throw new ConfigError(`${field}.engine`, 'is required (the engine the node has: btp-transfer)')
  const engine = oneOf<SettlementEngineName>(raw, 'engine', `${field}.engine`, ['btp-transfer'], 'btp-transfer')
  return Object.freeze({ engine, retryMs: int(raw, 'retryMs', `${field}.retryMs`, 1000, 10, 600000) })
}

/** A spread: a decimal from 0 up to (not including) 1, kept as its text. */
function spreadText(raw: unknown, field: string): string {
  const f = parseDecimal(raw)
  if (f === null || f.num >= f.den) throw new ConfigError(field, 'must be a decimal from 0 to below 1, e.g. 0.002 (a 0.2 % fee)')
  return decimalText(raw)!
}

const RATE_BACKENDS: readonly RateBackend[] = ['one-to-one', 'static', 'ecb']

function parseRates(raw: unknown): RatesConfig {
  if (raw === undefined) return Object.freeze({ backend: 'one-to-one', base: null, table: rateTable([]), url: null, refreshMs: 0, maxAgeMs: null })
  if (!isObject(raw)) throw new ConfigError('rates', 'must be an object like { "backend": "static", "base": "USD", "table": { "EUR": "0.92" } }')
  if (raw.backend === undefined) throw new ConfigError('rates.backend', `is required (${RATE_BACKENDS.join(', ')})`)
  const backend = oneOf<RateBackend>(raw, 'backend', 'rates.backend', RATE_BACKENDS, 'one-to-one')
  if (backend === 'one-to-one') {
    knownFields(raw, 'rates', ['backend'])
    return parseRates(undefined)
  }
  if (backend === 'static') {
    knownFields(raw, 'rates', ['backend', 'base', 'table'])
    const base = checkedAssetCode(raw.base, 'rates.base')
    if (!isObject(raw.table)) throw new ConfigError('rates.table', 'must be an object of rates by asset code, each the units of that asset per unit of the base, e.g. { "EUR": "0.92" }')
    const rates: [string, string][] = [[base, '1']]
    for (const [code, value] of Object.entries(raw.table)) {
      const field = `rates.table.${showKey(code)}`
      checkedAssetCode(code, field)
      const f = parseDecimal(value)
      if (f === null || f.num === 0n) throw new ConfigError(field, 'must be a positive decimal (units of this asset per unit of the base), e.g. "0.92"')
      if (code === base && f.num !== f.den) throw new ConfigError(field, 'is the base: its rate is 1')
      if (code !== base) rates.push([code, decimalText(value)!])
    }
    return Object.freeze({ backend, base, table: rateTable(rates), url: null, refreshMs: 0, maxAgeMs: null })
  }
  knownFields(raw, 'rates', ['backend', 'url', 'refreshMs', 'maxAgeMs'])
  const url = str(raw, 'url', 'rates.url', ECB_DAILY_URL)
  let parsed: URL | null = null
  try {
    parsed = new URL(url)
  } catch {
    // reported below
  }
  if (parsed === null || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) throw new ConfigError('rates.url', 'must be an http:// or https:// URL of the ECB daily XML')
  const refreshMs = int(raw, 'refreshMs', 'rates.refreshMs', 3600000, 100, 86400000)
  const maxAgeMs = int(raw, 'maxAgeMs', 'rates.maxAgeMs', 86400000, 100, 30 * 86400000)
  if (maxAgeMs < refreshMs) throw new ConfigError('rates.maxAgeMs', `is less than rates.refreshMs (${refreshMs}): the rates would go stale between two fetches`)
  return Object.freeze({ backend, base: 'EUR', table: rateTable([]), url, refreshMs, maxAgeMs })
}

/** Rates by asset code in an object with no prototype: a code such as `constructor` is only ever a rate. */
function rateTable(rates: [string, string][]): Readonly<Record<string, string>> {
  return Object.freeze(Object.assign(Object.create(null) as Record<string, string>, Object.fromEntries(rates)))
}

/**
 * A payee is an account with no transport: it is routed at `<ilpAddress>.<name>` like a child,
 * holds its balance like any account (credited when a payment to it is fulfilled), and its
 * packets are answered by the node's PSK2/STREAM receiver in the shard that owns it.
 */
function parsePayee(name: string, raw: unknown, defaultAsset: { assetCode: string; assetScale: number } | null, at = `payees.${showKey(name)}`): AccountConfig {
  if (!isAccountId(name)) throw new ConfigError(at, `payee names are ${NAME_RULE}`)
  if (RESERVED_PATHS.includes(name)) throw new ConfigError(at, `"${name}" is a path the node serves itself (${RESERVED_PATHS.join(', ')})`)
  if (!isObject(raw)) throw new ConfigError(at, 'must be an object (it may be empty: {})')
  knownFields(raw, at, ['assetCode', 'assetScale', 'secret', 'name', 'imageUrl', 'maxPacketAmount'])
  let assetCode: string
  let assetScale: number
  if (raw.assetCode === undefined && raw.assetScale === undefined && defaultAsset !== null) {
    ({ assetCode, assetScale } = defaultAsset)
  } else {
    assetCode = checkedAssetCode(raw.assetCode, `${at}.assetCode`)
    assetScale = int(raw, 'assetScale', `${at}.assetScale`, -1, 0, 255)
    if (assetScale < 0) throw new ConfigError(`${at}.assetScale`, 'is required with assetCode (or leave both out when all accounts share one asset)')
  }
  let secret: Uint8Array | null = null
  if (raw.secret !== undefined) {
    const text = str(raw, 'secret', `${at}.secret`)
    const bytes = Buffer.from(text, 'base64')
    if (!/^[A-Za-z0-9+/_-]{43}=?$/.test(text) || bytes.length !== 32) {
      throw new ConfigError(`${at}.secret`, 'must be 32 bytes in base64 (e.g. from `openssl rand -base64 32`)')
    }
    secret = new Uint8Array(bytes)
  }
  const name_ = raw.name === undefined ? null : str(raw, 'name', `${at}.name`)
  const imageUrl = raw.imageUrl === undefined ? null : str(raw, 'imageUrl', `${at}.imageUrl`)
  const maxPacketAmount = amount(raw, 'maxPacketAmount', `${at}.maxPacketAmount`, UINT64_MAX, 0n, UINT64_MAX)
  return Object.freeze({
    id: name, relation: 'child' as Relation, assetCode, assetScale, btpToken: null, btpUrl: null, httpIncomingToken: null, httpUrl: null,
    httpOutgoingToken: null, balanceMinimum: INT64_MIN, balanceMaximum: INT64_MAX, settleThreshold: null, settleTo: 0n, settlement: null, spread: null,
    maxPacketAmount, sendRoutes: false, receiveRoutes: false,
    routeProtocol: 'ccp' as RouteProtocol, payee: Object.freeze({ secret, name: name_, imageUrl, shop: false }),
  })
}

const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']

function parseShop(raw: unknown, defaultAsset: { assetCode: string; assetScale: number } | null): { shop: ShopConfig; account: AccountConfig } {
  if (!isObject(raw)) throw new ConfigError('shop', 'must be an object like { "routes": [ { "method": "GET", "path": "/weather", "price": "10" } ] }')
  knownFields(raw, 'shop', ['routes', 'upstreamTimeoutMs', 'payee'])
  if (!Array.isArray(raw.routes) || raw.routes.length === 0) throw new ConfigError('shop.routes', 'must be a non-empty array of paid routes')
  const seen = new Set<string>()
  const routes = raw.routes.map((r: unknown, i: number): ShopRoute => {
    const at = `shop.routes[${i}]`
    if (!isObject(r)) throw new ConfigError(at, 'must be an object')
    knownFields(r, at, ['method', 'path', 'price', 'upstream', 'response'])
    const method = oneOf(r, 'method', `${at}.method`, HTTP_METHODS, 'GET')
    const path = str(r, 'path', `${at}.path`)
    if (!/^\/[A-Za-z0-9._~\/-]*$/.test(path) || path.includes('//')) throw new ConfigError(`${at}.path`, 'must be a plain path like /weather')
    const first = path.split('/')[1]
    if (RESERVED_PATHS.includes(first) || first === '.well-known') throw new ConfigError(`${at}.path`, `/${first} is a path the node serves itself`)
    if (seen.has(`${method} ${path}`)) throw new ConfigError(at, `${method} ${path} is listed twice`)
    seen.add(`${method} ${path}`)
    if (r.price === undefined) throw new ConfigError(`${at}.price`, 'is required (a decimal string of base units)')
    const price = amount(r, 'price', `${at}.price`, 0n, 0n, UINT64_MAX)
    let upstream: string | null = null
    if (r.upstream !== undefined) {
      upstream = str(r, 'upstream', `${at}.upstream`)
      let url: URL
      try {
        url = new URL(upstream)
      } catch {
        throw new ConfigError(`${at}.upstream`, `${showValue(upstream)} is not a URL`)
      }
      if ((url.protocol !== 'http:' && url.protocol !== 'https:') || (url.pathname !== '/' && url.pathname !== '')) {
        throw new ConfigError(`${at}.upstream`, 'must be an origin like http://127.0.0.1:9000 (the request path is kept)')
      }
      upstream = url.origin
    }
    const response = r.response === undefined ? 'paid\n' : str(r, 'response', `${at}.response`)
    return Object.freeze({ method, path, price, upstream, response })
  })
  const upstreamTimeoutMs = int(raw, 'upstreamTimeoutMs', 'shop.upstreamTimeoutMs', 30000, 100, 600000)
  const account = parsePayee(SHOP_ACCOUNT.slice(1), { ...(isObject(raw.payee) ? raw.payee : {}) }, defaultAsset, 'shop.payee')
  return {
    shop: Object.freeze({ routes: Object.freeze(routes), upstreamTimeoutMs }),
    account: Object.freeze({ ...account, id: SHOP_ACCOUNT, payee: Object.freeze({ ...account.payee!, shop: true }) }),
  }
}

function parseMetrics(raw: unknown): Config['metrics'] {
  if (raw === undefined) return Object.freeze({ enabled: true, token: null, public: false })
  if (!isObject(raw)) throw new ConfigError('metrics', 'must be an object like { "enabled": true, "token": "..." }')
  knownFields(raw, 'metrics', ['enabled', 'token', 'public'])
  if (raw.enabled !== undefined && typeof raw.enabled !== 'boolean') throw new ConfigError('metrics.enabled', 'must be true or false')
  if (raw.public !== undefined && typeof raw.public !== 'boolean') throw new ConfigError('metrics.public', 'must be true or false')
  const token = raw.token === undefined ? null : str(raw, 'token', 'metrics.token')
  if (token !== null && token.length < 16) throw new ConfigError('metrics.token', 'must be at least 16 characters')
  if (token !== null && raw.public === true) throw new ConfigError('metrics.public', 'is true, so metrics.token would never be asked for; keep one of them')
  return Object.freeze({ enabled: raw.enabled !== false, token, public: raw.public === true })
}

/** limits.trustedProxies: addresses or CIDR blocks, each checked now (a typo would trust no one, or everyone). */
function parseTrustedProxies(raw: unknown): readonly string[] {
  if (raw === undefined) return Object.freeze([])
  if (!Array.isArray(raw)) throw new ConfigError('limits.trustedProxies', 'must be an array of addresses or CIDR blocks, e.g. ["127.0.0.1", "10.0.0.0/8"]')
  return Object.freeze(raw.map((entry, i) => {
    if (typeof entry !== 'string' || parseBlock(entry) === null) {
      throw new ConfigError(`limits.trustedProxies[${i}]`, 'must be an IPv4 or IPv6 address or CIDR block, e.g. "10.0.0.0/8"')
    }
    return entry
  }))
}

function parseRoutes(raw: unknown, accounts: Map<string, AccountConfig>): RouteConfig[] {
  if (raw === undefined) return []
  if (!Array.isArray(raw)) throw new ConfigError('routes', 'must be an array')
  return raw.map((r, i) => {
    const at = `routes[${i}]`
    if (!isObject(r)) throw new ConfigError(at, 'must be an object')
    knownFields(r, at, ['targetPrefix', 'peerId'])
    const targetPrefix = typeof r.targetPrefix === 'string' ? r.targetPrefix : ''
    if (r.targetPrefix === undefined || (targetPrefix !== '' && !isValidAddress(targetPrefix))) {
      throw new ConfigError(`${at}.targetPrefix`, 'must be an ILP address prefix such as "test.elsewhere" ("" for a default route)')
    }
    const peerId = str(r, 'peerId', `${at}.peerId`)
    if (!accounts.has(peerId)) throw new ConfigError(`${at}.peerId`, `names no account (${showValue(peerId)})`)
    return Object.freeze({ targetPrefix, peerId })
  })
}

/** Everything environment variables may set; undefined means "not set". */
export interface EnvOverrides {
  ilpAddress?: string
  host?: string
  port?: string
  shards?: string
  ioThreads?: string
  dataDir?: string
  logLevel?: string
  logFormat?: string
  durability?: string
  drainMs?: string
  adminHost?: string
  adminPort?: string
  /** ILP_NODE_NATIVE_WAKE: environment only. */
  nativeWake?: string
}

/** What the machine contributes to defaults (load.ts reads it; tests pass their own). */
export interface MachineDefaults {
  cores: number
  shards: number
  ioThreads?: number
}

export function parseConfig(raw: unknown, env: EnvOverrides, machine: MachineDefaults, path: string | null = null): Config {
  if (!isObject(raw)) throw new ConfigError('(top level)', 'must be a JSON object')
  knownFields(raw, '', TOP_FIELDS)
  const merged: Json = { ...raw }
  for (const [key, value] of Object.entries(env)) if (key !== 'nativeWake' && value !== undefined && value !== '') merged[key] = value

  // Without an address, the node asks its parent (IL-DCP) at start-up; until then it is this
  // placeholder, which start-up replaces (transport/ildcp_client.ts).
  const ilpAddress = merged.ilpAddress === undefined || merged.ilpAddress === '' ? ADDRESS_FROM_PARENT : str(merged, 'ilpAddress', 'ilpAddress (ILP_ADDRESS)')
  if (!isValidAddress(ilpAddress)) throw new ConfigError('ilpAddress (ILP_ADDRESS)', `${showValue(ilpAddress)} is not a valid ILP address`)
  const host = str(merged, 'host', 'host (HOST)', '127.0.0.1')
  const port = int(merged, 'port', 'port (PORT)', 7768, 0, 65535)
  // Each default follows the other when only one is set: SHARDS=0 alone keeps the sockets on the
  // main thread; IO_THREADS=N alone gets at least one shard thread.
  const ioThreadsSet = merged.ioThreads !== undefined
  let shards = int(merged, 'shards', 'shards (SHARDS)', machine.shards, 0, 64)
  const ioThreads = int(merged, 'ioThreads', 'ioThreads (IO_THREADS)', shards === 0 ? 1 : machine.ioThreads ?? 1, 1, MAX_IO_THREADS)
  if (ioThreadsSet && merged.shards === undefined && ioThreads > 1 && shards === 0) shards = ioThreads
  // The inline shard runs in the main thread's turn after its socket callbacks: it needs the
  // sockets on the main thread too.
  if (ioThreads > 1 && shards === 0) throw new ConfigError('ioThreads (IO_THREADS)', 'more than 1 I/O thread needs at least 1 shard thread (SHARDS)')
  const dataDir = str(merged, 'dataDir', 'dataDir (DATA_DIR)', './data')
  const logLevel = oneOf<LogLevel>(merged, 'logLevel', 'logLevel (LOG_LEVEL)', ['error', 'warn', 'info', 'debug'], 'info')
  const durability = oneOf<Durability>(merged, 'durability', 'durability (DURABILITY)', ['process', 'fsync'], 'process')
  const logFormat = oneOf<LogFormat>(merged, 'logFormat', 'logFormat (LOG_FORMAT)', ['text', 'json'], 'text')
  const nativeWake = oneOf(env.nativeWake === undefined || env.nativeWake === '' ? {} : { v: env.nativeWake }, 'v', 'ILP_NODE_NATIVE_WAKE', ['0', '1'], '1') === '1'

  if (!isObject(merged.accounts)) throw new ConfigError('accounts', 'must be an object of accounts by id')
  const accounts = new Map<string, AccountConfig>()
  const tokens = new Set<string>()
  for (const [id, account] of Object.entries(merged.accounts)) {
    const parsed = parseAccount(id, account)
    for (const [field, token] of [['btp.token', parsed.btpToken], ['http.incomingToken', parsed.httpIncomingToken]] as const) {
      if (token === null) continue
      if (tokens.has(token)) throw new ConfigError(`accounts.${id}.${field}`, 'is used by another account')
      tokens.add(token)
    }
    accounts.set(id, parsed)
  }
  const parents = [...accounts.values()].filter((a) => a.relation === 'parent')
  if (parents.length > 1) throw new ConfigError('accounts', `at most one account may be the parent (${parents.map((p) => p.id).join(', ')})`)
  if (ilpAddress === ADDRESS_FROM_PARENT) {
    if (parents.length === 0) throw new ConfigError('ilpAddress (ILP_ADDRESS)', 'is required unless an account has relation "parent"')
    if (parents[0].btpUrl === null && parents[0].httpUrl === null) {
      throw new ConfigError(`accounts.${parents[0].id}`, 'the parent needs btp.url or http.url for the node to ask it for an address')
    }
  }
  for (const account of accounts.values()) {
    if (account.relation === 'child' && !isValidAddress(`${ilpAddress}.${account.id}`)) {
      throw new ConfigError(`accounts.${account.id}`, 'gives the child an invalid ILP address')
    }
  }
  if (merged.payees !== undefined) {
    if (!isObject(merged.payees)) throw new ConfigError('payees', 'must be an object of payees by name')
    const assets = new Set([...accounts.values()].map((a) => `${a.assetCode} ${a.assetScale}`))
    const only = assets.size === 1 ? [...accounts.values()][0] : null
    for (const [name, payee] of Object.entries(merged.payees)) {
      if (accounts.has(name)) throw new ConfigError(`payees.${showKey(name)}`, 'has the name of an account; payees and accounts share the addresses under the node')
      accounts.set(name, parsePayee(name, payee, only === null ? null : { assetCode: only.assetCode, assetScale: only.assetScale }))
    }
  }
  let shop: ShopConfig | null = null
  if (merged.shop !== undefined) {
    const assets = new Set([...accounts.values()].filter((a) => a.payee === null).map((a) => `${a.assetCode} ${a.assetScale}`))
    const only = assets.size === 1 ? [...accounts.values()].find((a) => a.payee === null)! : null
    if (accounts.has(SHOP_ACCOUNT)) throw new ConfigError(`accounts.${SHOP_ACCOUNT}`, 'is the name of the shop\'s own payee')
    const parsed = parseShop(merged.shop, only === null ? null : { assetCode: only.assetCode, assetScale: only.assetScale })
    shop = parsed.shop
    accounts.set(SHOP_ACCOUNT, parsed.account)
  }
  const payeeNames = [...accounts.values()].filter((a) => a.payee !== null && !a.payee.shop).map((a) => a.id)
  let defaultPayee: string | null = null
  if (merged.defaultPayee !== undefined) {
    defaultPayee = str(merged, 'defaultPayee', 'defaultPayee')
    if (!payeeNames.includes(defaultPayee)) throw new ConfigError('defaultPayee', `${showValue(defaultPayee)} is not one of the payees`)
  } else if (payeeNames.length === 1) {
    defaultPayee = payeeNames[0]
  }
  const adminToken = merged.adminToken === undefined ? null : str(merged, 'adminToken', 'adminToken')
  if (adminToken !== null && adminToken.length < 16) throw new ConfigError('adminToken', 'must be at least 16 characters')
  const routes = parseRoutes(merged.routes, accounts)
  const metrics = parseMetrics(merged.metrics)
  const adminPort = merged.adminPort === undefined ? null : int(merged, 'adminPort', 'adminPort (ADMIN_PORT)', 0, 0, 65535)
  if (merged.adminHost !== undefined && adminPort === null) throw new ConfigError('adminHost (ADMIN_HOST)', 'needs adminPort (ADMIN_PORT) too')
  const adminListen = adminPort === null ? null : Object.freeze({ host: str(merged, 'adminHost', 'adminHost (ADMIN_HOST)', host), port: adminPort })
  if (adminListen !== null && adminListen.port !== 0 && adminListen.port === port && adminListen.host === host) {
    throw new ConfigError('adminPort (ADMIN_PORT)', 'is the node\'s own HOST:PORT; leave it out to serve the admin API there')
  }
  if (merged.limits !== undefined && !isObject(merged.limits)) throw new ConfigError('limits', 'must be an object')
  const limits = isObject(merged.limits) ? merged.limits : {}
  knownFields(limits, 'limits', LIMIT_FIELDS)
  const ringBytes = int(limits, 'ringBytes', 'limits.ringBytes', 4 * 1024 * 1024, 65536, 2 ** 30)
  if ((ringBytes & (ringBytes - 1)) !== 0) throw new ConfigError('limits.ringBytes', 'must be a power of two')
  const maxHoldTimeMs = int(limits, 'maxHoldTimeMs', 'limits.maxHoldTimeMs', 30000, 100, 120000)
  const maxConnections = int(limits, 'maxConnections', 'limits.maxConnections', 10000, 1, 1 << 20)
  const reservedConnections = int(limits, 'reservedConnections', 'limits.reservedConnections', Math.floor(maxConnections / 2), 0, maxConnections - 1)
  const authPenaltyMs = int(limits, 'authPenaltyMs', 'limits.authPenaltyMs', 1000, 1, 600_000)
  const authPenaltyMaxMs = int(limits, 'authPenaltyMaxMs', 'limits.authPenaltyMaxMs', 60_000, 1, 3_600_000)
  if (authPenaltyMaxMs < authPenaltyMs) throw new ConfigError('limits.authPenaltyMaxMs', `is less than limits.authPenaltyMs (${authPenaltyMs})`)
  const maxAccounts = int(limits, 'maxAccounts', 'limits.maxAccounts', Math.max(DEFAULT_MAX_ACCOUNTS, 2 * accounts.size), 1, 1 << 20)
  if (maxAccounts < accounts.size) throw new ConfigError('limits.maxAccounts', `is less than the ${accounts.size} accounts configured (payees and the shop count too)`)
  return Object.freeze({
    ilpAddress,
    host,
    port,
    shards,
    ioThreads,
    dataDir,
    logLevel,
    logFormat,
    nativeWake,
    durability,
    accounts: Object.freeze([...accounts.values()]),
    routes: Object.freeze(routes),
    ringBytes,
    pendingPerShard: int(limits, 'pendingPerShard', 'limits.pendingPerShard', 65536, 16, 1 << 20),
    maxInFlightPerAccount: int(limits, 'maxInFlightPerAccount', 'limits.maxInFlightPerAccount', 16384, 1, 1 << 20),
    maxConnections,
    reservedConnections,
    anonymousPerAddress: int(limits, 'anonymousPerAddress', 'limits.anonymousPerAddress', 32, 1, 1 << 20),
    authFailuresFree: int(limits, 'authFailuresFree', 'limits.authFailuresFree', 5, 0, 1000),
    authPenaltyMs,
    authPenaltyMaxMs,
    maxLinksPerAccount: int(limits, 'maxLinksPerAccount', 'limits.maxLinksPerAccount', 8, 1, 1024),
    trustedProxies: parseTrustedProxies(limits.trustedProxies),
    maxHoldTimeMs,
    drainMs: int(merged, 'drainMs', 'drainMs (DRAIN_MS)', maxHoldTimeMs + 1000, 0, 600000),
    minMessageWindowMs: int(limits, 'minMessageWindowMs', 'limits.minMessageWindowMs', 1000, 0, 60000),
    maxFrameBytes: int(limits, 'maxFrameBytes', 'limits.maxFrameBytes', 65536, 1024, 1 << 20),
    maxHttpBodyBytes: int(limits, 'maxHttpBodyBytes', 'limits.maxHttpBodyBytes', 40960, 1024, 1 << 20),
    routeBroadcastIntervalMs: int(merged, 'routeBroadcastInterval', 'routeBroadcastInterval', 30000, 100, 3600000),
    journalDelayMs: int(limits, 'journalDelayMs', 'limits.journalDelayMs', 50, 0, 10000),
    // Spinning pays only when each shard and each socket thread have a core of their own.
    shardSpinMicros: int(limits, 'shardSpinMicros', 'limits.shardSpinMicros', shards > 0 && shards + ioThreads <= machine.cores ? 200 : 0, 0, 10000),
    storageReserveBytes: int(limits, 'storageReserveBytes', 'limits.storageReserveBytes', 16 * 1024 * 1024, 0, 2 ** 30),
    settlementLogRetentionMs: int(limits, 'settlementLogRetentionMs', 'limits.settlementLogRetentionMs', SETTLEMENT_LOG_RETENTION_MS, 1000, 3650 * DAY_MS),
    defaultPayee,
    adminToken,
    adminListen,
    metrics,
    shop,
    maxAccounts,
    rates: parseRates(merged.rates),
    spread: merged.spread === undefined ? '0' : spreadText(merged.spread, 'spread'),
    source: Object.freeze({ raw, env, machine, path }),
  })
}

const DAY_MS = 86_400_000

/**
 * limits.settlementLogRetentionMs by default: 30 days, far beyond the seconds to minutes a peer
 * keeps sending a transfer it has no answer to, and a month of history for the operator.
 */
export const SETTLEMENT_LOG_RETENTION_MS = 30 * DAY_MS

/** limits.maxAccounts unless the config has more than half of it already. */
const DEFAULT_MAX_ACCOUNTS = 1024
