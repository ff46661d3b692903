// Who a client is, for the per-address limits (shared/client_table.ts): the remote address of its
// socket, or, when that socket comes from a reverse proxy the operator trusts
// (limits.trustedProxies), the address the proxies say they forwarded for (X-Forwarded-For, read
// from the right: each trusted proxy appends the address it received from, so the first entry
// from the right that is not a trusted proxy is the client; entries further left are the
// client's own claims and are never believed).

import type { HttpRequest, HttpResponse } from 'uWebSockets.js'
import { addressBytes, clientKey, inBlock, parseBlock, type Block } from '../codec/ip_address'

export class ClientAddresses {
  private readonly proxies: Block[]

  constructor(trustedProxies: readonly string[]) {
    this.proxies = trustedProxies.map((p) => parseBlock(p)!)
  }

  private trusted(text: string): boolean {
    if (this.proxies.length === 0) return false
    const bytes = addressBytes(text.trim())
    return bytes !== null && this.proxies.some((block) => inBlock(bytes, block))
  }

  /**
   * The client behind a request, as its limits know it (clientKey). Reads X-Forwarded-For only
   * when the socket's peer is a trusted proxy: anyone else could write any address there.
   */
  of(res: HttpResponse, req: HttpRequest): string {
    const remote = Buffer.from(res.getRemoteAddressAsText()).toString()
    return clientKey(this.proxies.length === 0 ? remote : this.behindProxies(remote, forwardedFor(req)))
  }

  /** The first address from the right of [...forwardedFor, remote] that is not a trusted proxy. */
  behindProxies(remote: string, forwardedFor: string): string {
    if (!this.trusted(remote) || forwardedFor === '') return remote
    const hops = forwardedFor.split(',')
    // A long header is the client's own padding: only the hops a chain of proxies could add count.
    for (let i = hops.length - 1; i >= Math.max(0, hops.length - 16); i--) {
      const hop = bareAddress(hops[i])
      // A hop that is no address is still this client's (not the proxy's: that would make every
      // client behind the proxy share one allowance).
      if (!this.trusted(hop)) return hop
    }
    return bareAddress(hops[Math.max(0, hops.length - 16)])
  }
}

/**
 * Every X-Forwarded-For line of the request, in order, as one list: a proxy may add a line of its
 * own after the client's (HAProxy's `option forwardfor` does), and uWS's getHeader reads the first.
 */
function forwardedFor(req: HttpRequest): string {
  let all = ''
  req.forEach((name, value) => {
    if (name === 'x-forwarded-for') all = all === '' ? value : `${all},${value}`
  })
  return all
}

/** A hop as proxies write it, without a port or brackets: "1.2.3.4:5678" and "[2001:db8::1]:80" name addresses. */
function bareAddress(text: string): string {
  const hop = text.trim()
  if (hop.startsWith('[')) return hop.slice(1, hop.indexOf(']') < 0 ? undefined : hop.indexOf(']'))
  const colon = hop.indexOf(':')
  return colon > 0 && colon === hop.lastIndexOf(':') ? hop.slice(0, colon) : hop
}
