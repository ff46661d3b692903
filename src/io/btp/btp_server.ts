// The BTP listener (RFC 23 over uWebSockets.js): the WebSocket upgrade under the connection
// limits (the node's, and the anonymous ones: client_gate.ts), the auth handshake of clients that
// connect to us (the gate's penalty for wrong tokens), the account's link limit, and the auth
// timeout. Once a client has authenticated, its session's frames are the endpoint's
// (btp_endpoint.ts), as a dialled peer's are.

import type { HttpRequest, HttpResponse, us_socket_context_t, WebSocket, WebSocketBehavior } from 'uWebSockets.js'
import { BTP_MESSAGE, type BtpFrame, encodeError, encodeResponse } from '../../codec/btp_packet'
import type { Config } from '../../config/schema'
import type { Logger } from '../../log'
import type { AccountTable } from '../../config/account_table'
import { AuthFailure, TokenIndex } from '../auth'
import { retryAfterSeconds, type ClientGate } from '../client_gate'
import type { AnonymousRefusal, AnonymousTicket } from '../../shared/client_table'
import type { Connections } from '../connections'
import type { BtpLinks } from './btp_links'
import type { BtpEndpoint } from './btp_endpoint'
import { BtpSession, type BtpSocket } from './btp_session'

const AUTH = Buffer.from('auth', 'latin1')
const AUTH_USERNAME = Buffer.from('auth_username', 'latin1')
const AUTH_TOKEN = Buffer.from('auth_token', 'latin1')

const BTP_REFUSALS: Record<number, string> = {
  [AuthFailure.UnknownAccount]: 'unknown account',
  [AuthFailure.NotAccepted]: 'account does not accept BTP connections',
  [AuthFailure.InvalidToken]: 'invalid auth_token',
}

/** A client that has not authenticated by then is disconnected. */
const AUTH_TIMEOUT_MS = 10_000
/** Bytes queued on a socket beyond which sends to it fail (T02) instead of growing memory. */
const MAX_BACKPRESSURE_BYTES = 16 * 1024 * 1024

interface SocketData {
  session: BtpSession
}

function uwsSocket(ws: WebSocket<SocketData>): BtpSocket {
  return {
    send: (bytes) => ws.send(bytes, true) !== 2,
    cork: (fn) => { ws.cork(fn) },
    end: (code, reason) => ws.end(code, reason),
  }
}

export class BtpServer {
  private readonly tokens: TokenIndex
  /** This thread's sockets that have not authenticated, oldest first. */
  private readonly anonymousSessions = new Set<BtpSession>()

  constructor(
    private readonly config: Config,
    private readonly accounts: AccountTable,
    private readonly endpoint: BtpEndpoint,
    private readonly connections: Connections,
    private readonly links: BtpLinks,
    private readonly gate: ClientGate,
    private readonly log: Logger,
  ) {
    this.tokens = new TokenIndex(accounts, (i) => accounts.get(i).btpToken)
  }

  /** The accounts changed: tokens are looked up in the new ones from the next auth message. */
  accountsChanged(): void {
    this.tokens.rebuild()
  }

  behavior(): WebSocketBehavior<SocketData> {
    return {
      compression: 0,
      maxPayloadLength: this.config.maxFrameBytes,
      maxBackpressure: MAX_BACKPRESSURE_BYTES,
      closeOnBackpressureLimit: 0,
      idleTimeout: 120,
      sendPingsAutomatically: true,
      upgrade: (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) => {
        const client = this.gate.clientOf(res, req)
        if (this.connections.size >= this.config.maxConnections) {
          this.gate.refused('(any)', 'connection limit reached; WebSocket upgrade refused', { limit: this.config.maxConnections })
          res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', '5').end('too many connections\n', true)
          return
        }
        // An address waiting after failed authentications could not authenticate on this socket either.
        const admission = this.gate.admit(client, 'btp')
        if (!admission.ok) {
          res.writeStatus('429 Too Many Requests').writeHeader('Retry-After', retryAfterSeconds(admission.waitMs))
            .end('too many failed authentications from this address; try again later\n', true)
          return
        }
        const anonymous = this.openAnonymous(client)
        if (typeof anonymous === 'string') {
          if (anonymous === 'address') res.writeStatus('429 Too Many Requests').writeHeader('Retry-After', '5').end('too many unauthenticated connections from this address\n', true)
          else res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', '5').end('too many unauthenticated connections\n', true)
          return
        }
        const session = new BtpSession(this.endpoint, client)
        session.anonymous = anonymous
        // ilp-plugin-btp 1.1.x may put the URL's userinfo in a Basic header; credentials count
        // only in the auth message, so the header is ignored.
        res.upgrade<SocketData>(
          { session },
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context,
        )
      },
      open: (ws) => {
        const session = ws.getUserData().session
        if (session.anonymous !== null) this.anonymousSessions.add(session)
        this.endpoint.attach(session, uwsSocket(ws))
        session.onUnauthenticated = (frame) => {
          if (!session.refused) this.authenticate(session, frame)
        }
        session.authTimer = setTimeout(() => {
          if (session.account < 0 && session.socket !== null) {
            this.gate.refused(session.remoteAddress, 'closing BTP connection that did not authenticate in time', { timeoutMs: AUTH_TIMEOUT_MS })
            session.socket.end(1008, 'authentication timeout')
          }
        }, AUTH_TIMEOUT_MS)
        session.authTimer.unref()
      },
      message: (ws, message, isBinary) => this.endpoint.onMessage(ws.getUserData().session, new Uint8Array(message), isBinary),
      close: (ws) => {
        const session = ws.getUserData().session
        this.releaseAnonymous(session)
        this.endpoint.onClose(session)
      },
    }
  }

  /**
   * Counts a new anonymous socket. When anonymous sockets have the whole of their share of
   * limits.maxConnections, the oldest on this thread is closed to make room: a client with a token
   * sends its auth message within a round trip of connecting, so the oldest anonymous sockets are
   * the ones that never will, and an account can always connect however many are held open.
   */
  private openAnonymous(client: string): AnonymousTicket | AnonymousRefusal {
    const ticket = this.gate.openAnonymous(client)
    if (ticket !== 'node') return ticket
    const oldest = this.anonymousSessions.values().next()
    if (oldest.done === true) return ticket
    this.gate.refused(oldest.value.remoteAddress, 'closing the oldest unauthenticated BTP connection to make room for a new one')
    this.releaseAnonymous(oldest.value)
    oldest.value.socket?.end(1008, 'too many unauthenticated connections')
    return this.gate.openAnonymous(client)
  }

  /** The session authenticated or closed: it no longer counts as anonymous. */
  private releaseAnonymous(session: BtpSession): void {
    if (session.anonymous === null) return
    this.gate.closeAnonymous(session.anonymous)
    session.anonymous = null
    this.anonymousSessions.delete(session)
  }

  /** Refuses the auth message after `waitMs` (frames meanwhile are ignored), then closes. */
  private refuse(session: BtpSession, requestId: number, reason: string, waitMs: number): void {
    session.refused = true
    // The refusal, not the auth timeout, ends this socket (it still counts as anonymous).
    if (waitMs > 0 && session.authTimer !== null) clearTimeout(session.authTimer)
    this.gate.hold(waitMs, () => session.socket === null, () => {
      const socket = session.socket
      if (socket === null) return
      socket.cork(() => {
        this.endpoint.send(session, encodeError(requestId, 'F00', 'NotAcceptedError', reason))
        socket.end(1008, 'authentication failed')
      })
    })
  }

  private authenticate(session: BtpSession, frame: BtpFrame): void {
    const client = session.remoteAddress
    const admission = this.gate.admit(client, 'btp')
    if (!admission.ok) {
      return this.refuse(session, frame.requestId, `too many failed authentications from this address; try again in ${retryAfterSeconds(admission.waitMs)} s`, admission.waitMs)
    }
    const fail = (reason: string) => this.refuse(session, frame.requestId, reason, this.gate.failed(client, 'btp', reason))
    if (frame.type !== BTP_MESSAGE) return fail('the first frame must be an auth message')
    if (frame.entryCount < 1 || !frame.nameIs(0, AUTH)) return fail('the first frame must be an auth message')
    const tokenEntry = frame.findEntry(AUTH_TOKEN)
    if (tokenEntry < 0) return fail('missing auth_token')
    const usernameEntry = frame.findEntry(AUTH_USERNAME)
    const username = usernameEntry < 0 ? '' : frame.entryText(usernameEntry)
    // Lenient (as ilp-plugin-btp 1.1.x authenticates): without a username, the token alone names the account.
    const account = this.tokens.authenticate(frame.entryText(tokenEntry), username)
    if (account < 0) return fail(BTP_REFUSALS[account])
    const id = this.accounts.get(account).id
    if (!this.links.reserve(account)) {
      // The right token: not a guess, so not counted against the address.
      this.gate.refused(client, 'BTP link refused: the account has all its links', { account: id, max: this.config.maxLinksPerAccount })
      return this.refuse(session, frame.requestId, `account ${id} has its maximum of ${this.config.maxLinksPerAccount} links (limits.maxLinksPerAccount); close one first`, 0)
    }
    if (session.authTimer !== null) clearTimeout(session.authTimer)
    this.releaseAnonymous(session)
    // The answer first: the link coming up may send at once (a route-control request, a
    // settlement), and a peer that dialled us reads the first frame after its auth as the answer.
    this.endpoint.send(session, encodeResponse(frame.requestId))
    this.links.add(session, account, true)
    this.log.info('BTP client authenticated', { account: id, remote: client })
  }

}
