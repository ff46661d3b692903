// Which I/O thread holds each account's link: shared memory written by the I/O threads as links
// come and go, and read by a shard when it forwards a prepare, so the prepare goes straight to the
// thread that owns the next hop's socket.
//
//   SAB: Int32 preferred[accounts]        the thread of the account's newest link, or -1
//        Int32 count[accounts × threads]  links the account has on each I/O thread
//
// Each I/O thread writes only its own counts (and the preferred cell, last writer wins); the
// cells are read with Atomics, so a shard sees a whole value. A shard may read a link that has
// just gone: the I/O thread then finds no socket and fails the prepare back (T01), as when a link
// drops while a prepare is on the wire. Accounts with no link of their own (ILP-over-HTTP out,
// dialled BTP, payees) belong to a home thread that never changes.

export class LinkTable {
  private readonly preferred: Int32Array
  private readonly count: Int32Array

  static create(accounts: number, threads: number): SharedArrayBuffer {
    const sab = new SharedArrayBuffer(4 * accounts * (1 + threads))
    new Int32Array(sab, 0, accounts).fill(-1)
    return sab
  }

  constructor(sab: SharedArrayBuffer, private readonly accounts: number, readonly threads: number) {
    this.preferred = new Int32Array(sab, 0, accounts)
    this.count = new Int32Array(sab, 4 * accounts, accounts * threads)
  }

  /** The home I/O thread of an account: dials its BTP link, sends its HTTP, delivers to it as a payee. */
  home(account: number): number {
    return account % this.threads
  }

  /** The I/O thread to hand a prepare for `account` to. */
  threadOf(account: number): number {
    const linked = this.linkedThread(account)
    return linked >= 0 ? linked : this.home(account)
  }

  /** The I/O thread of the account's newest live link, or -1 if it has none. */
  linkedThread(account: number): number {
    const preferred = Atomics.load(this.preferred, account)
    if (preferred >= 0 && Atomics.load(this.count, account * this.threads + preferred) > 0) return preferred
    for (let t = 0; t < this.threads; t++) if (Atomics.load(this.count, account * this.threads + t) > 0) return t
    return -1
  }

  /**
   * I/O thread side: `account` has a new link on `thread`, unless it has `max` already over all
   * threads (false: nothing changed). The link is counted before the total is read, so two
   * threads adding the last link at once both see it and at least one gives it back: the total
   * never passes `max`, and at worst both refuse (their clients try again).
   */
  tryLinkUp(account: number, thread: number, max: number): boolean {
    const cell = account * this.threads + thread
    Atomics.add(this.count, cell, 1)
    if (this.links(account) > max) {
      Atomics.sub(this.count, cell, 1)
      return false
    }
    Atomics.store(this.preferred, account, thread)
    return true
  }

  /** I/O thread side: one of `account`'s links on `thread` has gone. */
  linkDown(account: number, thread: number): void {
    Atomics.sub(this.count, account * this.threads + thread, 1)
  }

  /** Control side: an I/O thread died, and its links with it. */
  clearThread(thread: number): void {
    for (let a = 0; a < this.accounts; a++) Atomics.store(this.count, a * this.threads + thread, 0)
  }

  /** Links of `account` on all threads (the route manager's "link up" is the first of them). */
  links(account: number): number {
    let n = 0
    for (let t = 0; t < this.threads; t++) n += Atomics.load(this.count, account * this.threads + t)
    return n
  }
}
