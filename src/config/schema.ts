// The node's configuration: every key of the file, its default and its limits, stated once in
// the zod schema below (which also gives the JSON Schema operators' editors read). `parseConfig`
// turns a JSON value into a frozen Config or throws a ConfigError naming the field. By hand stay
// only what one field cannot say alone: the checks between fields, the defaults that depend on
// the machine or on other fields, and the did-you-mean hint for an unknown field. Account fields
// follow ilp-connector's where they mean the same thing, so operators can move their configs over.

import { z } from 'zod'
import { decimalText, parseDecimal } from '../codec/decimal'
import { isValidAddress } from '../codec/ilp_packet'
import { INT64_MAX, INT64_MIN, UINT64_MAX } from '../codec/oer'
import { parseBlock } from '../codec/ip_address'
import { assetKeyOf } from './asset'
import { showKey, showValue } from '../display'
import { ACCOUNT_ID, ACCOUNT_ID_RULE, ADDRESS_FROM_PARENT, ConfigError, DAY_MS, DEFAULT_MAX_ACCOUNTS, ECB_DAILY_URL, isAccountId, isObject, MAX_IO_THREADS, NAME_RULE, SETTLEMENT_LOG_RETENTION_MS, SHOP_ACCOUNT } from './names'

export { ACCOUNT_ID_RULE, ADDRESS_FROM_PARENT, ConfigError, ECB_DAILY_URL, isAccountId, isObject, MAX_IO_THREADS, SETTLEMENT_LOG_RETENTION_MS, SHOP_ACCOUNT }

/** First path segments the node answers itself; a payee's SPSP endpoint is /<name>. */
const RESERVED_PATHS = ['health', 'ilp', 'payees']
/** Asset codes: ISO 4217 and ticker-like codes, nothing that could hide or break the text it is shown in. */
const ASSET_CODE_RULE = '1-16 printable ASCII characters (no spaces), e.g. "USD"'
const assetCodeProblem = (value: unknown): string => value === undefined ? `is required (${ASSET_CODE_RULE})` : `must be ${ASSET_CODE_RULE}, not ${showValue(value)}`
const assetCode = z.string({ error: (iss) => assetCodeProblem(iss.input) }).regex(/^[\x21-\x7e]{1,16}$/)

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
const Account = AccountFields.transform(toAccount)

/** A payee is an account with no transport, paid by PSK2/STREAM at its address. */
const Payee = object({
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

/** A rate in the static table: units of that asset per unit of the base. */
const rate = decimal((num) => num > 0n, 'must be a positive decimal (units of this asset per unit of the base), e.g. "0.92"')
const Rates = z.discriminatedUnion('backend', [
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
const ConfigFile = object({
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
  routes: z.array(object({
    targetPrefix: z.string({ error: 'must be an ILP address prefix such as "test.elsewhere" ("" for a default route)' }).refine((p) => p === '' || isValidAddress(p)),
    peerId: text,
  })).default([]),
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
 * The parser zod generates code for, made at the first parse (the runtime's generic walk is some
 * 3× slower on 50,000 accounts); it falls back to that walk to word the issues of a refused file.
 */
let compiledFile: typeof ConfigFile | null = null
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

export type Relation = z.output<typeof AccountFields>['relation']
export type Durability = z.output<typeof ConfigFile>['durability']
export type LogLevel = z.output<typeof ConfigFile>['logLevel']
export type LogFormat = z.output<typeof ConfigFile>['logFormat']
export type RouteProtocol = z.output<typeof AccountFields>['routeProtocol']
export type SettlementConfig = Readonly<z.output<typeof Settlement>>
export type SettlementEngineName = SettlementConfig['engine']
export type RateBackend = z.output<typeof Rates>['backend']
export interface RouteConfig { readonly targetPrefix: string; readonly peerId: string }
export type ShopRoute = Readonly<Omit<z.output<typeof ShopRoute>, 'upstream'> & { upstream: string | null }>
export interface ShopConfig { readonly routes: readonly ShopRoute[]; readonly upstreamTimeoutMs: number }

/** An account as the node uses it: the file's blocks flattened (toAccount); a payee has no transport. */
export type AccountConfig = Readonly<z.output<typeof Account>>
export type PayeeConfig = Readonly<{ secret: Uint8Array | null; name: string | null; imageUrl: string | null; shop: boolean }>
/** Where exchange rates come from (README: "Exchange rates and the fee"); static: the table has no prototype, the base's rate is "1". */
export type RatesConfig = Readonly<{ backend: RateBackend; base: string | null; table: Readonly<Record<string, string>>; url: string | null; refreshMs: number; maxAgeMs: number | null }>
/** The configuration the node runs with (parseConfig): the file's fields with their defaults, limits flattened to the top. */
export type Config = ReturnType<typeof parseConfig>
type File = z.output<typeof ConfigFile>

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

/** ilp-connector fields this node does not implement: refused with why, not ignored. */
const UNSUPPORTED_FIELDS: ReadonlyMap<string, string> = new Map([
  ['throughput', 'throughput limits are not supported; use maxPacketAmount and balance.maximum'],
])

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
 * Why a field the node does not read is refused (a typo such as `maxPacketAmmount` would otherwise
 * be ignored and its default used in silence), naming the nearest known one.
 */
function unknownField(key: string, known: readonly string[]): string {
  const unsupported = UNSUPPORTED_FIELDS.get(key)
  if (unsupported !== undefined) return unsupported
  let nearest = known[0]
  for (const k of known) if (editDistance(key, k) < editDistance(key, nearest)) nearest = k
  const hint = nearest !== undefined && editDistance(key, nearest) <= Math.max(2, Math.floor(nearest.length / 3)) ? `; did you mean "${nearest}"?` : ''
  return `is not a field the node knows${hint} (known here: ${known.join(', ')})`
}

const TYPE_PROBLEMS: Readonly<Record<string, string>> = { string: 'must be a non-empty string', boolean: 'must be true or false', object: 'must be an object', array: 'must be an array' }

/** The problem of an issue no field type words itself: said once here for every field. */
function problem(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'unrecognized_keys': return unknownField(iss.keys[0], Object.keys((iss.inst as z.ZodObject).shape))
    case 'invalid_key': return iss.issues[0]?.message
    case 'invalid_type': return TYPE_PROBLEMS[iss.expected]
    case 'too_small': return iss.origin === 'string' ? TYPE_PROBLEMS.string : undefined
    case 'invalid_value':
    case 'invalid_union': {
      const values = (iss.code === 'invalid_value' ? iss.values : (iss.options as unknown[] | undefined) ?? []).join(', ')
      return (iss.code === 'invalid_value' ? iss.input : (iss.input as Record<string, unknown> | undefined)?.[String(iss.discriminator)]) === undefined ? `is required (${values})` : `must be one of ${values}`
    }
  }
}

/** The field an issue names, as ConfigError has always named it: `accounts.alice.balance`, `routes[0].peerId`, `port (PORT)`. */
function fieldOf(iss: z.core.$ZodIssue): string {
  const path = iss.code === 'unrecognized_keys' ? [...iss.path, iss.keys[0]] : iss.path
  const field = path.map((key, i) => typeof key === 'number' ? `[${key}]` : `${i === 0 ? '' : '.'}${showKey(String(key))}`).join('')
  const env = path.length === 1 && Object.hasOwn(ENV_NAMES, path[0]) ? ENV_NAMES[String(path[0])] : undefined
  return field === '' ? '(top level)' : env === undefined ? field : `${field} (${env})`
}

export function parseConfig(raw: unknown, env: EnvOverrides, machine: MachineDefaults, path: string | null = null) {
  const { file, merged } = readFile(raw, env)
  const { limits } = file
  // Without an address, the node asks its parent (IL-DCP) at start-up; until then it is this
  // placeholder, which start-up replaces (control/routing/ildcp_client.ts).
  const ilpAddress = file.ilpAddress === undefined || file.ilpAddress === '' ? ADDRESS_FROM_PARENT : file.ilpAddress
  const { shards, ioThreads, nativeWake } = layoutOf(file, env, machine)
  const accounts = accountsOf(file, ilpAddress)
  const shop = addPayeesAndShop(file, accounts)
  const payeeNames = [...accounts.values()].filter((a) => a.payee !== null && !a.payee.shop).map((a) => a.id)
  const defaultPayee = file.defaultPayee ?? (payeeNames.length === 1 ? payeeNames[0] : null)
  if (defaultPayee !== null && !payeeNames.includes(defaultPayee)) throw new ConfigError('defaultPayee', `${showValue(defaultPayee)} is not one of the payees`)
  const routes = file.routes.map((r, i) => {
    if (!accounts.has(r.peerId)) throw new ConfigError(`routes[${i}].peerId`, `names no account (${showValue(r.peerId)})`)
    return Object.freeze(r)
  })
  const adminListen = adminListenOf(file)
  const reservedConnections = limits.reservedConnections ?? Math.floor(limits.maxConnections / 2)
  if (reservedConnections > limits.maxConnections - 1) throw new ConfigError('limits.reservedConnections', `must be an integer from 0 to ${limits.maxConnections - 1}`)
  if (limits.authPenaltyMaxMs < limits.authPenaltyMs) throw new ConfigError('limits.authPenaltyMaxMs', `is less than limits.authPenaltyMs (${limits.authPenaltyMs})`)
  const maxAccounts = limits.maxAccounts ?? Math.max(DEFAULT_MAX_ACCOUNTS, 2 * accounts.size)
  if (maxAccounts < accounts.size) throw new ConfigError('limits.maxAccounts', `is less than the ${accounts.size} accounts configured (payees and the shop count too)`)
  return Object.freeze({
    ...limits,
    ilpAddress, host: file.host, port: file.port, shards, ioThreads, dataDir: file.dataDir, logLevel: file.logLevel, logFormat: file.logFormat, nativeWake,
    durability: file.durability, accounts: Object.freeze([...accounts.values()]), routes: Object.freeze(routes), reservedConnections, maxAccounts,
    trustedProxies: Object.freeze(limits.trustedProxies),
    drainMs: file.drainMs ?? limits.maxHoldTimeMs + 1000,
    routeBroadcastIntervalMs: file.routeBroadcastInterval,
    // Spinning pays only when each shard and each socket thread have a core of their own.
    shardSpinMicros: limits.shardSpinMicros ?? (shards > 0 && shards + ioThreads <= machine.cores ? 200 : 0),
    defaultPayee,
    adminToken: file.adminToken ?? null,
    adminListen,
    metrics: Object.freeze({ ...file.metrics, token: file.metrics.token ?? null }),
    shop,
    rates: toRates(file.rates, merged.rates),
    spread: file.spread,
    source: Object.freeze({ raw, env, machine, path }) as ConfigSource,
  })
}

/** The file with the environment laid over it, read by the schema; a ConfigError names the first problem. */
function readFile(raw: unknown, env: EnvOverrides): { file: File; merged: Record<string, unknown> } {
  if (!isObject(raw)) throw new ConfigError('(top level)', 'must be a JSON object')
  const merged: Record<string, unknown> = { ...raw }
  for (const [key, value] of Object.entries(env)) if (key !== 'nativeWake' && value !== undefined && value !== '') merged[key] = value
  // Names by hand, from the file's own keys (zod's records pass over an own `__proto__` key); the
  // JSON Schema has their pattern.
  for (const [section, rule] of [['accounts', ACCOUNT_ID_RULE], ['payees', `payee names are ${NAME_RULE}`]]) {
    for (const name of isObject(merged[section]) ? Object.keys(merged[section]) : []) {
      if (!isAccountId(name)) throw new ConfigError(`${section}.${showKey(name)}`, rule)
      if (section === 'payees' && RESERVED_PATHS.includes(name)) throw new ConfigError(`payees.${name}`, `"${name}" is a path the node serves itself (${RESERVED_PATHS.join(', ')})`)
    }
  }
  const parsed = (compiledFile ??= z.compile(ConfigFile)).safeParse(merged, { error: problem })
  if (!parsed.success) {
    // An unknown field first: it is most often the cause of the rest (a misspelt required field).
    const iss = parsed.error.issues.find((i) => i.code === 'unrecognized_keys') ?? parsed.error.issues[0]
    throw new ConfigError(fieldOf(iss), iss.message)
  }
  return { file: parsed.data, merged }
}

/**
 * The thread layout. Each default follows the other when only one is set: SHARDS=0 alone keeps
 * the sockets on the main thread; IO_THREADS=N alone gets at least one shard thread.
 */
function layoutOf(file: File, env: EnvOverrides, machine: MachineDefaults): { shards: number; ioThreads: number; nativeWake: boolean } {
  let shards = file.shards ?? machine.shards
  const ioThreads = file.ioThreads ?? (shards === 0 ? 1 : machine.ioThreads ?? 1)
  if (file.ioThreads !== undefined && file.shards === undefined && ioThreads > 1 && shards === 0) shards = ioThreads
  // The inline shard runs in the main thread's turn after its socket callbacks: it needs the
  // sockets on the main thread too.
  if (ioThreads > 1 && shards === 0) throw new ConfigError('ioThreads (IO_THREADS)', 'more than 1 I/O thread needs at least 1 shard thread (SHARDS)')
  const wake = env.nativeWake === undefined || env.nativeWake === '' ? '1' : env.nativeWake
  if (wake !== '0' && wake !== '1') throw new ConfigError('ILP_NODE_NATIVE_WAKE', 'must be one of 0, 1')
  return { shards, ioThreads, nativeWake: wake === '1' }
}

/** The accounts by id, each token used once, at most one parent, and one when the address must come from it. */
function accountsOf(file: File, ilpAddress: string): Map<string, AccountConfig> {
  const accounts = new Map<string, AccountConfig>()
  const tokens = new Set<string>()
  for (const id in file.accounts) {
    const account = file.accounts[id]
    account.id = id
    Object.freeze(account)
    if (tokens.has(account.btpToken!)) throw new ConfigError(`accounts.${id}.btp.token`, 'is used by another account')
    if (account.btpToken !== null) tokens.add(account.btpToken)
    if (tokens.has(account.httpIncomingToken!)) throw new ConfigError(`accounts.${id}.http.incomingToken`, 'is used by another account')
    if (account.httpIncomingToken !== null) tokens.add(account.httpIncomingToken)
    if (account.relation === 'child' && !isValidAddress(`${ilpAddress}.${id}`)) throw new ConfigError(`accounts.${id}`, 'gives the child an invalid ILP address')
    accounts.set(id, account)
  }
  const parents = [...accounts.values()].filter((a) => a.relation === 'parent')
  if (parents.length > 1) throw new ConfigError('accounts', `at most one account may be the parent (${parents.map((p) => p.id).join(', ')})`)
  if (ilpAddress === ADDRESS_FROM_PARENT) {
    if (parents.length === 0) throw new ConfigError('ilpAddress (ILP_ADDRESS)', 'is required unless an account has relation "parent"')
    if (parents[0].btpUrl === null && parents[0].httpUrl === null) {
      throw new ConfigError(`accounts.${parents[0].id}`, 'the parent needs btp.url or http.url for the node to ask it for an address')
    }
  }
  return accounts
}

/** Adds the payees and the shop's own payee to `accounts`; the shop's settings, or null. */
function addPayeesAndShop(file: File, accounts: Map<string, AccountConfig>): ShopConfig | null {
  const payees = Object.entries(file.payees)
  const payeeAsset = payees.length === 0 ? null : onlyAsset([...accounts.values()])
  for (const [name, p] of payees) {
    if (accounts.has(name)) throw new ConfigError(`payees.${name}`, 'has the name of an account; payees and accounts share the addresses under the node')
    accounts.set(name, toPayee(name, p, payeeAsset, `payees.${name}`))
  }
  if (file.shop === undefined) return null
  if (accounts.has(SHOP_ACCOUNT)) throw new ConfigError(`accounts.${SHOP_ACCOUNT}`, 'is the name of the shop\'s own payee')
  const seen = new Set<string>()
  file.shop.routes.forEach((r, i) => {
    if (seen.has(`${r.method} ${r.path}`)) throw new ConfigError(`shop.routes[${i}]`, `${r.method} ${r.path} is listed twice`)
    seen.add(`${r.method} ${r.path}`)
  })
  const account = toPayee(SHOP_ACCOUNT, file.shop.payee ?? Payee.parse({}), onlyAsset([...accounts.values()].filter((a) => a.payee === null)), 'shop.payee')
  accounts.set(SHOP_ACCOUNT, Object.freeze({ ...account, payee: Object.freeze({ ...account.payee!, shop: true }) }))
  return Object.freeze({ routes: Object.freeze(file.shop.routes.map((r) => Object.freeze({ ...r, upstream: r.upstream ?? null }))), upstreamTimeoutMs: file.shop.upstreamTimeoutMs })
}

/** Where /admin and /metrics answer when not on the node's own port (ADMIN_PORT), and the checks on /metrics' access. */
function adminListenOf(file: File): { readonly host: string; readonly port: number } | null {
  if (file.metrics.token !== undefined && file.metrics.public) throw new ConfigError('metrics.public', 'is true, so metrics.token would never be asked for; keep one of them')
  if (file.adminHost !== undefined && file.adminPort === undefined) throw new ConfigError('adminHost (ADMIN_HOST)', 'needs adminPort (ADMIN_PORT) too')
  const adminListen = file.adminPort === undefined ? null : Object.freeze({ host: file.adminHost ?? file.host, port: file.adminPort })
  if (adminListen !== null && adminListen.port !== 0 && adminListen.port === file.port && adminListen.host === file.host) {
    throw new ConfigError('adminPort (ADMIN_PORT)', 'is the node\'s own HOST:PORT; leave it out to serve the admin API there')
  }
  return adminListen
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
  if (btp?.url !== undefined && http?.url !== undefined) return refuse([], 'has both btp.url and http.url; an account sends its prepares over one transport')
  if (minimum > maximum) return refuse(['balance'], 'minimum is greater than maximum')
  if (balance?.settleTo !== undefined && settleThreshold === null) return refuse(['balance', 'settleTo'], 'needs balance.settleThreshold')
  if (settleThreshold !== null && settleThreshold > settleTo) return refuse(['balance', 'settleThreshold'], `is above settleTo (${settleTo}); the node settles up to settleTo once the balance falls below the threshold`)
  if (settleThreshold !== null && settleTo > maximum) return refuse(['balance', 'settleTo'], `is above balance.maximum (${maximum})`)
  if (settlement !== undefined && btp === undefined) return refuse(['settlement'], 'the btp-transfer engine settles over the account\'s BTP link: it needs btp.token or btp.url')
  if (settleThreshold !== null && settlement === undefined) return refuse(['balance', 'settleThreshold'], 'needs a settlement engine: "settlement": { "engine": "btp-transfer" }')
  return {
    id: '', relation: a.relation, assetCode: a.assetCode, assetScale: a.assetScale, btpToken: btp?.token ?? null, btpUrl: btp?.url ?? null,
    httpIncomingToken: http?.incomingToken ?? null, httpUrl: http?.url ?? null, httpOutgoingToken: http?.outgoingToken ?? null,
    balanceMinimum: minimum, balanceMaximum: maximum, settleThreshold, settleTo, settlement: settlement === undefined ? null : Object.freeze(settlement) as SettlementConfig,
    spread: a.spread ?? null, maxPacketAmount: a.maxPacketAmount ?? UINT64_MAX, sendRoutes: a.sendRoutes ?? null, receiveRoutes: a.receiveRoutes ?? null, routeProtocol: a.routeProtocol, payee: null as PayeeConfig | null,
  }
}

/** The asset every one of these accounts has, if they share one: a payee's default. */
function onlyAsset(accounts: AccountConfig[]): { assetCode: string; assetScale: number } | null {
  const assets = new Set(accounts.map(assetKeyOf))
  return assets.size === 1 ? { assetCode: accounts[0].assetCode, assetScale: accounts[0].assetScale } : null
}

/**
 * A payee is an account with no transport: it is routed at `<ilpAddress>.<name>` like a child,
 * holds its balance like any account (credited when a payment to it is fulfilled), and its
 * packets are answered by the node's PSK2/STREAM receiver in the shard that owns it.
 */
function toPayee(id: string, p: z.output<typeof Payee>, shared: { assetCode: string; assetScale: number } | null, at: string): AccountConfig {
  let asset = shared
  if (p.assetCode !== undefined || p.assetScale !== undefined || shared === null) {
    if (p.assetCode === undefined) throw new ConfigError(`${at}.assetCode`, assetCodeProblem(undefined))
    if (p.assetScale === undefined) throw new ConfigError(`${at}.assetScale`, 'is required with assetCode (or leave both out when all accounts share one asset)')
    asset = { assetCode: p.assetCode, assetScale: p.assetScale }
  }
  return Object.freeze({
    id, relation: 'child', ...asset!, btpToken: null, btpUrl: null, httpIncomingToken: null, httpUrl: null, httpOutgoingToken: null,
    balanceMinimum: INT64_MIN, balanceMaximum: INT64_MAX, settleThreshold: null, settleTo: 0n, settlement: null, spread: null,
    maxPacketAmount: p.maxPacketAmount ?? UINT64_MAX, sendRoutes: false, receiveRoutes: false, routeProtocol: 'ccp',
    payee: Object.freeze({ secret: p.secret ?? null, name: p.name ?? null, imageUrl: p.imageUrl ?? null, shop: false }),
  })
}

/** The rates in use; the static table is read from the file's own keys (zod's record passes over `__proto__`). */
function toRates(r: z.output<typeof Rates>, raw: unknown): RatesConfig {
  const none = { base: null, table: rateTable([]), url: null, refreshMs: 0, maxAgeMs: null }
  if (r.backend === 'one-to-one') return Object.freeze({ backend: r.backend, ...none })
  if (r.backend === 'ecb') {
    if (r.maxAgeMs < r.refreshMs) throw new ConfigError('rates.maxAgeMs', `is less than rates.refreshMs (${r.refreshMs}): the rates would go stale between two fetches`)
    return Object.freeze({ ...r, base: 'EUR', table: rateTable([]) })
  }
  const rates: [string, string][] = [[r.base, '1']]
  for (const [code, value] of Object.entries((raw as { table: object }).table)) {
    const field = `rates.table.${showKey(code)}`
    const parsed = assetCode.safeParse(code)
    if (!parsed.success) throw new ConfigError(field, assetCodeProblem(code))
    const text = rate.safeParse(value)
    if (!text.success) throw new ConfigError(field, text.error.issues[0].message)
    if (code === r.base && text.data !== '1') throw new ConfigError(field, 'is the base: its rate is 1')
    if (code !== r.base) rates.push([code, text.data])
  }
  return Object.freeze({ backend: r.backend, ...none, base: r.base, table: rateTable(rates) })
}

/** Rates by asset code in an object with no prototype: a code such as `constructor` is only ever a rate. */
function rateTable(rates: [string, string][]): Readonly<Record<string, string>> {
  return Object.freeze(Object.assign(Object.create(null) as Record<string, string>, Object.fromEntries(rates)))
}
