// The payees' transport, on the payee's home I/O thread. A prepare that a sender's shard forwards
// to a payee comes, like any forwarded prepare, to an I/O thread: here it is handed to the payee's
// shard instead of a socket, and the payee's answer comes back as a reply to this "connection", which passes it
// to the sender's shard as the next hop's reply. So a payment is forwarded, held, checked and
// credited exactly as a packet to a peer is.

import { SendFailure } from '../codec/ilp_errors'
import type { ShardPort } from './shard_port'
import type { Connections, ReplyTarget } from './connections'

export class LocalDelivery implements ReplyTarget {
  private readonly connId: number
  /** Per outstanding delivery (indexed by the request id we give it): who waits for the answer. */
  private shardOf = new Int32Array(1024)
  private pendingIdOf = new Uint32Array(1024)
  private readonly free: number[] = []
  private used = 0

  constructor(private readonly shards: ShardPort, connections: Connections) {
    this.connId = connections.add(this, true)
  }

  forward(shard: number, payee: number, pendingId: number, ilp: Uint8Array): void {
    const requestId = this.allocate()
    this.shardOf[requestId] = shard
    this.pendingIdOf[requestId] = pendingId
    if (!this.shards.submitDeliver(payee, this.connId, requestId, ilp)) {
      this.free.push(requestId)
      this.shards.submitSendFailure(shard, pendingId, SendFailure.PeerBusy)
    }
  }

  /** The shards restarted: the senders' shards that waited for these answers are gone too. */
  abandon(): void {
    this.free.length = 0
    this.used = 0
  }

  sendReply(requestId: number, ilp: Uint8Array): void {
    const shard = this.shardOf[requestId]
    const pendingId = this.pendingIdOf[requestId]
    this.free.push(requestId)
    this.shards.submitReply(shard, pendingId, ilp)
  }

  private allocate(): number {
    const reused = this.free.pop()
    if (reused !== undefined) return reused
    if (this.used === this.shardOf.length) {
      const shardOf = new Int32Array(this.used * 2)
      shardOf.set(this.shardOf)
      this.shardOf = shardOf
      const pendingIdOf = new Uint32Array(this.used * 2)
      pendingIdOf.set(this.pendingIdOf)
      this.pendingIdOf = pendingIdOf
    }
    return this.used++
  }
}
