// Names and rules the rest of the node shares with the config: the error a bad config raises, the
// rule of account ids, the reserved account names. Kept apart from the schema (schema.ts) so that
// a thread that needs only these (an I/O thread's shop) does not load zod and build the parser.

export class ConfigError extends Error {
  readonly code = 'ILP_NODE_CONFIG'
  constructor(readonly field: string, readonly problem: string) {
    super(`invalid configuration: ${field}: ${problem}`)
  }
}

/** Stands for "ask the parent" until start-up learns the address (valid, so children validate). */
export const ADDRESS_FROM_PARENT = 'private.address-from-parent'
/** I/O threads are numbered in the top byte of a connection id (io/connections.ts). */
export const MAX_IO_THREADS = 64
export const ECB_DAILY_URL = 'https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml'
/** The internal payee account that receives the shop's payments (`~` keeps it apart from config ids). */
export const SHOP_ACCOUNT = '~shop'
export const DAY_MS = 86_400_000
/**
 * limits.settlementLogRetentionMs by default: 30 days, far beyond the seconds to minutes a peer
 * keeps sending a transfer it has no answer to, and a month of history for the operator.
 */
export const SETTLEMENT_LOG_RETENTION_MS = 30 * DAY_MS
/** limits.maxAccounts unless the config has more than half of it already. */
export const DEFAULT_MAX_ACCOUNTS = 1024

export const ACCOUNT_ID = /^[a-zA-Z0-9_~-]{1,64}$/
/**
 * Names every plain object answers to (Object.prototype's own, and `prototype`): an account named
 * so would be found, or lost, by any lookup of ids in a plain object, here or in a tool that reads
 * the config or the admin API's answers.
 */
const OBJECT_NAMES: ReadonlySet<string> = new Set([...Object.getOwnPropertyNames(Object.prototype), 'prototype'])
export const NAME_RULE = '1-64 characters of a-z A-Z 0-9 _ ~ -, other than the names JavaScript objects have built in (__proto__, constructor, prototype, toString, valueOf, ...)'
/** The rule of account ids and payee names (the admin API checks a path's id by it first). */
export const ACCOUNT_ID_RULE = `account ids are ${NAME_RULE}`

export function isAccountId(id: string): boolean {
  return ACCOUNT_ID.test(id) && !OBJECT_NAMES.has(id)
}

/** A JSON object (not null, not an array): what every section of a config is. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
