// The BTP listener (RFC 23 over uWebSockets.js): the WebSocket upgrade under the connection
// limit, the auth handshake of clients that connect to us (with the shared throttle for wrong
// tokens), and the auth timeout. Once a client has authenticated, its session's frames are the
// endpoint's (btp_endpoint.ts), as a dialled peer's are.

import type { HttpRequest, HttpResponse, us_socket_context_t, WebSocket, WebSocketBehavior } from 'uWebSockets.js'
import { BTP_MESSAGE, type BtpFrame, encodeError, encodeResponse } from '../codec/btp_packet'
import type { Config } from '../config/schema'
import type { Logger } from '../log'
import type { AccountTable } from '../config/account_table'
import { AuthFailure, TokenIndex } from './auth'
import type { AuthThrottle } from './shared_limits'
import type { Connections } from './connections'
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

  constructor(
    private readonly config: Config,
    private readonly accounts: AccountTable,
    private readonly endpoint: BtpEndpoint,
    private readonly connections: Connections,
    private readonly links: BtpLinks,
    /** Shared by BTP and HTTP on every I/O thread: a guesser gets no more tries by switching. */
    private readonly throttle: AuthThrottle,
    private readonly log: Logger,
  ) {
    this.tokens = new TokenIndex(accounts, (i) => accounts.accounts[i].btpToken)
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
        if (this.connections.size >= this.config.maxConnections) {
          this.log.warn('connection limit reached; WebSocket upgrade refused', { limit: this.config.maxConnections })
          res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', '5').end('too many connections\n')
          return
        }
        const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString()
        // ilp-plugin-btp 1.1.x may put the URL's userinfo in a Basic header; credentials count
        // only in the auth message, so the header is ignored.
        res.upgrade<SocketData>(
          { session: new BtpSession(this.endpoint, remoteAddress) },
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context,
        )
      },
      open: (ws) => {
        const session = ws.getUserData().session
        this.endpoint.attach(session, uwsSocket(ws))
        session.onUnauthenticated = (frame) => {
          if (!session.refused) this.authenticate(session, frame)
        }
        session.authTimer = setTimeout(() => {
          if (session.account < 0 && session.socket !== null) {
            this.log.info('closing BTP connection that did not authenticate in time', { remote: session.remoteAddress })
            session.socket.end(1008, 'authentication timeout')
          }
        }, AUTH_TIMEOUT_MS)
        session.authTimer.unref()
      },
      message: (ws, message, isBinary) => this.endpoint.onMessage(ws.getUserData().session, new Uint8Array(message), isBinary),
      close: (ws) => this.endpoint.onClose(ws.getUserData().session),
    }
  }

  /** A client that connected to us has authenticated as `account`. */
  private authenticated(session: BtpSession, account: number): void {
    if (session.authTimer !== null) clearTimeout(session.authTimer)
    this.links.add(session, account)
  }

  private authenticate(session: BtpSession, frame: BtpFrame): void {
    const refuse = (reason: string) => {
      const delayMs = this.throttle.failed(session.remoteAddress)
      this.log.info('BTP authentication refused', { remote: session.remoteAddress, reason, delayMs })
      const requestId = frame.requestId
      const answer = () => {
        this.endpoint.send(session, encodeError(requestId, 'F00', 'NotAcceptedError', reason))
        session.socket?.end(1008, 'authentication failed')
      }
      if (delayMs === 0) return answer()
      // Held back (repeated failures from this address); frames meanwhile are ignored.
      session.refused = true
      setTimeout(() => { if (session.socket !== null) session.socket.cork(answer) }, delayMs).unref()
    }
    if (frame.type !== BTP_MESSAGE) return refuse('the first frame must be an auth message')
    if (frame.entryCount < 1 || !frame.nameIs(0, AUTH)) return refuse('the first frame must be an auth message')
    const tokenEntry = frame.findEntry(AUTH_TOKEN)
    if (tokenEntry < 0) return refuse('missing auth_token')
    const usernameEntry = frame.findEntry(AUTH_USERNAME)
    const username = usernameEntry < 0 ? '' : frame.entryText(usernameEntry)
    // Lenient (as ilp-plugin-btp 1.1.x authenticates): without a username, the token alone names the account.
    const account = this.tokens.authenticate(frame.entryText(tokenEntry), username)
    if (account < 0) return refuse(BTP_REFUSALS[account])
    // The answer first: the link coming up may send at once (a route-control request, a
    // settlement), and a peer that dialled us reads the first frame after its auth as the answer.
    this.endpoint.send(session, encodeResponse(frame.requestId))
    this.authenticated(session, account)
    this.log.info('BTP client authenticated', { account: this.accounts.accounts[account].id, remote: session.remoteAddress })
  }

}
