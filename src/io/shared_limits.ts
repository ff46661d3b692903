// Limits that hold for the node as a whole, whichever I/O thread a connection lands on: the count
// of open connections and HTTP exchanges (limits.maxConnections), and the failed authentications
// per remote address (the auth throttle). Both live in one SharedArrayBuffer made by the main
// thread and updated with Atomics by every I/O thread; no thread ever waits on another.
//
//   SAB: Int32 open                      connections and exchanges open on all I/O threads
//        Int32 byTransport[TRANSPORTS]   the same by transport (for /metrics)
//        Int32 failures[THROTTLE_SLOTS]  failed authentications in the current window, per slot
//        Int32 windowStart[THROTTLE_SLOTS]  start of that window (seconds)
//
// An address is hashed to a slot: two addresses that share a slot share a count, which can only
// make the throttle stricter for them, never let a guesser through faster.

const THROTTLE_SLOTS = 4096

/** What holds a connection id: a BTP session, an ILP-over-HTTP exchange, a paid shop request. */
export const TRANSPORTS = ['btp', 'http', 'shop'] as const
export type Transport = (typeof TRANSPORTS)[number]
const HEADER_CELLS = 1 + TRANSPORTS.length

export function createSharedLimits(): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * (HEADER_CELLS + 2 * THROTTLE_SLOTS))
}

export class ConnectionCount {
  private readonly cells: Int32Array

  constructor(sab: SharedArrayBuffer) {
    this.cells = new Int32Array(sab, 0, HEADER_CELLS)
  }

  get open(): number {
    return Atomics.load(this.cells, 0)
  }

  /** Open connections and exchanges by transport, in TRANSPORTS order. */
  byTransport(): number[] {
    return TRANSPORTS.map((_, i) => Atomics.load(this.cells, 1 + i))
  }

  opened(transport: Transport): void {
    Atomics.add(this.cells, 0, 1)
    Atomics.add(this.cells, 1 + TRANSPORTS.indexOf(transport), 1)
  }

  closed(transport: Transport): void {
    Atomics.sub(this.cells, 0, 1)
    Atomics.sub(this.cells, 1 + TRANSPORTS.indexOf(transport), 1)
  }
}

/**
 * Slows guessing: after FREE_FAILURES failed authentications from one address within WINDOW_S,
 * each further refusal to that address is held back, 250 ms doubling up to 8 s. Successful
 * authentications are never delayed, so a client that knows its token is not slowed by another
 * client's failures, only the guessing connections are.
 */
export class AuthThrottle {
  private static readonly FREE_FAILURES = 5
  private static readonly WINDOW_S = 60
  private static readonly FIRST_DELAY_MS = 250
  private static readonly MAX_DELAY_MS = 8_000
  private readonly failures: Int32Array
  private readonly windowStart: Int32Array

  constructor(sab: SharedArrayBuffer = createSharedLimits()) {
    this.failures = new Int32Array(sab, 4 * HEADER_CELLS, THROTTLE_SLOTS)
    this.windowStart = new Int32Array(sab, 4 * (HEADER_CELLS + THROTTLE_SLOTS), THROTTLE_SLOTS)
  }

  /** Records a failure from `address`; returns how long to hold back the refusal (ms). */
  failed(address: string, nowMs = Date.now()): number {
    const slot = slotOf(address)
    const nowS = Math.floor(nowMs / 1000)
    const start = Atomics.load(this.windowStart, slot)
    // A new window: the thread that moves the start resets the count (a failure another thread
    // adds in between is lost, in the guesser's favour by one).
    if (nowS - start > AuthThrottle.WINDOW_S && Atomics.compareExchange(this.windowStart, slot, start, nowS) === start) {
      Atomics.store(this.failures, slot, 0)
    }
    const over = Atomics.add(this.failures, slot, 1) + 1 - AuthThrottle.FREE_FAILURES
    if (over <= 0) return 0
    return Math.min(AuthThrottle.FIRST_DELAY_MS * 2 ** Math.min(over - 1, 16), AuthThrottle.MAX_DELAY_MS)
  }
}

/** FNV-1a of the address, folded onto the slots. */
function slotOf(address: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < address.length; i++) {
    h ^= address.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) % THROTTLE_SLOTS
}
