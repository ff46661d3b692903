// Outgoing BTP: the node dials the accounts that have `btp.url` (its parent, its peers), with the
// `ws` client (uWebSockets.js only serves). After the auth handshake the session is a BTP session
// like any other: prepares flow both ways through BtpEndpoint (btp_endpoint.ts). A dropped connection is
// redialled with exponential backoff (1 s doubling to 30 s, with jitter), until the node stops.
//
// URL form (as ilp-plugin-btp takes it): btp+ws://[username]:token@host:port/path, or btp+wss://. Credentials go
// only into the auth message; the WebSocket URL carries none.

import WebSocket from 'ws'
import { BTP_ERROR, BTP_RESPONSE, CONTENT_OCTET_STREAM, CONTENT_TEXT_PLAIN, encodeMessage, type BtpFrame } from '../../codec/btp_packet'
import type { Config } from '../../config/schema'
import type { Logger } from '../../log'
import type { AccountTable } from '../../config/account_table'
import type { BtpLinks } from './btp_links'
import type { BtpEndpoint } from './btp_endpoint'
import { BtpSession, type BtpSocket } from './btp_session'

const BACKOFF_FIRST_MS = 1000
const BACKOFF_MAX_MS = 30_000
const AUTH_REQUEST_ID = 1
/** How long stopping waits for the peers to answer our WebSocket close. */
const CLOSE_WAIT_MS = 2000

export interface BtpTarget {
  url: string
  username: string
  token: string
}

/** Splits a btp+ws URL into the WebSocket URL and the credentials for the auth message. */
export function parseBtpUrl(btpUrl: string): BtpTarget {
  const url = new URL(btpUrl)
  if (url.protocol !== 'btp+ws:' && url.protocol !== 'btp+wss:') throw new Error('must start with btp+ws:// or btp+wss://')
  const username = decodeURIComponent(url.username)
  const token = decodeURIComponent(url.password)
  url.username = ''
  url.password = ''
  return { url: url.toString().replace(/^btp\+/, ''), username, token }
}

function wsSocket(ws: WebSocket): BtpSocket {
  return {
    // `ws` may hold on to the buffer until the kernel takes it; the caller's bytes get reused.
    send: (bytes) => {
      ws.send(Buffer.from(bytes), { binary: true })
      return true
    },
    cork: (fn) => fn(),
    end: (code, reason) => ws.close(code, reason),
  }
}

class Dial {
  ws: WebSocket | null = null
  backoffMs = BACKOFF_FIRST_MS
  timer: NodeJS.Timeout | null = null
  everConnected = false
  /** The account's URL changed or it was deleted: this dial ends and is not redialled. */
  ended = false

  constructor(readonly account: number, readonly target: BtpTarget) {}
}

export class BtpDialer {
  private readonly dials: Dial[] = []
  private started = false
  private stopped = false
  /** Resolves the first time each dialled account has authenticated (the parent, for IL-DCP). */
  private readonly firstConnect = new Map<number, { promise: Promise<void>; resolve: () => void }>()

  constructor(
    private readonly config: Config,
    private readonly accounts: AccountTable,
    private readonly endpoint: BtpEndpoint,
    private readonly links: BtpLinks,
    private readonly log: Logger,
    /** Which dialled accounts are this thread's to dial (each is dialled by one I/O thread). */
    private readonly dialsHere: (account: number) => boolean = () => true,
  ) {
    accounts.accounts.forEach((_, i) => this.addDial(i))
  }

  private addDial(account: number): Dial | null {
    const a = this.accounts.get(account)
    if (a.btpUrl === null || !this.accounts.isLive(account) || !this.dialsHere(account)) return null
    const dial = new Dial(account, parseBtpUrl(a.btpUrl))
    this.dials.push(dial)
    if (!this.firstConnect.has(account)) {
      let resolve: () => void = () => {}
      const promise = new Promise<void>((r) => { resolve = r })
      this.firstConnect.set(account, { promise, resolve })
    }
    return dial
  }

  start(): void {
    this.started = true
    for (const dial of this.dials) this.connect(dial)
  }

  /**
   * `account` changed (admin API, reload): if its URL or credentials changed, or it was
   * deleted, its dial ends (the link closes) and, while it has a URL, a new one starts.
   */
  accountChanged(account: number): void {
    const a = this.accounts.get(account)
    const current = this.dials.find((d) => d.account === account)
    const wanted = a.btpUrl === null || !this.accounts.isLive(account) ? null : parseBtpUrl(a.btpUrl)
    if (current !== undefined) {
      const same = wanted !== null && wanted.url === current.target.url && wanted.username === current.target.username && wanted.token === current.target.token
      if (same) return
      this.endDial(current)
    }
    const dial = this.addDial(account)
    if (dial !== null && this.started) this.connect(dial)
  }

  private endDial(dial: Dial): void {
    dial.ended = true
    this.dials.splice(this.dials.indexOf(dial), 1)
    if (dial.timer !== null) clearTimeout(dial.timer)
    dial.ws?.close(1000, 'account changed')
  }

  /** Resolves once `account` has connected and authenticated for the first time. */
  connected(account: number): Promise<void> {
    return this.firstConnect.get(account)?.promise ?? Promise.resolve()
  }

  private connect(dial: Dial): void {
    if (this.stopped || dial.ended) return
    const id = this.accounts.get(dial.account).id
    const ws = new WebSocket(dial.target.url, { perMessageDeflate: false, maxPayload: this.config.maxFrameBytes })
    dial.ws = ws
    const session = new BtpSession(this.endpoint, dial.target.url)
    let open = false
    ws.binaryType = 'nodebuffer'
    ws.on('open', () => {
      open = true
      this.endpoint.attach(session, wsSocket(ws))
      session.onUnauthenticated = (frame: BtpFrame) => this.onAuthAnswer(dial, session, frame)
      this.endpoint.send(session, encodeMessage(AUTH_REQUEST_ID, [
        { protocolName: 'auth', contentType: CONTENT_OCTET_STREAM, data: Buffer.alloc(0) },
        { protocolName: 'auth_username', contentType: CONTENT_TEXT_PLAIN, data: Buffer.from(dial.target.username, 'utf8') },
        { protocolName: 'auth_token', contentType: CONTENT_TEXT_PLAIN, data: Buffer.from(dial.target.token, 'utf8') },
      ]))
    })
    ws.on('message', (data: Buffer, isBinary: boolean) => this.endpoint.onMessage(session, data, isBinary))
    ws.on('error', (err) => this.log.debug('BTP dial error', { account: id, error: err.message }))
    ws.on('close', () => {
      dial.ws = null
      if (open) this.endpoint.onClose(session)
      if (this.stopped || dial.ended) return
      const delay = Math.round(dial.backoffMs * (0.8 + Math.random() * 0.4))
      this.log.info('BTP connection to peer down; redialling', { account: id, url: dial.target.url, inMs: delay })
      dial.backoffMs = Math.min(dial.backoffMs * 2, BACKOFF_MAX_MS)
      dial.timer = setTimeout(() => this.connect(dial), delay)
    })
  }

  private onAuthAnswer(dial: Dial, session: BtpSession, frame: BtpFrame): void {
    const id = this.accounts.get(dial.account).id
    if (frame.requestId !== AUTH_REQUEST_ID || frame.type === BTP_ERROR || frame.type !== BTP_RESPONSE) {
      this.log.error('peer refused our BTP auth', { account: id, url: dial.target.url, error: frame.type === BTP_ERROR ? frame.errorData : 'unexpected frame' })
      session.socket?.end(1008, 'authentication refused')
      return
    }
    session.onUnauthenticated = null
    if (!this.links.add(session, dial.account)) {
      // Clients of this account connected to us hold all its links (limits.maxLinksPerAccount).
      this.log.warn('BTP connection to peer closed: the account has all its links already', { account: id, url: dial.target.url, max: this.config.maxLinksPerAccount })
      session.socket?.end(1008, 'too many links')
      return
    }
    dial.backoffMs = BACKOFF_FIRST_MS
    this.log.info('BTP connection to peer up', { account: id, url: dial.target.url })
    this.firstConnect.get(dial.account)?.resolve()
  }

  /** Stops redialling and closes every link, waiting (at most CLOSE_WAIT_MS) for their close handshakes. */
  async close(): Promise<void> {
    this.stopped = true
    const closing: Promise<void>[] = []
    for (const dial of this.dials) {
      if (dial.timer !== null) clearTimeout(dial.timer)
      const ws = dial.ws
      if (ws === null) continue
      closing.push(new Promise((resolve) => ws.once('close', () => resolve())))
      ws.close(1001, 'node shutting down')
    }
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.all(closing), new Promise((resolve) => { timer = setTimeout(resolve, CLOSE_WAIT_MS) })])
    clearTimeout(timer)
  }
}
