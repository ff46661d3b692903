// Limits that hold for the node as a whole, whichever I/O thread a connection lands on: the count
// of open connections and HTTP exchanges (limits.maxConnections), the anonymous ones among them
// (not yet authenticated), and, per client address (client_address.ts), its anonymous
// connections and its failed authentications. All live in one SharedArrayBuffer made by the main
// thread and updated with Atomics by every I/O thread (and the main thread's admin listener); no
// thread ever waits on another.
//
//   SAB: BigInt64 key[SLOTS]            a client's hash (0: free slot)
//        BigInt64 lastSeenMs[SLOTS]     when the client last connected or failed (for eviction)
//        BigInt64 lastFailureMs[SLOTS]  its last failed authentication (failures are forgotten
//                                       FORGET_FAILURES_MS after it)
//        BigInt64 blockedUntilMs[SLOTS] no authentication of it is checked before then
//        Int32    anonymous[SLOTS]      its connections that have not authenticated
//        Int32    failures[SLOTS]       its failed authentications since it was last forgiven
//        Int32    generation[SLOTS]     bumped each time the slot is given to a client, so that
//                                       a connection counted under an earlier owner is never
//                                       taken off a later one (not even the same client's)
//        Int32    open, anonymousOpen, anyWaitUntil, held, seed, byTransport[TRANSPORTS]
//
// anyWaitUntil is the latest blockedUntilMs of all, in whole seconds from WAIT_EPOCH_S, rounded
// up: until then some client may be waiting. While none is, a request need not find its client's
// slot at all (an ILP-over-HTTP packet pays one load and a comparison, no allocation). `held`
// counts refusals held back (client_gate.ts) under a cap of their own, apart from the anonymous
// sockets, so that refusals cannot take the places a connecting account needs. `seed` (random,
// set by the main thread) keys the hash, so that addresses that share slots cannot be worked
// out offline.
//
// A client's slot is found by probing PROBE slots from its hash; a new client takes a free one,
// else evicts the least recently seen one that holds nothing (no anonymous connection, no
// penalty), else the least recently seen. Two threads may race on one slot: a count can then be
// off by one for a moment, never by more than the number of threads, and a client whose slot was
// taken over simply starts afresh (its old connections' releases are ignored: they carry the
// slot's earlier generation).

import { randomBytes } from 'node:crypto'

const SLOTS = 8192
const PROBE = 8
/** Failed authentications are forgotten this long after the last one. */
const FORGET_FAILURES_MS = 10 * 60_000

/** What holds a connection id: a BTP session, an ILP-over-HTTP exchange, a paid shop request. */
export const TRANSPORTS = ['btp', 'http', 'shop'] as const
export type Transport = (typeof TRANSPORTS)[number]
const COUNTS = 5 + TRANSPORTS.length
/** anyWaitUntil counts seconds from here (2023-11-14), so an Int32 lasts until 2091. */
const WAIT_EPOCH_S = 1_700_000_000

export function createSharedLimits(): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(8 * 4 * SLOTS + 4 * 3 * SLOTS + 4 * COUNTS)
  new Cells(sab).counts[SEED] = randomBytes(4).readInt32LE(0)
  return sab
}

class Cells {
  readonly key: BigInt64Array
  readonly lastSeenMs: BigInt64Array
  readonly lastFailureMs: BigInt64Array
  readonly blockedUntilMs: BigInt64Array
  readonly anonymous: Int32Array
  readonly failures: Int32Array
  readonly generation: Int32Array
  readonly counts: Int32Array

  constructor(sab: SharedArrayBuffer) {
    let at = 0
    const big = () => { const a = new BigInt64Array(sab, at, SLOTS); at += 8 * SLOTS; return a }
    const int = (n: number) => { const a = new Int32Array(sab, at, n); at += 4 * n; return a }
    this.key = big()
    this.lastSeenMs = big()
    this.lastFailureMs = big()
    this.blockedUntilMs = big()
    this.anonymous = int(SLOTS)
    this.failures = int(SLOTS)
    this.generation = int(SLOTS)
    this.counts = int(COUNTS)
  }
}

const OPEN = 0
const ANONYMOUS_OPEN = 1
const ANY_WAIT_UNTIL = 2
const HELD = 3
const SEED = 4
const BY_TRANSPORT = 5

export class ConnectionCount {
  private readonly counts: Int32Array

  constructor(sab: SharedArrayBuffer) {
    this.counts = new Cells(sab).counts
  }

  /** Connections and exchanges open on all I/O threads. */
  get open(): number {
    return Atomics.load(this.counts, OPEN)
  }

  /** Open connections and exchanges by transport, in TRANSPORTS order. */
  byTransport(): number[] {
    return TRANSPORTS.map((_, i) => Atomics.load(this.counts, BY_TRANSPORT + i))
  }

  opened(transport: Transport): void {
    Atomics.add(this.counts, OPEN, 1)
    Atomics.add(this.counts, BY_TRANSPORT + TRANSPORTS.indexOf(transport), 1)
  }

  closed(transport: Transport): void {
    Atomics.sub(this.counts, OPEN, 1)
    Atomics.sub(this.counts, BY_TRANSPORT + TRANSPORTS.indexOf(transport), 1)
  }
}

/** The limits on clients, from the config (README: "Security"). */
export interface ClientLimits {
  /** Anonymous connections one client address may hold. */
  readonly anonymousPerAddress: number
  /** Anonymous connections the node holds at most: limits.maxConnections less the share kept for accounts. */
  readonly anonymousMax: number
  /** Failed authentications an address has before it is made to wait. */
  readonly authFailuresFree: number
  /** The first wait, doubled at each further failure, up to authPenaltyMaxMs. */
  readonly authPenaltyMs: number
  readonly authPenaltyMaxMs: number
}

/** An anonymous connection's place in the counts, given back once it authenticates or closes. */
export interface AnonymousTicket {
  readonly slot: number
  readonly generation: number
}

export type AnonymousRefusal = 'address' | 'node'

export class ClientTable {
  private readonly cells: Cells
  private readonly seed: number

  constructor(sab: SharedArrayBuffer, private readonly limits: ClientLimits) {
    this.cells = new Cells(sab)
    this.seed = Atomics.load(this.cells.counts, SEED)
  }

  /**
   * Counts a new anonymous connection of `client`, or says which limit it is over: its address's
   * (limits.anonymousPerAddress) or the node's (the share of limits.maxConnections anonymous
   * connections may take).
   */
  openAnonymous(client: string, nowMs = Date.now()): AnonymousTicket | AnonymousRefusal {
    const c = this.cells
    if (Atomics.add(c.counts, ANONYMOUS_OPEN, 1) >= this.limits.anonymousMax) {
      Atomics.sub(c.counts, ANONYMOUS_OPEN, 1)
      return 'node'
    }
    const slot = this.slotOf(this.keyOf(client), nowMs)
    const generation = Atomics.load(c.generation, slot)
    if (Atomics.add(c.anonymous, slot, 1) >= this.limits.anonymousPerAddress) {
      Atomics.sub(c.anonymous, slot, 1)
      Atomics.sub(c.counts, ANONYMOUS_OPEN, 1)
      return 'address'
    }
    return { slot, generation }
  }

  /** Counts a refusal held back, under a cap of its own (the anonymous share's size); false if over it. */
  openHeld(): boolean {
    if (Atomics.add(this.cells.counts, HELD, 1) < this.limits.anonymousMax) return true
    Atomics.sub(this.cells.counts, HELD, 1)
    return false
  }

  closeHeld(): void {
    Atomics.sub(this.cells.counts, HELD, 1)
  }

  /** The connection authenticated or closed: it no longer counts as anonymous. */
  closeAnonymous(ticket: AnonymousTicket): void {
    const c = this.cells
    Atomics.sub(c.counts, ANONYMOUS_OPEN, 1)
    if (Atomics.load(c.generation, ticket.slot) === ticket.generation) Atomics.sub(c.anonymous, ticket.slot, 1)
  }

  /** True while some client waits after failed authentications (else none needs looking up). */
  anyPenalty(nowMs = Date.now()): boolean {
    return Atomics.load(this.cells.counts, ANY_WAIT_UNTIL) > Math.floor(nowMs / 1000) - WAIT_EPOCH_S
  }

  /** How long `client` must still wait before an authentication of it is checked (0: none). */
  penaltyLeftMs(client: string, nowMs = Date.now()): number {
    const slot = this.findSlot(this.keyOf(client))
    if (slot < 0) return 0
    return Math.max(0, Number(Atomics.load(this.cells.blockedUntilMs, slot) - BigInt(nowMs)))
  }

  /**
   * Records a failed authentication of `client`; returns the wait it has earned (0 while it has
   * failed no more than limits.authFailuresFree times in a row): the refusal is held back that
   * long, and no authentication of it is checked until the wait is over.
   */
  failed(client: string, nowMs = Date.now()): number {
    const c = this.cells
    const slot = this.slotOf(this.keyOf(client), nowMs)
    const now = BigInt(nowMs)
    if (now - Atomics.load(c.lastFailureMs, slot) > BigInt(FORGET_FAILURES_MS)) Atomics.store(c.failures, slot, 0)
    Atomics.store(c.lastFailureMs, slot, now)
    const over = Atomics.add(c.failures, slot, 1) + 1 - this.limits.authFailuresFree
    if (over <= 0) return 0
    const waitMs = Math.min(this.limits.authPenaltyMs * 2 ** Math.min(over - 1, 30), this.limits.authPenaltyMaxMs)
    // Parallel failures each set a wait from now: the longest one stands.
    const until = now + BigInt(waitMs)
    raiseTo(c.blockedUntilMs, slot, until)
    const untilS = Math.ceil((nowMs + waitMs) / 1000) - WAIT_EPOCH_S
    for (;;) {
      const current = Atomics.load(c.counts, ANY_WAIT_UNTIL)
      if (current >= untilS || Atomics.compareExchange(c.counts, ANY_WAIT_UNTIL, current, untilS) === current) break
    }
    return waitMs
  }

  /** Two 32-bit FNV-1a hashes of the client's name, offset by the node's seed, as one non-zero 64-bit key. */
  private keyOf(client: string): bigint {
    let a = 0x811c9dc5 ^ this.seed
    let b = 0x050c5d1f ^ Math.imul(this.seed, 0x9e3779b1)
    for (let i = 0; i < client.length; i++) {
      const ch = client.charCodeAt(i)
      a = Math.imul(a ^ ch, 0x01000193)
      b = Math.imul(b ^ ch, 0x01000193)
    }
    return BigInt.asIntN(64, (BigInt(a >>> 0) << 32n) | BigInt((b | 1) >>> 0))
  }

  /** The slot of `key`, taking one if it has none. */
  private slotOf(key: bigint, nowMs: number): number {
    const c = this.cells
    const now = BigInt(nowMs)
    const found = this.findSlot(key)
    if (found >= 0) {
      Atomics.store(c.lastSeenMs, found, now)
      return found
    }
    const home = homeOf(key)
    let victim = -1
    let victimHoldsNothing = false
    for (let i = 0; i < PROBE; i++) {
      const slot = (home + i) & (SLOTS - 1)
      const current = Atomics.load(c.key, slot)
      if (current === 0n && Atomics.compareExchange(c.key, slot, 0n, key) === 0n) return this.firstOf(key, slot, now)
      const holdsNothing = Atomics.load(c.anonymous, slot) <= 0 && Atomics.load(c.blockedUntilMs, slot) <= now
      const older = victim < 0 || Atomics.load(c.lastSeenMs, slot) < Atomics.load(c.lastSeenMs, victim)
      if ((holdsNothing && !victimHoldsNothing) || (holdsNothing === victimHoldsNothing && older)) {
        victim = slot
        victimHoldsNothing = holdsNothing
      }
    }
    const previous = Atomics.load(c.key, victim)
    // Another thread took the slot first (for its own client): look again.
    if (Atomics.compareExchange(c.key, victim, previous, key) !== previous) return this.slotOf(key, nowMs)
    return this.fresh(victim, now)
  }

  /**
   * Two threads that meet a new client at once may each take a free slot for it: the one first
   * in probe order is the client's, and the other gives its slot back (each thread sees the
   * other's key by then, as each wrote its own before looking), so the client's counts are never
   * split between two slots.
   */
  private firstOf(key: bigint, taken: number, now: bigint): number {
    const first = this.findSlot(key)
    if (first === taken) return this.fresh(taken, now)
    Atomics.store(this.cells.key, taken, 0n)
    return first >= 0 ? first : this.slotOf(key, Number(now))
  }

  private fresh(slot: number, now: bigint): number {
    const c = this.cells
    Atomics.add(c.generation, slot, 1)
    Atomics.store(c.anonymous, slot, 0)
    Atomics.store(c.failures, slot, 0)
    Atomics.store(c.blockedUntilMs, slot, 0n)
    Atomics.store(c.lastFailureMs, slot, 0n)
    Atomics.store(c.lastSeenMs, slot, now)
    return slot
  }

  private findSlot(key: bigint): number {
    const home = homeOf(key)
    for (let i = 0; i < PROBE; i++) {
      const slot = (home + i) & (SLOTS - 1)
      if (Atomics.load(this.cells.key, slot) === key) return slot
    }
    return -1
  }
}

/** Sets cells[i] to `value` unless it is already later (another thread may raise it meanwhile). */
function raiseTo(cells: BigInt64Array, i: number, value: bigint): void {
  for (;;) {
    const current = Atomics.load(cells, i)
    if (current >= value || Atomics.compareExchange(cells, i, current, value) === current) return
  }
}

/** The first slot a key is looked for in: from its high half (the low half is forced odd). */
function homeOf(key: bigint): number {
  return Number(BigInt.asUintN(64, key) >> 32n) & (SLOTS - 1)
}
