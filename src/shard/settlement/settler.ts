// Settlement of the accounts a shard owns, both ways, with ilp-connector's meaning of
// balance.settleThreshold and balance.settleTo: when an account's balance falls below the
// threshold (the node owes the peer more than it lets itself owe), the node pays the peer
// settleTo − balance outside ILP and books it (the balance rises by that much). A peer's
// settlement to the node lowers that account's balance by its amount.
//
// Outgoing, per account at most one settlement is in flight at a time:
//   1. settle()   the balance is below the threshold: a new id (16 random bytes), the balance
//                 raised, and the settlement logged as `sending`, in the turn's one transaction
//                 (store/balance_store.ts: the balance record and the log entry commit together)
//   2. send()     after that commit, and again every settlement.retryMs until answered: a
//                 SETTLE_OUT record to the I/O thread of the account's link, which sends it as a
//                 BTP TRANSFER carrying the id (io/btp/btp_endpoint.ts, the btp-transfer engine)
//   3. answered() the peer's BTP Response: logged `acknowledged`; then the next one may start.
//                 A BTP error with an F code: the peer refused it and booked nothing, so the
//                 booking is reversed and the entry logged `refused`, in one transaction, and the
//                 account pauses before it tries again (REFUSAL_PAUSE_MS, doubling with each refusal
//                 in a row up to REFUSAL_PAUSE_MAX_MS). A T code is temporary: the settlement is
//                 sent again, as if unanswered. A settlement in flight is sent until answered even
//                 if the account's settlement is configured away meanwhile: it is booked already.
// A crash before step 1's commit leaves nothing: the balance is still below the threshold, and
// the restarted shard settles it anew. After it, the entry is `sending` in LMDB and the restarted
// shard sends it again with the same id (load), so a peer that booked it before the crash
// answers without booking it twice.
//
// Incoming (transferIn): booked once per (account, id): the balance lowered and the id recorded
// in the same transaction, and the answer published only after it; an id already booked is
// acknowledged again without booking, whatever has changed since (the account's settlement
// configured away, the account deleted), since the peer booked its side when we first answered.
// A new transfer from an account that does not settle, or that would take its balance below
// balance.minimum (as ilp-connector refuses it), is refused and books nothing. A refusal of the
// latter kind is remembered with the id, in memory only, so that every copy of that id gets the
// same answer even once the balance has moved (the sender reverses its booking on the first F it
// hears). Nothing of a refusal is written: a peer sending transfers that are all refused would
// otherwise fill the disk, ~300 bytes each. The memory keeps the shard's REFUSALS_KEPT (10,000)
// most recent refusals (account ‖ id; the oldest goes first). A copy that comes after its refusal
// was forgotten (REFUSALS_KEPT later refusals, or a restart) is judged afresh, as a new transfer:
// if the balance has room by then, it is booked and acknowledged. That is acceptable because copies
// of one transfer are sent while it is unanswered, seconds apart, not after thousands of other
// refusals or a restart of this node; and a sender that does send one that late gets an
// acknowledgement after its F, which is what this node's own settlements do with one (below: it
// books it again), so both books still agree.
// And should a peer acknowledge a copy of a settlement after refusing another (the node reversed
// it), the node books it again: the peer's books have it.
//
// Retention (control/ops/settlement_log_pruner.ts, on the main thread): a settlement `sending` is
// kept until it is answered; one acknowledged or refused, and a transfer booked, are kept for
// limits.settlementLogRetentionMs (30 days by default) after they ended (came), then pruned, the
// amounts they moved folded into per-account totals in the transaction that removes them, so the
// books sum the same. So a copy of a booked transfer within the retention is acknowledged without
// booking; one that comes later is a new transfer (the retention must be longer than any peer
// keeps sending a transfer it has no answer to). A late acknowledgement of a refused settlement
// that neither this run's memory (refusedIds) nor LMDB has any more is logged and ignored.

import type { IlpErrorCode } from '../../codec/ilp_errors'
import { UINT64_MAX } from '../../codec/oer'
import type { AccountTable } from '../../config/account_table'
import { assetKeyOf } from '../../config/asset'
import type { Logger } from '../../log'
import { SETTLEMENT_ID_BYTES, SettleAnswer } from '../../ring/records'
import {
  readSendingSettlements, readSettlement, readTransfer, writeSettlement, writeTransfer, type SettlementEntry, type Store, type TransferEntry,
} from '../../store/balance_store'
import type { Books } from '../books'

/** After a peer refuses a settlement, the account's next one waits this long, doubling per refusal in a row. */
const REFUSAL_PAUSE_MS = 10000
const REFUSAL_PAUSE_MAX_MS = 3600000
/** Retry interval of a settlement whose account no longer has a settlement config. */
const DEFAULT_RETRY_MS = 1000

interface InFlight {
  entry: SettlementEntry
  idBytes: Buffer
  nextSendAtMs: number
  retryMs: number
}

export type TransferOutcome = { booked: true; replayed: boolean } | { booked: false; code: IlpErrorCode; message: string }

export class Settler {
  private readonly inFlight: (InFlight | null)[]
  private readonly inFlightAccounts = new Set<number>()
  private readonly pausedUntil: Float64Array
  /** Refusals in a row per account (reset by an acknowledgement): the pause doubles with each. */
  private readonly refusals: Int32Array
  private readonly toCheck = new Set<number>()
  private readonly logEntries: SettlementEntry[] = []
  private readonly transfers: TransferEntry[] = []
  /** Transfers booked this turn, not yet committed (LMDB does not have them yet): account ‖ id → amount. */
  private readonly transfersThisTurn = new Map<string, bigint>()
  /** The most recent transfers refused for balance.minimum, account ‖ id → the answer (oldest first). */
  private readonly refusedTransfers = new Map<string, string>()
  /** Settlements `sending` beyond the one in flight (left by an earlier run), sent one after another. */
  private readonly waiting = new Map<number, SettlementEntry[]>()
  /** This run's refused settlements by id, and those booked again after a late acknowledgement. */
  private readonly refusedIds = new Map<string, SettlementEntry>()
  private readonly rebookedIds = new Set<string>()

  constructor(
    private readonly accounts: AccountTable,
    private readonly shardIndex: number,
    private readonly store: Store,
    private readonly books: Books,
    /** Hands a settlement to the account's I/O thread; false if it has no link or no ring room. */
    private readonly emit: (account: number, payload: Buffer) => boolean,
    private readonly log: Logger,
    /** Where settlement ids come from: 16 random bytes in a node; a seeded source in the simulation. */
    private readonly newId: () => Uint8Array,
  ) {
    this.inFlight = new Array<InFlight | null>(accounts.capacity).fill(null)
    this.pausedUntil = new Float64Array(accounts.capacity)
    this.refusals = new Int32Array(accounts.capacity)
    this.load()
    this.checkAll()
  }

  /** The settlements of this shard's accounts still `sending` in LMDB: sent again, same ids. */
  private load(): void {
    for (const entry of readSendingSettlements(this.store)) {
      const i = this.accounts.indexOfAny(entry.account)
      if (i < 0) {
        this.log.warn('settlement in flight for an account not configured; it is sent when the account is added again', { account: entry.account, amount: entry.amount, id: entry.id })
        continue
      }
      if (this.accounts.ownerShard[i] !== this.shardIndex) continue
      this.track(i, entry, 0)
      this.log.info('settlement in flight at start; sending it again', { account: entry.account, amount: entry.amount, id: entry.id })
    }
  }

  /** An account new to this run (admin API, reload): its settlements still `sending`, if any. */
  accountAdded(i: number): void {
    if (this.accounts.ownerShard[i] !== this.shardIndex) return
    const id = this.accounts.get(i).id
    for (const entry of readSendingSettlements(this.store)) if (entry.account === id) this.track(i, entry, 0)
  }

  /** Every owned account is looked at in the next settle() (at start). */
  checkAll(): void {
    for (let i = 0; i < this.accounts.size; i++) if (this.accounts.ownerShard[i] === this.shardIndex) this.toCheck.add(i)
  }

  /** The owned ones of these accounts are looked at in the next settle(): a change settles only the accounts it changed. */
  check(accounts: readonly number[]): void {
    for (const i of accounts) if (this.accounts.ownerShard[i] === this.shardIndex) this.toCheck.add(i)
  }

  /**
   * True while the shard must keep ticking: settlements wait for an answer or a retry, or balances
   * fell. (Accounts paused after a refusal need no ticks: an idle shard still turns every second.)
   */
  get hasWork(): boolean {
    return this.inFlightAccounts.size > 0 || this.books.lowered.length > 0
  }

  /** True if the next transaction has settlement entries to write. */
  get dirty(): boolean {
    return this.logEntries.length > 0 || this.transfers.length > 0
  }

  /** Step 1, before the turn's commit: settles the accounts that are below their threshold. */
  settle(nowMs: number): void {
    if (this.books.lowered.length > 0) {
      for (const i of this.books.lowered) this.toCheck.add(i)
      this.books.clearLowered()
    }
    if (this.toCheck.size === 0) return
    for (const i of this.toCheck) {
      const a = this.accounts.get(i)
      if (a.settleThreshold === null || a.settlement === null || this.accounts.live[i] === 0) continue
      if (this.inFlight[i] !== null || this.pausedUntil[i] > nowMs) continue
      const balance = this.books.balanceOf(i)
      if (balance >= a.settleThreshold) continue
      let amount = a.settleTo - balance
      if (amount > UINT64_MAX) amount = UINT64_MAX
      const entry: SettlementEntry = {
        id: Buffer.from(this.newId()).toString('hex'), account: a.id, amount, atMs: nowMs, state: 'sending', endedAtMs: null, reason: null, asset: assetKeyOf(a),
      }
      this.books.settled(i, amount)
      this.logEntries.push(entry)
      this.track(i, entry, 0)
      this.log.info('settling', { account: a.id, balance, amount, settleTo: a.settleTo, id: entry.id })
    }
    // Paused accounts stay to be checked once their pause ends.
    for (const i of this.toCheck) if (!(this.pausedUntil[i] > nowMs)) this.toCheck.delete(i)
  }

  /** Inside the turn's transaction. */
  write(): void {
    for (const e of this.logEntries) writeSettlement(this.store, e)
    for (const t of this.transfers) writeTransfer(this.store, t)
  }

  /** After the transaction committed. */
  written(): void {
    this.logEntries.length = 0
    this.transfers.length = 0
    this.transfersThisTurn.clear()
    if (this.refusedIds.size > RECENT_IDS_KEPT) this.refusedIds.clear()
    if (this.rebookedIds.size > RECENT_IDS_KEPT) this.rebookedIds.clear()
  }

  /** Step 2, after the commit: every settlement in flight that is due goes (again) to its link. */
  send(nowMs: number): void {
    if (this.inFlightAccounts.size === 0) return
    for (const i of this.inFlightAccounts) {
      const s = this.inFlight[i]!
      if (s.nextSendAtMs > nowMs) continue
      const payload = Buffer.allocUnsafe(SETTLEMENT_ID_BYTES + 8)
      s.idBytes.copy(payload, 0)
      payload.writeBigUInt64BE(s.entry.amount, SETTLEMENT_ID_BYTES)
      // No link or no room: the next attempt is a retry interval away either way.
      this.emit(i, payload)
      s.nextSendAtMs = nowMs + s.retryMs
    }
  }

  /** Step 3: the peer's answer to settlement `id` of `account`. */
  answered(account: number, id: Uint8Array, answer: SettleAnswer, reason: string, nowMs: number): void {
    const s = this.inFlight[account]
    const hex = Buffer.from(id).toString('hex')
    if (s === null || s.entry.id !== hex) {
      if (answer === SettleAnswer.Acknowledged) return this.acknowledgedAfterRefusal(account, hex, nowMs)
      this.log.debug('answer to a settlement no longer in flight', { account: this.accounts.get(account).id, id: hex })
      return
    }
    this.inFlight[account] = null
    this.inFlightAccounts.delete(account)
    const next = this.waiting.get(account)?.shift()
    if (next !== undefined) this.track(account, next, 0)
    const a = this.accounts.get(account)
    if (answer === SettleAnswer.Acknowledged) {
      this.refusals[account] = 0
      this.logEntries.push({ ...s.entry, state: 'acknowledged', endedAtMs: nowMs })
      this.log.info('settlement acknowledged', { account: a.id, amount: s.entry.amount, id: hex })
    } else {
      this.books.settled(account, -s.entry.amount)
      const refused: SettlementEntry = { ...s.entry, state: 'refused', endedAtMs: nowMs, reason }
      this.logEntries.push(refused)
      this.refusedIds.set(hex, refused)
      const pauseMs = Math.min(REFUSAL_PAUSE_MAX_MS, Math.max(REFUSAL_PAUSE_MS, 10 * s.retryMs) * 2 ** Math.min(20, this.refusals[account]))
      this.refusals[account]++
      this.pausedUntil[account] = nowMs + pauseMs
      this.log.error('the peer refused a settlement; its booking is reversed, and the account pauses before it settles again', {
        account: a.id, amount: s.entry.amount, id: hex, reason, pauseMs,
      })
    }
    this.toCheck.add(account)
  }

  /**
   * The peer acknowledged a copy of a settlement it had refused (another copy got the F): it has
   * booked it, so the node books it again, once.
   */
  private acknowledgedAfterRefusal(account: number, hex: string, nowMs: number): void {
    if (this.rebookedIds.has(hex)) return
    const refused = this.refusedIds.get(hex) ?? readSettlement(this.store, hex)
    const a = this.accounts.get(account)
    if (refused === null || refused === undefined || refused.state !== 'refused' || refused.account !== a.id) {
      this.log.debug('acknowledgement of a settlement no longer in flight', { account: a.id, id: hex })
      return
    }
    this.rebookedIds.add(hex)
    this.refusedIds.delete(hex)
    this.books.settled(account, refused.amount)
    this.logEntries.push({ ...refused, state: 'acknowledged', endedAtMs: nowMs, reason: `acknowledged after a refusal (${refused.reason}); booked again` })
    this.log.error('the peer acknowledged a settlement it had refused; booked again', { account: a.id, amount: refused.amount, id: hex })
  }

  /** A peer's settlement to the node (a BTP TRANSFER on `account`'s link). */
  transferIn(account: number, amount: bigint, id: Uint8Array, nowMs: number): TransferOutcome {
    const a = this.accounts.get(account)
    const hex = Buffer.from(id).toString('hex')
    // A retry first: it was booked, and the peer must hear so whatever has changed since.
    const key = `${a.id} ${hex}`
    const refusal = this.refusedTransfers.get(key)
    if (refusal !== undefined) return { booked: false, code: 'F00', message: refusal }
    let known = this.transfersThisTurn.get(key)
    if (known === undefined) {
      const stored = readTransfer(this.store, a.id, hex)
      // (A refusal stored by an earlier version answers as one remembered does.)
      if (stored !== null && stored.refused !== null) return { booked: false, code: 'F00', message: stored.refused }
      known = stored?.amount
    }
    if (known !== undefined) {
      if (known !== amount) return { booked: false, code: 'F00', message: `transfer id ${hex} was booked already with another amount (${known})` }
      this.log.info('settlement received again; booked once already', { account: a.id, amount, id: hex })
      return { booked: true, replayed: true }
    }
    if (this.accounts.live[account] === 0) return { booked: false, code: 'F00', message: 'account deleted' }
    if (a.settlement === null) return { booked: false, code: 'F00', message: `account ${a.id} does not settle with this node (no settlement engine configured)` }
    if (amount === 0n) return { booked: false, code: 'F00', message: 'a settlement amount must be positive' }
    // Counting what is on its way to the account (credits other shards committed), as a forward does.
    if (!this.books.transferredIn(account, amount)) {
      const message = `the settlement would take the balance below balance.minimum (${a.balanceMinimum})`
      this.refusedTransfers.set(key, message)
      if (this.refusedTransfers.size > REFUSALS_KEPT) this.refusedTransfers.delete(this.refusedTransfers.keys().next().value!)
      return { booked: false, code: 'F00', message }
    }
    this.transfers.push({ account: a.id, id: hex, amount, atMs: nowMs, refused: null, asset: assetKeyOf(a) })
    this.transfersThisTurn.set(key, amount)
    this.log.info('settlement received', { account: a.id, amount, id: hex })
    return { booked: true, replayed: false }
  }

  /** Makes `entry` the account's settlement in flight, or queues it behind the one that is. */
  private track(i: number, entry: SettlementEntry, nextSendAtMs: number): void {
    if (this.inFlight[i]?.entry.id === entry.id || this.waiting.get(i)?.some((e) => e.id === entry.id)) return
    if (this.inFlight[i] !== null) {
      const queue = this.waiting.get(i) ?? []
      queue.push(entry)
      this.waiting.set(i, queue)
      return
    }
    const retryMs = this.accounts.get(i).settlement?.retryMs ?? DEFAULT_RETRY_MS
    this.inFlight[i] = { entry, idBytes: Buffer.from(entry.id, 'hex'), nextSendAtMs, retryMs }
    this.inFlightAccounts.add(i)
  }
}

/**
 * Ids remembered per run for late answers; past this the memory starts over (LMDB has them for
 * the retention, readSettlement).
 */
const RECENT_IDS_KEPT = 10000

/**
 * Refusals of transfers (balance.minimum) one shard remembers: ~220 bytes each, 2.2 MB at most.
 * Copies of a transfer come while its sender has no answer, seconds apart; this many refusals in
 * between is a peer (or peers) sending refused transfers as fast as it can.
 */
const REFUSALS_KEPT = 10000

