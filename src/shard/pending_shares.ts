// Fair use of a shard's pending table (limits.pendingPerShard): however many prepares a few
// accounts keep in flight (to a next hop that never answers, say, at no cost to them), every other
// account that sends through the shard still finds room for a share of its own.
//
//   share     = ⌊capacity / (2 × senders)⌋   senders: the live accounts this shard owns that send
//                                             prepares (payees and the shop do not)
//   reserved  = Σ max(0, share − inFlight(a)) over those senders: the room their unused shares keep
//   An account below its share always may take a slot; one at or above it only while the free
//   slots exceed `reserved`. limits.maxInFlightPerAccount applies before either.
//
// Invariant: free ≥ reserved, so an account below its share always finds a free slot. It holds at
// the start (free = capacity ≥ 2 × senders × share ≥ reserved); a take below the share lowers both
// by one; a take above it needs free − 1 ≥ reserved; a release raises free by one and reserved by
// at most one. When the accounts change, share and reserved are computed again; should free then
// be below reserved (a table already full), only accounts below their share take slots until
// releases restore the invariant. So the accounts that flood share half the table among
// themselves, beyond their own shares, and the rest keep theirs. Every step is O(1); a change of
// the accounts is O(accounts changed), unless it moves the share, which is then O(accounts): the
// share moves with nearly every sender added while there are few, and rarely once there are
// many (⌊capacity / 2s⌋ takes at most 2√capacity values).

import type { AccountTable } from '../config/account_table'

export class PendingShares {
  private share = 0
  private reserved = 0
  private senders = 0
  /** 1 for the accounts counted as senders of this shard. */
  private readonly sender: Uint8Array

  constructor(
    private readonly capacity: number,
    private readonly accounts: AccountTable,
    private readonly shardIndex: number,
    /** Prepares in flight per account (shard/books.ts). */
    private readonly inFlight: (account: number) => number,
  ) {
    this.sender = new Uint8Array(accounts.capacity)
    this.accountsChanged()
  }

  /** True if `account` may take one more slot of a table with `free` slots free. */
  mayTake(account: number, free: number): boolean {
    if (this.inFlight(account) < this.share && this.sender[account] === 1) return true
    return free - 1 >= this.reserved
  }

  /** `account` took a slot; call with its count before the take. */
  taken(account: number, before: number): void {
    if (this.sender[account] === 1 && before < this.share) this.reserved--
  }

  /** `account` released a slot; call with its count after the release. */
  released(account: number, after: number): void {
    if (this.sender[account] === 1 && after < this.share) this.reserved++
  }

  /**
   * The accounts changed (added, deleted, moved): all of them (at start), or those in `changed`.
   * The share and the room reserved follow.
   */
  accountsChanged(changed: readonly number[] | null = null): void {
    const before = this.share
    if (changed === null) {
      this.senders = 0
      this.sender.fill(0)
      for (let i = 0; i < this.accounts.size; i++) this.setSender(i)
    } else {
      // Their unused shares leave `reserved` as they were; those they have now go in below.
      for (const i of changed) if (this.sender[i] === 1) this.reserved -= Math.max(0, this.share - this.inFlight(i))
      for (const i of changed) this.setSender(i)
    }
    this.share = this.senders === 0 ? 0 : Math.floor(this.capacity / (2 * this.senders))
    if (changed === null || this.share !== before) {
      this.reserved = 0
      for (let i = 0; i < this.accounts.size; i++) if (this.sender[i] === 1) this.reserved += Math.max(0, this.share - this.inFlight(i))
      return
    }
    for (const i of changed) if (this.sender[i] === 1) this.reserved += Math.max(0, this.share - this.inFlight(i))
  }

  private setSender(i: number): void {
    const sends = this.accounts.ownerShard[i] === this.shardIndex && this.accounts.isLive(i) && this.accounts.get(i).payee === null ? 1 : 0
    this.senders += sends - this.sender[i]
    this.sender[i] = sends
  }
}
