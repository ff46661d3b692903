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
      this.digests = []
      this.byDigest = new Map()
      this.accounts.accounts.forEach((_, i) => this.follow(i))
      return
    }
    for (const i of indices) this.follow(i)
  }

  /** Slot `i`'s digest as the table has it now, in both the array and the map. */
  private follow(i: number): void {
    const before = this.digests[i]
    if (before !== null && before !== undefined && this.byDigest.get(before.toString('binary')) === i) this.byDigest.delete(before.toString('binary'))
    const token = this.accounts.isLive(i) ? this.tokenOf(i) : null
    const digest = token === null ? null : tokenDigest(token)
    this.digests[i] = digest
    if (digest !== null) this.byDigest.set(digest.toString('binary'), i)
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
