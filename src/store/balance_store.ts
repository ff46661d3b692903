// Durable state in LMDB (one environment under DATA_DIR, opened by every shard thread).
//
//   balances  key [accountId, writerShard]  value int128 BE, two's complement
//   inflight  key shard * 2^47 + pendingId   value amount u64 | expiresAtMs f64 | accountId utf8
//             (the in-flight journal: a prepare still in flight after limits.journalDelayMs is
//             written here and removed when it finishes; a number key, as array keys cost more)
//   payments  key [payee, paymentId hex]     value received u64 | chunks u32 | finished u8 |
//             lastAtMs f64 (written by the payee's shard; what GET /payees/<name> lists)
//   meta      key string                     value bytes (payee receive secrets made at start)
//   tokens    key pay token (base64url)      value u64: the shop's prepaid balance of that token
//             (written by the shop payee's shard: credited by payments, debited by paid requests)
//   adjustments key idempotency key           value JSON { account, amount, reason, atMs }: the
//             operator's balance adjustments (POST /admin/accounts/:id/adjust), each written in the
//             same transaction as the balance record it changed, by the account's owner shard
//   admin     key "account/<id>", "route/<prefix>"   value JSON: accounts and routes set through
//             the admin API (control/ops/config_overlay.ts), kept over the config file's
//   settlements        key id                  value JSON SettlementEntry: what the node sent
//   settlementsSending key id                  value 1: the ids still `sending`
//   transfers          key [account, id]       value JSON: what peers sent, as booked
//   settlementsByTime  key [atMs, id]          value 1 \ the logs in the order they were made,
//   transfersByTime    key [atMs, account, id] value 1 / for the admin view's pages and the pruner
//   outsideIlpTotals   key [account, asset]    value int128 BE: what entries pruned from the two
//             logs had moved (an acknowledged settlement +amount, a booked transfer −amount),
//             so the books (`outsideIlpMoves`) sum the same after pruning; asset "" for entries
//             of earlier versions, which had none
//   (A settlement log entry and its time index entry are written, and removed, in one
//   transaction; pruning: control/ops/settlement_log_pruner.ts.)
//
// An account's balance is the sum of its records. Each shard writes only records keyed with its
// own index: the owner of A records A's committed incoming amounts under [A, owner], and the
// shard that forwarded a fulfilled packet to B records B's credit under [B, thatShard], in the
// same transaction as the commit of the source hold. So no fulfilled packet is ever counted on
// one side only, and shards never wait for each other. On start, before any shard runs,
// `recoverOnStart` folds every account's records into the record of its owner under the new
// shard count (this is the re-shard), and releases the holds of prepares that never completed.
//
// Durability: `process` commits without fsync (a committed transaction survives kill -9; the OS
// writes it out), `fsync` syncs every commit (also survives an OS crash or power loss).

import { open, type Database, type Key, type RootDatabase } from 'lmdb'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Durability } from '../config/schema'
import { PENDING_ID_LIMIT } from '../ring/records'

export interface Store {
  root: RootDatabase
  balances: Database<Buffer, [string, number]>
  inflight: Database<Buffer, number>
  payments: Database<Buffer, [string, string]>
  meta: Database<Buffer, string>
  tokens: Database<Buffer, string>
  adjustments: Database<Buffer, string>
  admin: Database<Buffer, string>
  /** Settlements the node made (sent), by id: the outgoing log (shard/settlement/settler.ts). */
  settlements: Database<Buffer, string>
  /** The ids of the settlements still `sending` (what a restarted shard sends again), so a start reads only those. */
  settlementsSending: Database<Buffer, string>
  /** Settlements peers made to the node, by [account, id]: booked once per id. */
  transfers: Database<Buffer, [string, string]>
  /** The two logs by time (empty values): what pages and pruning walk, oldest first or newest first. */
  settlementsByTime: Database<Buffer, [number, string]>
  transfersByTime: Database<Buffer, [number, string, string]>
  /** What pruned log entries had moved, per [account, asset] (int128). */
  outsideIlpTotals: Database<Buffer, [string, string]>
}

/** The LMDB data file under DATA_DIR (its lock file is beside it, with `-lock` added). */
export function storeDataFile(dataDir: string): string {
  return join(dataDir, 'ilp-node.lmdb')
}

export function openStore(dataDir: string, durability: Durability): Store {
  mkdirSync(dataDir, { recursive: true })
  const root = open({
    path: storeDataFile(dataDir),
    noSync: durability === 'process',
    encoding: 'binary',
    keyEncoding: 'ordered-binary',
    maxDbs: 16,
    cache: false,
  })
  const balances = root.openDB<Buffer, [string, number]>('balances', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  const inflight = root.openDB<Buffer, number>('inflight', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  const payments = root.openDB<Buffer, [string, string]>('payments', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  const meta = root.openDB<Buffer, string>('meta', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  const tokens = root.openDB<Buffer, string>('tokens', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  const adjustments = root.openDB<Buffer, string>('adjustments', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  const admin = root.openDB<Buffer, string>('admin', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  const settlements = root.openDB<Buffer, string>('settlements', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  const settlementsSending = root.openDB<Buffer, string>('settlementsSending', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  const transfers = root.openDB<Buffer, [string, string]>('transfers', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  const settlementsByTime = root.openDB<Buffer, [number, string]>('settlementsByTime', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  const transfersByTime = root.openDB<Buffer, [number, string, string]>('transfersByTime', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  const outsideIlpTotals = root.openDB<Buffer, [string, string]>('outsideIlpTotals', { encoding: 'binary', keyEncoding: 'ordered-binary' })
  return {
    root, balances, inflight, payments, meta, tokens, adjustments, admin, settlements, settlementsSending, transfers, settlementsByTime, transfersByTime, outsideIlpTotals,
  }
}

/**
 * A settlement the node made to a peer: booked (the balance raised by `amount`) in the same
 * transaction that wrote it as `sending`; `acknowledged` once the peer answered that it booked
 * it; `refused` if the peer answered that it will not, and the booking was reversed with it.
 */
export interface SettlementEntry {
  /** 16 random bytes as hex: what the peer recognises a retry by. */
  id: string
  account: string
  amount: bigint
  atMs: number
  state: 'sending' | 'acknowledged' | 'refused'
  /** When it was acknowledged or refused, and the peer's reason for a refusal. */
  endedAtMs: number | null
  reason: string | null
  /** The account's asset when it was made ("USD 9"); absent in entries of earlier versions. */
  asset?: string
}

/** Inside the caller's transaction. (`atMs` never changes, so each state's write puts the same time key.) */
export function writeSettlement(store: Store, e: SettlementEntry): void {
  store.settlements.put(e.id, Buffer.from(JSON.stringify({ ...e, amount: e.amount.toString() }), 'utf8'))
  store.settlementsByTime.put([e.atMs, e.id], EMPTY_VALUE)
  if (e.state === 'sending') store.settlementsSending.put(e.id, EMPTY_VALUE)
  else store.settlementsSending.remove(e.id)
}

const EMPTY_VALUE = Buffer.from([1])

/** The settlements still `sending`: read at a shard's start, without the rest of the log. */
export function* readSendingSettlements(store: Store): Generator<SettlementEntry> {
  for (const { key } of store.settlementsSending.getRange()) {
    const entry = readSettlement(store, key)
    if (entry !== null) yield entry
  }
}

function decodeSettlement(v: Uint8Array): SettlementEntry {
  const j = JSON.parse(Buffer.from(v).toString('utf8')) as SettlementEntry & { amount: string }
  return { ...j, amount: BigInt(j.amount) }
}

export function readSettlement(store: Store, id: string): SettlementEntry | null {
  const v = store.settlements.get(id)
  return v === undefined ? null : decodeSettlement(v)
}

export function* readSettlements(store: Store): Generator<SettlementEntry> {
  for (const { value } of store.settlements.getRange()) yield decodeSettlement(value)
}

/**
 * A settlement a peer made to the node, as booked (the balance lowered by `amount`). Earlier
 * versions also wrote refusals (`refused`: the answer every copy of that id got); they are read
 * as such until the first start of this version removes them (indexTransfers), and none is
 * written any more (shard/settlement/settler.ts remembers refusals in memory, so that a peer's refused
 * transfers cannot fill the disk).
 */
export interface TransferEntry {
  account: string
  id: string
  amount: bigint
  atMs: number
  refused: string | null
  /** The account's asset when it came ("USD 9"); absent in entries of earlier versions. */
  asset?: string
}

function decodeTransfer(account: string, id: string, v: Uint8Array): TransferEntry {
  const j = JSON.parse(Buffer.from(v).toString('utf8')) as { amount: string; atMs: number; refused?: string; asset?: string }
  return { account, id, amount: BigInt(j.amount), atMs: j.atMs, refused: j.refused ?? null, asset: j.asset }
}

export function readTransfer(store: Store, account: string, id: string): TransferEntry | null {
  const v = store.transfers.get([account, id])
  return v === undefined ? null : decodeTransfer(account, id, v)
}

/** Inside the caller's transaction. */
export function writeTransfer(store: Store, e: TransferEntry): void {
  const value = { amount: e.amount.toString(), atMs: e.atMs, ...(e.refused === null ? {} : { refused: e.refused }), ...(e.asset === undefined ? {} : { asset: e.asset }) }
  store.transfers.put([e.account, e.id], Buffer.from(JSON.stringify(value), 'utf8'))
  store.transfersByTime.put([e.atMs, e.account, e.id], EMPTY_VALUE)
}

/** The transfers booked (refused ones left out). */
export function* readTransfers(store: Store): Generator<TransferEntry> {
  for (const { key, value } of store.transfers.getRange()) {
    const t = decodeTransfer(key[0], key[1], value)
    if (t.refused === null) yield t
  }
}

/** A key of settlementsByTime or transfersByTime: where a page ends and the next starts. */
export type SettlementLogKey = [number, string]
export type TransferLogKey = [number, string, string]

export interface LogPage<T, K> {
  /** Newest first. */
  entries: T[]
  /** The key of the last entry, if older ones remain: the next page starts after it. */
  next: K | null
}

/** Up to `limit` settlements the node made, newest first, older than `after` (null: the newest). */
export function pageSettlements(store: Store, limit: number, after: SettlementLogKey | null): LogPage<SettlementEntry, SettlementLogKey> {
  const entries: SettlementEntry[] = []
  let last: SettlementLogKey | null = null
  for (const { key } of store.settlementsByTime.getRange({ reverse: true, ...(after === null ? {} : { start: after, exclusiveStart: true }) })) {
    if (entries.length === limit) return { entries, next: last }
    const entry = readSettlement(store, key[1])
    if (entry === null) continue
    entries.push(entry)
    last = key
  }
  return { entries, next: null }
}

/** Up to `limit` transfers peers made (booked), newest first, older than `after` (null: the newest). */
export function pageTransfers(store: Store, limit: number, after: TransferLogKey | null): LogPage<TransferEntry, TransferLogKey> {
  const entries: TransferEntry[] = []
  let last: TransferLogKey | null = null
  for (const { key } of store.transfersByTime.getRange({ reverse: true, ...(after === null ? {} : { start: after, exclusiveStart: true }) })) {
    if (entries.length === limit) return { entries, next: last }
    const entry = readTransfer(store, key[1], key[2])
    if (entry === null || entry.refused !== null) continue
    entries.push(entry)
    last = key
  }
  return { entries, next: null }
}

/** How many entries each log keeps now (from LMDB's own counts: nothing is read), and how many are `sending`. */
export function settlementLogCounts(store: Store): { sent: number; received: number; sending: number } {
  return { sent: entryCount(store.settlements), received: entryCount(store.transfers), sending: entryCount(store.settlementsSending) }
}

/** What one batch of pruning did. */
export interface PruneBatch<K> {
  /** Time-index entries looked at (at most the batch's size). */
  examined: number
  /** Log entries removed (and, where they moved a balance, folded into outsideIlpTotals). */
  pruned: number
  /** Where the next batch of this pass starts; null: the pass reached the cutoff. */
  last: K | null
}

/**
 * Removes up to `max` settlements the node made that ended (acknowledged or refused) before
 * `cutoffMs`, walking settlementsByTime from `after` (null: the oldest). One `sending` is never
 * removed: it is sent until answered. An acknowledged one's amount goes into outsideIlpTotals in
 * the transaction that removes it (a refused one was reversed: it moved nothing). The keys are
 * found outside the write transaction, which then reads each entry again and decides on it, so
 * a shard's commit never waits for more than the removals.
 */
export function pruneSettlements(store: Store, cutoffMs: number, after: SettlementLogKey | null, max: number): PruneBatch<SettlementLogKey> {
  const keys: SettlementLogKey[] = []
  for (const { key } of store.settlementsByTime.getRange({ end: [cutoffMs], limit: max, ...(after === null ? {} : { start: after, exclusiveStart: true }) })) keys.push(key)
  let pruned = 0
  if (keys.length > 0) {
    store.root.transactionSync(() => {
      const folded = new Folded()
      for (const key of keys) {
        const e = readSettlement(store, key[1])
        if (e !== null && e.atMs === key[0]) {
          if (e.state === 'sending' || (e.endedAtMs ?? e.atMs) >= cutoffMs) continue
          if (e.state === 'acknowledged') folded.add(e.account, e.asset, e.amount)
          store.settlements.remove(key[1])
          store.settlementsSending.remove(key[1])
          pruned++
        }
        // (A time key whose entry is gone, or has another time, points at nothing: it goes too.)
        store.settlementsByTime.remove(key)
      }
      folded.write(store)
    })
  }
  return { examined: keys.length, pruned, last: keys.length === max ? keys[keys.length - 1] : null }
}

/**
 * Removes up to `max` transfers peers made that came before `cutoffMs`, walking transfersByTime
 * from `after` (null: the oldest); a booked one's amount goes into outsideIlpTotals (negated: it
 * lowered the balance) in the transaction that removes it. A copy of a removed id that comes
 * later is a new transfer to the settler (see shard/settlement/settler.ts on the retention).
 */
export function pruneTransfers(store: Store, cutoffMs: number, after: TransferLogKey | null, max: number): PruneBatch<TransferLogKey> {
  const keys: TransferLogKey[] = []
  for (const { key } of store.transfersByTime.getRange({ end: [cutoffMs], limit: max, ...(after === null ? {} : { start: after, exclusiveStart: true }) })) keys.push(key)
  let pruned = 0
  if (keys.length > 0) {
    store.root.transactionSync(() => {
      const folded = new Folded()
      for (const key of keys) {
        const t = readTransfer(store, key[1], key[2])
        if (t !== null && t.atMs === key[0]) {
          if (t.refused === null) folded.add(t.account, t.asset, -t.amount)
          store.transfers.remove([key[1], key[2]])
          pruned++
        }
        store.transfersByTime.remove(key)
      }
      folded.write(store)
    })
  }
  return { examined: keys.length, pruned, last: keys.length === max ? keys[keys.length - 1] : null }
}

/** Sums per [account, asset] of one prune batch, added to outsideIlpTotals inside its transaction. */
class Folded {
  private readonly sums = new Map<string, { account: string; asset: string; amount: bigint }>()

  add(account: string, asset: string | undefined, amount: bigint): void {
    const key = JSON.stringify([account, asset ?? ''])
    const sum = this.sums.get(key)
    if (sum === undefined) this.sums.set(key, { account, asset: asset ?? '', amount })
    else sum.amount += amount
  }

  write(store: Store): void {
    for (const { account, asset, amount } of this.sums.values()) {
      const known = store.outsideIlpTotals.get([account, asset])
      store.outsideIlpTotals.put([account, asset], encodeInt128((known === undefined ? 0n : decodeInt128(known)) + amount))
    }
  }
}

/**
 * Per log, true if each of its entries has its time key. A data directory of an earlier version
 * has none, and needs indexSettlements / indexTransfers before its entries can be paged or
 * pruned. (Each entry and its time key are written and removed together, in one transaction, so
 * the counts differ only then.)
 */
export function settlementLogsIndexed(store: Store): { settlements: boolean; transfers: boolean } {
  return {
    settlements: entryCount(store.settlements) === entryCount(store.settlementsByTime),
    transfers: entryCount(store.transfers) === entryCount(store.transfersByTime),
  }
}

/** LMDB's count of a table's entries (from its B-tree's header: nothing is read). */
function entryCount(db: Database<Buffer, Key>): number {
  return (db.getStats() as { entryCount: number }).entryCount
}

/**
 * Writes the time keys of up to `max` settlements (the node's) from the id after `after` (null:
 * the first), in one transaction. Returns the last id done, or null once the log is done.
 * (Writing a time key again is harmless: an entry's time never changes, so it is the same key.)
 */
export function indexSettlements(store: Store, after: string | null, max: number): string | null {
  const found: { id: string; atMs: number }[] = []
  for (const { key, value } of store.settlements.getRange({ limit: max, ...(after === null ? {} : { start: after, exclusiveStart: true }) })) {
    found.push({ id: key, atMs: decodeSettlement(value).atMs })
  }
  store.root.transactionSync(() => { for (const e of found) store.settlementsByTime.put([e.atMs, e.id], EMPTY_VALUE) })
  return found.length === max ? found[found.length - 1].id : null
}

/**
 * As indexSettlements, for the transfers peers made; a refusal an earlier version wrote is removed
 * instead (it moved nothing, and refusals are remembered in memory now, shard/settlement/settler.ts: a copy
 * of its id is judged afresh, as after a restart), which also clears what a flood of refused
 * transfers left.
 */
export function indexTransfers(store: Store, after: [string, string] | null, max: number): [string, string] | null {
  const found: { key: [string, string]; atMs: number; refused: boolean }[] = []
  for (const { key, value } of store.transfers.getRange({ limit: max, ...(after === null ? {} : { start: after, exclusiveStart: true }) })) {
    const t = decodeTransfer(key[0], key[1], value)
    found.push({ key, atMs: t.atMs, refused: t.refused !== null })
  }
  store.root.transactionSync(() => {
    for (const e of found) {
      if (e.refused) store.transfers.remove(e.key)
      else store.transfersByTime.put([e.atMs, e.key[0], e.key[1]], EMPTY_VALUE)
    }
  })
  return found.length === max ? found[found.length - 1].key : null
}

/** What moved an account's balance outside ILP packets: an adjustment or a settlement, either way. */
export interface OutsideIlpMove {
  account: string
  /** The account's asset then ("USD 9"); null in entries of earlier versions (take the account's). */
  asset: string | null
  amount: bigint
}

/** The pruned entries' totals, then every adjustment and every log entry still kept. */
export function* outsideIlpMoves(store: Store): Generator<OutsideIlpMove> {
  for (const { key, value } of store.outsideIlpTotals.getRange()) yield { account: key[0], asset: key[1] === '' ? null : key[1], amount: decodeInt128(value) }
  for (const { key, value } of store.adjustments.getRange()) {
    const a = decodeAdjustment(key, value)
    yield { account: a.account, asset: a.asset ?? null, amount: a.amount }
  }
  for (const s of readSettlements(store)) if (s.state !== 'refused') yield { account: s.account, asset: s.asset ?? null, amount: s.amount }
  for (const t of readTransfers(store)) yield { account: t.account, asset: t.asset ?? null, amount: -t.amount }
}

/** Every account's balance as LMDB has it, configured or not (a deleted account's records stay). */
export function allBalances(store: Store): Map<string, bigint> {
  const sums = new Map<string, bigint>()
  for (const { key, value } of store.balances.getRange()) sums.set(key[0], (sums.get(key[0]) ?? 0n) + decodeInt128(value))
  return sums
}

/** An operator's balance adjustment as journalled (amounts in the account's base units). */
export interface AdjustmentEntry {
  key: string
  account: string
  /** Added to the balance (positive: the peer owes the node more). */
  amount: bigint
  reason: string
  atMs: number
  /** The account's asset then ("USD 9"); absent in entries of earlier versions. */
  asset?: string
}

export function readAdjustment(store: Store, key: string): AdjustmentEntry | null {
  const v = store.adjustments.get(key)
  return v === undefined ? null : decodeAdjustment(key, v)
}

function decodeAdjustment(key: string, v: Uint8Array): AdjustmentEntry {
  const j = JSON.parse(Buffer.from(v).toString('utf8')) as { account: string; amount: string; reason: string; atMs: number; asset?: string }
  return { key, account: j.account, amount: BigInt(j.amount), reason: j.reason, atMs: j.atMs, asset: j.asset }
}

/** Inside the caller's transaction. */
export function writeAdjustment(store: Store, e: AdjustmentEntry): void {
  store.adjustments.put(e.key, Buffer.from(JSON.stringify({ account: e.account, amount: e.amount.toString(), reason: e.reason, atMs: e.atMs, asset: e.asset }), 'utf8'))
}

export interface PaymentRecord {
  received: bigint
  chunks: number
  finished: boolean
  lastAtMs: number
}

export function encodePayment(r: PaymentRecord): Buffer {
  const out = Buffer.allocUnsafe(21)
  out.writeBigUInt64BE(r.received, 0)
  out.writeUInt32BE(r.chunks, 8)
  out[12] = r.finished ? 1 : 0
  out.writeDoubleBE(r.lastAtMs, 13)
  return out
}

export function decodePayment(buf: Uint8Array): PaymentRecord {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  return { received: b.readBigUInt64BE(0), chunks: b.readUInt32BE(8), finished: b[12] === 1, lastAtMs: b.readDoubleBE(13) }
}

/** A pay token's committed balance (0 if unknown). */
export function readTokenBalance(store: Store, token: string): bigint {
  const v = store.tokens.get(token)
  return v === undefined ? 0n : Buffer.from(v).readBigUInt64BE(0)
}

/** A payee's receive secret: the stored one, or a new random one stored now (one transaction). */
export function payeeSecret(store: Store, payee: string, make: () => Uint8Array): Uint8Array {
  const key = `payee-secret/${payee}`
  return store.root.transactionSync(() => {
    const known = store.meta.get(key)
    if (known !== undefined) return new Uint8Array(known)
    const secret = make()
    store.meta.put(key, Buffer.from(secret))
    return secret
  })
}

export function encodeInt128(value: bigint): Buffer {
  const u = BigInt.asUintN(128, value)
  const out = Buffer.allocUnsafe(16)
  out.writeBigUInt64BE(u >> 64n, 0)
  out.writeBigUInt64BE(u & 0xffffffffffffffffn, 8)
  return out
}

export function decodeInt128(buf: Uint8Array): bigint {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  return BigInt.asIntN(128, (b.readBigUInt64BE(0) << 64n) | b.readBigUInt64BE(8))
}

export function inflightKey(shard: number, pendingId: number): number {
  return shard * PENDING_ID_LIMIT + pendingId
}

/** Encodes an in-flight record into `out` (reused by the caller; LMDB copies on put). */
export function encodeInflight(out: Buffer, amount: bigint, expiresAtMs: number, accountId: Buffer): Buffer {
  out.writeBigUInt64BE(amount, 0)
  out.writeDoubleBE(expiresAtMs, 8)
  accountId.copy(out, 16)
  return out.subarray(0, 16 + accountId.length)
}

function decodeInflight(buf: Uint8Array): { amount: bigint; expiresAtMs: number; accountId: string } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  return { amount: b.readBigUInt64BE(0), expiresAtMs: b.readDoubleBE(8), accountId: b.subarray(16).toString('utf8') }
}

/** Sum of all records of one account. */
export function readBalance(store: Store, accountId: string): bigint {
  let sum = 0n
  for (const { value } of store.balances.getRange({ start: [accountId], end: [accountId, 1 << 30] })) sum += decodeInt128(value)
  return sum
}

export interface RecoveryReport {
  accounts: number
  foldedRecords: number
  releasedHolds: number
  releasedAmountByAccount: Map<string, bigint>
}

/**
 * Runs once at start, before the shards: folds each account's records into one record owned by
 * `ownerOf(accountId)`, and deletes in-flight records (their holds lived in memory and died with
 * the previous process; the balances never included them). One transaction: all or nothing.
 */
export function recoverOnStart(store: Store, ownerOf: (accountId: string) => number): RecoveryReport {
  const report: RecoveryReport = { accounts: 0, foldedRecords: 0, releasedHolds: 0, releasedAmountByAccount: new Map() }
  store.root.transactionSync(() => {
    const sums = new Map<string, bigint>()
    const keys: [string, number][] = []
    for (const { key, value } of store.balances.getRange({})) {
      sums.set(key[0], (sums.get(key[0]) ?? 0n) + decodeInt128(value))
      keys.push(key)
    }
    for (const key of keys) store.balances.remove(key)
    for (const [accountId, sum] of sums) store.balances.put([accountId, ownerOf(accountId)], encodeInt128(sum))
    report.accounts = sums.size
    report.foldedRecords = keys.length
    const inflightKeys: number[] = []
    for (const { key, value } of store.inflight.getRange({})) {
      const { amount, accountId } = decodeInflight(value)
      report.releasedAmountByAccount.set(accountId, (report.releasedAmountByAccount.get(accountId) ?? 0n) + amount)
      inflightKeys.push(key)
    }
    for (const key of inflightKeys) store.inflight.remove(key)
    report.releasedHolds = inflightKeys.length
  })
  return report
}
