// How far each account's balance may still fall, in shared memory: every shard forwards prepares
// to every account, but only the account's owner books its balance, so the next hop's
// balance.minimum (ilp-connector's meaning: the most the node will owe that peer) is held here,
// like the sender's maximum is held in its owner's books.
//
//   available[B] = B's balance − what is on its way to B
//   (BigInt64)     (prepares forwarded to B still in flight, and fulfilled credits to B that its
//                   owner has not booked yet: both already lower it)
//
//   forward x to B     take: available − x ≥ floor(B) or T04, one compareExchange (two shards
//                      taking at once both see the other's take, or retry)
//   reject, expiry     give x back
//   fulfill            nothing for B (the hold becomes the credit); the sender's balance rose by
//                      its amount: give that to the sender's cell
//   settlement, adjustment, a peer's transfer: the balance moved: give or take the same amount
//
// floor(B) is B's balance.minimum, never below −(2^63 − 1), so that −balance (what peer.balance
// reports) fits in a signed 64-bit integer too.
//
// A cell starts at 0 for an index new to this run, and the account's owner adds its committed
// balance when it loads the account: an addition, so a take by another shard that comes first
// is not lost. Every shard restart makes fresh cells (ring/wiring.ts), as it makes fresh holds.

import { INT64_MAX, INT64_MIN } from '../codec/oer'

/** The lowest a balance may go: −(2^63 − 1), so that its negation is a signed 64-bit integer too. */
export const BALANCE_FLOOR_MIN = -INT64_MAX

export function creditRoomBytes(accounts: number): number {
  return 8 * accounts
}

export class CreditRoom {
  private readonly available: BigInt64Array

  constructor(sab: SharedArrayBuffer, accounts: number) {
    this.available = new BigInt64Array(sab, 0, accounts)
  }

  /** Holds `amount` against `account`'s floor; false (nothing held) if it would pass it. */
  take(account: number, amount: bigint, floor: bigint): boolean {
    for (;;) {
      const now = Atomics.load(this.available, account)
      const after = now - amount
      if (after < floor) return false
      if (Atomics.compareExchange(this.available, account, now, after) === now) return true
    }
  }

  /**
   * The packet path's give: a hold of `amount` ended without a credit, or a sender's balance rose
   * by `amount` within its maximum. One atomic add: the cell cannot pass 2^63 − 1 here, being at
   * most the balance, which these keep within the account's limits.
   */
  give(account: number, amount: bigint): void {
    Atomics.add(this.available, account, amount)
  }

  /**
   * The balance moved by `delta` outside the packets' limits (a settlement, its reversal, an
   * adjustment): saturating, see `move`.
   */
  moved(account: number, delta: bigint): void {
    this.move(account, delta)
  }

  /** B's balance minus what is on its way to it, as every shard sees it now. */
  read(account: number): bigint {
    return Atomics.load(this.available, account)
  }

  /**
   * Adds `delta`, saturating at the signed 64-bit bounds rather than wrapping: passing them takes
   * balances and holds near ±2^63 at once, which the limits keep out (balances stay within
   * ±(2^63 − 1)); the next restart recomputes every cell from the committed balances anyway.
   */
  private move(account: number, delta: bigint): void {
    for (;;) {
      const now = Atomics.load(this.available, account)
      let after = now + delta
      if (after > INT64_MAX) after = INT64_MAX
      else if (after < INT64_MIN) after = INT64_MIN
      if (Atomics.compareExchange(this.available, account, now, after) === now) return
    }
  }
}
