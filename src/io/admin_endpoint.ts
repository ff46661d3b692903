// /admin/* on the node's port, on whichever I/O thread the request lands: the answer is made on
// the main thread (control/admin_api.ts), which holds the config, the route manager and every
// thread's shared counters; an I/O worker asks for it over its control port. Only the method,
// the path and the Authorization header cross over.

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js'
import type { Logger } from '../log'

/** What crosses to the main thread: the method, the path and the Authorization header. */
export interface AdminRequest {
  method: string
  /** The URL path, without the query. */
  path: string
  authorization: string
}

export interface AdminResponse {
  status: number
  body: string
}

const STATUS_TEXT: Record<number, string> = { 200: 'OK', 401: 'Unauthorized', 404: 'Not Found', 405: 'Method Not Allowed', 500: 'Internal Server Error' }

function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? ''}`.trim()
}

export function registerAdmin(app: TemplatedApp, answer: (request: AdminRequest) => Promise<AdminResponse>, log: Logger): void {
  const handler = (res: HttpResponse, req: HttpRequest): void => {
    const request: AdminRequest = { method: req.getMethod().toUpperCase(), path: req.getUrl(), authorization: req.getHeader('authorization') }
    let aborted = false
    res.onAborted(() => { aborted = true })
    answer(request).then((response) => {
      if (response.status === 401) log.info('admin request refused: bad or missing admin token', { method: request.method, path: request.path })
      if (!aborted) res.cork(() => res.writeStatus(statusLine(response.status)).writeHeader('Content-Type', 'application/json').end(response.body))
    }, (err: Error) => {
      log.error('admin request failed', { method: request.method, path: request.path, error: err.message })
      if (!aborted) res.cork(() => res.writeStatus('500 Internal Server Error').writeHeader('Content-Type', 'application/json').end('{"error":"internal error"}'))
    })
  }
  app.any('/admin', handler)
  app.any('/admin/*', handler)
}
