// A prompt "no" to HTTP/2 clients with prior knowledge (src/native/http2_refusal.cc, built into
// dist/native/http2_refusal.node by `npm run build`). uWebSockets.js reads their connection
// preface as an unfinished HTTP/1.1 request and waits, silent, until its 10 s idle timeout; the
// addon answers the preface beneath the parser with an HTTP/2 GOAWAY (HTTP_1_1_REQUIRED, RFC 7540
// section 7) and closes the connection. Installed on each listener once it listens; each I/O
// thread has its own app, so each installs it on its own. Where the addon is not built, or does
// not find uWebSockets.js's handler where it looks, nothing changes but the wait.

import { dirname, join } from 'node:path'
import type { us_listen_socket } from 'uWebSockets.js'

interface Http2RefusalAddon {
  /** True once the listener's connections are refused on the preface; throws only if it broke the listener. */
  refuse(listenSocket: us_listen_socket, uwsBinary: string): boolean
}

/** The line a listener logs when its HTTP/2 clients are not refused. */
export const HTTP2_NOT_REFUSED = "HTTP/2 prior-knowledge clients will wait for uWebSockets.js's 10 s idle timeout instead of being refused at once"

function load(): { addon: Http2RefusalAddon | null; reason: string | null } {
  try {
    // dist/src/io → dist/native
    return { addon: require(join(__dirname, '..', '..', '..', 'native', 'http2_refusal.node')) as Http2RefusalAddon, reason: null }
  } catch (err) {
    return { addon: null, reason: `addon not loaded: ${(err as Error).message.split('\n')[0]}` }
  }
}

const loaded = load()
let unrefusedBecause: string | null = loaded.reason

/**
 * The uWebSockets.js binary in this process: the package's entry point (which src/io/uws.ts
 * requires) loads the one for this platform, architecture and Node.js ABI from its binaries/.
 */
function uwsBinary(): string {
  const entry = require.resolve('uWebSockets.js')
  return join(dirname(entry), '..', 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`)
}

/** Refuses HTTP/2 prior knowledge on the listener's connections from now on; false where it cannot (see http2NotRefusedReason). */
export function refuseHttp2PriorKnowledge(listenSocket: us_listen_socket): boolean {
  if (loaded.addon === null) return false
  if (loaded.addon.refuse(listenSocket, uwsBinary())) return true
  unrefusedBecause = "the addon did not find uWebSockets.js's HTTP data handler (another uWebSockets.js build?)"
  return false
}

/** Why the last refuseHttp2PriorKnowledge in this thread answered false. */
export function http2NotRefusedReason(): string | null {
  return unrefusedBecause
}
