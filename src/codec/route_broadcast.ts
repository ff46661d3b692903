// The seed's route broadcast: UTF-8 JSON `{"method":"broadcast_routes","data":{…}}` carried where
// an ILP packet would be (the BTP `ilp` entry or the HTTP body), recognised by its first byte '{'.
// Three generations of the `data` object were sent in 2017–18 (ilp-connector v17 to v20); this reads all of
// them into one shape, tolerating missing optional fields, and writes the union of their fields
// so that a reader of any generation finds what it looks for.
//
//   v17 (ilp-connector 17, the seed)  new_routes[].destination_ledger (a ledger prefix, often
//                                     ending in '.'), min_message_window (seconds),
//                                     unreachable_through_me, hold_down_time (ms)
//   Jan 2018                          new_routes[].{prefix, path}, unreachable_through_me;
//                                     sometimes wrapped in {"custom": {...}} by the sender
//   Feb 2018                          speaker, routing_table_id, from_epoch, to_epoch,
//                                     new_routes[].{prefix, path, auth}, withdrawn_routes

export interface BroadcastRoute {
  prefix: string
  path: string[]
  /** 32 bytes when the sender gave them (Feb 2018), else null. */
  auth: Buffer | null
}

export interface RouteBroadcast {
  newRoutes: BroadcastRoute[]
  withdrawnRoutes: string[]
  /** Absent in a few senders; the caller picks a default. */
  holdDownTimeMs: number | null
  /** Feb 2018 only: the epoch the sender will continue from, echoed back as next_requested_epoch. */
  toEpoch: number | null
}

export class RouteBroadcastError extends Error {}

const ADDRESS = /^[a-zA-Z0-9._~-]{1,1023}$/
const MAX_ROUTES = 10_000

/** True if `data` is a JSON route broadcast rather than an OER ILP packet. */
export function isRouteBroadcast(data: Uint8Array): boolean {
  return data.length > 0 && data[0] === 0x7b
}

/**
 * Parses a route broadcast. Throws RouteBroadcastError, with a message fit for the sender, for
 * JSON that is not one (bad syntax, another method, a `data` of the wrong shape). Single routes
 * with an unusable prefix are dropped, as the seed-era receivers did.
 */
export function decodeRouteBroadcast(bytes: Uint8Array): RouteBroadcast {
  let message: unknown
  try {
    message = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch {
    throw new RouteBroadcastError('route broadcast is not valid JSON')
  }
  if (isObject(message) && message.method === undefined && isObject(message.custom)) message = message.custom
  if (!isObject(message)) throw new RouteBroadcastError('route broadcast must be a JSON object')
  if (message.method !== 'broadcast_routes') {
    throw new RouteBroadcastError(`unknown JSON method ${JSON.stringify(String(message.method)).slice(0, 64)} (only broadcast_routes is understood)`)
  }
  const data = message.data
  if (!isObject(data)) throw new RouteBroadcastError('broadcast_routes needs a "data" object')

  const rawRoutes = data.new_routes ?? []
  if (!Array.isArray(rawRoutes)) throw new RouteBroadcastError('"new_routes" must be an array')
  const rawWithdrawn = data.withdrawn_routes ?? data.unreachable_through_me ?? []
  if (!Array.isArray(rawWithdrawn)) throw new RouteBroadcastError('"withdrawn_routes" / "unreachable_through_me" must be an array')
  if (rawRoutes.length + rawWithdrawn.length > MAX_ROUTES) throw new RouteBroadcastError(`more than ${MAX_ROUTES} routes in one broadcast`)

  const newRoutes: BroadcastRoute[] = []
  for (const item of rawRoutes) {
    const route = readRoute(item)
    if (route !== null) newRoutes.push(route)
  }
  const withdrawnRoutes: string[] = []
  for (const item of rawWithdrawn) {
    const prefix = typeof item === 'string' ? ledgerPrefix(item) : null
    if (prefix !== null) withdrawnRoutes.push(prefix)
  }
  const hold = data.hold_down_time
  const holdDownTimeMs = typeof hold === 'number' && Number.isInteger(hold) && hold > 0 ? hold : null
  const to = data.to_epoch
  const toEpoch = typeof to === 'number' && Number.isInteger(to) && to >= 0 ? to : null
  return { newRoutes, withdrawnRoutes, holdDownTimeMs, toEpoch }
}

/** The reply: `{}` (v17, Jan 2018) or `{"next_requested_epoch":n}` (Feb 2018). */
export function encodeRouteBroadcastReply(toEpoch: number | null): Buffer {
  return Buffer.from(toEpoch === null ? '{}' : `{"next_requested_epoch":${toEpoch}}`, 'utf8')
}

export interface OutgoingBroadcast {
  speaker: string
  routingTableId: string
  fromEpoch: number
  toEpoch: number
  holdDownTimeMs: number
  routes: { prefix: string; path: string[]; auth: Buffer }[]
  withdrawn: string[]
}

/** A broadcast in the seed's top-level form, carrying every generation's fields. */
export function encodeRouteBroadcast(b: OutgoingBroadcast): Buffer {
  return Buffer.from(JSON.stringify({
    method: 'broadcast_routes',
    data: {
      speaker: b.speaker,
      routing_table_id: b.routingTableId,
      from_epoch: b.fromEpoch,
      to_epoch: b.toEpoch,
      hold_down_time: b.holdDownTimeMs,
      new_routes: b.routes.map((r) => ({
        prefix: r.prefix,
        path: r.path,
        auth: r.auth.toString('base64'),
        destination_ledger: r.prefix,
        min_message_window: 1,
      })),
      withdrawn_routes: b.withdrawn,
      unreachable_through_me: b.withdrawn,
    },
  }), 'utf8')
}

function readRoute(item: unknown): BroadcastRoute | null {
  if (!isObject(item)) return null
  const raw = typeof item.prefix === 'string' ? item.prefix : typeof item.destination_ledger === 'string' ? item.destination_ledger : null
  const prefix = raw === null ? null : ledgerPrefix(raw)
  if (prefix === null) return null
  const path = Array.isArray(item.path) && item.path.every((p) => typeof p === 'string') ? (item.path as string[]) : []
  let auth: Buffer | null = null
  if (typeof item.auth === 'string') {
    const decoded = Buffer.from(item.auth, 'base64')
    if (decoded.length === 32) auth = decoded
  }
  return { prefix, path, auth }
}

/** A v17 ledger prefix ends in '.'; today's prefixes do not. Null if not an address. */
function ledgerPrefix(s: string): string | null {
  const prefix = s.endsWith('.') ? s.slice(0, -1) : s
  return ADDRESS.test(prefix) ? prefix : null
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
