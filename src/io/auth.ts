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

/** The token of an `Authorization: Bearer <token>` header; '' for any other header. */
export function bearerToken(authorization: string): string {
  return authorization.startsWith('Bearer ') ? authorization.slice(7).trim() : ''
}

/** True if the header carries the one token whose digest is `digest` (compared in constant time). */
export function bearerMatches(authorization: string, digest: Buffer): boolean {
  return bearerMatchesAny(authorization, [digest])
}

/** True if the header carries one of the tokens of `digests`; every one is compared, so the time says nothing of which. */
export function bearerMatchesAny(authorization: string, digests: readonly Buffer[]): boolean {
  const presented = tokenDigest(bearerToken(authorization))
  let matched = false
  for (const digest of digests) if (timingSafeEqual(presented, digest)) matched = true
  return matched
}

export class TokenIndex {
  private digests: (Buffer | null)[] = []
  /** The table's version these digests follow (AccountTable.version). */
  private version = -1

  constructor(private readonly accounts: AccountTable, private readonly tokenOf: (index: number) => string | null) {
    this.rebuild()
  }

  /**
   * The accounts changed (admin API, reload): a deleted account's token names no one from now on.
   * Only the slots of the table's newest change are hashed again when these digests followed the
   * one before it, so one change costs the same with 50 accounts as with 50,000.
   */
  rebuild(): void {
    const indices = this.version === this.accounts.version - 1 ? this.accounts.lastChanged : null
    this.version = this.accounts.version
    if (indices === null) {
      this.digests = this.accounts.accounts.map((_, i) => this.digestOf(i))
      return
    }
    for (const i of indices) this.digests[i] = this.digestOf(i)
  }

  private digestOf(i: number): Buffer | null {
    const token = this.accounts.isLive(i) ? this.tokenOf(i) : null
    return token === null ? null : tokenDigest(token)
  }

  /**
   * The account index for a token, or an AuthFailure (negative). With a username, the token must
   * be that account's; without one (BTP clients of 2018, HTTP peers), the token alone names it.
   */
  authenticate(token: string, username = ''): number {
    const digest = tokenDigest(token)
    if (username !== '') {
      const i = this.accounts.indexOfLive(username)
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
