// Where replies go. Every client-facing request holder (a BTP socket today, an HTTP request
// later) gets a connId; shards carry (connId, requestId) with each prepare and hand them back
// with the reply, so the main thread needs no per-packet table of its own.

export interface ReplyTarget {
  sendReply(requestId: number, ilp: Uint8Array): void
  /** The shards restarted: answer every request still waiting on them with `reject`. */
  abandon?(reject: Uint8Array): void
}

export class Connections {
  private readonly targets = new Map<number, ReplyTarget>()
  private next = 1
  private internal = 0

  /** Registers a reply target; `internal` ones (the payees' delivery) do not count as connections. */
  add(target: ReplyTarget, internal = false): number {
    if (internal) this.internal++
    do {
      this.next = (this.next + 1) >>> 0 || 1
    } while (this.targets.has(this.next))
    this.targets.set(this.next, target)
    return this.next
  }

  /** Open connections and HTTP requests waiting for an answer. */
  get size(): number {
    return this.targets.size - this.internal
  }

  remove(connId: number): void {
    this.targets.delete(connId)
  }

  /** Answers everything waiting on the shards (they restarted) with `reject`. */
  abandonAll(reject: Uint8Array): void {
    for (const target of [...this.targets.values()]) target.abandon?.(reject)
  }

  /** Delivers a reply; false if the connection has gone (the reply is dropped, the client left). */
  reply(connId: number, requestId: number, ilp: Uint8Array): boolean {
    const target = this.targets.get(connId)
    if (target === undefined) return false
    target.sendReply(requestId, ilp)
    return true
  }
}
