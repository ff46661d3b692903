// Changes the accounts and routes of the running node: an admin API request (PUT/DELETE of an
// account or a route) or a reload of CONFIG (SIGHUP, POST /admin/reload). A change costs what it
// changes, not what the node holds (a hub changes one of 100,000 accounts all day): an API change
// reads its one entry by the schema (config/validate.ts) and checks it against the other accounts
// by the rules between them, kept as indices (config/account_rules.ts); a reload parses the file
// (with the API's overlay on top, config_overlay.ts) as at start, but reads again only the entries
// that changed since the running accounts were read. Either refuses with the words of a start.
// Then only the slots that changed are handed to every thread, in this order:
//
//   1. the main thread's account table (indices: an account keeps its own; a new one takes the
//      next free index; a deleted one stays, not live, until the node restarts)
//   2. every shard, between two of its turns: limits apply from the next prepare, a new account
//      starts from its committed records, IL-DCP answers from the new settings
//   3. every I/O thread: tokens are looked up in the new table; the links of deleted accounts,
//      and of accounts whose token, URL, relation or asset changed, close (only those)
//   4. the route manager: local and configured routes, and what goes to the shards next
//
// Accounts not changed keep their links and prepares in flight. One change runs at a time.
// What cannot change while the node runs (its address, port, layout, limits, payees, shop, ...)
// is left as it is by a reload, with a warning naming it: it takes effect at the next restart.

import { sameAccount, type AccountChange, type AccountTable } from '../../config/account_table'
import type { AccountRules } from '../../config/account_rules'
import { readConfigFile } from '../../config/load'
import { parseWithRules, readWith, rememberRead } from '../../config/parse'
import { validateAccount, validateRoute, type FileAccounts, type ReadAccounts } from '../../config/validate'
import { ACCOUNT_ID_RULE, ADDRESS_FROM_PARENT, ConfigError, isAccountId, isObject, type AccountConfig, type Config } from '../../config/schema'
import { showKey, showValue } from '../../display'
import { refusal, type AdminErrorCode, type Outcome } from '../../io/ops/admin_errors'
import type { Logger } from '../../log'
import { readBalance, readSendingSettlements, type Store } from '../../store/balance_store'
import { StorageUnavailableError } from '../../store/storage_health'
import { adminRoutePrefixes, combine, fileAccount, fileRoute, readOverlay, writeOverlay, type Overlay, type OverlayEntry } from './config_overlay'
import type { RouteManager } from '../routing/route_manager'

export interface ReconfigureSources {
  store: Store
  /** The main thread's table (node.ts, the admin API, metrics and routes read it). */
  accounts: AccountTable
  shards: { applyAccounts(changes: readonly AccountChange[]): Promise<void> }
  io: { applyAccounts(changes: readonly AccountChange[], relink: number[]): Promise<void> }
  routes: RouteManager
  /** The exchange rates and the spread, applied live on a reload. */
  rates: { reconfigure(config: Config): void }
  /** Holds in flight of one account index, over every shard. */
  holdsOf(account: number): { held: bigint; prepares: number }
  /** An account reached over ILP-over-HTTP counts as linked while it is configured. */
  linkUp(account: number): void
  linkDown(account: number): void
  log: Logger
}

/**
 * Why the account table cannot become what a config asks for: as a code of the admin API, and
 * as a ConfigError's field and problem (a reload names it so in its refusal).
 */
interface TableRefusal {
  readonly code: Extract<AdminErrorCode, 'no_room' | 'balance_not_zero' | 'settlement_in_flight'>
  readonly field: string
  readonly problem: string
}

export class Reconfigurer {
  private config: Config
  /** The file's JSON as last read (at start, or by the last good reload). */
  private fileRaw: unknown
  private readonly overlay: { accounts: Map<string, OverlayEntry>; routes: Map<string, OverlayEntry> }
  /** The rules between the running accounts (account_rules.ts): one account's change is checked against them alone. */
  private rules: AccountRules
  /** Each running account (not a payee) with the entry it was read from: a reload reads only the entries that changed. */
  private read: FileAccounts
  private queue: Promise<unknown> = Promise.resolve()
  private readonly httpLinked = new Set<number>()

  constructor(initial: Config, overlay: Overlay, private readonly s: ReconfigureSources) {
    this.fileRaw = initial.source.raw
    this.overlay = { accounts: new Map(overlay.accounts), routes: new Map(overlay.routes) }
    const known = readWith(initial) ?? build(initial, this.fileRaw, overlay)
    this.rules = known.rules
    this.read = known.read
    this.config = this.running(initial, initial.routes)
  }

  get current(): Config {
    return this.config
  }

  /** At start, after the I/O threads listen: accounts with http.url are up from the start. */
  start(): void {
    this.syncHttpLinks(this.s.accounts.accounts.map((_, i) => i))
  }

  /**
   * PUT /admin/accounts/:id: creates or replaces an account, with the settings of a config file
   * entry. The entry is read alone, and checked against the other accounts by the rules between
   * them (account_rules.ts): a change costs what it changes, however many accounts there are.
   */
  putAccount(id: string, body: unknown): Promise<Outcome> {
    return this.serial(async () => {
      if (!isAccountId(id)) return refusal('invalid_field', ACCOUNT_ID_RULE, 'id')
      if (!isObject(body)) return refusal('invalid_body', 'must be a JSON object of the account\'s settings, as in the config file\'s "accounts"', '(body)')
      const payee = this.payee(id)
      if (payee !== null) return payee
      const existed = this.s.accounts.indexOfLive(id) >= 0
      const account = this.checked('account', id, () => {
        const read = validateAccount(id, body)
        this.rules.check(id, read, this.config.routes)
        return read
      })
      if ('status' in account) return account
      const refused = await this.changeAccount(id, account, { value: body, file: fileAccount(this.fileRaw, id) })
      if (refused !== null) return refused
      return { status: existed ? 200 : 201, body: { account: id, created: !existed } }
    })
  }

  /** DELETE /admin/accounts/:id: refused while the account has a balance or holds, unless forced. */
  deleteAccount(id: string, force: boolean): Promise<Outcome> {
    return this.serial(async () => {
      const index = this.s.accounts.indexOfLive(id)
      if (index < 0) return refusal('not_found', `no account ${showValue(id)}`, 'id')
      const payee = this.payee(id)
      if (payee !== null) return payee
      const routes = this.config.routes.filter((r) => r.peerId === id).map((r) => r.targetPrefix)
      if (routes.length > 0) {
        return refusal('account_in_use', `${id} is the next hop of configured routes; delete or change them first`, 'id', { routes })
      }
      const balance = readBalance(this.s.store, id)
      const { held, prepares } = this.s.holdsOf(index)
      if (!force && (balance !== 0n || held !== 0n || prepares !== 0)) {
        return refusal('balance_not_zero', `${id} has a balance or prepares in flight; settle it first, or delete with ?force=true (its balance stays in LMDB)`, 'id',
          { balance: balance.toString(), held: held.toString(), preparesInFlight: prepares })
      }
      const allowed = this.checked('account', id, () => this.rules.check(id, null, this.config.routes))
      if (allowed !== undefined) return allowed
      const refused = await this.changeAccount(id, null, { value: null, file: fileAccount(this.fileRaw, id) })
      if (refused !== null) return refused
      if (balance !== 0n || held !== 0n) this.s.log.warn('account deleted with a balance or holds (forced); its records stay in LMDB', { account: id, balance, held })
      return { status: 200, body: { account: id, deleted: true, balance: balance.toString(), held: held.toString() } }
    })
  }

  /** PUT /admin/routes/:prefix: a static route, { "peerId": "<account>" } as in the config's routes. */
  putRoute(prefix: string, body: unknown): Promise<Outcome> {
    return this.serial(async () => {
      if (!isObject(body)) return refusal('invalid_body', 'must be a JSON object like { "peerId": "<account id>" }', '(body)')
      if (body.targetPrefix !== undefined) return refusal('invalid_field', 'is the path of the request (/admin/routes/<prefix>); leave it out of the body', 'targetPrefix')
      const existed = this.config.routes.some((r) => r.targetPrefix === prefix)
      const others = this.config.routes.filter((r) => r.targetPrefix !== prefix)
      const route = this.checked('route', prefix, () => {
        const read = validateRoute(others.length, { ...body, targetPrefix: prefix })
        if (!this.rules.names(read.peerId)) throw new ConfigError(`routes[${others.length}].peerId`, `names no account (${showValue(read.peerId)})`)
        return read
      })
      if ('status' in route) return route
      const refused = await this.changeRoutes(prefix, [...others, route], { value: body, file: fileRoute(this.fileRaw, prefix) })
      if (refused !== null) return refused
      return { status: existed ? 200 : 201, body: { prefix, peerId: body.peerId, created: !existed } }
    })
  }

  /** DELETE /admin/routes/:prefix: removes a configured route (file or API); learned ones are not the operator's to delete. */
  deleteRoute(prefix: string): Promise<Outcome> {
    return this.serial(async () => {
      if (!this.config.routes.some((r) => r.targetPrefix === prefix)) {
        return refusal('not_found', `no configured route for ${showValue(prefix)} (routes learned from peers or made for children are not deleted through the API)`, 'prefix')
      }
      const routes = this.config.routes.filter((r) => r.targetPrefix !== prefix)
      const refused = await this.changeRoutes(prefix, routes, { value: null, file: fileRoute(this.fileRaw, prefix) })
      if (refused !== null) return refused
      return { status: 200, body: { prefix, deleted: true } }
    })
  }

  /**
   * SIGHUP, POST /admin/reload: reads CONFIG again and applies what changed in its accounts and
   * routes. A file that does not parse changes nothing: the node goes on with the config it has.
   * Accounts whose entries are as the running ones were read from are neither read nor applied again.
   */
  reload(): Promise<Outcome> {
    return this.serial(async () => {
      const path = this.config.source.path
      if (path === null) return refusal('no_config_file', 'the node runs on a config given in code: there is no file to read again', 'CONFIG')
      let next: Built
      try {
        next = build(this.config, readConfigFile(path), this.overlay, this.read)
      } catch (err) {
        // The file's own errors are ConfigErrors (config/load.ts, config/validate.ts, config/parse.ts); anything else is a fault.
        if (!(err instanceof ConfigError)) throw err
        return this.reloadRefused(path, err)
      }
      const changes = this.reloadChanges(next.config)
      if ('problem' in changes) return this.reloadRefused(path, new ConfigError(changes.field, changes.problem))
      const unwritten = this.forgetOvertaken(next.overtaken)
      if (unwritten !== null) {
        this.s.log.error('reload failed', { file: path, error: unwritten })
        return refusal('storage_unavailable', unwritten)
      }
      const restartOnly = restartOnlyChanges(this.config, next.config)
      if (restartOnly.length > 0) this.s.log.warn('reload: these settings take effect at the next restart', { fields: restartOnly.join(',') })
      this.rules = next.rules
      this.read = next.read
      const applied = await this.apply(changes, next.config.routes, next.config)
      this.fileRaw = next.config.source.raw
      // The log line names only what changed; the answer keeps every field for scripts.
      const changed = Object.fromEntries(Object.entries(applied).filter(([, what]) => what !== ''))
      this.s.log.info(Object.keys(changed).length === 0 ? 'config reloaded: nothing changed' : 'config reloaded', { file: path, ...changed })
      return { status: 200, body: { reloaded: true, ...applied, restartOnly } }
    })
  }

  /** A reload that changes nothing, the node going on with the config it has. */
  private reloadRefused(path: string, refused: ConfigError): Outcome {
    const err = withOverlayNote(refused, this.overlay)
    this.s.log.error('reload refused; the node keeps running on its current config', { file: path, error: err.message })
    return refusal('reload_refused', err.message, err.field, { reloaded: false })
  }

  /** Overlay entries the file overtook are forgotten (and logged); null, or why they could not be. */
  private forgetOvertaken(overtaken: readonly { kind: 'account' | 'route'; name: string }[]): string | null {
    for (const { kind, name } of overtaken) {
      const unwritten = writeOverlay(this.s.store, kind, name, null)
      if (unwritten !== null) return unwritten
      ;(kind === 'account' ? this.overlay.accounts : this.overlay.routes).delete(name)
      this.s.log.warn('the config file changed an entry also set through the admin API; the file\'s wins from now on', { [kind]: name })
    }
    return null
  }

  /** What `check` returns, or the 400 of the ConfigError it throws, worded for the request's body. */
  private checked<T>(kind: 'account' | 'route', name: string, check: () => T): T | Outcome {
    try {
      return check()
    } catch (err) {
      // The config's checks refuse by throwing (config/validate.ts, config/account_rules.ts): their refusal becomes the answer's.
      if (!(err instanceof ConfigError)) throw err
      const field = bodyField(err.field, kind, name)
      return refusal('invalid_field', `${field}: ${err.problem}`, field)
    }
  }

  /** Applies an admin API change of one account and keeps it in LMDB; null, or the 409 or 503 saying why it cannot be. */
  private async changeAccount(id: string, next: AccountConfig | null, entry: OverlayEntry): Promise<Outcome | null> {
    const changes = this.accountChange(id, next)
    // Worded as the config loader words a refusal, as a reload's is.
    if ('problem' in changes) return refusal(changes.code, new ConfigError(changes.field, changes.problem).message, changes.field)
    const unwritten = writeOverlay(this.s.store, 'account', id, entry)
    if (unwritten !== null) return refusal('storage_unavailable', unwritten)
    this.overlay.accounts.set(id, entry)
    this.rules.set(id, next)
    if (next === null) this.read.delete(id)
    else this.read.set(id, { raw: entry.value, account: next })
    const applied = await this.apply(changes, this.config.routes)
    this.s.log.info('account changed through the admin API', { account: id, ...applied })
    return null
  }

  /** Applies an admin API change of one route and keeps it in LMDB; null, or the 503 saying why it cannot be. */
  private async changeRoutes(prefix: string, routes: Config['routes'], entry: OverlayEntry): Promise<Outcome | null> {
    const unwritten = writeOverlay(this.s.store, 'route', prefix, entry)
    if (unwritten !== null) return refusal('storage_unavailable', unwritten)
    this.overlay.routes.set(prefix, entry)
    this.rules.setRoutes(routes)
    const applied = await this.apply([], Object.freeze(routes))
    this.s.log.info('route changed through the admin API', { route: prefix, ...applied })
    return null
  }

  /**
   * Steps 1-4 of the file's header, for the slots in `changes` only. Of `from` (a reload's
   * config), only the rates, the spread and the file it was read from are taken besides the
   * accounts and routes: the rest waits for a restart.
   */
  private async apply(changes: readonly AccountChange[], routes: Config['routes'], from?: Config): Promise<Record<string, string>> {
    const table = this.s.accounts
    const before = new Map(changes.map((c) => [c.index, c.index < table.size ? { account: table.get(c.index), live: table.isLive(c.index) } : undefined]))
    const changed = table.applyChanges(changes)
    const relink = changed.filter((i) => { const was = before.get(i); return was !== undefined && (!table.isLive(i) || connectsDifferently(was.account, table.get(i))) })
    const routesBefore = this.config.routes
    const ratesChanged = from !== undefined && stable([this.config.rates, this.config.spread]) !== stable([from.rates, from.spread])
    this.config = this.running(from ?? this.config, routes)
    // Rates first: an account added with a new asset finds its rate when its first packet comes.
    if (ratesChanged) this.s.rates.reconfigure(this.config)
    await this.s.shards.applyAccounts(changes)
    await this.s.io.applyAccounts(changes, relink)
    this.s.routes.reconfigure(this.config, changed, adminRoutePrefixes(this.overlay))
    this.syncHttpLinks(changed)
    for (const i of changed) {
      if (table.isLive(i) || before.get(i) === undefined) continue
      const balance = readBalance(this.s.store, table.get(i).id)
      if (balance !== 0n) this.s.log.warn('account deleted with a balance; its records stay in LMDB and count again if it is added back', { account: table.get(i).id, balance })
    }
    const ids = (f: (i: number) => boolean) => changed.filter(f).map((i) => table.get(i).id).join(',')
    return {
      added: ids((i) => table.isLive(i) && before.get(i)?.live !== true),
      updated: ids((i) => table.isLive(i) && before.get(i)?.live === true),
      deleted: ids((i) => !table.isLive(i)),
      relinked: relink.map((i) => table.get(i).id).join(','),
      routes: routeChanges(routesBefore, this.config.routes),
      ...(ratesChanged ? { rates: `${this.config.rates.backend}, spread ${this.config.spread}` } : {}),
    }
  }

  /**
   * The running config: the fields of `fields` (the one running, or a reload's for its rates,
   * spread and source), these routes, and the accounts of the table, made into a list only when
   * read (a change does not copy 100,000 of them for a reader that may never come).
   */
  private running(fields: Config, routes: Config['routes']): Config {
    const table = this.s.accounts
    const running = this.config ?? fields
    const descriptors: PropertyDescriptorMap = Object.getOwnPropertyDescriptors(running)
    for (const key of ['rates', 'spread', 'source'] as const) descriptors[key] = { value: fields[key], enumerable: true }
    descriptors.routes = { value: routes, enumerable: true }
    let version = -1
    let accounts: readonly AccountConfig[] = []
    descriptors.accounts = {
      enumerable: true,
      get: () => {
        if (version !== table.version) accounts = Object.freeze(table.accounts.filter((_, i) => table.isLive(i)))
        version = table.version
        return accounts
      },
    }
    return Object.freeze(Object.create(Object.prototype, descriptors) as Config)
  }

  /** The one slot an account's change takes (its own index, or the next free one), or why the table cannot take it. */
  private accountChange(id: string, next: AccountConfig | null): AccountChange[] | TableRefusal {
    const table = this.s.accounts
    let index = table.indexOfAny(id)
    if (next === null) return [{ index, account: table.get(index), live: false }]
    if (index < 0) {
      if (table.size >= table.capacity) return noRoom(table.capacity)
      index = table.size
    }
    return this.revaluation([next]) ?? [{ index, account: next, live: true }]
  }

  /**
   * The slots a reload changes: its accounts that are new, or not the very objects the table
   * holds (an unchanged entry gives back the account read before), and the live accounts it no
   * longer has. Payees and the shop are not changed while the node runs. Or why the table cannot be so.
   */
  private reloadChanges(next: Config): AccountChange[] | TableRefusal {
    const table = this.s.accounts
    const kept = new Uint8Array(table.size)
    const changes: AccountChange[] = []
    let size = table.size
    for (const account of next.accounts) {
      if (account.payee !== null) continue
      const i = table.indexOfAny(account.id)
      if (i >= 0) kept[i] = 1
      if (i >= 0 && table.isLive(i) && table.get(i) === account) continue
      changes.push({ index: i >= 0 ? i : size++, account, live: true })
    }
    for (let i = 0; i < table.size; i++) {
      if (kept[i] === 0 && table.isLive(i) && table.get(i).payee === null) changes.push({ index: i, account: table.get(i), live: false })
    }
    const revalued = this.revaluation(changes.filter((c) => c.live).map((c) => c.account))
    if (revalued !== null) return revalued
    return size > table.capacity ? noRoom(table.capacity) : changes
  }

  /**
   * A balance is a number of base units of the account's asset: with a new asset code or scale
   * it would stand for another amount, and holds in flight would commit in the wrong units. So
   * an account's asset changes only while it owes nothing and has nothing in flight. Null, or
   * the first account whose asset cannot change now.
   */
  private revaluation(wanted: readonly AccountConfig[]): TableRefusal | null {
    const table = this.s.accounts
    let sending: Set<string> | null = null
    for (const account of wanted) {
      // A deleted account too (its records stay in LMDB, and count again when it comes back).
      const i = table.indexOfAny(account.id)
      if (i < 0) continue
      const was = table.get(i)
      if (was.assetCode === account.assetCode && was.assetScale === account.assetScale) continue
      const balance = readBalance(this.s.store, account.id)
      const field = `accounts.${account.id}.assetCode`
      sending ??= new Set([...readSendingSettlements(this.s.store)].map((e) => e.account))
      if (sending.has(account.id)) {
        return { code: 'settlement_in_flight', field, problem: `the asset of ${account.id} changes only while no settlement of it is in flight (one is, in its current asset): wait for the peer to answer it` }
      }
      const { held, prepares } = this.s.holdsOf(i)
      if (balance === 0n && held === 0n && prepares === 0) continue
      return { code: 'balance_not_zero', field, problem: `the asset of ${account.id} changes only while its balance and holds are zero (balance ${balance}, held ${held}): settle it first` }
    }
    return null
  }

  private syncHttpLinks(changed: readonly number[]): void {
    const table = this.s.accounts
    for (const i of changed) {
      const want = table.isLive(i) && table.get(i).httpUrl !== null
      if (want && !this.httpLinked.has(i)) {
        this.httpLinked.add(i)
        this.s.linkUp(i)
      } else if (!want && this.httpLinked.has(i)) {
        this.httpLinked.delete(i)
        this.s.linkDown(i)
      }
    }
  }

  /** A payee or the shop is set by the config file's payees/shop and changes with a restart. */
  private payee(id: string): Outcome | null {
    if (!this.rules.isPayee(id)) return null
    return refusal('payee_from_config', `${id} is a payee (or the shop's own account): payees are set in the config file's "payees" and change with a restart`, 'id')
  }

  private serial<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job, job)
    this.queue = run.catch(() => undefined)
    return run
  }
}

/** A config as parsed, with the rules between its accounts and the entries they were read from. */
interface Built {
  config: Config
  rules: AccountRules
  read: FileAccounts
  overtaken: { kind: 'account' | 'route'; name: string }[]
}

/**
 * The config of the file's JSON `raw` with the overlay on top, parsed as at start (same
 * environment and machine), and keeping what start-up learned: the address from the parent
 * and the payees' secrets (payees do not change while the node runs). Accounts of `before`
 * whose entries are unchanged are not read again.
 */
export function build(running: Config, raw: unknown, overlay: Overlay, before?: ReadAccounts): Built {
  const combined = combine(raw, overlay)
  const { env, machine, path } = running.source
  const parsed = parseWithRules(combined.raw, env, machine, path, before)
  const ilpAddress = parsed.config.ilpAddress === ADDRESS_FROM_PARENT ? running.ilpAddress : parsed.config.ilpAddress
  const config: Config = Object.freeze({ ...parsed.config, ilpAddress, source: Object.freeze({ ...parsed.config.source, raw }) })
  rememberRead(config, parsed)
  return { config, rules: parsed.rules, read: parsed.read, overtaken: combined.overtaken }
}

/** The config at start: the parsed file with the admin API's overlay from LMDB (and what it overtook). */
export function startingConfig(configured: Config, store: Store, log: Logger): { config: Config; overlay: Overlay } {
  let overlay = withoutRefusedIds(store, readOverlay(store), log)
  if (overlay.accounts.size + overlay.routes.size === 0) return { config: configured, overlay }
  let built: Built
  try {
    built = build(configured, configured.source.raw, overlay)
  } catch (err) {
    throw withOverlayNote(err, overlay)
  }
  const { config, overtaken } = built
  for (const { kind, name } of overtaken) {
    forget(store, kind, name)
    log.warn('the config file changed an entry also set through the admin API; the file\'s wins from now on', { [kind]: name })
  }
  if (overtaken.length > 0) overlay = readOverlay(store)
  log.info('accounts and routes set through the admin API applied over the config file', { accounts: [...overlay.accounts.keys()].join(','), routes: [...overlay.routes.keys()].join(',') })
  return { config, overlay }
}

/**
 * An account the admin API set under an id the node no longer takes (the rule of ids grew
 * stricter since) would stop every start, and only the API could remove it: it is forgotten
 * instead, with a warning. Its balance stays in LMDB.
 */
function withoutRefusedIds(store: Store, overlay: Overlay, log: Logger): Overlay {
  const refused = [...overlay.accounts.keys()].filter((id) => !isAccountId(id))
  if (refused.length === 0) return overlay
  for (const id of refused) forget(store, 'account', id)
  log.warn('accounts set through the admin API dropped: their ids are no longer allowed', { accounts: refused.map(showKey).join(','), rule: ACCOUNT_ID_RULE })
  return readOverlay(store)
}

/** At start, an overlay entry that cannot be forgotten stops the node: it cannot write. */
function forget(store: Store, kind: 'account' | 'route', name: string): void {
  const unwritten = writeOverlay(store, kind, name, null)
  if (unwritten !== null) throw new StorageUnavailableError(unwritten)
}

/** A file that is fine alone may clash with what the admin API set: the message says so. */
function withOverlayNote(err: ConfigError, overlay: Overlay): ConfigError
function withOverlayNote(err: unknown, overlay: Overlay): unknown
function withOverlayNote(err: unknown, overlay: Overlay): unknown {
  if (!(err instanceof ConfigError) || err.field === 'CONFIG' || overlay.accounts.size + overlay.routes.size === 0) return err
  return new ConfigError(err.field, `${err.problem} (the config file, with the accounts and routes set through the admin API kept in DATA_DIR on top)`)
}

/** The table has no free index left for a new account. */
function noRoom(capacity: number): TableRefusal {
  return { code: 'no_room', field: 'limits.maxAccounts', problem: `room for ${capacity} accounts in this run (deleted ones count until a restart) is used up; restart the node, or raise limits.maxAccounts and restart` }
}

/** A change that the account's links were made under: they close, and the peer connects again. */
function connectsDifferently(a: AccountConfig, b: AccountConfig): boolean {
  return a.btpToken !== b.btpToken || a.btpUrl !== b.btpUrl || a.relation !== b.relation || a.assetCode !== b.assetCode || a.assetScale !== b.assetScale
}

/** Top-level settings a reload found changed that only a restart applies. */
export function restartOnlyChanges(running: Config, next: Config): string[] {
  const fields: string[] = []
  const skip = new Set<string>(['accounts', 'routes', 'rates', 'spread', 'source', 'ilpAddress'])
  for (const key of Object.keys(next) as (keyof Config)[]) {
    if (skip.has(key)) continue
    if (stable(running[key]) !== stable(next[key])) fields.push(key)
  }
  if (next.ilpAddress !== running.ilpAddress) fields.push('ilpAddress')
  const payees = (c: Config) => c.accounts.filter((a) => a.payee !== null)
  const before = new Map(payees(running).map((a) => [a.id, a]))
  for (const a of payees(next)) {
    const was = before.get(a.id)
    before.delete(a.id)
    if (was === undefined || !sameAccount({ ...was, payee: null }, { ...a, payee: null }) || was.payee!.name !== a.payee!.name || was.payee!.imageUrl !== a.payee!.imageUrl) fields.push(`payees.${a.id}`)
  }
  for (const id of before.keys()) fields.push(`payees.${id}`)
  return fields
}

function routeChanges(before: readonly { targetPrefix: string; peerId: string }[], after: readonly { targetPrefix: string; peerId: string }[]): string {
  const key = (r: { targetPrefix: string; peerId: string }) => `${r.targetPrefix}→${r.peerId}`
  const a = new Set(before.map(key))
  const b = new Set(after.map(key))
  return [...[...b].filter((r) => !a.has(r)).map((r) => `+${r}`), ...[...a].filter((r) => !b.has(r)).map((r) => `-${r}`)].join(',')
}

function stable(v: unknown): string {
  return JSON.stringify(v, (_, x: unknown) => (typeof x === 'bigint' ? x.toString() : x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x))
}

/** A ConfigError's field as the request's body names it: "accounts.carol.balance.maximum" → "balance.maximum". */
function bodyField(field: string, kind: 'account' | 'route', name: string): string {
  if (kind === 'account') {
    const at = `accounts.${name}`
    if (field === at) return '(body)'
    if (field.startsWith(`${at}.`)) return field.slice(at.length + 1)
    return field
  }
  const route = /^routes\[\d+\]\.(.+)$/.exec(field)
  return route !== null ? (route[1] === 'targetPrefix' ? 'prefix' : route[1]) : field
}
