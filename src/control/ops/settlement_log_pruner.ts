// Keeps the settlement logs (store/balance_store.ts: `settlements`, the node's; `transfers`,
// the peers') to what idempotency and the operator need, on the main thread's timer, never on
// the packet path:
//
//   1. index   once, for a data directory of an earlier version: each log entry gets its time
//              key (settlementsByTime, transfersByTime), PRUNE_BATCH entries per transaction;
//              a refused transfer that version wrote is removed (refusals are not kept in LMDB
//              any more, shard/settlement/settler.ts)
//   2. prune   every pass walks the time keys older than now − limits.settlementLogRetentionMs,
//              oldest first, PRUNE_BATCH per transaction, and removes
//                - a settlement acknowledged or refused before the cutoff (one `sending` stays:
//                  it is sent until answered, shard/settlement/settler.ts),
//                - a transfer that came before the cutoff,
//              each with its amount folded into outsideIlpTotals in the same transaction (an
//              acknowledged settlement +amount, a booked transfer −amount, a refused one
//              nothing), so GET /admin/books sums the same before and after
//
// Bounded work: one transaction handles at most PRUNE_BATCH entries, found by a read outside it
// (so a shard's commit waits at most for those removals), and the next batch comes BUSY_PAUSE_MS
// later; a pass that is done waits idleMs (a tenth of the retention, from 100 ms to a minute).
// A failure (LMDB full, a closed store) is logged once, when it starts, and the batch is tried
// again idleMs later; the node goes on (the logs only grow meanwhile).
//
// Races with the shards, which write the logs: entries and their time keys change only inside
// LMDB's write transactions, which are serialised, and the prune transaction reads each entry
// again before it removes it. A settlement answered, or booked again after a late
// acknowledgement (settler.ts), between the read and the transaction is seen as it is then.

import type { Logger } from '../../log'
import {
  indexSettlements, indexTransfers, pruneSettlements, pruneTransfers, settlementLogsIndexed,
  type SettlementLogKey, type Store, type TransferLogKey,
} from '../../store/balance_store'

/** Entries per transaction: a few milliseconds of the main thread and of LMDB's write lock. */
export const PRUNE_BATCH = 256
/** Between two batches of a pass (or of the indexing): the main thread serves its sockets. */
const BUSY_PAUSE_MS = 20
/** The first pass, after start-up has settled. */
const FIRST_PASS_MS = 200

export class SettlementLogPruner {
  private timer: NodeJS.Timeout | null = null
  private readonly idleMs: number
  /** What is still to index (a data directory of an earlier version), and where it got to. */
  private indexing: { settlements: boolean; transfers: boolean } | null = null
  private settlementsIndexedTo: string | null = null
  private transfersIndexedTo: [string, string] | null = null
  /** Where the current pass is, per log (null: at the oldest entry). */
  private settlementsAfter: SettlementLogKey | null = null
  private transfersAfter: TransferLogKey | null = null
  private settlementsDone = false
  private transfersDone = false
  private pass = { settlements: 0, transfers: 0 }
  /** Failed batches in a row (one log line when the first fails, one when it works again). */
  private failures = 0

  constructor(
    private readonly store: Store,
    private readonly retentionMs: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    /** False while the node cannot write (store/storage_health.ts): pruning waits, the reserve is for what the node owes. */
    private readonly storageOk: () => boolean = () => true,
  ) {
    this.idleMs = Math.min(60_000, Math.max(100, Math.floor(retentionMs / 10)))
  }

  start(): void {
    this.schedule(FIRST_PASS_MS)
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = null
      let more = false
      if (!this.storageOk()) return this.schedule(this.idleMs)
      try {
        more = this.batch()
        if (this.failures > 0) this.log.info('settlement log pruning works again', { failedBatches: this.failures })
        this.failures = 0
      } catch (err) {
        if (this.failures++ === 0) this.log.warn('settlement log pruning failed; tried again later', { error: (err as Error).message, retryMs: this.idleMs })
      }
      this.schedule(more ? BUSY_PAUSE_MS : this.idleMs)
    }, ms)
    this.timer.unref()
  }

  /** One batch of work (one transaction at most per log); true if more is due at once. */
  private batch(): boolean {
    if (this.indexing === null) {
      const indexed = settlementLogsIndexed(this.store)
      this.indexing = { settlements: !indexed.settlements, transfers: !indexed.transfers }
      if (this.indexing.settlements || this.indexing.transfers) this.log.info('indexing the settlement logs by time (a data directory of an earlier version)', this.indexing)
    }
    if (this.indexing.settlements) {
      this.settlementsIndexedTo = indexSettlements(this.store, this.settlementsIndexedTo, PRUNE_BATCH)
      if (this.settlementsIndexedTo === null) this.indexing.settlements = false
      return true
    }
    if (this.indexing.transfers) {
      this.transfersIndexedTo = indexTransfers(this.store, this.transfersIndexedTo, PRUNE_BATCH)
      if (this.transfersIndexedTo === null) {
        this.indexing.transfers = false
        this.log.info('settlement logs indexed by time')
      }
      return true
    }
    const cutoffMs = this.now() - this.retentionMs
    if (!this.settlementsDone) {
      const r = pruneSettlements(this.store, cutoffMs, this.settlementsAfter, PRUNE_BATCH)
      this.pass.settlements += r.pruned
      this.settlementsAfter = r.last
      this.settlementsDone = r.last === null
    }
    if (!this.transfersDone) {
      const r = pruneTransfers(this.store, cutoffMs, this.transfersAfter, PRUNE_BATCH)
      this.pass.transfers += r.pruned
      this.transfersAfter = r.last
      this.transfersDone = r.last === null
    }
    if (!this.settlementsDone || !this.transfersDone) return true
    // The pass is done: the next starts from the oldest entries again, idleMs later.
    if (this.pass.settlements + this.pass.transfers > 0) {
      this.log.info('settlement logs pruned', { settlements: this.pass.settlements, transfers: this.pass.transfers, retentionMs: this.retentionMs })
    }
    this.pass = { settlements: 0, transfers: 0 }
    this.settlementsDone = false
    this.transfersDone = false
    return false
  }
}
