// The admin API, on the main thread (an I/O thread that takes the request asks for the answer
// over its control port): what an operator needs to see of a running node, and to change in
// it. JSON in and out, amounts as decimal strings of base units, never a token.
//
// The endpoints are the table AdminApi.ROUTES below, each with what it does: the dispatch, the
// list a 404 shows and the Allow header of a 405 are all read from it.
//
// Every request carries `Authorization: Bearer <adminToken>` (compared as SHA-256 digests in
// constant time): 401 otherwise. With no adminToken configured nothing under /admin answers (404).
// Errors are { "code": a stable name, "error": the message, "field": the body field (or path
// part) it is about }, their codes and statuses in one table (io/ops/admin_errors.ts). An :id outside
// the rule of account ids is refused (400, field id) before the method or anything else is looked
// at; a value of the request's that a message shows goes through display.ts (quoted, escaped, cut).
// Changes go through control/ops/reconfigure.ts and are kept in LMDB (control/ops/config_overlay.ts).

import type { AccountTable } from '../../config/account_table'
import { assetKeyOf, parseAssetKey } from '../../config/asset'
import { ACCOUNT_ID_RULE, isAccountId, isObject, type AccountConfig, type Config } from '../../config/schema'
import { showKey, showText, showValue } from '../../display'
import { INT64_MAX, INT64_MIN } from '../../codec/oer'
import { bearerMatches, tokenDigest } from '../../io/auth'
import { parseBtpUrl } from '../../io/btp/btp_dialer'
import { readHolds, readHoldsOf } from '../../shared/holds'
import type { LinkTable } from '../../shared/link_table'
import type { PeerReach } from '../../shared/peer_reach'
import { DIRECTIONS, FULFILL, sumCounterRows, sumCounterRowsOf, type CounterRow } from '../../shared/packet_counters'
import type { Wiring } from '../../ring/wiring'
import {
  allBalances, outsideIlpMoves, pageSettlements, pageTransfers, readBalance, settlementLogCounts,
  type AdjustmentEntry, type SettlementLogKey, type Store, type TransferLogKey,
} from '../../store/balance_store'
import type { RateSnapshot } from '../../shard/exchange'
import { AdjustmentOutOfRangeError } from '../../shard/shard'
import { StorageHealth, StorageUnavailableError } from '../../store/storage_health'
import { parseDecimal } from '../../codec/decimal'
import type { RouteManager } from '../routing/route_manager'
import type { AdminRequest, AdminResponse } from '../../io/ops/admin_endpoint'
import { refusal, type Outcome } from '../../io/ops/admin_errors'
import type { Reconfigurer } from './reconfigure'

export interface AdminSources {
  config: Config
  accounts: AccountTable
  store: Store
  wiring: () => Wiring
  links: LinkTable
  /** Links up per account, over all I/O threads (the control plane's count). */
  linkCount: Int32Array
  /** Whether each ILP-over-HTTP peer answered the node's newest request. */
  reach: PeerReach
  routes: RouteManager
  changes: Reconfigurer
  rates: { readonly current: RateSnapshot }
  /** Adjusts an account's balance in the shard that owns it (DataPlane.adjust). */
  adjust(account: number, amount: bigint, key: string, reason: string): Promise<{ entry: AdjustmentEntry; replayed: boolean }>
}

const DECIMAL = /^-?[0-9]{1,20}$/
/** JSON.parse's message quotes the body around the error: enough of it to find the place. */
const JSON_ERROR_CHARS = 160
const MAX_KEY_LENGTH = 200
const MAX_REASON_LENGTH = 1000

/** A path's parameters by name (`:id` → params.id), percent-decoded. */
type Params = Readonly<Record<string, string>>

/** An admin endpoint: its method, its path pattern, and what answers it. */
type Route = readonly [method: string, pattern: string, handler: (api: AdminApi, request: AdminRequest, params: Params) => Promise<AdminResponse> | AdminResponse]

/**
 * Settlements listed by GET /admin/settlements, each way, unless ?limit= says otherwise; a larger
 * limit is taken as the maximum (the answer's `next` says where the rest starts). One page reads
 * at most this many entries of each log, never a whole log.
 */
const SETTLEMENTS_LISTED = 1000
const SETTLEMENTS_LISTED_MAX = 10_000

export class AdminApi {
  private readonly digest: Buffer | null

  constructor(private readonly s: AdminSources) {
    this.digest = s.config.adminToken === null ? null : tokenDigest(s.config.adminToken)
  }

  /**
   * The admin endpoints, tried in this order: the first whose pattern fits the path and whose
   * method is the request's answers. In a pattern, `:name` is one path segment (empty segments
   * do not count: a trailing slash changes nothing) and `*name` is the rest of the path after
   * it, '' included, as a route's prefix may be '' (a default route). So /admin/routes/*prefix
   * comes before /admin/routes, which "/admin/routes/" would fit too.
   */
  static readonly ROUTES: readonly Route[] = [
    // Every account: settings, committed balance, holds in flight, link state, packets and amounts in and out.
    ['GET', '/admin/accounts', (api) => reply(200, { accounts: api.accountViews() })],
    // One account (404 if unknown).
    ['GET', '/admin/accounts/:id', (api, _, { id }) => api.accountView(id)],
    // Creates or replaces it: the body is the account's entry as in the config file's "accounts" (same validation).
    ['PUT', '/admin/accounts/:id', (api, request, { id }) => api.putAccount(id, request.body)],
    // ?force=true: 409 while it has a balance or holds, unless forced.
    ['DELETE', '/admin/accounts/:id', async (api, request, { id }) => answer(await api.s.changes.deleteAccount(id, new URLSearchParams(request.query).get('force') === 'true'))],
    // { amount, reason } with an Idempotency-Key header: the operator's balance adjustment, journalled, once per key.
    ['POST', '/admin/accounts/:id/adjust', (api, request, { id }) => api.adjust(request, id)],
    // One route of the routing table, as GET /admin/routes shows it.
    ['GET', '/admin/routes/*prefix', (api, _, { prefix }) => api.routeView(prefix)],
    // A static route, { "peerId": "<account>" }.
    ['PUT', '/admin/routes/*prefix', async (api, request, { prefix }) => {
      const body = parseBody(request.body)
      return answer('error' in body ? body.error : await api.s.changes.putRoute(prefix, body.value))
    }],
    // Removes a static route (of the file or the API).
    ['DELETE', '/admin/routes/*prefix', async (api, _, { prefix }) => answer(await api.s.changes.deleteRoute(prefix))],
    // The routing table, each route with where it came from (config, admin, node, child, parent, ccp, json).
    ['GET', '/admin/routes', (api) => reply(200, { routes: api.s.routes.describe() })],
    // Reads CONFIG again (as SIGHUP does).
    ['POST', '/admin/reload', async (api) => answer(await api.s.changes.reload())],
    // The exchange rates: each with its source and age, the spread, and whether the rates are stale.
    ['GET', '/admin/rates', (api) => reply(200, api.ratesView())],
    // Per asset: the node's position (the sum of its accounts' balances), what moved it outside ILP
    // (adjustments, settlements), and the rest, which the node earned forwarding packets; its value in the base asset.
    ['GET', '/admin/books', (api) => reply(200, api.booksView())],
    // ?limit=N&sentAfter=C&receivedAfter=C&list=sent|received: settlements made and received, newest
    // first, a page of each (1000 unless limit says, 10,000 at most), with the `next` cursor of each
    // (null at the end) and the totals the logs keep (see control/ops/settlement_log_pruner.ts).
    ['GET', '/admin/settlements', (api, request) => api.settlementsView(new URLSearchParams(request.query))],
  ]

  async handle(request: AdminRequest): Promise<AdminResponse> {
    if (this.digest === null) return answer(refusal('admin_off', 'the admin API is off (set adminToken in the config)'))
    if (!bearerMatches(request.authorization, this.digest)) return answer(refusal('unauthorized', 'missing or invalid admin bearer token'))
    // Fail closed (store/storage_health.ts): no change while the node cannot write; reads go on.
    const unavailable = request.method === 'GET' ? null : new StorageHealth(this.s.wiring().health).reason()
    if (unavailable !== null) return answer(refusal('storage_unavailable', unavailable))
    return this.dispatch(request)
  }

  private dispatch(request: AdminRequest): Promise<AdminResponse> | AdminResponse {
    const { method, path } = request
    const segments = pathSegments(path)
    if (segments === null) return answer(refusal('invalid_field', `the path ${showValue(path)} has a malformed percent-escape`, 'path'))
    const fits = AdminApi.ROUTES.flatMap((route) => {
      const params = matchPath(route[1], path, segments)
      return params === null ? [] : [{ route, params }]
    })
    if (fits.length === 0) {
      return answer(refusal('unknown_endpoint', `no admin endpoint ${method} ${showValue(path)}`, undefined, { endpoints: AdminApi.ROUTES.map(([m, p]) => `${m} ${p}`) }))
    }
    // An id is checked before the method: whatever is asked of /admin/accounts/<id>..., a bad id is the answer.
    for (const { params } of fits) {
      if (params.id !== undefined && !isAccountId(params.id)) return invalidId(params.id)
    }
    const fit = fits.find(({ route }) => route[0] === method)
    if (fit !== undefined) return fit.route[2](this, request, fit.params)
    const allow = [...new Set(fits.map(({ route }) => route[0]))].join(', ')
    // A method a longer path takes (DELETE /admin/routes/*prefix, say) is named with that path.
    const longer = AdminApi.ROUTES.filter(([m, p]) => m === method && fits.some(({ route }) => p.startsWith(`${route[1]}/`)))
    const hint = longer.length === 0 ? '' : `; ${method} takes ${longer.map(([, p]) => p).join(' or ')}`
    return { ...answer(refusal('method_not_allowed', `${method} is not offered here (allowed: ${allow}${hint})`)), allow }
  }

  private accountView(id: string): AdminResponse {
    const view = this.accountViewOf(id)
    return view === undefined ? answer(refusal('not_found', `no account ${showValue(id)}`, 'id')) : reply(200, view)
  }

  private async putAccount(id: string, text: string): Promise<AdminResponse> {
    const body = parseBody(text)
    if ('error' in body) return answer(body.error)
    const outcome = await this.s.changes.putAccount(id, body.value)
    if (outcome.status >= 300) return answer(outcome)
    return reply(outcome.status, this.accountViewOf(id) ?? outcome.body)
  }

  private routeView(prefix: string): AdminResponse {
    const view = this.s.routes.describe().find((r) => r.prefix === prefix)
    return view === undefined ? answer(refusal('not_found', `no route for ${showValue(prefix)}`, 'prefix')) : reply(200, view)
  }

  /**
   * An operator's balance adjustment (a settlement made elsewhere, a correction): `amount` is
   * added to the balance (positive: the peer owes the node more; a payment received from the
   * peer is negative). Exactly once per idempotency key: a repeat answers the first one.
   */
  private async adjust(request: AdminRequest, id: string): Promise<AdminResponse> {
    const index = this.s.accounts.indexOfLive(id)
    if (index < 0) return answer(refusal('not_found', `no account ${showValue(id)}`, 'id'))
    const parsed = parseBody(request.body)
    if ('error' in parsed) return answer(parsed.error)
    const body = parsed.value
    if (!isObject(body)) return answer(refusal('invalid_body', 'must be a JSON object like { "amount": "-1000", "reason": "..." }', '(body)'))
    const fields = body
    for (const key of Object.keys(fields)) {
      if (!['amount', 'reason', 'idempotencyKey'].includes(key)) return answer(refusal('invalid_field', `unknown field (known: amount, reason, idempotencyKey)`, showKey(key)))
    }
    if (typeof fields.amount !== 'string' || !DECIMAL.test(fields.amount) || BigInt(fields.amount) < INT64_MIN || BigInt(fields.amount) > INT64_MAX || BigInt(fields.amount) === 0n) {
      return answer(refusal('invalid_field', 'must be a non-zero signed 64-bit integer as a decimal string (base units; positive: the peer owes more)', 'amount'))
    }
    if (typeof fields.reason !== 'string' || fields.reason.trim() === '' || fields.reason.length > MAX_REASON_LENGTH) {
      return answer(refusal('invalid_field', `must be a non-empty string of at most ${MAX_REASON_LENGTH} characters (it is journalled)`, 'reason'))
    }
    const key = request.idempotencyKey !== '' ? request.idempotencyKey : fields.idempotencyKey
    if (typeof key !== 'string' || key === '' || key.length > MAX_KEY_LENGTH) {
      return answer(refusal('invalid_field', `an Idempotency-Key header (or "idempotencyKey" field) of 1 to ${MAX_KEY_LENGTH} characters is required`, 'idempotencyKey'))
    }
    const amount = BigInt(fields.amount)
    let result: { entry: AdjustmentEntry; replayed: boolean }
    try {
      result = await this.s.adjust(index, amount, key, fields.reason)
    } catch (err) {
      // The owner shard refuses in its own thread; its refusal arrives here as the error it sent.
      if (err instanceof AdjustmentOutOfRangeError) return answer(refusal('invalid_field', `${err.message}; balances stay within ±(2^63 − 1)`, 'amount'))
      // Nothing was written: send it again later.
      if (err instanceof StorageUnavailableError) return answer(refusal('storage_unavailable', err.message))
      // The owner shard may have committed it before its answer was lost: only the key can tell.
      return answer(refusal('outcome_unknown', `the adjustment's outcome is unknown (${(err as Error).message}); send it again with the same Idempotency-Key`, 'idempotencyKey'))
    }
    const { entry, replayed } = result
    if (replayed && (entry.account !== id || entry.amount !== amount || entry.reason !== fields.reason)) {
      return answer(refusal('idempotency_conflict', 'this idempotency key was used for another adjustment', 'idempotencyKey', { adjustment: adjustmentView(entry) }))
    }
    return reply(replayed ? 200 : 201, { adjustment: adjustmentView(entry), replayed, balance: readBalance(this.s.store, id).toString() })
  }

  private ratesView(): Record<string, unknown> {
    const r = this.s.rates.current
    const now = Date.now()
    const ageMs = r.fetchedAtMs === 0 ? null : now - r.fetchedAtMs
    const stale = r.maxAgeMs !== null && (ageMs === null || ageMs > r.maxAgeMs)
    const source = r.backend === 'ecb' ? `ecb ${r.source}` : r.backend === 'static' ? 'config (static)' : 'none (one-to-one)'
    return {
      backend: r.backend, source: r.source, base: r.base, day: r.day, fetchedAt: r.fetchedAtMs === 0 ? null : new Date(r.fetchedAtMs).toISOString(),
      ageMs, maxAgeMs: r.maxAgeMs, stale, lastError: r.lastError, spread: r.spread,
      rates: Object.entries(r.rates).map(([assetCode, rate]) => ({ assetCode, rate, per: r.base, source, ageMs })),
      accounts: this.s.accounts.accounts.flatMap((a, i) => !this.s.accounts.isLive(i) ? [] : [{
        id: a.id, assetCode: a.assetCode, assetScale: a.assetScale, spread: a.spread ?? r.spread, spreadFrom: a.spread === null ? 'node' : 'account',
        rate: rateOf(r, a.assetCode) ?? (r.backend === 'one-to-one' ? null : 'none: not traded'),
      }]),
    }
  }

  private booksView(): Record<string, unknown> {
    const { accounts, store } = this.s
    const rates = this.s.rates.current
    // Every balance LMDB holds, configured or not: a deleted account's records stay, and count.
    const assetOfAccount = new Map<string, string>()
    accounts.accounts.forEach((a) => assetOfAccount.set(a.id, assetKeyOf(a)))
    const UNCONFIGURED = '(accounts no longer configured)'
    const rows = new Map<string, { accounts: string[]; position: bigint; outsideIlp: bigint }>()
    const row = (asset: string) => {
      let r = rows.get(asset)
      if (r === undefined) rows.set(asset, r = { accounts: [], position: 0n, outsideIlp: 0n })
      return r
    }
    accounts.accounts.forEach((a, i) => { if (accounts.isLive(i)) row(assetOfAccount.get(a.id)!).accounts.push(a.id) })
    for (const [id, balance] of allBalances(store)) {
      const live = accounts.indexOfLive(id) >= 0
      const r = row(live ? assetOfAccount.get(id)! : UNCONFIGURED)
      r.position += balance
      if (!live && !r.accounts.includes(id)) r.accounts.push(id)
    }
    // What moved balances outside ILP, in the asset the account had then.
    for (const move of outsideIlpMoves(store)) {
      const live = accounts.indexOfLive(move.account) >= 0
      row(live ? move.asset ?? assetOfAccount.get(move.account)! : UNCONFIGURED).outsideIlp += move.amount
    }
    // The earnings' value in the base asset, to 9 decimals (rounded down), where a rate is known.
    let value = 0n
    let valued = true
    const SCALE = 10n ** 9n
    const views = [...rows].map(([asset, r]) => {
      const earned = r.position - r.outsideIlp
      const known = asset === UNCONFIGURED ? null : parseAssetKey(asset)
      const rate = known === null ? null : parseDecimal(rateOf(rates, known.code))
      if (earned === 0n || known === null) {
        // nothing to value, or no asset known to value it in
      } else if (rate === null || rates.base === null) valued = false
      else value += (earned * rate.den * SCALE) / (rate.num * 10n ** BigInt(known.scale))
      return {
        assetCode: known?.code ?? null, assetScale: known?.scale ?? null, accounts: r.accounts,
        position: r.position.toString(), outsideIlp: r.outsideIlp.toString(), earned: earned.toString(),
      }
    })
    return {
      assets: views,
      earnedInBase: valued && rates.base !== null ? { assetCode: rates.base, amount: decimalString(value, 9) } : null,
      note: 'position: the sum of the balances (what the peers owe the node, less what it owes them); outsideIlp: adjustments and settlements, in the asset the account had then; earned: the rest, what forwarding took in more than it paid out. Deleted accounts, whose records stay in LMDB, are in the row with a null assetCode, which earnedInBase leaves out',
    }
  }

  /**
   * A page of each settlement log, newest first: `limit` entries (a larger one is the maximum),
   * after the cursors `sentAfter` / `receivedAfter` (the `next` of the page before), of one list
   * with `list=sent` or `list=received`. The pages go by the time keys, which never change:
   * entries made while a client pages are newer than its cursor, so it sees each entry that was
   * there when it started exactly once (unless it is pruned before its page is read).
   */
  private settlementsView(query: URLSearchParams): AdminResponse {
    const limitText = query.get('limit')
    const limit = limitText === null ? SETTLEMENTS_LISTED : /^[1-9][0-9]{0,6}$/.test(limitText) ? Math.min(Number(limitText), SETTLEMENTS_LISTED_MAX) : -1
    if (limit < 0) return answer(refusal('invalid_field', `limit must be a positive integer of at most 7 digits (above ${SETTLEMENTS_LISTED_MAX} it is taken as ${SETTLEMENTS_LISTED_MAX})`, 'limit'))
    const list = query.get('list')
    if (list !== null && list !== 'sent' && list !== 'received') return answer(refusal('invalid_field', 'list must be sent or received (leave it out for both)', 'list'))
    const sentAfter = decodeCursor(query.get('sentAfter'), 2)
    if (sentAfter === undefined) return answer(refusal('invalid_field', 'not a cursor of the sent list (use next.sent of the page before)', 'sentAfter'))
    const receivedAfter = decodeCursor(query.get('receivedAfter'), 3)
    if (receivedAfter === undefined) return answer(refusal('invalid_field', 'not a cursor of the received list (use next.received of the page before)', 'receivedAfter'))
    const view: Record<string, unknown> = { totals: settlementLogCounts(this.s.store) }
    const next: Record<string, string | null> = {}
    if (list !== 'received') {
      const page = pageSettlements(this.s.store, limit, sentAfter as SettlementLogKey | null)
      view.sent = page.entries.map((e) => ({ id: e.id, account: e.account, amount: e.amount.toString(), state: e.state, at: new Date(e.atMs).toISOString(),
        endedAt: e.endedAtMs === null ? null : new Date(e.endedAtMs).toISOString(), reason: e.reason }))
      next.sent = encodeCursor(page.next)
    }
    if (list !== 'sent') {
      const page = pageTransfers(this.s.store, limit, receivedAfter as TransferLogKey | null)
      view.received = page.entries.map((t) => ({ id: t.id, account: t.account, amount: t.amount.toString(), at: new Date(t.atMs).toISOString() }))
      next.received = encodeCursor(page.next)
    }
    view.next = next
    view.retentionMs = this.s.config.settlementLogRetentionMs
    return reply(200, view)
  }

  private accountViews(): Record<string, unknown>[] {
    const { accounts } = this.s
    const wiring = this.s.wiring()
    const holds = readHolds(wiring.holds, accounts.capacity)
    const traffic = this.traffic(wiring)
    return accounts.accounts.flatMap((_, i) => !accounts.isLive(i) ? [] : [this.viewOf(i, { held: holds.held[i], prepares: holds.prepares[i] }, traffic === null ? null : traffic[i])])
  }

  /** One account's view, reading only its own holds and counters: what a PUT answers with, at any number of accounts. */
  private accountViewOf(id: string): Record<string, unknown> | undefined {
    const { accounts } = this.s
    const i = accounts.indexOfLive(id)
    if (i < 0) return undefined
    const wiring = this.s.wiring()
    const traffic = wiring.counters === null ? null : trafficView(sumCounterRowsOf(wiring.counters, accounts.capacity, i))
    return this.viewOf(i, readHoldsOf(wiring.holds, accounts.capacity, i), traffic)
  }

  private viewOf(i: number, holds: { held: bigint; prepares: number }, traffic: Record<string, unknown> | null): Record<string, unknown> {
    const { accounts, store, links, linkCount } = this.s
    const a = accounts.get(i)
    return {
      id: a.id,
      relation: a.relation,
      asset: { code: a.assetCode, scale: a.assetScale },
      limits: { balanceMinimum: a.balanceMinimum.toString(), balanceMaximum: a.balanceMaximum.toString(), maxPacketAmount: a.maxPacketAmount.toString() },
      settlement: a.settlement === null ? null : { engine: a.settlement.engine, settleThreshold: a.settleThreshold?.toString() ?? null, settleTo: a.settleTo.toString() },
      spread: a.spread,
      transport: transportView(a),
      balance: readBalance(store, a.id).toString(),
      held: holds.held.toString(),
      preparesInFlight: holds.prepares,
      // An HTTP peer is as reachable as its newest request found it (null before the first).
      ...(a.httpUrl !== null ? this.s.reach.view(i) : { connected: a.payee !== null || linkCount[i] > 0 }),
      // Every BTP link over all I/O threads, whichever side opened it.
      links: links.links(i),
      ioThread: links.linkedThread(i),
      traffic,
    }
  }

  /** Per account and direction: packets fulfilled and rejected, and the amounts; null with metrics off. */
  private traffic(wiring: Wiring): Record<string, unknown>[] | null {
    if (wiring.counters === null) return null
    const n = this.s.accounts.capacity
    const rows: CounterRow[][] = Array.from({ length: n }, () => [])
    for (const r of sumCounterRows(wiring.counters, n)) rows[r.account].push(r)
    return rows.map(trafficView)
  }
}

/** One account's counter rows as the admin API shows them: per direction, packets and amounts fulfilled and rejected. */
function trafficView(rows: readonly CounterRow[]): Record<string, unknown> {
  const cells = DIRECTIONS.map(() => ({ fulfilled: 0, rejected: 0, amountFulfilled: 0n, amountRejected: 0n }))
  for (const r of rows) {
    const cell = cells[r.direction]
    if (r.result === FULFILL) {
      cell.fulfilled += r.packets
      cell.amountFulfilled += r.amount
    } else {
      cell.rejected += r.packets
      cell.amountRejected += r.amount
    }
  }
  return Object.fromEntries(cells.map((c, d) => [DIRECTIONS[d], {
    fulfilled: c.fulfilled, rejected: c.rejected, amountFulfilled: c.amountFulfilled.toString(), amountRejected: c.amountRejected.toString(),
  }]))
}

/** An asset's rate, found only among the snapshot's own entries (an asset code may be `constructor`). */
function rateOf(snapshot: RateSnapshot, assetCode: string): string | undefined {
  return Object.hasOwn(snapshot.rates, assetCode) ? snapshot.rates[assetCode] : undefined
}

/** How the account is reached, without its tokens (a dialled URL loses its credentials). */
function transportView(a: AccountConfig): Record<string, unknown> {
  if (a.payee !== null) return { payee: true }
  return {
    btp: a.btpUrl !== null ? { dials: parseBtpUrl(a.btpUrl).url } : a.btpToken !== null ? { listens: true } : null,
    http: a.httpUrl !== null || a.httpIncomingToken !== null ? { incoming: a.httpIncomingToken !== null, url: a.httpUrl } : null,
  }
}

function invalidId(id: string): AdminResponse {
  return answer(refusal('invalid_field', `${ACCOUNT_ID_RULE}; not ${showValue(id)}`, 'id'))
}

/**
 * The path's segments, percent-decoded, without empty ones ("/admin//accounts/" is
 * /admin/accounts); null if one has a malformed escape.
 */
function pathSegments(path: string): string[] | null {
  try {
    return path.split('/').filter((p) => p !== '').map(decodeURIComponent)
  } catch (err) {
    if (err instanceof URIError) return null
    throw err
  }
}

/** The parameters of `path` if it fits `pattern` (see AdminApi.ROUTES), else null. */
function matchPath(pattern: string, path: string, segments: readonly string[]): Params | null {
  const star = pattern.indexOf('*')
  if (star >= 0) {
    const head = pattern.slice(0, star)
    // pathSegments() found no malformed escape in the path, so this one decodes.
    return path.startsWith(head) ? { [pattern.slice(star + 1)]: decodeURIComponent(path.slice(head.length)) } : null
  }
  const parts = pattern.split('/').filter((p) => p !== '')
  if (parts.length !== segments.length) return null
  const params: Record<string, string> = {}
  for (let i = 0; i < parts.length; i++) {
    if (parts[i].startsWith(':')) params[parts[i].slice(1)] = segments[i]
    else if (parts[i] !== segments[i]) return null
  }
  return params
}

function answer(outcome: Outcome): AdminResponse {
  return reply(outcome.status, outcome.body)
}

function parseBody(text: string): { value: unknown } | { error: Outcome } {
  if (text.trim() === '') return { error: refusal('invalid_body', 'a JSON body is required', '(body)') }
  try {
    return { value: JSON.parse(text) }
  } catch (err) {
    return { error: refusal('invalid_body', `not valid JSON: ${showText((err as Error).message, JSON_ERROR_CHARS)}`, '(body)') }
  }
}

function adjustmentView(e: AdjustmentEntry): Record<string, unknown> {
  return { key: e.key, account: e.account, amount: e.amount.toString(), reason: e.reason, at: new Date(e.atMs).toISOString() }
}

/** A scaled integer as decimal text: (12345, 2) → "123.45". */
function decimalString(value: bigint, scale: number): string {
  const negative = value < 0n
  const digits = (negative ? -value : value).toString().padStart(scale + 1, '0')
  return `${negative ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`
}

/** A page's end as an opaque cursor: its time key (store/balance_store.ts), JSON in base64url. */
function encodeCursor(key: (number | string)[] | null): string | null {
  return key === null ? null : Buffer.from(JSON.stringify(key), 'utf8').toString('base64url')
}

/** A cursor back to its key (a time, then `parts` − 1 strings); null if absent, undefined if malformed. */
function decodeCursor(text: string | null, parts: number): (number | string)[] | null | undefined {
  if (text === null) return null
  if (text.length > 400 || !/^[A-Za-z0-9_-]+$/.test(text)) return undefined
  let key: unknown
  try {
    key = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'))
  } catch {
    return undefined
  }
  if (!Array.isArray(key) || key.length !== parts || typeof key[0] !== 'number' || !Number.isFinite(key[0])) return undefined
  return key.slice(1).every((p) => typeof p === 'string' && p.length <= 128) ? key as (number | string)[] : undefined
}

function reply(status: number, value: unknown): AdminResponse {
  return { status, body: JSON.stringify(value) }
}
