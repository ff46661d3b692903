// Requests that ask to switch protocols get a clear answer. A good WebSocket handshake never
// reaches an HTTP route (uWebSockets.js hands it to the BTP listener), so an `Upgrade` header
// seen here is one of:
//   h2c            ignored, as RFC 7540 §3.2 lets a server that does not speak HTTP/2 do: the
//                  request is answered in HTTP/1.1 (curl --http2 keeps working)
//   websocket      a handshake uWebSockets.js could not take (not a GET, a bad key, a version
//                  other than 13; RFC 6455 §4.2.1): 400, and the connection closes
//   anything else  a protocol the node does not speak: 400 naming what it speaks, and the
//                  connection closes (RFC 9110 §7.8 lets a server refuse an upgrade)
// (HTTP/2 with prior knowledge never reaches a route at all; see http2_refusal.ts.)

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js'

const ROUTE_METHODS = ['get', 'post', 'options', 'del', 'patch', 'put', 'head', 'connect', 'trace', 'any'] as const

type Handler = (res: HttpResponse, req: HttpRequest) => void

/** Wraps every HTTP route registered on `app` from now on with the upgrade check; returns `app`. */
export function refuseUnknownUpgrades(app: TemplatedApp): TemplatedApp {
  for (const method of ROUTE_METHODS) {
    const register = (app[method] as (pattern: string, handler: Handler) => TemplatedApp).bind(app)
    Object.defineProperty(app, method, {
      value: (pattern: string, handler: Handler) => register(pattern, (res, req) => {
        if (!refusedUpgrade(res, req)) handler(res, req)
      }),
    })
  }
  return app
}

/** Answers (and closes) a request whose upgrade the node will not make; false for any other request. */
function refusedUpgrade(res: HttpResponse, req: HttpRequest): boolean {
  const upgrade = req.getHeader('upgrade')
  if (upgrade === '') return false
  const wanted = upgrade.toLowerCase()
  if (/^\s*h2c\s*(,|$)/.test(wanted)) return false
  const message = wanted.includes('websocket')
    ? 'malformed WebSocket handshake: BTP needs a GET with Sec-WebSocket-Key and Sec-WebSocket-Version: 13\n'
    : `cannot upgrade to ${JSON.stringify(upgrade.slice(0, 64))}: this node speaks HTTP/1.1 and WebSocket (BTP)\n`
  res.writeStatus('400 Bad Request').writeHeader('Content-Type', 'text/plain').end(message, true)
  return true
}
