// Every error the admin API answers, in one table: its stable code, its HTTP status, and what
// it means. An error's body is { "code", "error": the message, "field": the body field or path
// part it is about (when there is one), and whatever else helps (the balance, the routes) }.
// Nothing else names a code: the main thread (control/ops/admin_api.ts, control/ops/reconfigure.ts) and
// the I/O thread that takes the request (admin_endpoint.ts) make their errors from this table,
// and test/unit/admin_errors_doc.test.ts checks that the README lists exactly these.
// It is here, with the endpoint, because the I/O threads answer some of these themselves.

export const ADMIN_ERRORS = {
  invalid_body: { status: 400, meaning: 'the body is not JSON, not a JSON object, or missing' },
  invalid_field: { status: 400, meaning: 'a field (or path part: id, path, limit, ...) is refused, by the config file\'s validation or the endpoint\'s own' },
  reload_refused: { status: 400, meaning: 'the config file a reload read is refused; the node runs on as before' },
  unauthorized: { status: 401, meaning: 'no admin bearer token, or a wrong one' },
  not_found: { status: 404, meaning: 'no such account or route' },
  unknown_endpoint: { status: 404, meaning: 'no admin endpoint at this path (the answer lists them)' },
  admin_off: { status: 404, meaning: 'the admin API is off: the config has no adminToken' },
  method_not_allowed: { status: 405, meaning: 'the endpoint does not take this method (the Allow header lists those it takes)' },
  balance_not_zero: { status: 409, meaning: 'the account has a balance, holds or prepares in flight (a delete, or a change of its asset)' },
  account_in_use: { status: 409, meaning: 'a configured route names the account as its next hop' },
  payee_from_config: { status: 409, meaning: 'a payee (or the shop) is set by the config file and changes with a restart' },
  idempotency_conflict: { status: 409, meaning: 'the Idempotency-Key was used for another adjustment' },
  no_room: { status: 409, meaning: 'no index left for another account in this run (limits.maxAccounts)' },
  no_config_file: { status: 409, meaning: 'the node runs on a config given in code: no file to reload' },
  settlement_in_flight: { status: 409, meaning: 'an asset change while a settlement of the account awaits its answer' },
  body_too_large: { status: 413, meaning: 'the body is over 64 KiB' },
  too_many_failures: { status: 429, meaning: 'too many failed authentications from this address: wait Retry-After seconds' },
  internal: { status: 500, meaning: 'an error the node did not expect (it is logged)' },
  outcome_unknown: { status: 503, meaning: 'the adjustment\'s shard went away before it answered: send it again with the same Idempotency-Key' },
  storage_unavailable: { status: 503, meaning: 'the node cannot write (a full disk, say): no change is made; reads still answer' },
} as const

export type AdminErrorCode = keyof typeof ADMIN_ERRORS

/** An admin answer as the main thread makes it: a status and a JSON value. */
export interface Outcome {
  readonly status: number
  readonly body: Record<string, unknown>
}

/**
 * A refusal: its code's status, and the body { code, error, field, ...more } (no field when it
 * is about no one field).
 */
export function refusal(code: AdminErrorCode, error: string, field?: string, more: Record<string, unknown> = {}): Outcome {
  return { status: ADMIN_ERRORS[code].status, body: { code, error, ...(field === undefined ? {} : { field }), ...more } }
}

/** A refusal as the I/O thread sends it: status and JSON text. */
export function refusalText(code: AdminErrorCode, error: string, field?: string): { status: number; body: string } {
  const { status, body } = refusal(code, error, field)
  return { status, body: JSON.stringify(body) }
}
