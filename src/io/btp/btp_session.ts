// A BTP session (RFC 23): one authenticated WebSocket, whichever side opened it (a client that
// connected to us, or a peer we dialled), with what is in flight on it: the peer's prepares a
// shard holds, the prepares we sent it and our control requests, and the frames queued for the
// next flush. Its link to the account is in BtpLinks (btp_links.ts); its frames are read and
// written by BtpEndpoint (btp_endpoint.ts), whichever side opened it.

import { randomBytes } from 'node:crypto'
import { BTP_RESPONSE, type BtpFrame } from '../../codec/btp_packet'
import type { BtpEndpoint } from './btp_endpoint'
import type { ReplyTarget } from '../connections'
import type { AnonymousTicket } from '../../shared/client_table'
import { PENDING_ID_LIMIT } from '../../ring/records'

/** A prepare a session sent, as its maps keep it: the shard that forwarded it and its pendingId, in one integer below 2^53. */
export function outgoingKey(shard: number, pendingId: number): number {
  return shard * PENDING_ID_LIMIT + pendingId
}

export function shardOfKey(key: number): number {
  return Math.floor(key / PENDING_ID_LIMIT)
}

export function pendingIdOfKey(key: number): number {
  return key % PENDING_ID_LIMIT
}

/**
 * The one thing a session needs from its WebSocket, whichever side opened it: uWebSockets.js
 * for clients that connect to us, the `ws` client for peers we dial (btp_client.ts).
 */
export interface BtpSocket {
  /** Sends one binary message; false if the socket refused it (over its back-pressure limit). */
  send(bytes: Uint8Array): boolean
  /** Runs `fn`, coalescing its sends into as few writes as the socket allows. */
  cork(fn: () => void): void
  end(code: number, reason: string): void
}

export class BtpSession implements ReplyTarget {
  readonly transport = 'btp'
  socket: BtpSocket | null = null
  connId = 0
  account = -1
  authTimer: NodeJS.Timeout | null = null
  /**
   * Reads frames until the session is authenticated: a client's auth message (BtpServer), or the
   * answer to ours on a session we dialled (BtpDialer).
   */
  onUnauthenticated: ((frame: BtpFrame) => void) | null = null
  /** Authentication failed and the refusal is being held back (client_gate.ts). */
  refused = false
  /** Its place among the anonymous connections until it authenticates (a client that connected to us). */
  anonymous: AnonymousTicket | null = null
  /** Request ids of this peer's prepares a shard holds (answered by sendReply, or abandon). */
  readonly incoming = new Set<number>()
  /** Control-plane requests we sent (CCP): requestId → their resolver. */
  readonly controlRequests = new Map<number, (reply: Uint8Array | Error) => void>()
  /** Settlements we sent (TRANSFER), by requestId: the shard to tell the answer, and the id. */
  readonly settlements = new Map<number, { shard: number; id: Uint8Array }>()
  /** Our outgoing requestId → outgoingKey(shard, pendingId), in two generations (BtpEndpoint.rotateOutstanding). */
  outstanding = new Map<number, number>()
  previous = new Map<number, number>()
  private nextRequestId = randomBytes(4).readUInt32BE(0)
  /**
   * Frames queued during one drain of the shard rings, sent together under one cork (one write
   * syscall) by BtpEndpoint.flush(). frameKeys holds the pending key of a forwarded prepare (so a
   * frame the socket refuses can be failed back to its shard), or -1 for a reply.
   */
  outbox: Buffer = Buffer.allocUnsafe(0)
  outboxLength = 0
  readonly frameEnds: number[] = []
  readonly frameKeys: number[] = []
  /** The BTP request id of each queued frame (to drop a refused prepare from `outstanding` at once). */
  readonly frameRequestIds: number[] = []

  /** `remoteAddress`: the client as its limits know it (client_address.ts), or the URL we dialled. */
  constructor(readonly endpoint: BtpEndpoint, readonly remoteAddress: string) {}

  takeRequestId(): number {
    this.nextRequestId = (this.nextRequestId + 1) >>> 0
    return this.nextRequestId
  }

  sendReply(requestId: number, ilp: Uint8Array): void {
    this.incoming.delete(requestId)
    this.endpoint.queueIlpFrame(this, BTP_RESPONSE, requestId, ilp, -1)
  }

  abandon(reject: Uint8Array): void {
    for (const requestId of this.incoming) this.endpoint.queueIlpFrame(this, BTP_RESPONSE, requestId, reject, -1)
    this.incoming.clear()
    this.outstanding.clear()
    this.previous.clear()
  }

  takeOutstanding(requestId: number): number {
    let key = this.outstanding.get(requestId)
    if (key !== undefined) this.outstanding.delete(requestId)
    else {
      key = this.previous.get(requestId)
      if (key !== undefined) this.previous.delete(requestId)
    }
    return key ?? -1
  }
}
