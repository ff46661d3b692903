// GET /metrics on the node's port, on whichever I/O thread the scrape lands: the exposition is
// made on the main thread (control/metrics.ts), which reads every thread's counters; an I/O
// worker asks for it over its control port. With `metrics.token` set, the scraper must send
// `Authorization: Bearer <token>` (compared as SHA-256 digests in constant time); with metrics off
// the path answers 404.

import type { HttpResponse, TemplatedApp } from 'uWebSockets.js'
import type { Config } from '../config/schema'
import type { Logger } from '../log'
import { bearerMatches, tokenDigest } from './auth'

export const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8'

export function registerMetrics(app: TemplatedApp, config: Config, exposition: () => Promise<string>, log: Logger): void {
  const digest = config.metrics.token === null ? null : tokenDigest(config.metrics.token)
  app.get('/metrics', (res: HttpResponse, req) => {
    if (!config.metrics.enabled) {
      res.writeStatus('404 Not Found').writeHeader('Content-Type', 'text/plain').end('metrics are off (metrics.enabled in the config)\n')
      return
    }
    if (digest !== null) {
      if (!bearerMatches(req.getHeader('authorization'), digest)) {
        log.info('metrics scrape refused: bad or missing bearer token')
        res.writeStatus('401 Unauthorized').writeHeader('WWW-Authenticate', 'Bearer').end('missing or invalid bearer token\n')
        return
      }
    }
    let aborted = false
    res.onAborted(() => { aborted = true })
    exposition().then((text) => {
      if (!aborted) res.cork(() => res.writeStatus('200 OK').writeHeader('Content-Type', PROMETHEUS_TEXT).end(text))
    }, (err: Error) => {
      log.error('metrics exposition failed', { error: err.message })
      if (!aborted) res.cork(() => res.writeStatus('500 Internal Server Error').end('metrics unavailable\n'))
    })
  })
}
