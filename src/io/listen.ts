// Taking the node's port. uWebSockets.js listens with SO_REUSEPORT unless told otherwise, so a
// second node started on a port that is taken would quietly listen beside the first and the
// kernel would split the connections between two processes with two views of the books. A node
// therefore listens exclusively when it has one listener; with several I/O threads (which must
// share the port) it first proves the port free with an exclusive bind of its own, and only
// then lets its threads bind it together.

import { createServer } from 'node:net'
import type { us_listen_socket } from 'uWebSockets.js'
import type { UwsModule } from './uws'

export class PortInUseError extends Error {
  readonly code = 'ILP_NODE_PORT_IN_USE'
}

/** The listen option of uSockets that leaves SO_REUSEPORT off. */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1

function inUse(host: string, port: number): PortInUseError {
  return new PortInUseError(`PORT ${port} on ${host} is in use by another process; stop it or choose another PORT`)
}

/**
 * Binds host:port exclusively and lets it go: resolves with the port (a free one for port 0) or
 * rejects with PortInUseError while any other socket, shared or not, holds it.
 */
export function claimFreePort(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' || err.code === 'EACCES' ? inUse(host, port) : err)
    })
    probe.listen({ host, port, exclusive: true }, () => {
      const taken = (probe.address() as { port: number }).port
      probe.close(() => resolve(taken))
    })
  })
}

/** Listens on host:port; `shared` sets SO_REUSEPORT so that the node's other I/O threads can join. */
export function listenUws(
  uws: UwsModule, app: ReturnType<UwsModule['App']>, host: string, port: number, shared: boolean,
): Promise<{ socket: us_listen_socket; port: number }> {
  return new Promise((resolve, reject) => {
    const done = (socket: us_listen_socket | false) => {
      if (socket === false) reject(inUse(host, port))
      else resolve({ socket, port: uws.us_socket_local_port(socket as never) })
    }
    if (shared) app.listen(host, port, done)
    // Typed without the host, but uWebSockets.js takes (host, port, options, callback).
    else (app.listen as unknown as (h: string, p: number, o: number, cb: typeof done) => void)(host, port, LIBUS_LISTEN_EXCLUSIVE_PORT, done)
  })
}
