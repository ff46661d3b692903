// Every key of the node's config file, its default and its limits, stated once in the zod schema
// below (which also gives the JSON Schema operators' editors read). validate.ts reads a file by it
// and words a refusal; parse.ts adds what one field cannot say alone (the checks between fields,
// the defaults that depend on the machine) and gives the frozen Config. Account fields follow
// ilp-connector's where they mean the same thing, so operators can move their configs over.

import { z } from 'zod'
import { decimalText, parseDecimal } from '../codec/decimal'
import { isValidAddress } from '../codec/ilp_packet'
import { INT64_MAX, INT64_MIN, UINT64_MAX } from '../codec/oer'
import { parseBlock } from '../codec/ip_address'
import { showValue } from '../display'
import { ACCOUNT_ID, ACCOUNT_ID_RULE, ADDRESS_FROM_PARENT, ConfigError, DAY_MS, ECB_DAILY_URL, isAccountId, isObject, MAX_IO_THREADS, SETTLEMENT_LOG_RETENTION_MS, SHOP_ACCOUNT } from './names'

export { ACCOUNT_ID_RULE, ADDRESS_FROM_PARENT, ConfigError, ECB_DAILY_URL, isAccountId, isObject, MAX_IO_THREADS, SETTLEMENT_LOG_RETENTION_MS, SHOP_ACCOUNT }

/** First path segments the node answers itself; a payee's SPSP endpoint is /<name>. */
export const RESERVED_PATHS = ['health', 'ilp', 'payees']
/** Asset codes: ISO 4217 and ticker-like codes, nothing that could hide or break the text it is shown in. */
const ASSET_CODE_RULE = '1-16 printable ASCII characters (no spaces), e.g. "USD"'
export const assetCodeProblem = (value: unknown): string => value === undefined ? `is required (${ASSET_CODE_RULE})` : `must be ${ASSET_CODE_RULE}, not ${showValue(value)}`
export const assetCode = z.string({ error: (iss) => assetCodeProblem(iss.input) }).regex(/^[\x21-\x7e]{1,16}$/)

// Field types. A message that names the field's own rule is set here; the generic ones
// ("must be true or false", "must be one of ...") come from `problem` below.
const text = z.string().min(1)
function int(min: number, max: number, range = `an integer from ${min} to ${max}`) {
  const error = (iss: { input?: unknown }) => iss.input === undefined ? `is required (${range})` : `must be ${range}`
  // A digit string too, as environment variables are.
  const whole = z.int({ error }).min(min).max(max)
  return z.union([whole, z.string().regex(/^[0-9]+$/).transform(Number).pipe(whole)], { error })
}
/**
 * Amounts are decimal strings (JSON numbers lose precision above 2^53), read as bigint. Their
 * defaults are set in toAccount: a bigint default has no JSON Schema form, and zod's defaults
 * cost a fifth of the parse of 50,000 accounts.
 */
function amount(min: bigint, max: bigint) {
  const error = (iss: { input?: unknown }) => iss.input === undefined ? 'is required (a decimal string of base units)' : 'must be a decimal integer string, e.g. "1000000"'
  return z.string({ error }).regex(/^-?[0-9]{1,20}$/).transform(BigInt).pipe(z.bigint({ error: `must be from ${min} to ${max}` }).min(min).max(max))
}
/** A decimal kept as its exact text ("0.9e1" is no decimal); `ok` judges its value. */
function decimal(ok: (num: bigint, den: bigint) => boolean, error: string) {
  return z.union([z.string(), z.number()], { error }).refine((v) => { const f = parseDecimal(v); return f !== null && ok(f.num, f.den) }, { error })
    .transform((v) => typeof v === 'string' && !v.includes('.') ? v : decimalText(v)!)
}
/** The fee on a packet: a decimal from 0 up to (not including) 1. */
const spread = decimal((num, den) => num < den, 'must be a decimal from 0 to below 1, e.g. 0.002 (a 0.2 % fee)')
function parseUrl(text: string): URL | null {
  try {
    return new URL(text)
  } catch {
    return null
  }
}
function url(ok: (u: URL) => boolean, problem: string, notUrl = (_: unknown) => problem) {
  return text.refine((v) => { const u = parseUrl(v); return u !== null && ok(u) }, { error: (iss) => parseUrl(String(iss.input)) === null ? notUrl(iss.input) : problem })
}
const httpUrl = (u: URL) => u.protocol === 'http:' || u.protocol === 'https:'
const isNotUrl = (v: unknown) => `${showValue(v)} is not a URL`
/** `problem` when the value is not of the container's type; its other issues are worded elsewhere. */
const notA = (problem: string) => (iss: { code?: string }) => iss.code === 'invalid_type' ? problem : undefined
/** An object with only these fields; `problem` when it is no object at all. */
function object<T extends z.core.$ZodLooseShape>(shape: T, problem = 'must be an object') {
  return z.strictObject(shape, { error: notA(problem) })
}
const secretToken = text.min(16, 'must be at least 16 characters')
const maxPacketAmount = amount(0n, UINT64_MAX).optional().describe('Largest amount of one packet this account sends (F08 above it); default: none')

const BTP_LIKE = 'must be an object like { "token": "..." } (they dial us) or { "url": "btp+ws://..." } (we dial them)'
const Settlement = object({
  engine: z.enum(['btp-transfer'], { error: (iss) => iss.input === undefined ? 'is required (the engine the node has: btp-transfer)' : undefined }),
  retryMs: int(10, 600000).default(1000).describe('How often a settlement the peer has not acknowledged is sent again (same id)'),
}, 'must be an object like { "engine": "btp-transfer" }')

const AccountFields = object({
  relation: z.enum(['child', 'peer', 'parent']).default('child'),
  assetCode,
  assetScale: int(0, 255),
  btp: object({
    token: text.optional().describe('Incoming BTP: the token the peer presents in its auth message'),
    url: url((u) => u.protocol === 'btp+ws:' || u.protocol === 'btp+wss:', 'must be a URL like btp+ws://user:token@host:port').optional().describe('Outgoing BTP: the node dials btp+ws://[user]:token@host:port/path'),
  }, BTP_LIKE).refine((b) => b.token !== undefined || b.url !== undefined, BTP_LIKE).optional(),
  http: object({
    incomingToken: text.optional().describe('Incoming ILP-over-HTTP: the bearer token the peer presents'),
    url: url(httpUrl, 'must be an http:// or https:// URL', isNotUrl).optional().describe('Outgoing ILP-over-HTTP: where prepares are POSTed'),
    outgoingToken: text.optional().describe('The bearer token sent with them'),
    pipelining: int(1, 64).default(1).describe('Prepares one connection to the peer may carry at once (HTTP/1.1 pipelining, RFC 9112 §9.3.2); 1: none. Only for a peer that answers pipelined requests in order, as node:http does (uWebSockets.js, this node\'s own server, does not)'),
  }, 'must be an object like { "incomingToken": "...", "url": "...", "outgoingToken": "..." }').optional(),
  balance: object({
    minimum: amount(INT64_MIN, INT64_MAX).optional().describe('Lowest balance; positive: the peer owes this node (ilp-connector\'s sign); default: none'),
    maximum: amount(INT64_MIN, INT64_MAX).optional().describe('Highest balance; default: none'),
    settleThreshold: amount(INT64_MIN, INT64_MAX).optional().describe('Below it the node pays the peer settleTo − balance outside ILP; unset: the node never settles on its own'),
    settleTo: amount(INT64_MIN, INT64_MAX).optional().describe('Default 0'),
  }).optional(),
  maxPacketAmount,
  sendRoutes: z.boolean().optional().describe('CCP: advertise our routes to this account (default: unless a child)'),
  receiveRoutes: z.boolean().optional().describe('CCP: accept routes from this account (default: unless a child)'),
  routeProtocol: z.enum(['ccp', 'json']).default('ccp').describe('How routes are sent to it: ccp (peer.route.*, ilp-connector >= v21) or json (legacy broadcast_routes); both are accepted from it'),
  spread: spread.optional().describe('The fee on packets this account sends; unset: the node\'s spread'),
  settlement: Settlement.optional().describe('How this account settles, both ways; unset: it does not'),
})
/** One account of the file's "accounts" (the admin API's PUT body too), read alone. */
export const Account = AccountFields.transform(toAccount)

/** A payee is an account with no transport, paid by PSK2/STREAM at its address. */
export const Payee = object({
  assetCode: assetCode.optional().describe('With assetScale; both may be left out when all accounts share one asset'),
  assetScale: int(0, 255).optional(),
  secret: text.regex(/^[A-Za-z0-9+/_-]{43}=?$/, 'must be 32 bytes in base64 (e.g. from `openssl rand -base64 32`)')
    .transform((t) => new Uint8Array(Buffer.from(t, 'base64'))).optional().describe('32 bytes every shared secret is derived from; unset: made at the first start'),
  name: text.optional().describe('Shown to SPSP clients as receiver_info'),
  imageUrl: text.optional(),
  maxPacketAmount,
}, 'must be an object (it may be empty: {})')

const ShopRoute = object({
  method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('GET'),
  path: text.regex(/^\/[A-Za-z0-9._~/-]*$/, 'must be a plain path like /weather').refine((p) => !p.includes('//'), 'must be a plain path like /weather')
    .refine((p) => !RESERVED_PATHS.includes(p.split('/')[1]) && p.split('/')[1] !== '.well-known', { error: (iss) => `/${String(iss.input).split('/')[1]} is a path the node serves itself` }),
  price: amount(0n, UINT64_MAX).describe('Base units of the shop\'s asset per request; "0": a free route'),
  upstream: url((u) => httpUrl(u) && (u.pathname === '/' || u.pathname === ''), 'must be an origin like http://127.0.0.1:9000 (the request path is kept)', isNotUrl)
    .transform((u) => new URL(u).origin).optional().describe('Where the paid request is proxied; unset: the node answers `response`'),
  response: text.default('paid\n'),
}, 'must be an object')

const Limits = object({
  ringBytes: int(65536, 2 ** 30).refine((n) => (n & (n - 1)) === 0, 'must be a power of two').default(4 * 1024 * 1024).describe('Bytes of each ring between the main thread and a shard'),
  pendingPerShard: int(16, 1 << 20).default(65536).describe('In-flight prepares one shard tracks; beyond it new prepares get T03'),
  maxInFlightPerAccount: int(1, 1 << 20).default(16384).describe('In-flight prepares one account may have (so one sender cannot take a whole shard); T03 beyond'),
  maxConnections: int(1, 1 << 20).default(10000).describe('Open BTP connections and HTTP requests at once; more are refused (503)'),
  maxHoldTimeMs: int(100, 120000).default(30000).describe('Longest time a forwarded prepare may be held by the next hop (ilp-connector maxHoldTime)'),
  minMessageWindowMs: int(0, 60000).default(1000).describe('Time kept back from the incoming expiry when forwarding (ilp-connector minMessageWindow)'),
  maxFrameBytes: int(1024, 1 << 20).default(65536).describe('Largest BTP frame accepted; a larger one closes the connection'),
  maxHttpBodyBytes: int(1024, 1 << 20).default(40960).describe('Largest ILP-over-HTTP request body accepted; larger ones get 413'),
  journalDelayMs: int(0, 10000).default(50).describe('A prepare still in flight after this long is written to the in-flight journal'),
  shardSpinMicros: int(0, 10000).optional().describe('How long an idle shard polls its rings before it sleeps; default 200 when each thread has a core of its own, else 0'),
  maxAccounts: int(1, 1 << 20).optional().describe('Accounts one run has room for (configured, added by the admin API or a reload, deleted since start); default max(1024, twice those configured)'),
  storageReserveBytes: int(0, 2 ** 30).default(16 * 1024 * 1024).describe('Disk space kept in DATA_DIR for the commits owed when the disk is full; 0: none'),
  settlementLogRetentionMs: int(1000, 3650 * DAY_MS).default(SETTLEMENT_LOG_RETENTION_MS).describe('How long ended settlements and booked transfers stay in the settlement logs'),
  reservedConnections: int(0, (1 << 20) - 1, 'an integer from 0 to limits.maxConnections - 1').optional().describe('Of maxConnections, how many only authenticated accounts may use; default half'),
  anonymousPerAddress: int(1, 1 << 20).default(32).describe('Anonymous connections one client address (IPv4, IPv6 /64) may hold'),
  authFailuresFree: int(0, 1000).default(5).describe('Failed authentications an address has before it must wait'),
  authPenaltyMs: int(1, 600_000).default(1000).describe('The first wait after them; each further failure doubles it'),
  authPenaltyMaxMs: int(1, 3_600_000).default(60_000).describe('The longest wait'),
  maxLinksPerAccount: int(1, 1024).default(8).describe('BTP links one account may have at once; a link beyond them is refused'),
  trustedProxies: z.array(z.string({ error: 'must be an IPv4 or IPv6 address or CIDR block, e.g. "10.0.0.0/8"' }).refine((e) => parseBlock(e) !== null), {
    error: 'must be an array of addresses or CIDR blocks, e.g. ["127.0.0.1", "10.0.0.0/8"]',
  }).default([]).describe('Reverse proxies (addresses or CIDR blocks) whose X-Forwarded-For names the client'),
})

/** A static route of the file's "routes" (the admin API's PUT of a route too). */
export const ConfiguredRoute = object({
  targetPrefix: z.string({ error: 'must be an ILP address prefix such as "test.elsewhere" ("" for a default route)' }).refine((p) => p === '' || isValidAddress(p)),
  peerId: text,
})

/** A rate in the static table: units of that asset per unit of the base. */
export const rate = decimal((num) => num > 0n, 'must be a positive decimal (units of this asset per unit of the base), e.g. "0.92"')
export const Rates = z.discriminatedUnion('backend', [
  object({ backend: z.literal('one-to-one') }),
  object({
    backend: z.literal('static'),
    base: assetCode.describe('The asset the table\'s rates are against'),
    table: z.record(assetCode, rate, { error: notA('must be an object of rates by asset code, each the units of that asset per unit of the base, e.g. { "EUR": "0.92" }') })
      .describe('Units of each asset per unit of the base, as decimal text'),
  }),
  object({
    backend: z.literal('ecb'),
    url: url(httpUrl, 'must be an http:// or https:// URL of the ECB daily XML').default(ECB_DAILY_URL).describe('Where the daily XML is fetched from'),
    refreshMs: int(100, DAY_MS).default(3600000),
    maxAgeMs: int(100, 30 * DAY_MS).default(DAY_MS).describe('Rates not refreshed for this long are stale; packets that need them are rejected'),
  }),
], { error: notA('must be an object like { "backend": "static", "base": "USD", "table": { "EUR": "0.92" } }') })

/** The config file; `.meta({ env })` names the environment variable that overrides a field. */
export const ConfigFile = object({
  ilpAddress: z.string({ error: (iss: { code?: string; input?: unknown }) => iss.code === 'custom' ? `${showValue(iss.input)} is not a valid ILP address` : 'must be a non-empty string' })
    .refine((a) => a === '' || isValidAddress(a)).optional().meta({ env: 'ILP_ADDRESS', description: 'Unset: asked of the parent account (IL-DCP) at start-up' }),
  host: text.default('127.0.0.1').meta({ env: 'HOST' }),
  port: int(0, 65535).default(7768).meta({ env: 'PORT' }),
  shards: int(0, 64).optional().meta({ env: 'SHARDS', description: 'Shard worker threads; 0 runs the shard code on the main thread' }),
  ioThreads: int(1, MAX_IO_THREADS).optional().meta({ env: 'IO_THREADS', description: 'Socket I/O threads: 1 runs every socket on the main thread' }),
  dataDir: text.default('./data').meta({ env: 'DATA_DIR' }),
  logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info').meta({ env: 'LOG_LEVEL' }),
  logFormat: z.enum(['text', 'json']).default('text').meta({ env: 'LOG_FORMAT', description: 'text: one key=value line per event; json: one JSON object per line' }),
  durability: z.enum(['process', 'fsync']).default('process').meta({ env: 'DURABILITY', description: 'process: survives a crash of the process; fsync: also an OS crash or power loss' }),
  accounts: z.record(z.string(), Account, { error: notA('must be an object of accounts by id') }).meta({ propertyNames: { pattern: ACCOUNT_ID.source } }),
  payees: z.record(z.string(), Payee, { error: notA('must be an object of payees by name') }).meta({ propertyNames: { pattern: ACCOUNT_ID.source } }).default({}),
  defaultPayee: text.optional().describe('The payee $host resolves to (/.well-known/pay); default: the only payee'),
  shop: object({
    routes: z.array(ShopRoute, { error: 'must be a non-empty array of paid routes' }).min(1).describe('Paid HTTP routes (HTTP-ILP)'),
    upstreamTimeoutMs: int(100, 600000).default(30000),
    payee: Payee.optional().describe('The shop\'s own payee'),
  }, 'must be an object like { "routes": [ { "method": "GET", "path": "/weather", "price": "10" } ] }').optional(),
  adminToken: secretToken.optional().describe('Bearer token of the admin API; unset: the admin API is off'),
  adminHost: text.optional().meta({ env: 'ADMIN_HOST', description: 'With adminPort: serve /admin and /metrics only on this address (default host)' }),
  adminPort: int(0, 65535).optional().meta({ env: 'ADMIN_PORT', description: 'Serve /admin and /metrics only on this port (0 picks a free one); unset: on the node\'s own host and port' }),
  routes: z.array(ConfiguredRoute).default([]),
  routeBroadcastInterval: int(100, 3600000).default(30000).describe('CCP: how often route updates (at least heartbeats) go to peers that asked for them (ms)'),
  limits: Limits.prefault({}),
  drainMs: int(0, 600000).optional().meta({ env: 'DRAIN_MS', description: 'How long SIGTERM waits for prepares in flight; default limits.maxHoldTimeMs + 1000' }),
  metrics: object({
    enabled: z.boolean().default(true),
    token: secretToken.optional(),
    public: z.boolean().default(false).describe('Served to anyone without a token'),
  }, 'must be an object like { "enabled": true, "token": "..." }').prefault({}),
  rates: Rates.prefault({ backend: 'one-to-one' }),
  spread: spread.default('0').describe('The fee on every forwarded packet, as decimal text ("0.002" keeps 0.2 %)'),
  $schema: z.string().optional().describe('The JSON Schema of this file, for editors'),
})

/**
 * The file with its accounts left unread: validate.ts reads each account by Account on its own,
 * so that a reload reads again only the accounts whose entries changed.
 */
export const ConfigShell = ConfigFile.extend({
  accounts: z.record(z.string(), z.unknown(), { error: notA('must be an object of accounts by id') }),
})

/** Environment variable by field, from the schema (load.ts reads them). */
export const ENV_NAMES: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(ConfigFile.shape)
  .flatMap(([field, schema]) => { const env = schema.meta()?.env; return typeof env === 'string' ? [[field, env]] : [] }))

/**
 * The JSON Schema of the config file (scripts/config-schema.mjs writes it for editors). zod leaves
 * out the default of a field whose schema has a transform (an integer that may be a digit string);
 * every such default here is also a valid input, so it is put back.
 */
export function configJsonSchema(): Record<string, unknown> {
  const override = ({ zodSchema, jsonSchema }: { zodSchema: z.core.$ZodType; jsonSchema: Record<string, unknown> }) => {
    const def = zodSchema._zod.def
    if (def.type === 'default' && jsonSchema.default === undefined) jsonSchema.default = (def as z.core.$ZodDefaultDef).defaultValue
  }
  return { ...z.toJSONSchema(ConfigFile, { io: 'input', override }), title: 'ilp-node configuration' }
}

export type Durability = z.output<typeof ConfigFile>['durability']
export type LogLevel = z.output<typeof ConfigFile>['logLevel']
export type LogFormat = z.output<typeof ConfigFile>['logFormat']
export type RouteProtocol = z.output<typeof AccountFields>['routeProtocol']
export type SettlementConfig = Readonly<z.output<typeof Settlement>>
export type SettlementEngineName = SettlementConfig['engine']
export type RateBackend = z.output<typeof Rates>['backend']
export type ShopRoute = Readonly<Omit<z.output<typeof ShopRoute>, 'upstream'> & { upstream: string | null }>
export interface ShopConfig { readonly routes: readonly ShopRoute[]; readonly upstreamTimeoutMs: number }

/** An account as the node uses it: the file's blocks flattened (toAccount); a payee has no transport. */
export type AccountConfig = Readonly<z.output<typeof Account>>
export type PayeeConfig = Readonly<{ secret: Uint8Array | null; name: string | null; imageUrl: string | null; shop: boolean }>
/** Where exchange rates come from (README: "Exchange rates and the fee"); static: the table has no prototype, the base's rate is "1". */
export type RatesConfig = Readonly<{ backend: RateBackend; base: string | null; table: Readonly<Record<string, string>>; url: string | null; refreshMs: number; maxAgeMs: number | null }>
export type { Config } from './parse'
export type File = z.output<typeof ConfigFile>
/** The file as validate.ts gives it: every field but the accounts, which it reads one by one. */
export type FileFields = Omit<File, 'accounts'>

/** The inputs of parseConfig: the file's JSON (CONFIG, or the development config in DATA_DIR), the environment, the machine. */
export interface ConfigSource {
  readonly raw: unknown
  readonly env: EnvOverrides
  readonly machine: MachineDefaults
  /** The CONFIG file a reload re-reads; null for a config made in code. */
  readonly path: string | null
}

/** Fields environment variables set (see ENV_NAMES), as text; undefined or "" means "not set". nativeWake: ILP_NODE_NATIVE_WAKE, environment only. */
export type EnvOverrides = { [field in keyof File | 'nativeWake']?: string }

/** What the machine contributes to defaults (load.ts reads it; tests pass their own). */
export interface MachineDefaults {
  cores: number
  shards: number
  ioThreads?: number
}


/**
 * An account's blocks flattened, after the checks between its fields; run by zod as each account
 * is read, so that its intermediate objects die young (50,000 of them kept for a second pass cost
 * more to collect than the pass itself). The id is set by parseConfig.
 */
function toAccount(a: z.output<typeof AccountFields>, ctx: z.core.$RefinementCtx) {
  const refuse = (path: string[], message: string) => {
    ctx.issues.push({ code: 'custom', input: a, path, message })
    return z.NEVER
  }
  const { btp, http, balance, settlement } = a
  const minimum = balance?.minimum ?? INT64_MIN
  const maximum = balance?.maximum ?? INT64_MAX
  const settleThreshold = balance?.settleThreshold ?? null
  const settleTo = balance?.settleTo ?? 0n
  if (http?.url !== undefined && http.outgoingToken === undefined) return refuse(['http', 'outgoingToken'], 'is required with http.url')
  if (http !== undefined && http.pipelining > 1 && http.url === undefined) return refuse(['http', 'pipelining'], 'is for the node\'s requests to the peer: it needs http.url')
  if (btp?.url !== undefined && http?.url !== undefined) return refuse([], 'has both btp.url and http.url; an account sends its prepares over one transport')
  if (minimum > maximum) return refuse(['balance'], 'minimum is greater than maximum')
  if (balance?.settleTo !== undefined && settleThreshold === null) return refuse(['balance', 'settleTo'], 'needs balance.settleThreshold')
  if (settleThreshold !== null && settleThreshold > settleTo) return refuse(['balance', 'settleThreshold'], `is above settleTo (${settleTo}); the node settles up to settleTo once the balance falls below the threshold`)
  if (settleThreshold !== null && settleTo > maximum) return refuse(['balance', 'settleTo'], `is above balance.maximum (${maximum})`)
  if (settlement !== undefined && btp === undefined) return refuse(['settlement'], 'the btp-transfer engine settles over the account\'s BTP link: it needs btp.token or btp.url')
  if (settleThreshold !== null && settlement === undefined) return refuse(['balance', 'settleThreshold'], 'needs a settlement engine: "settlement": { "engine": "btp-transfer" }')
  return {
    id: '', relation: a.relation, assetCode: a.assetCode, assetScale: a.assetScale, btpToken: btp?.token ?? null, btpUrl: btp?.url ?? null,
    httpIncomingToken: http?.incomingToken ?? null, httpUrl: http?.url ?? null, httpOutgoingToken: http?.outgoingToken ?? null, httpPipelining: http?.pipelining ?? 1,
    balanceMinimum: minimum, balanceMaximum: maximum, settleThreshold, settleTo, settlement: settlement === undefined ? null : Object.freeze(settlement) as SettlementConfig,
    spread: a.spread ?? null, maxPacketAmount: a.maxPacketAmount ?? UINT64_MAX, sendRoutes: a.sendRoutes ?? null, receiveRoutes: a.receiveRoutes ?? null, routeProtocol: a.routeProtocol, payee: null as PayeeConfig | null,
  }
}

/** The asset every one of these accounts has, if they share one: a payee's default. */
