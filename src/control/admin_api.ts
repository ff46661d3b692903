// The admin API, on the main thread (an I/O thread that takes the request asks for the answer
// over its control port): what an operator needs to see of a running node. JSON out, amounts as
// decimal strings of base units, never a token.
//
//   GET /admin/accounts        every account: settings, committed balance, holds in flight,
//                              link state, packets and amounts in and out (with metrics on)
//   GET /admin/accounts/:id    one account (404 if unknown)
//   GET /admin/routes          the routing table: each prefix, its next hop, and where the route
//                              came from (config, child, parent, ccp, json)
//
// Every request carries `Authorization: Bearer <adminToken>` (compared as SHA-256 digests in
// constant time): 401 otherwise. With no adminToken configured nothing under /admin answers (404).
// Accounts and routes come from the config file; changing them while the node runs is not
// offered yet, and the methods that would do it answer 405 saying so.

import type { AccountTable } from '../config/account_table'
import type { AccountConfig, Config } from '../config/schema'
import { bearerMatches, tokenDigest } from '../io/auth'
import { parseBtpUrl } from '../io/btp_client'
import { readHolds } from '../ring/holds'
import type { LinkTable } from '../ring/link_table'
import { DIRECTIONS, FULFILL, sumCounterRows } from '../ring/packet_counters'
import type { Wiring } from '../ring/wiring'
import { readBalance, type Store } from '../store/balance_store'
import type { RouteManager } from './route_manager'
import type { AdminRequest, AdminResponse } from '../io/admin_endpoint'

export interface AdminSources {
  config: Config
  accounts: AccountTable
  store: Store
  wiring: () => Wiring
  links: LinkTable
  /** Links up per account, over all I/O threads (the control plane's count). */
  linkCount: Int32Array
  routes: RouteManager
}

export class AdminApi {
  private readonly digest: Buffer | null

  constructor(private readonly s: AdminSources) {
    this.digest = s.config.adminToken === null ? null : tokenDigest(s.config.adminToken)
  }

  handle(request: AdminRequest): AdminResponse {
    if (this.digest === null) return reply(404, { error: 'the admin API is off (set adminToken in the config)' })
    if (!bearerMatches(request.authorization, this.digest)) return reply(401, { error: 'missing or invalid admin bearer token' })
    const parts = request.path.split('/').filter((p) => p !== '').map(decodeURIComponent)
    // parts[0] is "admin"
    if (parts[1] === 'accounts' && parts.length <= 3) {
      if (request.method !== 'GET') return readOnly(request.method, 'accounts')
      if (parts.length === 2) return reply(200, { accounts: this.accountViews() })
      const index = this.s.accounts.accounts.findIndex((a) => a.id === parts[2])
      if (index < 0) return reply(404, { error: `no account ${parts[2]}` })
      return reply(200, this.accountViews()[index])
    }
    if (parts[1] === 'routes' && parts.length === 2) {
      if (request.method !== 'GET') return readOnly(request.method, 'routes')
      return reply(200, { routes: this.s.routes.describe() })
    }
    return reply(404, { error: `no admin endpoint ${request.method} ${request.path}`, endpoints: ['GET /admin/accounts', 'GET /admin/accounts/:id', 'GET /admin/routes'] })
  }

  private accountViews(): Record<string, unknown>[] {
    const { accounts, store, links, linkCount } = this.s
    const wiring = this.s.wiring()
    const holds = readHolds(wiring.holds, accounts.size)
    const traffic = this.traffic(wiring)
    return accounts.accounts.map((a, i) => ({
      id: a.id,
      relation: a.relation,
      asset: { code: a.assetCode, scale: a.assetScale },
      limits: { balanceMinimum: a.balanceMinimum.toString(), balanceMaximum: a.balanceMaximum.toString(), maxPacketAmount: a.maxPacketAmount.toString() },
      transport: transportView(a),
      balance: readBalance(store, a.id).toString(),
      held: holds.held[i].toString(),
      preparesInFlight: holds.prepares[i],
      connected: a.payee !== null || a.httpUrl !== null || linkCount[i] > 0,
      links: linkCount[i],
      ioThread: links.linkedThread(i),
      traffic: traffic === null ? null : traffic[i],
    }))
  }

  /** Per account and direction: packets fulfilled and rejected, and the amounts; null with metrics off. */
  private traffic(wiring: Wiring): Record<string, { fulfilled: number; rejected: number; amountFulfilled: string; amountRejected: string }>[] | null {
    if (wiring.counters === null) return null
    const n = this.s.accounts.size
    const zero = () => ({ fulfilled: 0, rejected: 0, amountFulfilled: 0n, amountRejected: 0n })
    const sums = Array.from({ length: n }, () => DIRECTIONS.map(zero))
    for (const r of sumCounterRows(wiring.counters, n)) {
      const cell = sums[r.account][r.direction]
      if (r.result === FULFILL) {
        cell.fulfilled += r.packets
        cell.amountFulfilled += r.amount
      } else {
        cell.rejected += r.packets
        cell.amountRejected += r.amount
      }
    }
    return sums.map((byDirection) => Object.fromEntries(byDirection.map((c, d) => [DIRECTIONS[d], {
      fulfilled: c.fulfilled, rejected: c.rejected, amountFulfilled: c.amountFulfilled.toString(), amountRejected: c.amountRejected.toString(),
    }])))
  }
}

/** How the account is reached, without its tokens (a dialled URL loses its credentials). */
function transportView(a: AccountConfig): Record<string, unknown> {
  if (a.payee !== null) return { payee: true }
  return {
    btp: a.btpUrl !== null ? { dials: parseBtpUrl(a.btpUrl).url } : a.btpToken !== null ? { listens: true } : null,
    http: a.httpUrl !== null || a.httpIncomingToken !== null ? { incoming: a.httpIncomingToken !== null, url: a.httpUrl } : null,
  }
}

function readOnly(method: string, what: string): AdminResponse {
  return reply(405, { error: `${method} is not offered: ${what} come from the config file (CONFIG) and change with a restart` })
}

function reply(status: number, value: unknown): AdminResponse {
  return { status, body: JSON.stringify(value) }
}
