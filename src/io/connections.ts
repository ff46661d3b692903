// Where replies go. Every request holder of an I/O thread (a BTP socket, an HTTP exchange, a paid
// shop request) gets a connId; shards carry (connId, requestId) with each prepare and hand them
// back with the reply, so an I/O thread needs no per-packet table of its own. The connId's top
// byte is the I/O thread's index (ring/records.ts), so a shard knows where the reply goes.

export interface ReplyTarget {
  /** What it is, for the node-wide counts by transport. */
  readonly transport: Transport
  sendReply(requestId: number, ilp: Uint8Array): void
  /** The shards restarted: answer every request still waiting on them with `reject`. */
  abandon?(reject: Uint8Array): void
}

import { CONN_ID_BITS } from '../ring/records'
import type { ConnectionCount, Transport } from '../shared/client_table'

const LOCAL_ID_MASK = (1 << CONN_ID_BITS) - 1

export class Connections {
  private readonly targets = new Map<number, ReplyTarget>()
  private next = 0
  private readonly base: number

  /** `count` is the node's count of open connections over all I/O threads (limits.maxConnections). */
  constructor(io: number, private readonly count: ConnectionCount) {
    this.base = (io << CONN_ID_BITS) >>> 0
  }

  /** Registers a reply target (it counts toward limits.maxConnections until removed). */
  add(target: ReplyTarget): number {
    let id: number
    do {
      this.next = (this.next + 1) & LOCAL_ID_MASK || 1
      id = (this.base | this.next) >>> 0
    } while (this.targets.has(id))
    this.targets.set(id, target)
    this.count.opened(target.transport)
    return id
  }

  /** Open connections and HTTP requests waiting for an answer, on every I/O thread. */
  get size(): number {
    return this.count.open
  }

  remove(connId: number): void {
    const target = this.targets.get(connId)
    if (target !== undefined && this.targets.delete(connId)) this.count.closed(target.transport)
  }

  /** Answers everything waiting on the shards (they restarted) with `reject`. */
  abandonAll(reject: Uint8Array): void {
    for (const target of [...this.targets.values()]) target.abandon?.(reject)
  }

  /** The reply target of `connId`, if it is still open. */
  target(connId: number): ReplyTarget | undefined {
    return this.targets.get(connId)
  }

  /** Delivers a reply; false if the connection has gone (the reply is dropped, the client left). */
  reply(connId: number, requestId: number, ilp: Uint8Array): boolean {
    const target = this.targets.get(connId)
    if (target === undefined) return false
    target.sendReply(requestId, ilp)
    return true
  }
}
