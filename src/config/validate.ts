// The config file checked against the schema (schema.ts), with the environment laid over it. A
// refused file's first issue becomes one ConfigError: the field as operators write it
// (`accounts.alice.balance`, `routes[0].peerId`, `port (PORT)`) and a problem worded once here for
// every field of its kind, with a did-you-mean hint for an unknown field.

import { z } from 'zod'
import { showKey } from '../display'
import { ACCOUNT_ID_RULE, ConfigError, isAccountId, isObject, NAME_RULE } from './names'
import { Account, ConfigShell, ConfiguredRoute, ENV_NAMES, RESERVED_PATHS, type AccountConfig, type EnvOverrides, type FileFields } from './schema'

/**
 * An account read before, by id: reused when the file's entry for it is unchanged (`raw` deeply
 * equal to the entry now), so a reload reads only the accounts it changes.
 */
export type ReadAccounts = ReadonlyMap<string, { readonly raw: unknown; readonly account: AccountConfig }>

/** The accounts of a file, in its order, each with the JSON it was read from. */
export type FileAccounts = Map<string, { raw: unknown; account: AccountConfig }>

/**
 * The file with the environment laid over it, read by the schema; a ConfigError names the first
 * problem. The accounts are read one by one (Account), each unchanged one of `before` reused.
 */
export function validateFile(raw: unknown, env: EnvOverrides, before: ReadAccounts = new Map()): { file: FileFields; merged: Record<string, unknown>; accounts: FileAccounts } {
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
  const shell = (compiledShell ??= z.compile(ConfigShell)).safeParse(merged, { error: problem })
  const { accounts, issues } = readAccounts(merged.accounts, before)
  if (!shell.success || issues.length > 0) throw refusal([...(shell.success ? [] : shell.error.issues), ...issues])
  const { accounts: _, ...file } = shell.data
  return { file, merged, accounts }
}

/** Each account by Account alone (or as read before, if its entry is unchanged); the issues of those refused. */
function readAccounts(entries: unknown, before: ReadAccounts): { accounts: FileAccounts; issues: z.core.$ZodIssue[] } {
  const accounts: FileAccounts = new Map()
  const issues: z.core.$ZodIssue[] = []
  if (!isObject(entries)) return { accounts, issues }
  for (const id of Object.keys(entries)) {
    const raw = entries[id]
    const known = before.get(id)
    if (known !== undefined && sameJson(known.raw, raw)) {
      accounts.set(id, { raw, account: known.account })
      continue
    }
    const read = readAccount(id, raw)
    if ('issues' in read) issues.push(...read.issues)
    else accounts.set(id, { raw, account: read.account })
  }
  return { accounts, issues }
}

/**
 * One account's entry (a file's, or the admin API's PUT body) read by the schema alone: the
 * account, or the issues of its refusal, their paths from the file's top (accounts.<id>...).
 */
function readAccount(id: string, raw: unknown): { account: AccountConfig } | { issues: z.core.$ZodIssue[] } {
  accountReads++
  const parsed = (compiledAccount ??= z.compile(Account)).safeParse(raw, { error: problem })
  if (!parsed.success) return { issues: parsed.error.issues.map((iss) => ({ ...iss, path: ['accounts', id, ...iss.path] })) }
  const account = parsed.data
  account.id = id
  return { account: Object.freeze(account) }
}

/** One account's entry alone (the admin API's PUT): the account, or the ConfigError a file with it would give. */
export function validateAccount(id: string, raw: unknown): AccountConfig {
  const read = readAccount(id, raw)
  if ('issues' in read) throw refusal(read.issues)
  return read.account
}

/** One route of the file's "routes" at index `i` (the admin API's PUT of a route): the route, or the ConfigError a file with it would give. */
export function validateRoute(i: number, raw: unknown): Readonly<z.output<typeof ConfiguredRoute>> {
  const parsed = ConfiguredRoute.safeParse(raw, { error: problem })
  if (!parsed.success) throw refusal(parsed.error.issues.map((iss) => ({ ...iss, path: ['routes', i, ...iss.path] })))
  return Object.freeze(parsed.data)
}

/** Accounts read by the schema since the process started: tests check that a change reads only its own. */
export function accountsRead(): number {
  return accountReads
}
let accountReads = 0

/**
 * A refused file's issue as one ConfigError. Its issues come in the order of the schema's fields
 * (the accounts' where "accounts" is); an unknown field is named first: it is most often the
 * cause of the rest (a misspelt required field).
 */
function refusal(issues: z.core.$ZodIssue[]): ConfigError {
  const order = Object.keys(ConfigShell.shape)
  const place = (iss: z.core.$ZodIssue) => { const i = order.indexOf(String(iss.path[0])); return i < 0 ? order.length : i }
  const sorted = issues.map((iss, i) => ({ iss, i })).sort((a, b) => place(a.iss) - place(b.iss) || a.i - b.i).map(({ iss }) => iss)
  const iss = sorted.find((i) => i.code === 'unrecognized_keys') ?? sorted[0]
  return new ConfigError(fieldOf(iss), iss.message)
}

/** Two JSON values alike (the entries of two reads of a file): equal scalars, arrays and objects, key order aside. */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  for (const k of ka) if (!Object.hasOwn(b, k) || !sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false
  return true
}

/**
 * The parsers zod generates code for, made at the first parse (the runtime's generic walk is some
 * 3× slower on 50,000 accounts); they fall back to that walk to word the issues of a refused file.
 */
let compiledShell: typeof ConfigShell | null = null
let compiledAccount: typeof Account | null = null

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
