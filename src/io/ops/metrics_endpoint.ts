// GET /metrics, on whichever I/O thread the scrape lands: the exposition is made on the main
// thread (control/ops/metrics.ts), which reads every thread's counters; an I/O worker asks for it over
// its control port. The exposition names accounts and shows their balances and traffic, so it is
// private unless the operator opens it:
//   on the node's port     Authorization: Bearer <metrics.token or adminToken>; with neither
//                          configured, 403 saying how to open it; `metrics.public: true` opens it
//   on ADMIN_PORT          open, as the admin interface is the operator's own (metrics.token,
//                          when set, is asked for there too)
// Tokens are compared as SHA-256 digests in constant time, and wrong ones go through the client
// gate (client_gate.ts) like every other token. With metrics off the path answers 404.

import type { HttpResponse, TemplatedApp } from 'uWebSockets.js'
import type { Config } from '../../config/schema'
import type { Logger } from '../../log'
import { tokenDigest } from '../auth'
import type { ClientGate } from '../client_gate'

export const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8'

/** Where the endpoint is: the node's own (public) port, or the admin listener (ADMIN_PORT). */
export type MetricsPlace = 'node' | 'admin'

/** The tokens a scrape may present here; null: none is needed; []: metrics are closed here. */
export function metricsTokens(config: Config, place: MetricsPlace): string[] | null {
  if (config.metrics.token !== null) return [config.metrics.token, ...(config.adminToken === null ? [] : [config.adminToken])]
  if (place === 'admin' || config.metrics.public) return null
  return config.adminToken === null ? [] : [config.adminToken]
}

const CLOSED = 'metrics are private: scrape with Authorization: Bearer <metrics.token or adminToken>, serve them on ADMIN_PORT, or set metrics.public: true in the config\n'

export function registerMetrics(app: TemplatedApp, config: Config, place: MetricsPlace, exposition: () => Promise<string>, gate: ClientGate, log: Logger): void {
  const tokens = metricsTokens(config, place)
  const digests = tokens?.map(tokenDigest) ?? null
  app.get('/metrics', (res: HttpResponse, req) => {
    if (!config.metrics.enabled) {
      res.writeStatus('404 Not Found').writeHeader('Content-Type', 'text/plain').end('metrics are off (metrics.enabled in the config)\n')
      return
    }
    if (digests !== null && digests.length === 0) {
      res.writeStatus('403 Forbidden').writeHeader('Content-Type', 'text/plain').end(CLOSED)
      return
    }
    let aborted = false
    res.onAborted(() => { aborted = true })
    const refuse = (status: string, body: string, retryAfter?: string) => {
      if (aborted) return
      res.cork(() => {
        res.writeStatus(status).writeHeader('Content-Type', 'text/plain').writeHeader('WWW-Authenticate', 'Bearer')
        if (retryAfter !== undefined) res.writeHeader('Retry-After', retryAfter)
        res.end(body)
      })
    }
    if (digests !== null && !gate.authorizeBearer(gate.clientOf(res, req), 'metrics', req.getHeader('authorization'), digests, () => aborted, (status, retryAfter) => {
      if (status === 429) refuse('429 Too Many Requests', 'too many failed authentications from this address; try again later\n', retryAfter)
      else refuse('401 Unauthorized', 'missing or invalid bearer token\n')
    })) return
    exposition().then((text) => {
      if (!aborted) res.cork(() => res.writeStatus('200 OK').writeHeader('Content-Type', PROMETHEUS_TEXT).end(text))
    }, (err: Error) => {
      log.error('metrics exposition failed', { error: err.message })
      if (!aborted) res.cork(() => res.writeStatus('500 Internal Server Error').end('metrics unavailable\n'))
    })
  })
}

/** How to reach /metrics with this config, for the line the node logs at start. */
export function metricsAccess(config: Config): string {
  if (!config.metrics.enabled) return 'off (metrics.enabled: false)'
  if (config.adminListen !== null) return `on ADMIN_PORT only${config.metrics.token === null ? '' : ', with Authorization: Bearer <metrics.token or adminToken>'}`
  const tokens = metricsTokens(config, 'node')
  if (tokens === null) return 'open to anyone on the node\'s port (metrics.public: true)'
  if (tokens.length === 0) return 'closed: set metrics.token or adminToken and scrape with Authorization: Bearer <token>, set ADMIN_PORT, or set metrics.public: true'
  return `with Authorization: Bearer <${config.metrics.token === null ? 'adminToken' : 'metrics.token or adminToken'}>`
}
