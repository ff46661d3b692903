// The configuration the node runs with: the file as the schema read it (validate.ts), then what
// one field cannot say alone: the checks between fields and between accounts, the defaults that
// depend on the machine or on other fields, and the accounts flattened for the node.

import { ConfigError, ADDRESS_FROM_PARENT, DEFAULT_MAX_ACCOUNTS, SHOP_ACCOUNT } from './names'
import { INT64_MAX, INT64_MIN, UINT64_MAX } from '../codec/oer'
import { showKey, showValue } from '../display'
import { AccountRules, type PayeeNames } from './account_rules'
import { validateFile, type FileAccounts, type ReadAccounts } from './validate'
import { assetCode, assetCodeProblem, Payee, rate, Rates, type AccountConfig, type ConfigFile, type ConfigSource, type EnvOverrides, type FileFields, type MachineDefaults, type RatesConfig, type ShopConfig } from './schema'
import type { z } from 'zod'

/** The configuration the node runs with: the file's fields with their defaults, limits flattened to the top. */
export type Config = ReturnType<typeof parseConfig>

export function parseConfig(raw: unknown, env: EnvOverrides, machine: MachineDefaults, path: string | null = null) {
  return parseWithRules(raw, env, machine, path).config
}

/**
 * The config, and what a change of one account is checked with afterwards (control/ops/reconfigure.ts):
 * the rules between accounts over these accounts, and each account with the entry it was read
 * from. `before`: accounts read before, reused where the file's entry is unchanged (a reload).
 */
export function parseWithRules(raw: unknown, env: EnvOverrides, machine: MachineDefaults, path: string | null = null, before?: ReadAccounts) {
  const { file, merged, accounts: read } = validateFile(raw, env, before)
  const { limits } = file
  // Without an address, the node asks its parent (IL-DCP) at start-up; until then it is this
  // placeholder, which start-up replaces (control/routing/ildcp_client.ts).
  const ilpAddress = file.ilpAddress === undefined || file.ilpAddress === '' ? ADDRESS_FROM_PARENT : file.ilpAddress
  const { shards, ioThreads, nativeWake } = layoutOf(file, env, machine)
  const rules = new AccountRules(ilpAddress, limits.maxAccounts)
  const accounts = accountsOf(read, rules)
  const shop = addPayeesAndShop(file, accounts, rules)
  const payeeNames = [...accounts.values()].filter((a) => a.payee !== null && !a.payee.shop).map((a) => a.id)
  const defaultPayee = file.defaultPayee ?? (payeeNames.length === 1 ? payeeNames[0] : null)
  if (defaultPayee !== null && !payeeNames.includes(defaultPayee)) throw new ConfigError('defaultPayee', `${showValue(defaultPayee)} is not one of the payees`)
  const routes = file.routes.map((r, i) => {
    if (!accounts.has(r.peerId)) throw new ConfigError(`routes[${i}].peerId`, `names no account (${showValue(r.peerId)})`)
    return Object.freeze(r)
  })
  rules.setRoutes(routes)
  const config = settle(file, env, machine, { raw, path, merged, ilpAddress, shards, ioThreads, nativeWake, accounts, routes, shop, defaultPayee })
  rememberRead(config, { rules, read })
  return { config, rules, read }
}

/**
 * The rules and entries a config was read with, by its source (kept by every copy of the config
 * that start-up makes: the address from the parent, the payees' secrets). Not in the config
 * itself: the config goes to every thread, and these are the main thread's alone.
 */
const readWithSource = new WeakMap<ConfigSource, { rules: AccountRules; read: FileAccounts }>()

export function rememberRead(config: Config, known: { rules: AccountRules; read: FileAccounts }): void {
  readWithSource.set(config.source, { rules: known.rules, read: known.read })
}

/** What `config` was read with (parseWithRules), if it was read here. */
export function readWith(config: Config): { rules: AccountRules; read: FileAccounts } | undefined {
  return readWithSource.get(config.source)
}

/** The rest of the config once the accounts, payees and routes are read: limits, the admin listener, rates. */
function settle(file: FileFields, env: EnvOverrides, machine: MachineDefaults, r: Settled) {
  const { limits } = file
  const { accounts, shards, ioThreads } = r
  const adminListen = adminListenOf(file)
  const reservedConnections = limits.reservedConnections ?? Math.floor(limits.maxConnections / 2)
  if (reservedConnections > limits.maxConnections - 1) throw new ConfigError('limits.reservedConnections', `must be an integer from 0 to ${limits.maxConnections - 1}`)
  if (limits.authPenaltyMaxMs < limits.authPenaltyMs) throw new ConfigError('limits.authPenaltyMaxMs', `is less than limits.authPenaltyMs (${limits.authPenaltyMs})`)
  // Every packet, whichever transport brought it, crosses the rings between threads in records
  // sized for a BTP frame: a larger HTTP body could not be carried (nor its answer relayed).
  if (limits.maxHttpBodyBytes > limits.maxFrameBytes) {
    throw new ConfigError('limits.maxHttpBodyBytes', `is more than limits.maxFrameBytes (${limits.maxFrameBytes}); raise that too, or keep the body within it`)
  }
  const maxAccounts = limits.maxAccounts ?? Math.max(DEFAULT_MAX_ACCOUNTS, 2 * accounts.size)
  if (maxAccounts < accounts.size) throw new ConfigError('limits.maxAccounts', `is less than the ${accounts.size} accounts configured (payees and the shop count too)`)
  return Object.freeze({
    ...limits,
    ilpAddress: r.ilpAddress, host: file.host, port: file.port, shards, ioThreads, dataDir: file.dataDir, logLevel: file.logLevel, logFormat: file.logFormat, nativeWake: r.nativeWake,
    durability: file.durability, accounts: Object.freeze([...accounts.values()]) as readonly AccountConfig[], routes: Object.freeze(r.routes), reservedConnections, maxAccounts,
    trustedProxies: Object.freeze(limits.trustedProxies),
    drainMs: file.drainMs ?? limits.maxHoldTimeMs + 1000,
    routeBroadcastIntervalMs: file.routeBroadcastInterval,
    // Spinning pays only when each shard and each socket thread have a core of their own.
    shardSpinMicros: limits.shardSpinMicros ?? (shards > 0 && shards + ioThreads <= machine.cores ? 200 : 0),
    defaultPayee: r.defaultPayee,
    adminToken: file.adminToken ?? null,
    adminListen,
    metrics: Object.freeze({ ...file.metrics, token: file.metrics.token ?? null }),
    shop: r.shop,
    rates: toRates(file.rates, r.merged.rates),
    spread: file.spread,
    source: Object.freeze({ raw: r.raw, env, machine, path: r.path }) as ConfigSource,
  })
}

/** What parseWithRules has read when it settles the rest. */
interface Settled {
  raw: unknown
  path: string | null
  merged: Record<string, unknown>
  ilpAddress: string
  shards: number
  ioThreads: number
  nativeWake: boolean
  accounts: Map<string, AccountConfig>
  routes: z.output<typeof ConfigFile>['routes']
  shop: ShopConfig | null
  defaultPayee: string | null
}

/**
 * The thread layout. Each default follows the other when only one is set: SHARDS=0 alone keeps
 * the sockets on the main thread; IO_THREADS=N alone gets at least one shard thread.
 */
function layoutOf(file: FileFields, env: EnvOverrides, machine: MachineDefaults): { shards: number; ioThreads: number; nativeWake: boolean } {
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

/** The accounts by id, each token used once, at most one parent, and one when the address must come from it (account_rules.ts). */
function accountsOf(read: FileAccounts, rules: AccountRules): Map<string, AccountConfig> {
  const accounts = new Map<string, AccountConfig>()
  for (const [id, { account }] of read) {
    rules.add(id, account)
    accounts.set(id, account)
  }
  rules.checkAll()
  return accounts
}

/** Adds the payees and the shop's own payee to `accounts`; the shop's settings, or null. */
function addPayeesAndShop(file: FileFields, accounts: Map<string, AccountConfig>, rules: AccountRules): ShopConfig | null {
  const payees = Object.entries(file.payees)
  rules.setPayees(payeeNames(file))
  for (const [name, p] of payees) {
    if (accounts.has(name)) throw new ConfigError(`payees.${name}`, 'has the name of an account; payees and accounts share the addresses under the node')
    accounts.set(name, toPayee(name, p, rules.sharedAsset(), `payees.${name}`))
  }
  if (file.shop === undefined) return null
  if (accounts.has(SHOP_ACCOUNT)) throw new ConfigError(`accounts.${SHOP_ACCOUNT}`, 'is the name of the shop\'s own payee')
  const seen = new Set<string>()
  file.shop.routes.forEach((r, i) => {
    if (seen.has(`${r.method} ${r.path}`)) throw new ConfigError(`shop.routes[${i}]`, `${r.method} ${r.path} is listed twice`)
    seen.add(`${r.method} ${r.path}`)
  })
  const account = toPayee(SHOP_ACCOUNT, file.shop.payee ?? Payee.parse({}), rules.sharedAsset(), 'shop.payee')
  accounts.set(SHOP_ACCOUNT, Object.freeze({ ...account, payee: Object.freeze({ ...account.payee!, shop: true }) }))
  return Object.freeze({ routes: Object.freeze(file.shop.routes.map((r) => Object.freeze({ ...r, upstream: r.upstream ?? null }))), upstreamTimeoutMs: file.shop.upstreamTimeoutMs })
}

/** The payees' names, and the first of them (or the shop's payee) that takes the asset every account shares. */
function payeeNames(file: FileFields): PayeeNames {
  const names = new Set(Object.keys(file.payees))
  const takesShared = (p: { assetCode?: string; assetScale?: number }) => p.assetCode === undefined && p.assetScale === undefined
  let sharedAssetNeededBy = Object.entries(file.payees).find(([, p]) => takesShared(p))?.[0] ?? null
  if (sharedAssetNeededBy !== null) sharedAssetNeededBy = `payees.${sharedAssetNeededBy}`
  if (file.shop !== undefined) {
    names.add(SHOP_ACCOUNT)
    if (sharedAssetNeededBy === null && takesShared(file.shop.payee ?? {})) sharedAssetNeededBy = 'shop.payee'
  }
  return { names, sharedAssetNeededBy, shop: file.shop !== undefined }
}

/** Where /admin and /metrics answer when not on the node's own port (ADMIN_PORT), and the checks on /metrics' access. */
function adminListenOf(file: FileFields): { readonly host: string; readonly port: number } | null {
  if (file.metrics.token !== undefined && file.metrics.public) throw new ConfigError('metrics.public', 'is true, so metrics.token would never be asked for; keep one of them')
  if (file.adminHost !== undefined && file.adminPort === undefined) throw new ConfigError('adminHost (ADMIN_HOST)', 'needs adminPort (ADMIN_PORT) too')
  const adminListen = file.adminPort === undefined ? null : Object.freeze({ host: file.adminHost ?? file.host, port: file.adminPort })
  if (adminListen !== null && adminListen.port !== 0 && adminListen.port === file.port && adminListen.host === file.host) {
    throw new ConfigError('adminPort (ADMIN_PORT)', 'is the node\'s own HOST:PORT; leave it out to serve the admin API there')
  }
  return adminListen
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
    id, relation: 'child', ...asset!, btpToken: null, btpUrl: null, httpIncomingToken: null, httpUrl: null, httpOutgoingToken: null, httpPipelining: 1,
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
