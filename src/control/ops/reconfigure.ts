// Changes the accounts and routes of the running node: an admin API request (PUT/DELETE of an
// account or a route) or a reload of CONFIG (SIGHUP, POST /admin/reload). Each change is made
// as a whole new config, parsed by the same parseConfig as at start (the file with the API's
// overlay on top, config_overlay.ts), and then handed to every thread in this order:
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

import { AccountTable, sameAccount, type AccountSlots } from '../../config/account_table'
import { readConfigFile } from '../../config/load'
import { parseConfig } from '../../config/parse'
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
  shards: { applyAccounts(slots: AccountSlots): Promise<void> }
  io: { applyAccounts(slots: AccountSlots, relink: number[]): Promise<void> }
  routes: RouteManager
  /** The exchange rates and the spread, applied live on a reload. */
  rates: { reconfigure(config: Config): void }
  /** Holds in flight per account index, over every shard. */
  holds(): { held: bigint[]; prepares: number[] }
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
  private overlay: Overlay
  private queue: Promise<unknown> = Promise.resolve()
  private readonly httpLinked = new Set<number>()

  constructor(initial: Config, overlay: Overlay, private readonly s: ReconfigureSources) {
    this.config = initial
    this.fileRaw = initial.source.raw
    this.overlay = overlay
  }

  get current(): Config {
    return this.config
  }

  /** At start, after the I/O threads listen: accounts with http.url are up from the start. */
  start(): void {
    this.syncHttpLinks(this.s.accounts.accounts.map((_, i) => i))
  }

  /** PUT /admin/accounts/:id: creates or replaces an account, with the settings of a config file entry. */
  putAccount(id: string, body: unknown): Promise<Outcome> {
    return this.serial(async () => {
      if (!isAccountId(id)) return refusal('invalid_field', ACCOUNT_ID_RULE, 'id')
      if (!isObject(body)) return refusal('invalid_body', 'must be a JSON object of the account\'s settings, as in the config file\'s "accounts"', '(body)')
      const payee = this.payee(id)
      if (payee !== null) return payee
      const existed = this.s.accounts.indexOfLive(id) >= 0
      const entry: OverlayEntry = { value: body, file: fileAccount(this.fileRaw, id) }
      const next = this.withEntry('account', id, entry)
      if ('status' in next) return next
      const refused = await this.change(next.config, 'account', id, entry)
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
      const holds = this.s.holds()
      const held = holds.held[index]
      const prepares = holds.prepares[index]
      if (!force && (balance !== 0n || held !== 0n || prepares !== 0)) {
        return refusal('balance_not_zero', `${id} has a balance or prepares in flight; settle it first, or delete with ?force=true (its balance stays in LMDB)`, 'id',
          { balance: balance.toString(), held: held.toString(), preparesInFlight: prepares })
      }
      const entry: OverlayEntry = { value: null, file: fileAccount(this.fileRaw, id) }
      const next = this.withEntry('account', id, entry)
      if ('status' in next) return next
      const refused = await this.change(next.config, 'account', id, entry)
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
      const entry: OverlayEntry = { value: body, file: fileRoute(this.fileRaw, prefix) }
      const next = this.withEntry('route', prefix, entry)
      if ('status' in next) return next
      const refused = await this.change(next.config, 'route', prefix, entry)
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
      const entry: OverlayEntry = { value: null, file: fileRoute(this.fileRaw, prefix) }
      const next = this.withEntry('route', prefix, entry)
      if ('status' in next) return next
      const refused = await this.change(next.config, 'route', prefix, entry)
      if (refused !== null) return refused
      return { status: 200, body: { prefix, deleted: true } }
    })
  }

  /**
   * SIGHUP, POST /admin/reload: reads CONFIG again and applies what changed in its accounts and
   * routes. A file that does not parse changes nothing: the node goes on with the config it has.
   */
  reload(): Promise<Outcome> {
    return this.serial(async () => {
      const path = this.config.source.path
      if (path === null) return refusal('no_config_file', 'the node runs on a config given in code: there is no file to read again', 'CONFIG')
      let next: { config: Config; overtaken: { kind: 'account' | 'route'; name: string }[] }
      try {
        next = build(this.config, readConfigFile(path), this.overlay)
      } catch (err) {
        // The file's own errors are ConfigErrors (config/load.ts, config/validate.ts, config/parse.ts); anything else is a fault.
        if (!(err instanceof ConfigError)) throw err
        return this.reloadRefused(path, err)
      }
      const slots = this.slotsFor(next.config)
      if ('problem' in slots) return this.reloadRefused(path, new ConfigError(slots.field, slots.problem))
      for (const { kind, name } of next.overtaken) {
        const unwritten = writeOverlay(this.s.store, kind, name, null)
        if (unwritten !== null) {
          this.s.log.error('reload failed', { file: path, error: unwritten })
          return refusal('storage_unavailable', unwritten)
        }
        this.s.log.warn('the config file changed an entry also set through the admin API; the file\'s wins from now on', { [kind]: name })
      }
      this.overlay = readOverlay(this.s.store)
      const restartOnly = restartOnlyChanges(this.config, next.config)
      if (restartOnly.length > 0) this.s.log.warn('reload: these settings take effect at the next restart', { fields: restartOnly.join(',') })
      const changes = await this.apply(next.config, slots)
      this.fileRaw = next.config.source.raw
      // The log line names only what changed; the answer keeps every field for scripts.
      const changed = Object.fromEntries(Object.entries(changes).filter(([, what]) => what !== ''))
      this.s.log.info(Object.keys(changed).length === 0 ? 'config reloaded: nothing changed' : 'config reloaded', { file: path, ...changed })
      return { status: 200, body: { reloaded: true, ...changes, restartOnly } }
    })
  }

  /** A reload that changes nothing, the node going on with the config it has. */
  private reloadRefused(path: string, refused: ConfigError): Outcome {
    const err = withOverlayNote(refused, this.overlay)
    this.s.log.error('reload refused; the node keeps running on its current config', { file: path, error: err.message })
    return refusal('reload_refused', err.message, err.field, { reloaded: false })
  }

  /** The config with one more overlay entry, or the 400 saying why it cannot be. */
  private withEntry(kind: 'account' | 'route', name: string, entry: OverlayEntry): { config: Config } | Outcome {
    const accounts = new Map(this.overlay.accounts)
    const routes = new Map(this.overlay.routes)
    ;(kind === 'account' ? accounts : routes).set(name, entry)
    try {
      return { config: build(this.config, this.fileRaw, { accounts, routes }).config }
    } catch (err) {
      // parseConfig refuses by throwing (config/parse.ts): its refusal becomes the answer's.
      if (!(err instanceof ConfigError)) throw err
      const field = bodyField(err.field, kind, name)
      return refusal('invalid_field', `${field}: ${err.problem}`, field)
    }
  }

  /** Applies an admin API change and keeps it in LMDB; null, or the 409 saying why it cannot be. */
  private async change(next: Config, kind: 'account' | 'route', name: string, entry: OverlayEntry): Promise<Outcome | null> {
    const slots = this.slotsFor(next)
    // Worded as the config loader words a refusal, as a reload's is.
    if ('problem' in slots) return refusal(slots.code, new ConfigError(slots.field, slots.problem).message, slots.field)
    const unwritten = writeOverlay(this.s.store, kind, name, entry)
    if (unwritten !== null) return refusal('storage_unavailable', unwritten)
    this.overlay = readOverlay(this.s.store)
    const changes = await this.apply(next, slots)
    this.s.log.info(`${kind} changed through the admin API`, { [kind]: name, ...changes })
    return null
  }

  /**
   * Steps 1-4 of the file's header. Of `next`, only the accounts and routes (and the file it
   * was read from) are taken: the rest waits for a restart.
   */
  private async apply(next: Config, slots: AccountSlots): Promise<Record<string, string>> {
    const table = this.s.accounts
    const before = table.accounts.slice()
    const wasLive = Array.from(table.live.subarray(0, table.size))
    const changed = table.apply(slots)
    const relink = changed.filter((i) => before[i] !== undefined && (!table.isLive(i) || connectsDifferently(before[i], table.get(i))))
    const routesBefore = this.config.routes
    const ratesChanged = stable([this.config.rates, this.config.spread]) !== stable([next.rates, next.spread])
    this.config = Object.freeze({
      ...this.config,
      accounts: Object.freeze(slots.accounts.filter((_, i) => slots.live[i])),
      routes: next.routes,
      rates: next.rates,
      spread: next.spread,
      source: next.source,
    })
    // Rates first: an account added with a new asset finds its rate when its first packet comes.
    if (ratesChanged) this.s.rates.reconfigure(this.config)
    await this.s.shards.applyAccounts(slots)
    await this.s.io.applyAccounts(slots, relink)
    this.s.routes.reconfigure(this.config, changed, adminRoutePrefixes(this.overlay))
    this.syncHttpLinks(changed)
    for (const i of changed) {
      if (table.isLive(i) || before[i] === undefined) continue
      const balance = readBalance(this.s.store, table.get(i).id)
      if (balance !== 0n) this.s.log.warn('account deleted with a balance; its records stay in LMDB and count again if it is added back', { account: table.get(i).id, balance })
    }
    const ids = (f: (i: number) => boolean) => changed.filter(f).map((i) => table.get(i).id).join(',')
    return {
      added: ids((i) => table.isLive(i) && (before[i] === undefined || wasLive[i] === 0)),
      updated: ids((i) => table.isLive(i) && before[i] !== undefined && wasLive[i] === 1),
      deleted: ids((i) => !table.isLive(i)),
      relinked: relink.map((i) => table.get(i).id).join(','),
      routes: routeChanges(routesBefore, this.config.routes),
      ...(ratesChanged ? { rates: `${this.config.rates.backend}, spread ${this.config.spread}` } : {}),
    }
  }

  /**
   * The new table: every account keeps its index, new ones take the next free ones, deleted
   * ones stay (not live). Payees and the shop are not changed while the node runs. Or why the
   * table cannot be so.
   */
  private slotsFor(next: Config): AccountSlots | TableRefusal {
    const table = this.s.accounts
    const accounts: AccountConfig[] = table.accounts.slice()
    const live = accounts.map(() => false)
    const wanted = [...next.accounts.filter((a) => a.payee === null), ...this.config.accounts.filter((a) => a.payee !== null)]
    for (const account of wanted) {
      let i = table.indexOfAny(account.id)
      if (i < 0) {
        i = accounts.length
        accounts.push(account)
        live.push(true)
      }
      accounts[i] = account
      live[i] = true
    }
    const revalued = this.revaluation(wanted)
    if (revalued !== null) return revalued
    if (accounts.length > table.capacity) {
      return { code: 'no_room', field: 'limits.maxAccounts', problem: `room for ${table.capacity} accounts in this run (deleted ones count until a restart) is used up; restart the node, or raise limits.maxAccounts and restart` }
    }
    return { accounts, live }
  }

  /**
   * A balance is a number of base units of the account's asset: with a new asset code or scale
   * it would stand for another amount, and holds in flight would commit in the wrong units. So
   * an account's asset changes only while it owes nothing and has nothing in flight. Null, or
   * the first account whose asset cannot change now.
   */
  private revaluation(wanted: readonly AccountConfig[]): TableRefusal | null {
    const table = this.s.accounts
    const holds = this.s.holds()
    const sending = new Set([...readSendingSettlements(this.s.store)].map((e) => e.account))
    for (const account of wanted) {
      // A deleted account too (its records stay in LMDB, and count again when it comes back).
      const i = table.indexOfAny(account.id)
      if (i < 0) continue
      const was = table.get(i)
      if (was.assetCode === account.assetCode && was.assetScale === account.assetScale) continue
      const balance = readBalance(this.s.store, account.id)
      const field = `accounts.${account.id}.assetCode`
      if (sending.has(account.id)) {
        return { code: 'settlement_in_flight', field, problem: `the asset of ${account.id} changes only while no settlement of it is in flight (one is, in its current asset): wait for the peer to answer it` }
      }
      if (balance === 0n && holds.held[i] === 0n && holds.prepares[i] === 0) continue
      return { code: 'balance_not_zero', field, problem: `the asset of ${account.id} changes only while its balance and holds are zero (balance ${balance}, held ${holds.held[i]}): settle it first` }
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
    if (!this.config.accounts.some((a) => a.id === id && a.payee !== null)) return null
    return refusal('payee_from_config', `${id} is a payee (or the shop's own account): payees are set in the config file's "payees" and change with a restart`, 'id')
  }

  private serial<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job, job)
    this.queue = run.catch(() => undefined)
    return run
  }
}

/**
 * The config of the file's JSON `raw` with the overlay on top, parsed as at start (same
 * environment and machine), and keeping what start-up learned: the address from the parent
 * and the payees' secrets (payees do not change while the node runs).
 */
export function build(running: Config, raw: unknown, overlay: Overlay): { config: Config; overtaken: { kind: 'account' | 'route'; name: string }[] } {
  const combined = combine(raw, overlay)
  const { env, machine, path } = running.source
  const parsed = parseConfig(combined.raw, env, machine, path)
  const ilpAddress = parsed.ilpAddress === ADDRESS_FROM_PARENT ? running.ilpAddress : parsed.ilpAddress
  return { config: Object.freeze({ ...parsed, ilpAddress, source: Object.freeze({ ...parsed.source, raw }) }), overtaken: combined.overtaken }
}

/** The config at start: the parsed file with the admin API's overlay from LMDB (and what it overtook). */
export function startingConfig(configured: Config, store: Store, log: Logger): { config: Config; overlay: Overlay } {
  let overlay = withoutRefusedIds(store, readOverlay(store), log)
  if (overlay.accounts.size + overlay.routes.size === 0) return { config: configured, overlay }
  let built: ReturnType<typeof build>
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
