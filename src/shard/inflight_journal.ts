// The in-flight journal of a shard. A prepare's hold lives in memory and never touches a balance
// until its fulfill commits, so the journal is not part of the money path: it is the operator's
// record of what was held if the node stops (start-up releases and logs it). A prepare is written
// once it has been in flight for limits.journalDelayMs, and removed when it finishes; most
// prepares finish long before the delay and cost no write at all.
//
// Fixed capacity, like the pending table it shadows: a queue of (pending id, start time) in
// start order, and a flag per pending slot for the ones written. If more prepares start within
// the delay than the table holds, the newest go unjournalled: an audit gap, never a money one.

import type { Store } from '../store/balance_store'
import { encodeInflight, inflightKey } from '../store/balance_store'
import type { PendingTable } from './pending_table'

export class InflightJournal {
  private readonly queueIds: Float64Array
  private readonly queueAtMs: Float64Array
  private head = 0
  private tail = 0
  /** Per pending slot: 1 while its prepare is in LMDB. */
  private readonly journalled: Uint8Array
  /** Pending ids whose entries are to be removed at the next commit. */
  private readonly finished: number[] = []
  /** What the transaction under way wrote: the queue's head after it, and the slots it journalled. */
  private headAfterWrite = -1
  private readonly slotsWritten: number[] = []
  private readonly scratch = Buffer.allocUnsafe(16 + 256)

  constructor(
    capacity: number,
    private readonly delayMs: number,
    private readonly shardIndex: number,
    private readonly pending: PendingTable,
    /** Account ids as bytes, by account index (what an entry names). */
    private readonly accountIds: Buffer[],
  ) {
    this.queueIds = new Float64Array(capacity)
    this.queueAtMs = new Float64Array(capacity)
    this.journalled = new Uint8Array(capacity)
  }

  /** A prepare entered the pending table in `slot` at `nowMs`. */
  started(slot: number, nowMs: number): void {
    const next = (this.tail + 1) % this.queueIds.length
    if (next === this.head) return
    this.queueIds[this.tail] = this.pending.idOf(slot)
    this.queueAtMs[this.tail] = nowMs
    this.tail = next
  }

  /** The prepare in `slot` finished (before the slot is released). */
  ended(slot: number): void {
    if (this.journalled[slot] === 0) return
    this.journalled[slot] = 0
    this.finished.push(this.pending.idOf(slot))
  }

  /** True if the next commit has journal work: entries due, or entries to remove. */
  hasWork(nowMs: number): boolean {
    return this.finished.length > 0 || (this.head !== this.tail && this.queueAtMs[this.head] <= nowMs - this.delayMs)
  }

  /**
   * Inside the commit's transaction: writes the entries that are due, removes the finished ones.
   * Nothing here changes until written(): a transaction that fails is tried again as it was.
   */
  write(store: Store, nowMs: number): void {
    const p = this.pending
    const dueBefore = nowMs - this.delayMs
    let head = this.head
    this.slotsWritten.length = 0
    while (head !== this.tail && this.queueAtMs[head] <= dueBefore) {
      const id = this.queueIds[head]
      head = (head + 1) % this.queueIds.length
      const slot = p.find(id)
      if (slot < 0) continue // finished before it was due: never journalled
      store.inflight.put(inflightKey(this.shardIndex, id), encodeInflight(this.scratch, p.sourceAmount[slot], p.expiresAtMs[slot], this.accountIds[p.sourceAccount[slot]]))
      this.slotsWritten.push(slot)
    }
    this.headAfterWrite = head
    for (const id of this.finished) store.inflight.remove(inflightKey(this.shardIndex, id))
  }

  /** After the transaction that ran write() committed. */
  written(): void {
    if (this.headAfterWrite < 0) return // this transaction had no journal work
    this.head = this.headAfterWrite
    this.headAfterWrite = -1
    for (const slot of this.slotsWritten) this.journalled[slot] = 1
    this.slotsWritten.length = 0
    this.finished.length = 0
  }
}
