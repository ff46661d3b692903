// Accounts and routes set through the admin API, kept in LMDB (the `admin` database) over the
// config file's. The config the node runs is the file with this overlay on top, parsed by the
// same parseConfig as the file alone at start and on a reload; an API change is checked by the
// same schema and rules between accounts (control/ops/reconfigure.ts), so it is refused as the file would be.
//
//   key "account/<id>"      value { value: <the account's JSON as in the file> | null (deleted), file }
//   key "route/<prefix>"    value { value: { peerId } | null (deleted), file }
//
// `file` is the file's own entry for that id or prefix (as JSON text, or null: the file had none)
// when the API change was made. The newest change wins: while the file's entry is as it was, the
// API's change stands (across restarts and reloads); once the file's entry for that id or prefix
// has been edited, the file's wins and the API's change is dropped (and logged).

import { oneLine } from '../../store/storage_health'
import { isObject } from '../../config/schema'
import type { Store } from '../../store/balance_store'

export interface OverlayEntry {
  /** The account's (or route's) settings as set through the API; null: deleted through it. */
  readonly value: Record<string, unknown> | null
  /** The file's entry when the change was made (JSON text), null if the file had none. */
  readonly file: string | null
}

export interface Overlay {
  readonly accounts: ReadonlyMap<string, OverlayEntry>
  readonly routes: ReadonlyMap<string, OverlayEntry>
}

const ACCOUNT_KEY = 'account/'
const ROUTE_KEY = 'route/'

export function readOverlay(store: Store): Overlay {
  const accounts = new Map<string, OverlayEntry>()
  const routes = new Map<string, OverlayEntry>()
  for (const { key, value } of store.admin.getRange({})) {
    const entry = JSON.parse(Buffer.from(value).toString('utf8')) as OverlayEntry
    if (key.startsWith(ACCOUNT_KEY)) accounts.set(key.slice(ACCOUNT_KEY.length), entry)
    else if (key.startsWith(ROUTE_KEY)) routes.set(key.slice(ROUTE_KEY.length), entry)
  }
  return { accounts, routes }
}

/**
 * Stores (or with `entry` null, forgets) the API's word on one account or route: null once it
 * is written, else why it could not be. Then nothing was changed: the admin API answers 503 and
 * the operator sends it again later.
 */
export function writeOverlay(store: Store, kind: 'account' | 'route', name: string, entry: OverlayEntry | null): string | null {
  const key = (kind === 'account' ? ACCOUNT_KEY : ROUTE_KEY) + name
  try {
    store.root.transactionSync(() => {
      if (entry === null) store.admin.remove(key)
      else store.admin.put(key, Buffer.from(JSON.stringify(entry), 'utf8'))
    })
    return null
  } catch (err) {
    return `storage unavailable: the change could not be written (${oneLine(err)})`
  }
}

/** The prefixes of the routes the API set (the admin API shows their source as "admin"). */
export function adminRoutePrefixes(overlay: Overlay): Set<string> {
  return new Set([...overlay.routes].filter(([, e]) => e.value !== null).map(([prefix]) => prefix))
}

type Json = Record<string, unknown>

/** The file's entry for an account id, as the overlay remembers it. */
export function fileAccount(raw: unknown, id: string): string | null {
  const accounts = isObject(raw) && isObject(raw.accounts) ? raw.accounts : {}
  return Object.hasOwn(accounts, id) ? JSON.stringify(accounts[id]) : null
}

/** The file's entry for a route prefix, as the overlay remembers it. */
export function fileRoute(raw: unknown, prefix: string): string | null {
  const routes = isObject(raw) && Array.isArray(raw.routes) ? (raw.routes as unknown[]) : []
  const route = routes.find((r) => isObject(r) && r.targetPrefix === prefix)
  return route === undefined ? null : JSON.stringify(route)
}

/**
 * The file's JSON with the overlay on top; and the overlay entries the file has overtaken
 * since (its entry for that id or prefix changed), which no longer count.
 */
export function combine(raw: unknown, overlay: Overlay): { raw: unknown; overtaken: { kind: 'account' | 'route'; name: string }[] } {
  if (!isObject(raw)) return { raw, overtaken: [] }
  const overtaken: { kind: 'account' | 'route'; name: string }[] = []
  // No prototype: an id is only ever an account here, whatever it is (`__proto__` set on a plain
  // object would replace its prototype, and the account would vanish without an error). With
  // nothing to set, the file's own object serves: copying 100,000 accounts would cost more than
  // reading the file.
  const fileAccounts = isObject(raw.accounts) ? raw.accounts : {}
  const accounts: Json = overlay.accounts.size === 0 ? fileAccounts : Object.assign(Object.create(null), fileAccounts)
  for (const [id, entry] of overlay.accounts) {
    if (fileAccount(raw, id) !== entry.file) {
      overtaken.push({ kind: 'account', name: id })
      continue
    }
    if (entry.value === null) delete accounts[id]
    else accounts[id] = entry.value
  }
  let routes: unknown[] = Array.isArray(raw.routes) ? [...(raw.routes as unknown[])] : []
  for (const [prefix, entry] of overlay.routes) {
    if (fileRoute(raw, prefix) !== entry.file) {
      overtaken.push({ kind: 'route', name: prefix })
      continue
    }
    routes = routes.filter((r) => !(isObject(r) && r.targetPrefix === prefix))
    if (entry.value !== null) routes.push({ ...entry.value, targetPrefix: prefix })
  }
  const combined: Json = { ...raw, accounts }
  if (routes.length > 0 || raw.routes !== undefined) combined.routes = routes
  return { raw: combined, overtaken }
}
