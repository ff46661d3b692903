// The config file checked against the schema (schema.ts), with the environment laid over it. A
// refused file's first issue becomes one ConfigError: the field as operators write it
// (`accounts.alice.balance`, `routes[0].peerId`, `port (PORT)`) and a problem worded once here for
// every field of its kind, with a did-you-mean hint for an unknown field.

import { z } from 'zod'
import { showKey } from '../display'
import { ACCOUNT_ID_RULE, ConfigError, isAccountId, isObject, NAME_RULE } from './names'
import { ConfigFile, ENV_NAMES, RESERVED_PATHS, type EnvOverrides, type File } from './schema'

/** The file with the environment laid over it, read by the schema; a ConfigError names the first problem. */
export function validateFile(raw: unknown, env: EnvOverrides): { file: File; merged: Record<string, unknown> } {
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
 * The parser zod generates code for, made at the first parse (the runtime's generic walk is some
 * 3× slower on 50,000 accounts); it falls back to that walk to word the issues of a refused file.
 */
let compiledFile: typeof ConfigFile | null = null

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
