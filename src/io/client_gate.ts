// The gate every public surface checks a client at before it reads its token: BTP auth
// messages, ILP-over-HTTP bearer tokens, the admin API, /metrics and the payee views. One table
// for all of them (shared/client_table.ts), so a guesser gets no more tries by switching surface or
// I/O thread:
//
//   1. While a client address is in its penalty, no token of it is checked: the attempt is held
//      until the penalty ends, then refused ("try again in N s"; HTTP 429 with Retry-After).
//   2. A wrong token counts as a failure. After limits.authFailuresFree of them, each further
//      one starts a penalty of limits.authPenaltyMs, doubling up to limits.authPenaltyMaxMs, and
//      its own refusal is held that long: a guesser waits for every answer, and parallel guesses
//      are held, not checked.
//   3. A right token outside a penalty is never delayed.
// Held refusals have a cap of their own over the node (the size of the anonymous share; not per
// address: a burst of guesses is held whole, so it takes the penalty whole), apart from the
// anonymous sockets, so that holding them never keeps an account from connecting; when that cap
// is reached a refusal is answered at once instead.
//
// Refusals are logged once per client and kind per REFUSAL_LOG_MS, with a count: an attacker
// costs a few lines per minute however fast it goes.

import type { HttpRequest, HttpResponse } from 'uWebSockets.js'
import type { Config } from '../config/schema'
import { LogOncePer, type LogFields, type Logger } from '../log'
import { bearerMatchesAny, bearerToken } from './auth'
import { ClientAddresses } from './client_address'
import { ClientTable, type AnonymousRefusal, type AnonymousTicket } from '../shared/client_table'

/** One log line per client and kind of refusal per this interval. */
const REFUSAL_LOG_MS = 60_000

/** Where a token was presented (for the log line). */
export type Surface = 'btp' | 'http' | 'admin' | 'metrics' | 'payee'

const SURFACE_NAMES: Record<Surface, string> = { btp: 'BTP', http: 'ILP-over-HTTP', admin: 'admin', metrics: 'metrics', payee: 'payee view' }

/** What a client's attempt gets before its token is checked. */
export type Admission = { ok: true } | { ok: false; waitMs: number }
const ADMITTED: Admission = { ok: true }

export class ClientGate {
  readonly addresses: ClientAddresses
  private readonly table: ClientTable
  private readonly refusals: LogOncePer

  constructor(config: Config, sab: SharedArrayBuffer, log: Logger) {
    this.addresses = new ClientAddresses(config.trustedProxies)
    this.table = new ClientTable(sab, {
      anonymousPerAddress: config.anonymousPerAddress,
      anonymousMax: config.maxConnections - config.reservedConnections,
      authFailuresFree: config.authFailuresFree,
      authPenaltyMs: config.authPenaltyMs,
      authPenaltyMaxMs: config.authPenaltyMaxMs,
    })
    this.refusals = new LogOncePer(log, 'info', REFUSAL_LOG_MS)
  }

  /** The client behind an HTTP request (or a WebSocket upgrade). */
  clientOf(res: HttpResponse, req: HttpRequest): string {
    return this.addresses.of(res, req)
  }

  /** False while no address waits: then a token can be checked without finding its client. */
  anyoneWaits(): boolean {
    return this.table.anyPenalty()
  }

  /** May a token of `client` be checked now? */
  admit(client: string, surface: Surface): Admission {
    if (!this.table.anyPenalty()) return ADMITTED
    const waitMs = this.table.penaltyLeftMs(client)
    if (waitMs === 0) return ADMITTED
    this.refused(client, `${SURFACE_NAMES[surface]} authentication not checked: the address is waiting after failed authentications`, { waitMs })
    return { ok: false, waitMs }
  }

  /**
   * The bearer token of a request to an HTTP surface (admin API, /metrics, payee views), checked
   * as every surface's tokens are: true if it may go on; else its refusal is under way (`refuse`,
   * held while the address waits, or for as long as a wrong token earned; at once for a request
   * that carried no token, which guessed nothing).
   */
  authorizeBearer(
    client: string, surface: Surface, authorization: string, digests: readonly Buffer[], gone: () => boolean,
    refuse: (status: 401 | 429, retryAfter?: string) => void,
  ): boolean {
    const admission = this.admit(client, surface)
    if (!admission.ok) {
      const retryAfter = retryAfterSeconds(admission.waitMs)
      this.hold(admission.waitMs, gone, () => refuse(429, retryAfter))
      return false
    }
    if (bearerMatchesAny(authorization, digests)) return true
    if (bearerToken(authorization) === '') {
      this.refused(client, `${SURFACE_NAMES[surface]} request refused: no bearer token`)
      refuse(401)
    } else {
      this.hold(this.failed(client, surface, 'wrong bearer token'), gone, () => refuse(401))
    }
    return false
  }

  /** `client` presented a wrong token: how long to hold its refusal (0: answer now). */
  failed(client: string, surface: Surface, reason: string): number {
    const waitMs = this.table.failed(client)
    this.refused(client, `${SURFACE_NAMES[surface]} authentication refused`, { reason, waitMs })
    return waitMs
  }

  /** Counts an anonymous connection (a BTP socket before its auth), or says which cap it is over. */
  openAnonymous(client: string): AnonymousTicket | AnonymousRefusal {
    const ticket = this.table.openAnonymous(client)
    if (typeof ticket === 'string') {
      this.refused(client, 'anonymous connection refused', { over: ticket === 'address' ? 'limits.anonymousPerAddress' : 'the anonymous share of limits.maxConnections' })
    }
    return ticket
  }

  closeAnonymous(ticket: AnonymousTicket): void {
    this.table.closeAnonymous(ticket)
  }

  /** Logs a refusal of `client`, once per client and kind per interval (with the count since). */
  refused(client: string, message: string, fields: LogFields = {}): void {
    this.refusals.event(`${client} ${message}`, message, { client, ...fields }, Date.now())
  }

  /**
   * Runs `answer` after `waitMs` (now if 0), unless `gone()` by then. A held answer takes a place
   * among the node's anonymous connections; with none left it is given at once.
   */
  hold(waitMs: number, gone: () => boolean, answer: () => void): void {
    if (waitMs === 0) return answer()
    if (!this.table.openHeld()) return answer()
    setTimeout(() => {
      this.table.closeHeld()
      if (!gone()) answer()
    }, waitMs).unref()
  }
}

/** Whole seconds to tell a client to wait (Retry-After, RFC 9110 §10.2.3): never 0 for a wait. */
export function retryAfterSeconds(waitMs: number): string {
  return String(Math.max(1, Math.ceil(waitMs / 1000)))
}
