// A shard: the actor that owns a set of accounts (their balances and holds, in books.ts) and the
// prepares they send. The same class runs inside a worker thread or inline on the main thread (SHARDS=0).
// Its inputs are ring records (ring/records.ts); its outputs are ring records, written into
// `toIo` / `toShards` and published by the loop only after `commit()` has made the batch's
// state durable, so no fulfill leaves the shard before its balance change is committed. A reply
// goes to the I/O thread that holds the request's connection (the top byte of its connId), a
// forwarded prepare to the one that holds the next hop's link (shared/link_table.ts).
// Prepares still in flight after limits.journalDelayMs are journalled too (inflight_journal.ts).
//
// A prepare from account A, in order (each step returns early with a reject):
//   1. parse                          F01 (a '{' first byte is a JSON route broadcast: to the control plane)
//   2. local peer.* destinations      peer.config (IL-DCP), peer.balance, other peer.* F01
//      an account deleted while the node runs: F00
//      the storage is unavailable     T00 (store/storage_health.ts: the node fails closed)
//   3. expiry                         R02 if expired or less than minMessageWindow left
//   4. max packet amount              F08 with (received, maximum)
//   5. route by longest prefix        F02 (also when the route leads back to A)
//   6. amount for the next hop       exchange.ts: F02 for an asset the node does not trade, T00
//      (rate, scale, spread)          while the rates are stale, R01 if it rounds to zero
//   7. A's maximum                    T04 if balance + holds + amount > A's maximum
//   8. room in the pending table      T03 if A has maxInFlightPerAccount in flight, if A is past its
//                                     share and the rest is kept for others' (pending_shares.ts)
//   9. hold on the next hop's floor   T04 if the credit would take B's balance, less what is on its
//                                     way to B, below B's balance.minimum (shared/credit_room.ts)
//  10. record the pending prepare     T03 if the table is full; A's hold taken
//  11. shorten expiry, patch amount, hand the prepare to the I/O thread of the next hop's link
//      (to a payee of the node: to the payee's shard, or its receiver if this shard owns it)
// The reply: a fulfill must hash to the condition (else F05 upstream, never relayed); then A's
// hold is committed, the next hop is credited, and the fulfill is relayed byte for byte. A reject
// releases both holds and is relayed unchanged. No reply before expiry: R00, holds released. An
// answer is applied only to the prepare it answers (handleReply).

import { randomBytes } from 'node:crypto'
import type { AccountConfig, Config } from '../config/schema'
import { PayeeReceiver } from './payee/receiver'
import {
  classifyReply, digestMatches, encodeReject, fulfillLength, lastFulfillmentOffset, lastRejectCodeOffset, lastReplyEnd, PrepareView, rejectLength, ReplyKind, writeFulfill, writeReject,
  type RejectFields,
} from '../codec/ilp_packet'
import {
  F00_BAD_REQUEST, F01_INVALID_PACKET, F02_UNREACHABLE, F05_WRONG_CONDITION, F08_AMOUNT_TOO_LARGE, R00_TRANSFER_TIMED_OUT,
  R01_INSUFFICIENT_SOURCE_AMOUNT, R02_INSUFFICIENT_TIMEOUT, T00_INTERNAL_ERROR, T03_CONNECTOR_BUSY, T04_INSUFFICIENT_LIQUIDITY,
  sendFailureReject, type IlpErrorCode, type SendFailure,
} from '../codec/ilp_errors'
import { readUInt64, writeInt64, writeLength, writeUInt64 } from '../codec/oer'
import { PEER_PROTOCOL_CONDITION, PEER_PROTOCOL_FULFILLMENT } from '../codec/peer_protocol'
import { AccountTable, type AccountChange, type AccountSlots } from '../config/account_table'
import { assetKeyOf } from '../config/asset'
import { RoutingTable } from './routing_table'
import { Exchange, NO_RATE, STALE_RATE, type RateSnapshot } from './exchange'
import { PendingTable } from './pending_table'
import { OUTPUT_SLACK_BYTES, RecordKind, SETTLEMENT_ID_BYTES, TransferAnswer, type SettleAnswer } from '../ring/records'
import type { RingWriter } from '../ring/ring'
import type { LinkTable } from '../shared/link_table'
import { ioThreadOf, pendingIdHigh, pendingIdLow } from '../ring/records'
import { encodeInt128, readAdjustment, writeAdjustment, type AdjustmentEntry, type Store } from '../store/balance_store'
import { InflightJournal } from './inflight_journal'
import { Settler, type TransferOutcome } from './settlement/settler'
import { errnoOf, oneLine, STORAGE_UNAVAILABLE, StorageHealth, StorageUnavailableError, type StorageReserve } from '../store/storage_health'
import { Books } from './books'
import { PendingShares } from './pending_shares'
import { DROP_LATE, DROP_REASONS, DROP_WRONG_PEER, FULFILL, Incoming, Outgoing, PacketCounters, resultOfCode, resultOfCodeBytes } from '../shared/packet_counters'
import { LogOncePer, type Logger } from '../log'

const PEER_PREFIX = Buffer.from('peer.', 'latin1')
const PEER_CONFIG = Buffer.from('peer.config', 'latin1')
const PEER_BALANCE = Buffer.from('peer.balance', 'latin1')
const PEER_ROUTE = Buffer.from('peer.route.', 'latin1')
const EMPTY = Buffer.alloc(0)
const BRACE = 0x7b
/** Answers dropped, and transfers refused, are logged once per peer per this interval (with a count). */
const DROPPED_ANSWER_LOG_MS = 60_000
/** After a failed commit, the next try waits this long, doubling up to COMMIT_RETRY_MAX_MS. */
const COMMIT_RETRY_MS = 50
const COMMIT_RETRY_MAX_MS = 2000

export interface ShardOptions {
  config: Config
  shardIndex: number
  /** Shards in this run; 1 for the inline shard. */
  shardCount: number
  store: Store
  /** Rings to the I/O threads by index. */
  toIo: RingWriter[]
  links: LinkTable
  /** Rings to the other shards by index (null at this shard's own index). */
  toShards: (RingWriter | null)[]
  /** The accounts as the main thread has them now (they may have changed since start). */
  slots: AccountSlots
  /** The routing table (prefix → account index) from the main thread's route manager. */
  routes: [string, number][]
  /** The exchange rates from the main thread's rate feed. */
  rates: RateSnapshot
  /** This shard's block of packet counters (shared/packet_counters.ts); null with metrics off. */
  counters: SharedArrayBuffer | null
  /** This shard's block of holds (shared/holds.ts), for the admin API. */
  holds: SharedArrayBuffer
  /** Every account's room above its floor (shared/credit_room.ts), shared by all shards. */
  creditRoom: SharedArrayBuffer
  log: Logger
  /** Source of settlement ids (SETTLEMENT_ID_BYTES each): random in a node, seeded in the simulation. */
  settlementIds?: () => Uint8Array
  /** Whether the node can write (store/storage_health.ts), shared by every thread. */
  health: SharedArrayBuffer
  /** The disk space kept for the commits the node owes; given back when a commit fails. */
  reserve: StorageReserve
}

/** An adjustment that would take a balance outside the signed 64-bit range (the admin API answers 400). */
export class AdjustmentOutOfRangeError extends Error {
  readonly code = 'ILP_NODE_ADJUSTMENT_OUT_OF_RANGE'
}

/** A shard could not write an answer it owes: the shard must stop (see Shard.emit). */
export class OutputRingFull extends Error {
  constructor(to: string, bytes: number) {
    super(`shard output ring to ${to} full despite the reserved room (${bytes} bytes)`)
  }
}

export class Shard {
  private readonly config: Config
  private readonly shardIndex: number
  private readonly accounts: AccountTable
  private routes: RoutingTable
  private readonly exchange: Exchange
  private readonly store: Store
  private readonly toIo: RingWriter[]
  private readonly links: LinkTable
  private readonly toShards: (RingWriter | null)[]
  private readonly log: Logger
  private readonly ilpAddress: Buffer
  private readonly view = new PrepareView()
  readonly pending: PendingTable

  private readonly books: Books
  private readonly shares: PendingShares
  private readonly counters: PacketCounters | null
  private readonly ildcpData: (Buffer | null)[]

  private readonly journal: InflightJournal
  /** Account ids as bytes by index (what the in-flight journal writes); grows with the accounts. */
  private readonly accountIds: Buffer[]
  private readonly receiver: PayeeReceiver
  private readonly settler: Settler
  private readonly droppedAnswers: LogOncePer
  private readonly refusedTransfers: LogOncePer
  private readonly health: StorageHealth
  private readonly storageReserve: StorageReserve
  /** A commit failed and is owed: outputs are held back until it succeeds; next try not before this. */
  private commitOwed = false
  private commitRetryAtMs = 0
  private commitRetryMs = COMMIT_RETRY_MS

  constructor(o: ShardOptions) {
    this.config = o.config
    this.shardIndex = o.shardIndex
    this.store = o.store
    this.toIo = o.toIo
    this.links = o.links
    this.toShards = o.toShards
    this.log = o.log
    this.accounts = new AccountTable(o.config, o.slots)
    this.routes = Shard.routingTable(o.routes)
    this.exchange = new Exchange(this.accounts, o.rates)
    this.ilpAddress = Buffer.from(o.config.ilpAddress, 'latin1')
    this.pending = new PendingTable(o.config.pendingPerShard)
    this.books = new Books(this.accounts, o.shardIndex, o.store, o.toShards, o.holds, o.creditRoom)
    this.shares = new PendingShares(o.config.pendingPerShard, this.accounts, o.shardIndex, (account) => this.books.prepares(account))
    this.counters = o.counters === null ? null : new PacketCounters(o.counters, this.accounts.capacity)
    this.accountIds = this.accounts.accounts.map((a) => Buffer.from(a.id, 'utf8'))
    this.journal = new InflightJournal(o.config.pendingPerShard, o.config.journalDelayMs, o.shardIndex, this.pending, this.accountIds)
    this.ildcpData = this.accounts.accounts.map((account) => this.ildcpAnswer(account))
    this.receiver = new PayeeReceiver(o.config, this.accounts, o.store, o.log)
    this.droppedAnswers = new LogOncePer(o.log, 'info', DROPPED_ANSWER_LOG_MS)
    this.refusedTransfers = new LogOncePer(o.log, 'warn', DROPPED_ANSWER_LOG_MS)
    this.health = new StorageHealth(o.health)
    this.storageReserve = o.reserve
    this.settler = new Settler(this.accounts, o.shardIndex, o.store, this.books, (account, payload) => {
      const io = this.links.linkedThread(account)
      return io >= 0 && this.toIo[io].tryWrite(RecordKind.SettleOut, account, 0, 0, 0, payload)
    }, o.log, o.settlementIds ?? (() => randomBytes(SETTLEMENT_ID_BYTES)))
  }

  /** What peer.config (IL-DCP, RFC 31) answers a child: its address, asset scale and code. */
  private ildcpAnswer(account: AccountConfig): Buffer | null {
    if (account.relation !== 'child') return null
    const address = Buffer.from(AccountTable.childAddress(this.config, account), 'latin1')
    const code = Buffer.from(account.assetCode, 'utf8')
    const data = Buffer.alloc(address.length + code.length + 8)
    let pos = writeLength(data, 0, address.length)
    address.copy(data, pos)
    pos += address.length
    data[pos++] = account.assetScale
    pos = writeLength(data, pos, code.length)
    code.copy(data, pos)
    return data.subarray(0, pos + code.length)
  }

  /**
   * The main thread changed the accounts (admin API, reload); called between turns. A limit
   * applies from the next prepare. A new account starts from its committed records. A deleted
   * one keeps its index, books and prepares in flight: their replies settle as before.
   */
  applyAccounts(changes: readonly AccountChange[]): void {
    const known = this.accounts.size
    const changed = this.accounts.applyChanges(changes)
    for (const i of changed) {
      const account = this.accounts.get(i)
      this.accountIds[i] = Buffer.from(account.id, 'utf8')
      this.ildcpData[i] = this.accounts.isLive(i) ? this.ildcpAnswer(account) : null
      // Only a new index is read from LMDB: a known one (changed, or deleted and added again)
      // has live books here already, which may be ahead of LMDB's sum (credits on their way).
      if (i >= known) {
        this.books.accountAdded(i)
        this.settler.accountAdded(i)
      } else this.books.accountChanged(i)
    }
    this.exchange.accountsChanged()
    this.shares.accountsChanged(changed)
    this.settler.check(changed)
  }

  /** New exchange rates from the rate feed; packets never wait for them. */
  setRates(snapshot: RateSnapshot): void {
    this.exchange.setRates(snapshot)
  }

  /**
   * An operator's balance adjustment of an account this shard owns, exactly once per key: the
   * journal entry and the new record in one transaction, after the turn's own commit. Returns
   * the entry as stored (an earlier one with the same key: that one, unchanged).
   */
  adjust(account: number, amount: bigint, key: string, reason: string, nowMs: number): { entry: AdjustmentEntry; replayed: boolean } {
    if (!this.health.ok) throw new StorageUnavailableError(this.health.reason() ?? 'storage unavailable')
    if (this.books.dirty) throw new Error('an adjustment must run between turns, with the books committed')
    const outOfRange = this.books.adjustmentOutOfRange(account, amount)
    if (outOfRange !== null) throw new AdjustmentOutOfRangeError(outOfRange)
    const id = this.accounts.get(account).id
    let result: { entry: AdjustmentEntry; replayed: boolean }
    try {
      result = this.store.root.transactionSync(() => {
        const known = readAdjustment(this.store, key)
        if (known !== null) return { entry: known, replayed: true }
        this.store.balances.put([id, this.shardIndex], encodeInt128(this.books.adjustedRecord(account, amount)))
        const entry: AdjustmentEntry = { key, account: id, amount, reason, atMs: nowMs, asset: assetKeyOf(this.accounts.get(account)) }
        writeAdjustment(this.store, entry)
        return { entry, replayed: false }
      })
    } catch (err) {
      // Aborted, nothing written (the operator sends it again); a write that fails is a storage
      // fault for the whole node, as a failed commit is: the reserve goes to what it owes.
      if (this.storageReserve.giveBack() && this.health.reserveInUse()) {
        this.log.error('an adjustment could not be written; gave back the storage reserve; new prepares and transfers are refused until it is taken again', { shard: this.shardIndex, error: oneLine(err) })
      }
      throw new StorageUnavailableError(`storage unavailable: the adjustment could not be written (${oneLine(err)}); nothing was changed, send it again later`)
    }
    if (!result.replayed) {
      this.books.adjusted(account, amount)
      this.log.warn('balance adjusted by the operator', { account: id, amount, reason, key })
    }
    return result
  }

  private static routingTable(entries: [string, number][]): RoutingTable {
    const table = new RoutingTable()
    for (const [prefix, account] of entries) table.set(prefix, account)
    return table
  }

  /**
   * The routes that changed (account -1: none any more), or with `replace` a whole new table,
   * from the route manager; taken between batches, so packets never wait for them.
   */
  setRoutes(entries: [string, number][], replace: boolean): void {
    if (replace) this.routes = Shard.routingTable(entries)
    else for (const [prefix, account] of entries) this.routes.set(prefix, account)
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  /** A prepare from `account`, to be answered on (connId, requestId). `buf` may be patched in place. */
  handlePrepare(account: number, connId: number, requestId: number, buf: Uint8Array, pos: number, end: number, nowMs: number): void {
    const view = this.view
    if (buf[pos] === BRACE) {
      // The seed's JSON route broadcast: routing is the main thread's control plane, which answers.
      return this.emit(ioThreadOf(connId), RecordKind.ControlOut, connId, requestId, account, buf.subarray(pos, end))
    }
    if (!view.parse(buf, pos, end)) {
      const reason = `invalid prepare: ${view.error}`
      this.log.debug('rejected malformed packet', { account: this.accounts.get(account).id, reason })
      return this.refuse(connId, requestId, account, 0n, F01_INVALID_PACKET, reason)
    }
    if (view.destinationStartsWith(PEER_PREFIX)) return this.handlePeerProtocol(account, connId, requestId, view, nowMs)

    // Deleted while its link was still closing (or before a restarted I/O thread heard of it).
    if (this.accounts.live[account] === 0) return this.refuse(connId, requestId, account, view.amount, F00_BAD_REQUEST, 'account deleted')
    // Fail closed: nothing new while a commit of the node's fails (most are refused before the ring).
    if (!this.health.ok) return this.refuse(connId, requestId, account, view.amount, T00_INTERNAL_ERROR, STORAGE_UNAVAILABLE)
    const source = this.accounts.get(account)
    if (view.expiresAtMs - nowMs < this.config.minMessageWindowMs) {
      return this.refuse(connId, requestId, account, view.amount, R02_INSUFFICIENT_TIMEOUT, view.expiresAtMs <= nowMs ? 'prepare already expired' : 'too little time left to forward the prepare')
    }
    if (view.amount > source.maxPacketAmount) return this.rejectAmountTooLarge(connId, requestId, account, view.amount, source.maxPacketAmount)

    const target = this.routes.lookup(view.buf, view.destinationOffset, view.destinationLength)
    if (target < 0 || target === account) {
      return this.refuse(connId, requestId, account, view.amount, F02_UNREACHABLE, target < 0 ? 'no route to destination' : 'route leads back to the sender')
    }
    const destinationAmount = this.exchange.convert(view.amount, account, target, nowMs)
    if (destinationAmount < 0n) return this.refuseExchange(connId, requestId, account, target, view.amount, destinationAmount, nowMs)
    if (destinationAmount === 0n && view.amount > 0n) return this.refuse(connId, requestId, account, view.amount, R01_INSUFFICIENT_SOURCE_AMOUNT, 'amount rounds to zero for the next hop')

    if (!this.books.canHold(account, view.amount)) {
      return this.refuse(connId, requestId, account, view.amount, T04_INSUFFICIENT_LIQUIDITY, 'exceeded maximum balance')
    }
    const prepares = this.books.prepares(account)
    if (prepares >= this.config.maxInFlightPerAccount) {
      return this.refuse(connId, requestId, account, view.amount, T03_CONNECTOR_BUSY, 'too many prepares in flight for this account')
    }
    if (!this.shares.mayTake(account, this.pending.capacity - this.pending.count)) {
      return this.refuse(connId, requestId, account, view.amount, T03_CONNECTOR_BUSY, 'too many prepares in flight; the room left is kept for other accounts')
    }
    if (!this.books.holdCredit(target, destinationAmount)) {
      return this.refuse(connId, requestId, account, view.amount, T04_INSUFFICIENT_LIQUIDITY, 'the next hop\'s balance would fall below its minimum')
    }
    const nextExpiresAtMs = Math.min(view.expiresAtMs - this.config.minMessageWindowMs, nowMs + this.config.maxHoldTimeMs)
    const slot = this.pending.allocate(nextExpiresAtMs, nowMs)
    if (slot < 0) {
      this.books.releaseCredit(target, destinationAmount)
      return this.refuse(connId, requestId, account, view.amount, T03_CONNECTOR_BUSY, 'too many prepares in flight')
    }

    this.books.hold(account, view.amount)
    this.shares.taken(account, prepares)
    this.trackPending(slot, account, target, connId, requestId, view.amount, destinationAmount, nowMs)
    // Same asset and no fee (the common case): the wire bytes already hold the amount.
    if (destinationAmount !== view.amount) view.setAmount(destinationAmount)
    view.setExpiresAt(nextExpiresAtMs)
    const packet = view.buf.subarray(pos, pos + view.packetLength)
    const pendingId = this.pending.idOf(slot)
    if (this.accounts.get(target).payee !== null) return this.deliver(target, pendingId, packet, nowMs)
    this.emit(this.links.threadOf(target), RecordKind.PrepareOut, target, pendingIdLow(pendingId), Math.floor(nextExpiresAtMs / 1000), packet, pendingIdHigh(pendingId))
  }

  /**
   * A prepare for a payee this shard owns, forwarded by the sender's shard (which holds the
   * sender's funds and credits the payee when our fulfill reaches it). The receiver answers, to
   * that shard, after this shard's batch has committed the payment's totals.
   */
  handleDeliver(payee: number, pendingId: number, senderShard: number, buf: Uint8Array, pos: number, end: number, nowMs: number): void {
    const view = this.view
    const reply = view.parse(buf, pos, end)
      ? this.receiver.receive(payee, view, nowMs)
      : encodeReject(F01_INVALID_PACKET, this.config.ilpAddress, `invalid prepare: ${view.error}`)
    this.emitToShard(senderShard, RecordKind.DeliveryReply, pendingIdLow(pendingId), pendingIdHigh(pendingId), payee, reply)
  }

  /** A paid request: spends from a pay token's balance at the shop this shard owns, or says why not. */
  handleSpend(shop: number, connId: number, requestId: number, buf: Uint8Array, pos: number, end: number): void {
    const answer = this.receiver.spend(shop, buf.subarray(pos, end))
    this.emit(ioThreadOf(connId), RecordKind.ReplyOut, connId, requestId, shop, answer)
  }

  /**
   * `from`'s answer to the prepare `pendingId` names. Applied only if that prepare is in flight
   * and went to `from`; anything else (an answer after the prepare expired or was answered, or
   * from another account) is dropped, counted and logged once per peer per interval
   * (shard/pending_table.ts says why a late answer cannot name a newer prepare).
   */
  handleReply(pendingId: number, from: number, buf: Uint8Array, pos: number, end: number, nowMs: number): void {
    const slot = this.pending.find(pendingId)
    if (slot < 0 || this.pending.destinationAccount[slot] !== from) return this.dropAnswer(from, slot < 0 ? DROP_LATE : DROP_WRONG_PEER, nowMs)
    const p = this.pending
    const account = p.sourceAccount[slot]
    const kind = classifyReply(buf, pos, end)
    // Only the packet goes back to the sender, without any bytes the next hop appended to it.
    const replyEnd = lastReplyEnd
    if (kind === ReplyKind.Fulfill) {
      const fulfillment = buf.subarray(lastFulfillmentOffset, lastFulfillmentOffset + 32)
      if (!this.fulfillmentMatches(fulfillment, slot)) {
        this.log.warn('next hop sent a fulfillment that does not match the condition; rejected upstream', {
          from: this.accounts.get(p.destinationAccount[slot]).id, amount: p.sourceAmount[slot],
        })
        this.reject(p.connId[slot], p.requestId[slot], account, F05_WRONG_CONDITION, 'fulfillment did not match the condition')
        this.countSettled(slot, resultOfCode(F05_WRONG_CONDITION))
        return this.finish(slot, false)
      }
      this.countSettled(slot, FULFILL)
      this.finish(slot, true)
      return this.emit(ioThreadOf(p.connId[slot]), RecordKind.ReplyOut, p.connId[slot], p.requestId[slot], account, buf.subarray(pos, replyEnd))
    }
    if (kind === ReplyKind.Reject) {
      this.emit(ioThreadOf(p.connId[slot]), RecordKind.ReplyOut, p.connId[slot], p.requestId[slot], account, buf.subarray(pos, replyEnd))
      this.countSettled(slot, resultOfCodeBytes(buf, lastRejectCodeOffset))
    } else {
      this.log.warn('next hop answered with a malformed packet', { from: this.accounts.get(p.destinationAccount[slot]).id })
      this.reject(p.connId[slot], p.requestId[slot], account, T00_INTERNAL_ERROR, 'invalid response from the next hop')
      this.countSettled(slot, resultOfCode(T00_INTERNAL_ERROR))
    }
    this.finish(slot, false)
  }

  /**
   * Step 9 for a payee of this node: the payment goes to the payee's shard, not through an I/O
   * thread; a payee of this shard answers at once, its reply handled as any next hop's.
   */
  private deliver(payee: number, pendingId: number, packet: Uint8Array, nowMs: number): void {
    const owner = this.accounts.ownerShard[payee]
    if (owner !== this.shardIndex) return this.emitToShard(owner, RecordKind.DeliverIn, payee, pendingIdLow(pendingId), this.shardIndex, packet, pendingIdHigh(pendingId))
    const reply = this.receiver.receive(payee, this.view, nowMs)
    this.handleReply(pendingId, payee, reply, 0, reply.length, nowMs)
  }

  private dropAnswer(from: number, reason: number, nowMs: number): void {
    this.counters?.dropped(from, reason)
    const account = this.accounts.get(from).id
    this.droppedAnswers.event(account, 'dropped answers from a next hop that match no prepare in flight to it', { account, reason: DROP_REASONS[reason] }, nowMs)
  }

  /** An I/O thread could not deliver a forwarded prepare (peer not connected, socket full, gone). */
  handleSendFailed(pendingId: number, reason: SendFailure): void {
    const slot = this.pending.find(pendingId)
    if (slot < 0) return
    const p = this.pending
    const { code, message } = sendFailureReject(reason)
    this.reject(p.connId[slot], p.requestId[slot], p.sourceAccount[slot], code, message)
    this.countSettled(slot, resultOfCode(code))
    this.finish(slot, false)
  }

  /** The peer's answer to a settlement this shard sent (shard/settlement/settler.ts). */
  handleSettleAnswer(account: number, answer: SettleAnswer, buf: Uint8Array, pos: number, end: number, nowMs: number): void {
    const reason = Buffer.from(buf.buffer, buf.byteOffset + pos + SETTLEMENT_ID_BYTES, end - pos - SETTLEMENT_ID_BYTES).toString('utf8')
    this.settler.answered(account, buf.subarray(pos, pos + SETTLEMENT_ID_BYTES), answer, reason, nowMs)
  }

  /** A peer settled with the node (a BTP TRANSFER): booked once per id, answered after the commit. */
  handleTransferIn(account: number, connId: number, requestId: number, buf: Uint8Array, pos: number, nowMs: number): void {
    const amount = readUInt64(buf, pos)
    // Nothing new is booked while the storage is unavailable: T00, and the peer sends it again.
    const outcome: TransferOutcome = this.health.ok
      ? this.settler.transferIn(account, amount, buf.subarray(pos + 8, pos + 8 + SETTLEMENT_ID_BYTES), nowMs)
      : { booked: false, code: T00_INTERNAL_ERROR, message: STORAGE_UNAVAILABLE }
    const message = outcome.booked ? EMPTY : Buffer.from(outcome.message, 'utf8')
    const answer = Buffer.allocUnsafe(4 + message.length)
    answer[0] = outcome.booked ? TransferAnswer.Booked : TransferAnswer.Refused
    answer.write(outcome.booked ? '   ' : outcome.code, 1, 3, 'latin1')
    message.copy(answer, 4)
    if (!outcome.booked) {
      // A peer can send refused transfers as fast as it likes: one line per peer per interval.
      const id = this.accounts.get(account).id
      this.refusedTransfers.event(id, 'refused a settlement from a peer', { account: id, amount, reason: outcome.message }, nowMs)
    }
    this.emit(ioThreadOf(connId), RecordKind.TransferReply, connId, requestId, account, answer)
  }

  /** True while settlements wait for an answer or a retry (the loop keeps ticking). */
  hasSettlementWork(): boolean {
    return this.settler.hasWork
  }

  /** Another shard committed a fulfill to an account of ours: keep the live balance current. */
  handleCredit(account: number, amount: bigint): void {
    this.books.credited(account, amount)
  }

  /** Rejects (R00) every forwarded prepare whose expiry has passed. */
  expire(nowMs: number): void {
    this.pending.expire(nowMs, this.expireSlot)
  }

  private readonly expireSlot = (slot: number): boolean => {
    const p = this.pending
    if (!this.toIo[ioThreadOf(p.connId[slot])].hasRoomFor(OUTPUT_SLACK_BYTES)) return false // the rest expire on a later pass
    this.log.debug('prepare expired waiting for the next hop', {
      from: this.accounts.get(p.sourceAccount[slot]).id, to: this.accounts.get(p.destinationAccount[slot]).id, amount: p.sourceAmount[slot],
    })
    this.reject(p.connId[slot], p.requestId[slot], p.sourceAccount[slot], R00_TRANSFER_TIMED_OUT, 'the next hop did not answer before the prepare expired')
    this.countSettled(slot, resultOfCode(R00_TRANSFER_TIMED_OUT))
    this.finish(slot, false)
    return true
  }

  // ---------------------------------------------------------------------------------------------
  // Durability

  /**
   * Commits the batch when it must: balance records changed (a fulfill that is not yet durable
   * must not be published), or journal entries are due. One LMDB transaction. True when all is
   * committed and the caller may publish the turn's outputs; false while a commit is owed: the
   * outputs stay held back, and the same writes (still marked dirty) are tried again at a later
   * turn, after a pause that grows (store/storage_health.ts).
   */
  commit(nowMs: number): boolean {
    // No new settlement while the node cannot write: it would spend the reserve on new work.
    if (this.health.ok) this.settler.settle(nowMs)
    const journalWork = this.journal.hasWork(nowMs)
    if (this.books.dirty || journalWork || this.receiver.hasDirty || this.settler.dirty) {
      if (this.commitOwed && nowMs < this.commitRetryAtMs) return false
      if (!this.tryCommit(journalWork, nowMs)) return false
    }
    this.books.sendCredits()
    this.settler.send(nowMs)
    return true
  }

  /**
   * One transaction with everything the turn changed. On a failure the reserve is given back
   * first, whatever the error said (LMDB reports a data file that cannot grow as EIO), and the
   * commit tried once more at once: on a full disk, that is what lets the commits of what the
   * node owes through.
   */
  private tryCommit(journalWork: boolean, nowMs: number): boolean {
    const started = this.counters === null ? 0 : performance.now()
    try {
      this.writeTransaction(journalWork, nowMs)
    } catch (err) {
      const gaveBack = this.storageReserve.giveBack()
      if (gaveBack && this.health.reserveInUse()) {
        this.log.error('a commit failed; gave back the storage reserve and tried again; new prepares and transfers are refused until it is taken again', {
          shard: this.shardIndex, error: oneLine(err), reserveBytes: this.storageReserve.bytes,
        })
      }
      try {
        if (!gaveBack) throw err
        this.writeTransaction(journalWork, nowMs)
      } catch (again) {
        this.commitFailed(again, nowMs)
        return false
      }
    }
    this.receiver.written()
    this.books.recordsWritten()
    this.settler.written()
    this.journal.written()
    this.counters?.commitTook((performance.now() - started) / 1000)
    if (this.commitOwed) {
      this.commitOwed = false
      this.commitRetryMs = COMMIT_RETRY_MS
      this.health.commitSucceeded(this.shardIndex)
      this.log.warn('commits succeed again; what was held back is committed and sent', { shard: this.shardIndex })
    }
    return true
  }

  private writeTransaction(journalWork: boolean, nowMs: number): void {
    this.store.root.transactionSync(() => {
      this.receiver.writeDirty()
      this.books.writeRecords()
      this.settler.write()
      if (journalWork) this.journal.write(this.store, nowMs)
    })
  }

  private commitFailed(err: unknown, nowMs: number): void {
    if (!this.commitOwed) {
      this.commitOwed = true
      this.log.error('a commit failed: outputs held back and new work refused until a commit succeeds; retrying', { shard: this.shardIndex, error: oneLine(err) })
    }
    this.health.commitFailed(this.shardIndex, errnoOf(err))
    this.commitRetryAtMs = nowMs + this.commitRetryMs
    this.commitRetryMs = Math.min(COMMIT_RETRY_MAX_MS, this.commitRetryMs * 2)
  }

  /** True while a commit is owed (the loop keeps ticking to try it again). */
  hasCommitOwed(): boolean {
    return this.commitOwed
  }

  /** Copies the holds this turn changed to shared memory (before the turn's publish; see ShardLoop.turn). */
  publishHolds(): void {
    this.books.publishHolds()
  }

  /** True while there are credits waiting for ring space. */
  hasUnsentCredits(): boolean {
    return this.books.hasUnsentCredits
  }

  // ---------------------------------------------------------------------------------------------
  // Steps


  private handlePeerProtocol(account: number, connId: number, requestId: number, view: PrepareView, nowMs: number): void {
    const conditionOk = PEER_PROTOCOL_CONDITION.equals(view.buf.subarray(view.conditionOffset, view.conditionOffset + 32))
    if (view.destinationEquals(PEER_CONFIG)) {
      // ilp-protocol-ildcp's serve() answers F00 to every bad request; so do we.
      const data = this.ildcpData[account]
      if (data === null) return this.refuse(connId, requestId, account, view.amount, F00_BAD_REQUEST, 'IL-DCP is only offered to child accounts')
      if (!conditionOk) return this.refuse(connId, requestId, account, view.amount, F00_BAD_REQUEST, 'IL-DCP request with the wrong condition')
      if (view.expiresAtMs <= nowMs) return this.refuse(connId, requestId, account, view.amount, F00_BAD_REQUEST, 'IL-DCP request expired')
      return this.fulfillPeerRequest(connId, requestId, account, view.amount, data)
    }
    if (view.destinationStartsWith(PEER_ROUTE)) {
      // CCP is the main thread's control plane: the whole prepare goes there, and it answers.
      return this.emit(ioThreadOf(connId), RecordKind.ControlOut, connId, requestId, account,
        view.buf.subarray(view.packetOffset, view.packetOffset + view.packetLength))
    }
    if (view.destinationEquals(PEER_BALANCE)) {
      if (!conditionOk) return this.refuse(connId, requestId, account, view.amount, F01_INVALID_PACKET, 'peer.balance request with the wrong condition')
      const balance = this.books.peerBalance(account)
      if (balance === null) return this.refuse(connId, requestId, account, view.amount, T00_INTERNAL_ERROR, 'the balance is outside the signed 64-bit range; ask the operator')
      const data = Buffer.alloc(8)
      writeInt64(data, 0, balance)
      return this.fulfillPeerRequest(connId, requestId, account, view.amount, data)
    }
    this.refuse(connId, requestId, account, view.amount, F01_INVALID_PACKET, `unknown peer protocol ${view.destination()}`)
  }

  private fulfillPeerRequest(connId: number, requestId: number, account: number, amount: bigint, data: Uint8Array): void {
    this.counters?.count(account, Incoming, FULFILL, amount)
    const ring = this.toIo[ioThreadOf(connId)]
    writeFulfill(ring.data, this.reserve(ring, RecordKind.ReplyOut, fulfillLength(data.length), connId, requestId, account), PEER_PROTOCOL_FULFILLMENT, data)
    ring.commit()
  }

  /** Step 6 failed: F02 for an asset not traded, T00 while the rates are stale, F08 past 64 bits. */
  private refuseExchange(connId: number, requestId: number, account: number, target: number, amount: bigint, result: bigint, nowMs: number): void {
    const reason = this.exchange.explain(result, account, target, nowMs)
    this.log.debug('rejected packet for its exchange', { account: this.accounts.get(account).id, amount, reason })
    if (result === NO_RATE) return this.refuse(connId, requestId, account, amount, F02_UNREACHABLE, reason)
    if (result === STALE_RATE) return this.refuse(connId, requestId, account, amount, T00_INTERNAL_ERROR, reason)
    this.rejectAmountTooLarge(connId, requestId, account, amount, this.exchange.largestAmount(account, target), reason)
  }

  private trackPending(
    slot: number, account: number, target: number, connId: number, requestId: number, amount: bigint, destinationAmount: bigint, nowMs: number,
  ): void {
    const p = this.pending
    p.sourceAccount[slot] = account
    p.destinationAccount[slot] = target
    p.connId[slot] = connId
    p.requestId[slot] = requestId
    p.sourceAmount[slot] = amount
    p.destinationAmount[slot] = destinationAmount
    p.condition.set(this.view.buf.subarray(this.view.conditionOffset, this.view.conditionOffset + 32), slot * 32)
    this.journal.started(slot, nowMs)
  }

  private fulfillmentMatches(fulfillment: Uint8Array, slot: number): boolean {
    return digestMatches(fulfillment, this.pending.condition, slot * 32)
  }

  /** Ends a pending prepare: commits (fulfilled) or releases (otherwise) the holds on both sides. */
  private finish(slot: number, fulfilled: boolean): void {
    const p = this.pending
    const source = p.sourceAccount[slot]
    if (fulfilled) this.books.commit(source, p.sourceAmount[slot], p.destinationAccount[slot], p.destinationAmount[slot])
    else {
      this.books.release(source, p.sourceAmount[slot])
      this.books.releaseCredit(p.destinationAccount[slot], p.destinationAmount[slot])
    }
    this.shares.released(source, this.books.prepares(source))
    this.journal.ended(slot)
    p.release(slot)
  }

  /** Answers a prepare from `account` with a reject of ours at once (it was never forwarded). */
  private refuse(connId: number, requestId: number, account: number, amount: bigint, code: IlpErrorCode, message: string, data: Uint8Array = EMPTY): void {
    this.counters?.count(account, Incoming, resultOfCode(code), amount)
    this.reject(connId, requestId, account, code, message, data)
  }

  /** A forwarded prepare ended with `result`: for its sender (incoming) and its next hop (outgoing). */
  private countSettled(slot: number, result: number): void {
    const c = this.counters
    if (c === null) return
    const p = this.pending
    c.count(p.sourceAccount[slot], Incoming, result, p.sourceAmount[slot])
    c.count(p.destinationAccount[slot], Outgoing, result, p.destinationAmount[slot])
  }

  private reject(connId: number, requestId: number, account: number, code: IlpErrorCode, message: string, data: Uint8Array = EMPTY): void {
    const fields: RejectFields = { code, triggeredBy: this.ilpAddress, message: Buffer.from(message, 'utf8'), data }
    const ring = this.toIo[ioThreadOf(connId)]
    writeReject(ring.data, this.reserve(ring, RecordKind.ReplyOut, rejectLength(fields), connId, requestId, account), fields)
    ring.commit()
  }

  // Every output record goes through emit() or reserve(). The loop takes an input only while every
  // output ring has room for its largest answer (ShardLoop.outputsHaveRoom), so a full ring here
  // is a broken invariant: the shard stops loudly (its thread ends, the supervisor restarts the
  // shards from LMDB) rather than drop an answer whose balance change may already be committed.

  private emit(io: number, kind: RecordKind, a: number, b: number, c: number, payload: Uint8Array, d = 0): void {
    if (!this.toIo[io].tryWrite(kind, a, b, c, d, payload)) throw new OutputRingFull(`I/O thread ${io}`, payload.length)
  }

  private emitToShard(shard: number, kind: RecordKind, a: number, b: number, c: number, payload: Uint8Array, d = 0): void {
    if (!this.toShards[shard]!.tryWrite(kind, a, b, c, d, payload)) throw new OutputRingFull(`shard ${shard}`, payload.length)
  }

  private reserve(ring: RingWriter, kind: RecordKind, length: number, a: number, b: number, c: number): number {
    const at = ring.reserve(kind, length, a, b, c, 0)
    if (at < 0) throw new OutputRingFull(`I/O thread ${this.toIo.indexOf(ring)}`, length)
    return at
  }

  private rejectAmountTooLarge(connId: number, requestId: number, account: number, received: bigint, maximum: bigint, message = 'packet amount exceeds the maximum'): void {
    const data = Buffer.alloc(16)
    writeUInt64(data, 0, received)
    writeUInt64(data, 8, maximum)
    this.log.debug('rejected packet above max packet amount', { account: this.accounts.get(account).id, amount: received, maximum })
    this.refuse(connId, requestId, account, received, F08_AMOUNT_TOO_LARGE, message, data)
  }

  /** Balance of an owned account (committed; positive = the peer owes this node). For tests and stats. */
  balanceOf(account: number): bigint {
    return this.books.balanceOf(account)
  }
}
