// A shard's books: the live balance and holds of the accounts it owns, and the LMDB records it
// writes (store/balance_store.ts: one record per account per writing shard, their sum being the
// balance). Only the shard's own thread touches them.
//
//   hold     a prepare from A is accepted: held[A] += amount (checked against A's maximum)
//   release  it is rejected or expires: held[A] -= amount
//   commit   it is fulfilled: held[A] -= amount, balance[A] += amount, record[A] += amount, and
//            the next hop B is credited: record[B] -= credit here, and balance[B] -= credit at
//            B's owner (at once if that is this shard, else by a CREDIT record after the commit)
//   and for the next hop B, in shared memory (shared/credit_room.ts): the credit is held against
//   B's balance.minimum when the prepare is forwarded, given back on reject or expiry.
//
// Changed records are written in the shard's next transaction (writeRecords), before anything
// that depends on them leaves the shard; the credits for other shards' live views go out after
// it (sendCredits), coalesced per account while their ring is full. After each turn the holds of
// the accounts they changed are copied to shared memory (publishHolds, shared/holds.ts) for the
// admin API.

import type { AccountTable } from '../config/account_table'
import { UINT64_MAX } from '../codec/oer'
import { RecordKind } from '../ring/records'
import type { RingWriter } from '../ring/ring'
import { decodeInt128, encodeInt128, type Store } from '../store/balance_store'
import { heldCells, prepareCells } from '../shared/holds'
import { BALANCE_FLOOR_MIN, CreditRoom } from '../shared/credit_room'
import { INT64_MAX } from '../codec/oer'

export class Books {
  // Per account (by index). `balance` and `held` are kept for owned accounts only.
  private readonly owned: Uint8Array
  private readonly balance: bigint[]
  private readonly held: bigint[]
  /** Prepares in flight per source account (limits.maxInFlightPerAccount). */
  private readonly inFlight: Int32Array
  /** This shard's own LMDB record per account. */
  private readonly record: bigint[]
  private readonly recordDirty: Uint8Array
  private readonly dirtyAccounts: number[] = []
  /** Credits owed to other shards' live views, coalesced per account until there is ring space. */
  private readonly unsentCredit: bigint[]
  private readonly unsentCreditAccounts: number[] = []
  private readonly heldShared: BigInt64Array
  private readonly preparesShared: Int32Array
  private readonly holdChanged: Uint8Array
  private readonly holdChangedAccounts: number[] = []
  /** Owned accounts with a settlement threshold whose balance fell this turn (shard/settlement/settler.ts). */
  readonly lowered: number[] = []
  private readonly loweredFlag: Uint8Array
  /** 1 for an owned account with a settlement threshold: only those are watched as they fall. */
  private readonly settles: Uint8Array
  private readonly room: CreditRoom

  constructor(
    private readonly accounts: AccountTable,
    private readonly shardIndex: number,
    private readonly store: Store,
    /** Rings to the other shards by index (null at this shard's own index). */
    private readonly toShards: (RingWriter | null)[],
    /** This shard's block of holds (shared/holds.ts), read by the main thread. */
    holds: SharedArrayBuffer,
    /** Every account's room above its floor, shared by all shards (shared/credit_room.ts). */
    creditRoom: SharedArrayBuffer,
  ) {
    // Sized for every account this run may hold (accounts added while it runs, limits.maxAccounts).
    const n = accounts.capacity
    this.owned = new Uint8Array(n)
    this.balance = new Array<bigint>(n).fill(0n)
    this.held = new Array<bigint>(n).fill(0n)
    this.inFlight = new Int32Array(n)
    this.record = new Array<bigint>(n).fill(0n)
    this.recordDirty = new Uint8Array(n)
    this.unsentCredit = new Array<bigint>(n).fill(0n)
    this.holdChanged = new Uint8Array(n)
    this.loweredFlag = new Uint8Array(n)
    this.settles = new Uint8Array(n)
    this.room = new CreditRoom(creditRoom, n)
    this.heldShared = heldCells(holds, n)
    this.preparesShared = prepareCells(holds, n)
    this.load()
  }

  /** Every account's records as committed: this shard's own, and the sum for the accounts it owns. */
  private load(): void {
    for (let i = 0; i < this.accounts.size; i++) this.loadAccount(i)
  }

  private loadAccount(i: number): void {
    const id = this.accounts.get(i).id
    const isOwner = this.accounts.ownerShard[i] === this.shardIndex
    this.owned[i] = isOwner ? 1 : 0
    let sum = 0n
    let own = 0n
    for (const { key, value } of this.store.balances.getRange({ start: [id], end: [id, 1 << 30] })) {
      const v = decodeInt128(value)
      if (key[1] === this.shardIndex) own = v
      sum += v
    }
    this.record[i] = own
    if (isOwner) {
      this.balance[i] = sum
      // Added, not stored: another shard may hold a credit to this account already (credit_room.ts).
      this.room.moved(i, sum)
    }
    this.accountChanged(i)
  }

  /** An account's settings may have changed (its settlement threshold among them). */
  accountChanged(i: number): void {
    this.settles[i] = this.owned[i] === 1 && this.accounts.get(i).settleThreshold !== null ? 1 : 0
  }

  /**
   * An account added while the node runs, at an index new to this run: its records as
   * committed, like an account of the config at start (nothing of it can be in flight yet).
   */
  accountAdded(i: number): void {
    this.loadAccount(i)
  }

  /**
   * An operator's adjustment of an owned account's balance (POST /admin/accounts/:id/adjust),
   * made durable by the caller in the same transaction as its journal entry: the record to put.
   */
  adjustedRecord(account: number, amount: bigint): bigint {
    return this.record[account] + amount
  }

  /** After the adjustment's transaction committed. */
  adjusted(account: number, amount: bigint): void {
    this.record[account] += amount
    if (this.owned[account] === 1) this.balance[account] += amount
    this.room.moved(account, amount)
    if (amount < 0n) this.lower(account)
  }

  /**
   * Why an adjustment of `amount` cannot be made (its balance, or the room above its floor, would
   * leave the signed 64-bit range), or null if it can.
   */
  adjustmentOutOfRange(account: number, amount: bigint): string | null {
    const balance = this.balance[account] + amount
    if (balance > INT64_MAX || balance < BALANCE_FLOOR_MIN) return `the balance would be ${balance}, outside ±(2^63 − 1)`
    const available = this.room.read(account) + amount
    if (available > INT64_MAX || available < BALANCE_FLOOR_MIN) return `the balance less what is on its way to the account would be ${available}, outside ±(2^63 − 1); try again when the prepares in flight to it have ended`
    return null
  }

  /**
   * A settlement of an owned account (shard/settlement/settler.ts): `delta` added to its balance (positive:
   * the node paid the peer; negative: the peer paid the node, or a refused one reversed),
   * written in the next transaction with the settlement's own entry.
   */
  settled(account: number, delta: bigint): void {
    this.addToRecord(account, delta)
    this.balance[account] += delta
    this.room.moved(account, delta)
    if (delta < 0n) this.lower(account)
  }

  /**
   * A peer's settlement of `amount` to the node (its balance falls by it), booked only if that
   * keeps the balance, less what is on its way to the account from other shards, at or above its
   * floor: taken from the shared room at once, as a forwarded credit is (credit_room.ts). False,
   * nothing booked, if it would not.
   */
  transferredIn(account: number, amount: bigint): boolean {
    if (!this.room.take(account, amount, this.floorOf(account))) return false
    this.addToRecord(account, -amount)
    this.balance[account] -= amount
    this.lower(account)
    return true
  }

  /** After the settler has looked at `lowered`. */
  clearLowered(): void {
    for (const i of this.lowered) this.loweredFlag[i] = 0
    this.lowered.length = 0
  }

  private lower(account: number): void {
    if (this.settles[account] === 1 && this.loweredFlag[account] === 0) {
      this.loweredFlag[account] = 1
      this.lowered.push(account)
    }
  }

  /** True if holding `amount` more would keep `account` within its maximum balance. */
  canHold(account: number, amount: bigint): boolean {
    return this.balance[account] + this.held[account] + amount <= this.accounts.get(account).balanceMaximum
  }

  /**
   * Holds `credit` against `target`'s balance.minimum (the next hop of a prepare): false, nothing
   * held, if crediting it would take its balance below that, counting what is already on its way.
   */
  holdCredit(target: number, credit: bigint): boolean {
    return this.room.take(target, credit, this.floorOf(target))
  }

  /** How low an account's balance may go: its balance.minimum, never below −(2^63 − 1). */
  private floorOf(account: number): bigint {
    const minimum = this.accounts.get(account).balanceMinimum
    return minimum < BALANCE_FLOOR_MIN ? BALANCE_FLOOR_MIN : minimum
  }

  /** The prepare was rejected or expired: its credit will not come. */
  releaseCredit(target: number, credit: bigint): void {
    this.room.give(target, credit)
  }

  prepares(account: number): number {
    return this.inFlight[account]
  }

  hold(account: number, amount: bigint): void {
    this.held[account] += amount
    this.inFlight[account]++
    this.holdMoved(account)
  }

  release(account: number, amount: bigint): void {
    this.held[account] -= amount
    this.inFlight[account]--
    this.holdMoved(account)
  }

  private holdMoved(account: number): void {
    if (this.holdChanged[account] === 0) {
      this.holdChanged[account] = 1
      this.holdChangedAccounts.push(account)
    }
  }

  /** Copies the holds that changed this turn to shared memory. */
  publishHolds(): void {
    const accounts = this.holdChangedAccounts
    if (accounts.length === 0) return
    for (const i of accounts) {
      this.holdChanged[i] = 0
      Atomics.store(this.heldShared, i, this.held[i])
      Atomics.store(this.preparesShared, i, this.inFlight[i])
    }
    accounts.length = 0
  }

  /**
   * A fulfill: `source`'s hold becomes balance, `target` is credited `credit` (its own units;
   * held against its floor since the prepare was forwarded, so its room does not move now).
   */
  commit(source: number, amount: bigint, target: number, credit: bigint): void {
    this.release(source, amount)
    this.balance[source] += amount
    this.room.give(source, amount)
    this.addToRecord(source, amount)
    this.addToRecord(target, -credit)
    if (this.owned[target] === 1) {
      this.balance[target] -= credit
      if (this.settles[target] === 1) this.lower(target)
    } else this.queueCredit(target, credit)
  }

  /** Another shard committed a fulfill to an account of ours: keep the live balance current. */
  credited(account: number, amount: bigint): void {
    if (this.owned[account] === 1) {
      this.balance[account] -= amount
      if (this.settles[account] === 1) this.lower(account)
    }
  }

  /** Committed balance of an owned account (positive = the peer owes this node). */
  balanceOf(account: number): bigint {
    return this.balance[account]
  }

  /**
   * The balance as peer.balance reports it: positive when this node owes the requester (the
   * later draft of the server-roles document), i.e. the negated balance. Holds of prepares still
   * in flight are not included. Null if it is not a signed 64-bit integer: the limits keep
   * balances within ±(2^63 − 1) (credit_room.ts), so that takes a refused settlement's reversal
   * near the floor, and the true figure is never replaced by a clamped one.
   */
  peerBalance(account: number): bigint | null {
    const v = -this.balance[account]
    return v > INT64_MAX || v < BALANCE_FLOOR_MIN ? null : v
  }

  /** True if records changed since the last transaction. */
  get dirty(): boolean {
    return this.dirtyAccounts.length > 0
  }

  /** Inside the shard's transaction: puts every changed record (still dirty until recordsWritten). */
  writeRecords(): void {
    const balances = this.store.balances
    for (const i of this.dirtyAccounts) balances.put([this.accounts.get(i).id, this.shardIndex], encodeInt128(this.record[i]))
  }

  /** After the transaction committed (one that failed leaves them dirty, to be written again). */
  recordsWritten(): void {
    for (const i of this.dirtyAccounts) this.recordDirty[i] = 0
    this.dirtyAccounts.length = 0
  }

  /** True while there are credits waiting for ring space. */
  get hasUnsentCredits(): boolean {
    return this.unsentCreditAccounts.length > 0
  }

  /** Hands the committed credits to their owners' shards, as far as their rings have room. */
  sendCredits(): void {
    const accounts = this.unsentCreditAccounts
    let kept = 0
    for (let k = 0; k < accounts.length; k++) {
      const i = accounts[k]
      const ring = this.toShards[this.accounts.ownerShard[i]]!
      let amount = this.unsentCredit[i]
      while (amount > 0n) {
        const chunk = amount > UINT64_MAX ? UINT64_MAX : amount
        if (!ring.tryWrite(RecordKind.Credit, i, Number(chunk >> 32n), Number(chunk & 0xffffffffn), 0, null)) break
        amount -= chunk
      }
      this.unsentCredit[i] = amount
      if (amount > 0n) accounts[kept++] = i
    }
    accounts.length = kept
  }

  private addToRecord(account: number, delta: bigint): void {
    this.record[account] += delta
    if (this.recordDirty[account] === 0) {
      this.recordDirty[account] = 1
      this.dirtyAccounts.push(account)
    }
  }

  private queueCredit(account: number, amount: bigint): void {
    if (this.unsentCredit[account] === 0n) this.unsentCreditAccounts.push(account)
    this.unsentCredit[account] += amount
  }
}
