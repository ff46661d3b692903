// Who is calling: maps a presented token (BTP auth_token, HTTP bearer token) to an account by
// its SHA-256 digest. Tokens are never logged. With a username (BTP), the one account's digest is
// compared in constant time. Without one (an HTTP request, every request), the digest is looked
// up in a map: O(1) whatever the number of accounts, where comparing against each account's
// digest cost a compare per account per request. A lookup's timing can tell at most how much of
// a guess's digest matched a key's, and a digest is no help in finding the token behind it
// (SHA-256 preimage resistance): the reason tokens are compared by digest at all.

import * as crypto from 'node:crypto'
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

/** crypto.hash (Node 20.12+): one call, no Hash object, about half createHash's cost per token. */
const oneShotHash = crypto.hash as typeof crypto.hash | undefined

/** A token's SHA-256 digest as a map key ('binary', i.e. latin1: one character per byte). */
function digestKey(token: string): string {
  return oneShotHash !== undefined ? oneShotHash('sha256', token, 'binary') : createHash('sha256').update(token, 'utf8').digest('binary')
}

export class TokenIndex {
  private digests: (Buffer | null)[] = []
  /** Each live account's token digest (digestKey) → its index. */
  private byDigest = new Map<string, number>()

  constructor(private readonly accounts: AccountTable, private readonly tokenOf: (index: number) => string | null) {
    this.rebuild()
  }

  /** The accounts changed (admin API, reload): a deleted account's token names no one from now on. */
  rebuild(): void {
    this.digests = this.accounts.accounts.map((_, i) => {
      const token = this.accounts.isLive(i) ? this.tokenOf(i) : null
      return token === null ? null : tokenDigest(token)
    })
    this.byDigest = new Map()
    this.digests.forEach((digest, i) => { if (digest !== null) this.byDigest.set(digest.toString('binary'), i) })
  }

  /**
   * The account index for a token, or an AuthFailure (negative). With a username, the token must
   * be that account's; without one (BTP clients of 2018, HTTP peers), the token alone names it.
   */
  authenticate(token: string, username = ''): number {
    if (username === '') return this.byDigest.get(digestKey(token)) ?? AuthFailure.InvalidToken
    const i = this.accounts.indexOfLive(username)
    if (i < 0) return AuthFailure.UnknownAccount
    const expected = this.digests[i]
    if (expected === null) return AuthFailure.NotAccepted
    return timingSafeEqual(expected, tokenDigest(token)) ? i : AuthFailure.InvalidToken
  }
}
