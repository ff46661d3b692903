// Who is calling: maps a presented token (BTP auth_token, HTTP bearer token) to an account,
// comparing SHA-256 digests in constant time. Tokens are never logged.

import { createHash, timingSafeEqual } from 'node:crypto'
import type { AccountTable } from '../config/account_table'

export enum AuthFailure {
  UnknownAccount = -2,
  NotAccepted = -3,
  InvalidToken = -4,
}

/** A token's SHA-256 digest: what tokens are compared by (in constant time), never the token itself. */
export function tokenDigest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

export class TokenIndex {
  private readonly digests: (Buffer | null)[]

  constructor(private readonly accounts: AccountTable, tokenOf: (index: number) => string | null) {
    this.digests = accounts.accounts.map((_, i) => {
      const token = tokenOf(i)
      return token === null ? null : tokenDigest(token)
    })
  }

  /**
   * The account index for a token, or an AuthFailure (negative). With a username, the token must
   * be that account's; without one (BTP clients of 2018, HTTP peers), the token alone names it.
   */
  authenticate(token: string, username = ''): number {
    const digest = tokenDigest(token)
    if (username !== '') {
      const i = this.accounts.indexOf(username)
      if (i < 0) return AuthFailure.UnknownAccount
      const expected = this.digests[i]
      if (expected === null) return AuthFailure.NotAccepted
      return timingSafeEqual(expected, digest) ? i : AuthFailure.InvalidToken
    }
    let account: number = AuthFailure.InvalidToken
    for (let i = 0; i < this.digests.length; i++) {
      const expected = this.digests[i]
      if (expected !== null && timingSafeEqual(expected, digest)) account = i
    }
    return account
  }
}

/**
 * Slows guessing: after FREE_FAILURES failed authentications from one address within WINDOW_MS,
 * each further refusal to that address is held back, 250 ms doubling up to 8 s. Successful
 * authentications are never delayed, so a client that knows its token is not slowed by another
 * client's failures, only the guessing connections are.
 */
export class AuthThrottle {
  private static readonly FREE_FAILURES = 5
  private static readonly WINDOW_MS = 60_000
  private static readonly FIRST_DELAY_MS = 250
  private static readonly MAX_DELAY_MS = 8_000
  private static readonly MAX_ADDRESSES = 10_000
  private readonly failures = new Map<string, { count: number; since: number }>()

  /** Records a failure from `address`; returns how long to hold back the refusal (ms). */
  failed(address: string, nowMs = Date.now()): number {
    let entry = this.failures.get(address)
    if (entry === undefined || nowMs - entry.since > AuthThrottle.WINDOW_MS) {
      if (this.failures.size >= AuthThrottle.MAX_ADDRESSES) this.failures.delete(this.failures.keys().next().value as string)
      entry = { count: 0, since: nowMs }
      this.failures.set(address, entry)
    }
    entry.count++
    const over = entry.count - AuthThrottle.FREE_FAILURES
    if (over <= 0) return 0
    return Math.min(AuthThrottle.FIRST_DELAY_MS * 2 ** (over - 1), AuthThrottle.MAX_DELAY_MS)
  }
}
