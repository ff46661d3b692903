// /admin/* on the node's port, on whichever I/O thread the request lands: the answer is made on
// the main thread (control/ops/admin_api.ts), which holds the config, the route manager and every
// thread's shared counters; an I/O worker asks for it over its control port. Only the method,
// the path and query, the Authorization and Idempotency-Key headers and the body cross over.
// The admin token is guessed at like any other: the client gate (client_gate.ts) holds a wrong
// one's refusal, and checks no token of an address while it waits.

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js'
import type { Logger } from '../../log'
import type { ClientGate } from '../client_gate'
import { refusalText } from './admin_errors'
import { tokenDigest } from '../auth'

/** What crosses to the main thread. */
export interface AdminRequest {
  method: string
  /** The URL path, without the query. */
  path: string
  /** The query string, without the '?'. */
  query: string
  authorization: string
  idempotencyKey: string
  /** The body as text (UTF-8); '' when there is none. */
  body: string
}

/** Largest admin request body accepted (an account's settings are well under 1 KiB). */
export const MAX_ADMIN_BODY_BYTES = 65536

export interface AdminResponse {
  status: number
  body: string
  /** With a 405: the methods the path takes (RFC 9110 §15.5.6 asks for an Allow header). */
  allow?: string
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict',
  413: 'Payload Too Large', 429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable',
}

function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? ''}`.trim()
}

const UNAUTHORIZED = refusalText('unauthorized', 'missing or invalid admin bearer token').body
const INTERNAL = refusalText('internal', 'internal error')

/**
 * `adminToken`: checked here, on the thread that took the request, before anything is read or
 * sent on (so that a burst of guesses is held here, each one counted as it comes, and a request
 * without the token costs the main thread nothing); null: the admin API is off, which the main
 * thread answers.
 */
export function registerAdmin(app: TemplatedApp, adminToken: string | null, answer: (request: AdminRequest) => Promise<AdminResponse>, gate: ClientGate, log: Logger): void {
  const digest = adminToken === null ? null : tokenDigest(adminToken)
  const handler = (res: HttpResponse, req: HttpRequest): void => {
    const head = {
      method: req.getMethod().toUpperCase(), path: req.getUrl(), query: req.getQuery() ?? '',
      authorization: req.getHeader('authorization'), idempotencyKey: req.getHeader('idempotency-key'),
    }
    const client = gate.clientOf(res, req)
    let aborted = false
    res.onAborted(() => { aborted = true })
    const write = (response: AdminResponse, retryAfter?: string) => {
      if (aborted) return
      res.cork(() => {
        res.writeStatus(statusLine(response.status)).writeHeader('Content-Type', 'application/json')
        if (response.status === 401) res.writeHeader('WWW-Authenticate', 'Bearer')
        if (response.allow !== undefined) res.writeHeader('Allow', response.allow)
        if (retryAfter !== undefined) res.writeHeader('Retry-After', retryAfter)
        res.end(response.body)
      })
    }
    const refuse = (status: 401 | 429, retryAfter?: string) => write(status === 401 ? { status, body: UNAUTHORIZED }
      : refusalText('too_many_failures', `too many failed authentications from this address; try again in ${retryAfter} s`), retryAfter)
    if (digest !== null && !gate.authorizeBearer(client, 'admin', head.authorization, [digest], () => aborted, refuse)) return
    const chunks: Buffer[] = []
    let size = 0
    res.onData((chunk, isLast) => {
      if (size < 0) return
      size += chunk.byteLength
      if (size > MAX_ADMIN_BODY_BYTES) {
        size = -1
        gate.refused(client, 'admin request body too large', { method: head.method, limit: MAX_ADMIN_BODY_BYTES })
        const tooLarge = refusalText('body_too_large', `the body is over ${MAX_ADMIN_BODY_BYTES} bytes`, '(body)')
        if (!aborted) res.cork(() => res.writeStatus(statusLine(tooLarge.status)).writeHeader('Content-Type', 'application/json').end(tooLarge.body, true))
        return
      }
      // uWebSockets.js reuses the chunk's memory after this callback.
      chunks.push(Buffer.from(new Uint8Array(chunk)))
      if (isLast) respond({ ...head, body: Buffer.concat(chunks).toString('utf8') })
    })
    const respond = (request: AdminRequest) => answer(request).then((response) => write(response), (err: Error) => {
      log.error('admin request failed', { method: request.method, path: request.path, error: err.message })
      write(INTERNAL)
    })
  }
  app.any('/admin', handler)
  app.any('/admin/*', handler)
}
