// Preloaded into the node's process (`node -r dist/test/support/fail_on_signal.js dist/src/main.js`)
// to fail it as a bug would, outside any handler of the node's:
//   - on the main thread, from a timer: on SIGUSR2 (sent once the node listens), or with
//     FAIL_AT=start while it starts;
//   - FAIL_IN=request: in the main thread's uWebSockets.js handler of a GET that carries an
//     `x-fail` header, before it answers;
//   - FAIL_IN=workers: in every worker thread as it starts (`-r` runs in each of them too), or
//     FAIL_AFTER_MS later (only the I/O threads then: a shard's loop never returns to run a timer).
// It throws, or with FAIL_WITH=rejection rejects a promise no one waits for; with FAIL_ONCE (a
// file's path) only in the first thread to get there.

import { closeSync, openSync } from 'node:fs'
import { isMainThread } from 'node:worker_threads'
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js'

/** A second line and a direction override, which every log line must escape. */
const FAILURE_MESSAGE = 'injected failure\n    at nowhere (forged.js:1:1)\u202e'

function firstToFail(): boolean {
  const path = process.env.FAIL_ONCE
  if (path === undefined) return true
  try {
    closeSync(openSync(path, 'wx'))
    return true
  } catch {
    return false
  }
}

function fail(): void {
  setTimeout(() => {
    if (!firstToFail()) return
    const err = new Error(FAILURE_MESSAGE)
    if (process.env.FAIL_WITH === 'rejection') void Promise.reject(err)
    else throw err
  }, Number(process.env.FAIL_AFTER_MS ?? 0))
}

/**
 * Every app's GET handlers throw for a request with an `x-fail` header. (A proxy, which still
 * reads as native code to the node's check that it did not get uWebSockets.js's JS fallback.)
 */
function failInRequests(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const uws = require('uWebSockets.js') as { App: (...args: unknown[]) => TemplatedApp }
  uws.App = new Proxy(uws.App, {
    apply(makeApp, self, args) {
      const app = Reflect.apply(makeApp, self, args) as TemplatedApp
      const get = app.get.bind(app)
      app.get = (pattern, handler) => get(pattern, (res: HttpResponse, req: HttpRequest) => {
        if (req.getHeader('x-fail') !== '') throw new Error(FAILURE_MESSAGE)
        return handler(res, req)
      })
      return app
    },
  })
}

if (process.env.FAIL_IN === 'workers') {
  if (!isMainThread) fail()
} else if (isMainThread) {
  if (process.env.FAIL_IN === 'request') failInRequests()
  else if (process.env.FAIL_AT === 'start') fail()
  else process.on('SIGUSR2', fail)
}
