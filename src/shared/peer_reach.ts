// Whether each ILP-over-HTTP peer answers: shared memory written by the I/O thread that sends the
// account's requests (its home thread, shared/link_table.ts) and read by the admin API on the main
// thread, which thus learns it without a message per packet.
//
//   SAB: Uint32 answeredAt[accounts]  Unix seconds of the newest HTTP answer (any status); 0: none yet
//        Uint32 failedAt[accounts]    Unix seconds of the newest request that got no answer, or 0
//                                     once an answer has come after it
//        Uint32 failure[accounts]     why that request got none (an index in FAILURES)
//
// Seconds fit a Uint32 until 2106, and Atomics take a Uint32Array (a BigInt64 cell would cost a
// BigInt per answer). An answer costs two loads, and a store only when the second has turned or a
// failure is to be cleared. The three cells are not one atomic value: a reader may see a failure's
// time with the reason of the one before, for as long as the writer takes between two stores.
// "Newest" is by arrival: with many requests in flight, an early request's late answer counts.

/** Why a request got no HTTP answer; index 0 is unused (no failure). */
export const FAILURES = ['', 'connection refused', 'connection timed out', 'no answer in time', 'host not found', 'connection closed', 'network error'] as const

const FAILURE_OF_CODE = new Map<string, number>([
  ['ECONNREFUSED', 1],
  ['UND_ERR_CONNECT_TIMEOUT', 2], ['ETIMEDOUT', 2],
  ['UND_ERR_HEADERS_TIMEOUT', 3], ['UND_ERR_BODY_TIMEOUT', 3], ['REQUEST_TIMEOUT', 3],
  ['ENOTFOUND', 4], ['EAI_AGAIN', 4],
  ['ECONNRESET', 5], ['UND_ERR_SOCKET', 5], ['EPIPE', 5], ['CONNECTION_CLOSED', 5],
])

/** The FAILURES index of a request's error (undici's, the socket's, and io/http/http1_connection.ts's codes). */
export function failureOf(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code
  return (typeof code === 'string' ? FAILURE_OF_CODE.get(code) : undefined) ?? FAILURES.length - 1
}

export interface PeerReachView {
  /** The newest request got an HTTP answer; null: no request sent yet. */
  connected: boolean | null
  lastAnswerAt: string | null
  lastFailureAt: string | null
  lastFailure: string | null
}

export class PeerReach {
  private readonly answeredAt: Uint32Array
  private readonly failedAt: Uint32Array
  private readonly failure: Uint32Array

  static create(accounts: number): SharedArrayBuffer {
    return new SharedArrayBuffer(4 * 3 * accounts)
  }

  constructor(sab: SharedArrayBuffer, accounts: number) {
    this.answeredAt = new Uint32Array(sab, 0, accounts)
    this.failedAt = new Uint32Array(sab, 4 * accounts, accounts)
    this.failure = new Uint32Array(sab, 8 * accounts, accounts)
  }

  /** I/O thread side: `account` answered a request (any HTTP status) at `nowMs`. */
  answered(account: number, nowMs: number): void {
    const s = Math.floor(nowMs / 1000)
    if (Atomics.load(this.answeredAt, account) !== s) Atomics.store(this.answeredAt, account, s)
    if (Atomics.load(this.failedAt, account) !== 0) Atomics.store(this.failedAt, account, 0)
  }

  /** I/O thread side: a request to `account` got no answer (`failure`: a FAILURES index). */
  failed(account: number, failure: number, nowMs: number): void {
    // The reason first: a reader that sees the new time mostly sees its reason too.
    Atomics.store(this.failure, account, failure)
    Atomics.store(this.failedAt, account, Math.floor(nowMs / 1000))
  }

  /** I/O thread side: `account` now sends elsewhere (or not over HTTP): what was known is of the old URL. */
  forget(account: number): void {
    Atomics.store(this.answeredAt, account, 0)
    Atomics.store(this.failedAt, account, 0)
    Atomics.store(this.failure, account, 0)
  }

  /** Control side: what the admin API shows of `account`. */
  view(account: number): PeerReachView {
    const failedAt = Atomics.load(this.failedAt, account)
    const answeredAt = Atomics.load(this.answeredAt, account)
    const iso = (s: number) => (s === 0 ? null : new Date(s * 1000).toISOString())
    return {
      connected: failedAt !== 0 ? false : answeredAt !== 0 ? true : null,
      lastAnswerAt: iso(answeredAt),
      lastFailureAt: iso(failedAt),
      lastFailure: failedAt === 0 ? null : FAILURES[Atomics.load(this.failure, account)] ?? FAILURES[FAILURES.length - 1],
    }
  }
}
