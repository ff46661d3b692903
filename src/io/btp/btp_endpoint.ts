// BTP/2.0 (RFC 23) on one I/O thread, for every session whichever side opened it (a client that
// connected to BtpServer, a peer BtpDialer dialled): the framing, and the hand-off of `ilp`
// packets to the shards. No ILP logic here: a Message's `ilp` entry goes to the shard of the
// session's account as it is, and whatever the shard answers goes back as a Response.
//
// Per session, after auth:
//   Message  ilp ...      → shard (PREPARE_IN); the shard's reply → Response (same requestId)
//   Message  other name   → empty Response (unknown side protocol)
//   Transfer              → a peer's settlement (io/btp/settlement_engine.ts): to the account's shard
//                           (TRANSFER_IN), whose answer → Response or Error; a malformed
//                           transfer gets Error F00 at once
//   Response / Error      → the answer to a prepare we sent: matched by requestId → shard; or
//                           to a settlement we sent → its shard (SETTLE_ANSWER)
// Prepares the shards forward to an account go out as Messages on its newest session. Before
// auth, frames go to the session's own handler (BtpSession.onUnauthenticated).

import {
  BTP_ERROR, BTP_MESSAGE, BTP_RESPONSE, BTP_TRANSFER, BtpFrame, encodeError, encodeResponse, ilpFrameLength, writeIlpFrame,
} from '../../codec/btp_packet'
import { SendFailure } from '../../codec/ilp_errors'
import { SETTLEMENT_ID_BYTES, SettleAnswer, TransferAnswer } from '../../ring/records'
import { engineOf } from './settlement_engine'
import { STORAGE_UNAVAILABLE } from '../../store/storage_health'
import type { Config } from '../../config/schema'
import { LogOncePer, type Logger } from '../../log'
import type { AccountTable } from '../../config/account_table'
import type { ShardPort } from '../shard_port'
import type { Connections } from '../connections'
import type { BtpLinks } from './btp_links'
import { outgoingKey, pendingIdOfKey, shardOfKey, type BtpSession, type BtpSocket } from './btp_session'

const ILP = Buffer.from('ilp', 'latin1')
/** What a peer or client repeats (answers to requests we do not know, bad frames, BTP errors) is logged once per this interval. */
const REPEATED_LOG_MS = 60_000

export class BtpEndpoint {
  private readonly frame = new BtpFrame()
  private readonly scratch: Buffer
  private readonly rotateTimer: NodeJS.Timeout
  private readonly sessionsToFlush: BtpSession[] = []
  private readonly repeated: LogOncePer

  constructor(
    config: Config,
    private readonly accounts: AccountTable,
    private readonly shards: ShardPort,
    private readonly connections: Connections,
    private readonly links: BtpLinks,
    private readonly log: Logger,
  ) {
    this.scratch = Buffer.allocUnsafe(config.maxFrameBytes + 64)
    // Outstanding requests the peer never answered are forgotten after two rotations, between
    // maxHoldTimeMs + 1 s and twice that after they were sent: their prepares have expired by then
    // (the shard gives none more than maxHoldTimeMs), so an answer after that is dropped here. The
    // shards' pendingIds rely on this bound (shard/pending_table.ts).
    this.rotateTimer = setInterval(() => this.rotateOutstanding(), config.maxHoldTimeMs + 1000)
    this.rotateTimer.unref()
    this.repeated = new LogOncePer(log, 'info', REPEATED_LOG_MS)
  }

  /** A new socket, not yet authenticated: it can receive replies from now on. */
  attach(session: BtpSession, socket: BtpSocket): void {
    session.socket = socket
    session.connId = this.connections.add(session)
  }

  /** A WebSocket message on a session, whichever side opened it. */
  onMessage(session: BtpSession, message: Uint8Array, isBinary: boolean): void {
    const frame = this.frame
    if (!isBinary) return this.protocolError(session, 0, 'BTP frames must be binary WebSocket messages')
    if (!frame.parse(message)) {
      const requestId = message.byteLength >= 5 ? ((message[1] << 24) >>> 0) + (message[2] << 16) + (message[3] << 8) + message[4] : 0
      return this.protocolError(session, requestId, `malformed BTP frame: ${frame.error}`)
    }
    // Before auth, the side that opened the session reads the frame: the server checks a client's
    // credentials, the dialer waits for the answer to its own.
    if (session.account < 0) return session.onUnauthenticated?.(frame)

    switch (frame.type) {
      case BTP_MESSAGE:
        if (frame.entryCount > 0 && frame.nameIs(0, ILP)) return this.onIlpMessage(session, frame)
        // Unknown or unsupported side protocol (including a repeated auth): an empty Response,
        // as ilp-plugin-btp answers.
        return this.send(session, encodeResponse(frame.requestId))
      case BTP_RESPONSE:
      case BTP_ERROR:
        return this.onAnswer(session, frame)
      case BTP_TRANSFER:
        return this.onTransfer(session, frame)
    }
  }

  /**
   * A peer's settlement: its format checked here; whether the account may settle, the account's
   * shard decides (after it has looked for an earlier copy of it), books it and answers.
   */
  private onTransfer(session: BtpSession, frame: BtpFrame): void {
    const account = this.accounts.get(session.account)
    if (!this.shards.storageOk) return this.send(session, encodeError(frame.requestId, 'T00', 'InternalError', STORAGE_UNAVAILABLE))
    const settlement = engineOf(account).decode(frame)
    if ('code' in settlement) {
      this.repeated.event(`transfer ${account.id}`, 'refused a malformed transfer', { account: account.id, amount: frame.amount, reason: settlement.message }, Date.now())
      return this.send(session, encodeError(frame.requestId, settlement.code, settlement.name, settlement.message))
    }
    const payload = Buffer.allocUnsafe(8 + SETTLEMENT_ID_BYTES)
    payload.writeBigUInt64BE(settlement.amount, 0)
    payload.set(settlement.id, 8)
    if (!this.shards.submitTransfer(session.account, session.connId, frame.requestId, payload)) {
      this.send(session, encodeError(frame.requestId, 'T03', 'ConnectorBusyError', 'the node cannot take the settlement now; send it again'))
    }
  }

  /** The shard's answer to a peer's settlement (TRANSFER_REPLY). */
  answerTransfer(session: BtpSession, requestId: number, answer: Uint8Array): void {
    if (answer[0] === TransferAnswer.Booked) return this.send(session, encodeResponse(requestId))
    const code = Buffer.from(answer.buffer, answer.byteOffset + 1, 3).toString('latin1')
    const message = Buffer.from(answer.buffer, answer.byteOffset + 4, answer.length - 4).toString('utf8')
    this.send(session, encodeError(requestId, code, 'NotAcceptedError', message))
  }

  /** A settlement (id ‖ amount) a shard sends to `account`'s peer, on its newest session. */
  sendSettlement(shard: number, account: number, settlement: Uint8Array): void {
    const session = this.links.newest(account)
    // Not connected: the shard sends it again after settlement.retryMs.
    if (session === null || session.socket === null) return
    const id = Uint8Array.prototype.slice.call(settlement, 0, SETTLEMENT_ID_BYTES)
    const amount = Buffer.from(settlement.buffer, settlement.byteOffset, settlement.length).readBigUInt64BE(SETTLEMENT_ID_BYTES)
    const requestId = session.takeRequestId()
    session.settlements.set(requestId, { shard, id })
    this.send(session, engineOf(this.accounts.get(account)).encode(requestId, id, amount))
  }

  /** The peer answered a settlement we sent: acknowledged, refused for good (F), or to be sent again (T). */
  private onSettlementAnswer(session: BtpSession, frame: BtpFrame, sent: { shard: number; id: Uint8Array }): void {
    const account = this.accounts.get(session.account)
    if (frame.type === BTP_ERROR && frame.errorCode.startsWith('T')) {
      this.repeated.event(`settle ${account.id}`, 'the peer could not take a settlement now; it is sent again', { account: account.id, code: frame.errorCode, reason: frame.errorData }, Date.now())
      return
    }
    const reason = frame.type === BTP_ERROR ? Buffer.from(`${frame.errorCode} ${frame.errorName}: ${frame.errorData}`.slice(0, 500), 'utf8') : Buffer.alloc(0)
    const payload = Buffer.concat([sent.id, reason])
    this.shards.submitSettleAnswer(sent.shard, session.account, frame.type === BTP_ERROR ? SettleAnswer.Refused : SettleAnswer.Acknowledged, payload)
  }

  private onIlpMessage(session: BtpSession, frame: BtpFrame): void {
    const ilp = frame.entryData(0)
    session.incoming.add(frame.requestId)
    const refusal = this.shards.submitPrepare(session.account, session.connId, frame.requestId, ilp)
    if (refusal !== null) {
      session.incoming.delete(frame.requestId)
      this.sendIlpFrame(session, BTP_RESPONSE, frame.requestId, refusal)
    }
  }

  private onAnswer(session: BtpSession, frame: BtpFrame): void {
    const settlement = session.settlements.get(frame.requestId)
    if (settlement !== undefined) {
      session.settlements.delete(frame.requestId)
      return this.onSettlementAnswer(session, frame, settlement)
    }
    const control = session.controlRequests.get(frame.requestId)
    if (control !== undefined) {
      session.controlRequests.delete(frame.requestId)
      const i = frame.findEntry(ILP)
      return control(frame.type === BTP_ERROR || i < 0 ? new Error('peer answered with a BTP error') : Buffer.from(frame.entryData(i)))
    }
    const key = session.takeOutstanding(frame.requestId)
    if (key < 0) {
      // A second answer to one request, an answer after we forgot the request (its prepare long
      // expired), or to one we never sent: dropped, never applied.
      this.shards.countUnknownAnswer(session.account)
      const account = this.accounts.get(session.account).id
      this.repeated.event(`unknown ${account}`, 'dropped BTP answers to requests not in flight (late, repeated or unknown)', { account, requestId: frame.requestId }, Date.now())
      return
    }
    const shard = shardOfKey(key)
    const pendingId = pendingIdOfKey(key)
    if (frame.type === BTP_ERROR) {
      const account = this.accounts.get(session.account).id
      this.repeated.event(`error ${account}`, 'next hop answered a prepare with a BTP error', { account, code: frame.errorCode, name: frame.errorName }, Date.now())
      return this.shards.submitSendFailure(shard, pendingId, SendFailure.PeerError)
    }
    const i = frame.findEntry(ILP)
    // A Response without an ilp entry is not an ILP answer; the shard turns it into a reject.
    this.shards.submitReply(shard, pendingId, session.account, i < 0 ? new Uint8Array(0) : frame.entryData(i))
  }

  protocolError(session: BtpSession, requestId: number, reason: string): void {
    const who = session.account < 0 ? session.remoteAddress : this.accounts.get(session.account).id
    this.repeated.event(`frame ${who}`, 'bad BTP frame', { [session.account < 0 ? 'client' : 'account']: who, reason }, Date.now())
    this.send(session, encodeError(requestId, 'F01', 'InvalidFieldsError', reason))
    if (session.account < 0) session.socket?.end(1002, 'protocol error')
  }

  onClose(session: BtpSession): void {
    session.socket = null
    if (session.authTimer !== null) clearTimeout(session.authTimer)
    this.connections.remove(session.connId)
    if (session.account < 0) return
    this.log.info('BTP client disconnected', { account: this.accounts.get(session.account).id })
    for (const resolve of session.controlRequests.values()) resolve(new Error('peer disconnected'))
    session.controlRequests.clear()
    session.settlements.clear()
    this.links.remove(session)
    // Prepares this peer was holding will never be answered on this socket.
    for (const map of [session.outstanding, session.previous]) {
      for (const key of map.values()) this.shards.submitSendFailure(shardOfKey(key), pendingIdOfKey(key), SendFailure.PeerDisconnected)
      map.clear()
    }
  }

  /** Queues a prepare forwarded by a shard for `account`'s newest socket (sent at flush). */
  forward(shard: number, account: number, pendingId: number, ilp: Uint8Array): void {
    const session = this.links.newest(account)
    if (session === null) return this.shards.submitSendFailure(shard, pendingId, SendFailure.PeerNotConnected)
    const requestId = session.takeRequestId()
    const key = outgoingKey(shard, pendingId)
    session.outstanding.set(requestId, key)
    this.queueIlpFrame(session, BTP_MESSAGE, requestId, ilp, key)
  }

  /** Sends a control-plane prepare (CCP) to `account` and resolves with its ILP answer. */
  sendControl(account: number, prepare: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const session = this.links.newest(account)
    if (session === null) return Promise.reject(new Error('not connected'))
    const requestId = session.takeRequestId()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        session.controlRequests.delete(requestId)
        reject(new Error('timed out'))
      }, timeoutMs)
      session.controlRequests.set(requestId, (reply) => {
        clearTimeout(timer)
        if (reply instanceof Error) reject(reply)
        else resolve(reply)
      })
      this.queueIlpFrame(session, BTP_MESSAGE, requestId, prepare, -1)
      this.flush()
    })
  }

  /** Appends a one-entry `ilp` frame to the session's outbox. */
  queueIlpFrame(session: BtpSession, type: number, requestId: number, ilp: Uint8Array, key: number): void {
    const length = ilpFrameLength(ilp.length)
    const needed = session.outboxLength + length
    if (needed > session.outbox.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, session.outbox.length * 2, 64 * 1024))
      session.outbox.copy(grown, 0, 0, session.outboxLength)
      session.outbox = grown
    }
    writeIlpFrame(session.outbox.subarray(session.outboxLength), type, requestId, ilp)
    session.outboxLength = needed
    session.frameEnds.push(needed)
    session.frameKeys.push(key)
    session.frameRequestIds.push(requestId)
    if (session.frameEnds.length === 1) this.sessionsToFlush.push(session)
  }

  /** Sends every queued frame, one cork (one syscall) per socket. */
  flush(): void {
    for (const session of this.sessionsToFlush) {
      const socket = session.socket
      if (socket === null) {
        this.failQueued(session, 0)
      } else {
        socket.cork(() => {
          let start = 0
          for (let i = 0; i < session.frameEnds.length; i++) {
            const end = session.frameEnds[i]
            if (!socket.send(session.outbox.subarray(start, end))) {
              // Over the socket's back-pressure limit: this and the remaining frames are dropped.
              this.failQueued(session, i)
              break
            }
            start = end
          }
        })
      }
      session.outboxLength = 0
      session.frameEnds.length = 0
      session.frameKeys.length = 0
      session.frameRequestIds.length = 0
    }
    this.sessionsToFlush.length = 0
  }

  /** Fails forwarded prepares queued from frame `from` on (their shard rejects them T02). */
  private failQueued(session: BtpSession, from: number): void {
    for (let i = from; i < session.frameKeys.length; i++) {
      const key = session.frameKeys[i]
      if (key < 0) continue
      session.takeOutstanding(session.frameRequestIds[i])
      this.shards.submitSendFailure(shardOfKey(key), pendingIdOfKey(key), SendFailure.PeerBusy)
    }
  }

  /** Writes a one-entry `ilp` frame now (inside a uWS callback, which corks on its own). */
  private sendIlpFrame(session: BtpSession, type: number, requestId: number, ilp: Uint8Array): void {
    if (session.socket === null) return
    const length = ilpFrameLength(ilp.length)
    const out = length <= this.scratch.length ? this.scratch : Buffer.allocUnsafe(length)
    writeIlpFrame(out, type, requestId, ilp)
    session.socket.send(out.subarray(0, length))
  }

  /** Sends a frame now (inside a socket callback, which corks on its own, or on its own). */
  send(session: BtpSession, bytes: Uint8Array): void {
    session.socket?.send(bytes)
  }

  private rotateOutstanding(): void {
    for (const session of this.links.sessions()) {
      session.previous = session.outstanding
      session.outstanding = new Map()
      // Settlements unanswered this long have been sent again by their shard under new requests.
      session.settlements.clear()
    }
  }

  close(): void {
    clearInterval(this.rotateTimer)
    for (const session of [...this.links.sessions()]) session.socket?.end(1001, 'node shutting down')
  }
}
