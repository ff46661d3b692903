// ILP over HTTP, outgoing: prepares for an account with `http.url` are POSTed there (RFC 35 sync,
// as ilp-plugin-http@1.x speaks it), over a keep-alive connection pool per origin. A 200 answer's
// body goes back to the shard as the reply; any other status, a network error or an oversized
// body fails the prepare (T00 / T01 upstream, via the shard's one reject table). Whether the peer
// answered, whatever the status, goes to shared memory for the admin API (shared/peer_reach.ts).

import { Pool, type Dispatcher } from 'undici'
import { SendFailure } from '../../codec/ilp_errors'
import type { Config } from '../../config/schema'
import { LogOncePer, type Logger } from '../../log'
import type { AccountTable } from '../../config/account_table'
import type { ShardPort } from '../shard_port'
import { failureOf, type PeerReach } from '../../shared/peer_reach'

interface Endpoint {
  url: string
  pool: Pool
  path: string
  authorization: string
}

/** Connections kept open per origin. */
const CONNECTIONS_PER_ORIGIN = 32

export class IlpHttpClient {
  private readonly endpoints: (Endpoint | null)[]
  private readonly pools = new Map<string, Pool>()
  private readonly lateAnswers: LogOncePer

  constructor(
    private readonly config: Config,
    private readonly accounts: AccountTable,
    private readonly shards: ShardPort,
    private readonly reach: PeerReach,
    private readonly log: Logger,
  ) {
    this.endpoints = accounts.accounts.map((_, i) => this.endpoint(i))
    this.lateAnswers = new LogOncePer(log, 'info', 60_000)
  }

  private endpoint(account: number): Endpoint | null {
    const a = this.accounts.get(account)
    if (a.httpUrl === null || !this.accounts.isLive(account)) return null
    const url = new URL(a.httpUrl)
    let pool = this.pools.get(url.origin)
    if (pool === undefined) {
      pool = new Pool(url.origin, {
        connections: CONNECTIONS_PER_ORIGIN,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        headersTimeout: this.config.maxHoldTimeMs,
        bodyTimeout: this.config.maxHoldTimeMs,
        maxResponseSize: this.config.maxHttpBodyBytes,
      })
      this.pools.set(url.origin, pool)
    }
    return { url: a.httpUrl, pool, path: `${url.pathname}${url.search}`, authorization: `Bearer ${a.httpOutgoingToken ?? ''}` }
  }

  /** `account` changed (admin API, reload): its next prepare goes where its new config says. */
  accountChanged(account: number): void {
    const before = this.endpoints[account]
    this.endpoints[account] = this.endpoint(account)
    if (before?.url !== this.endpoints[account]?.url) this.reach.forget(account)
  }

  /** True if `account` sends its prepares over HTTP. */
  serves(account: number): boolean {
    return this.endpoints[account] !== null
  }

  forward(shard: number, account: number, pendingId: number, expiresAtS: number, ilp: Uint8Array): void {
    const endpoint = this.endpoints[account]
    // Deleted, or moved to BTP, since the shard routed the prepare here.
    if (endpoint === null || endpoint === undefined) return this.shards.submitSendFailure(shard, pendingId, SendFailure.PeerNotConnected)
    // The ring's bytes are reused after this call; the request body needs its own copy.
    const body = Buffer.from(ilp)
    // An answer that comes after the shards restarted belongs to a prepare that died with them.
    const incarnation = this.shards.incarnation
    endpoint.pool.request({
      path: endpoint.path,
      method: 'POST',
      headers: {
        authorization: endpoint.authorization,
        'content-type': 'application/octet-stream',
        accept: 'application/octet-stream',
        'ilp-peer-name': this.config.ilpAddress,
      },
      body,
    }).then(async ({ statusCode, body: response }) => {
      const now = Date.now()
      this.reach.answered(account, now)
      if (incarnation !== this.shards.incarnation) return void (await response.dump())
      // After its prepare expired (the shard has answered it R00): dropped, never applied. Ids
      // are only guaranteed fresh for a while after that (shard/pending_table.ts).
      if (now > (expiresAtS + 1) * 1000) {
        await response.dump()
        this.shards.countUnknownAnswer(account)
        return this.lateAnswers.event(this.accounts.get(account).id, 'dropped ILP-over-HTTP answers that came after their prepare expired', { account: this.accounts.get(account).id, status: statusCode }, now)
      }
      if (statusCode !== 200) {
        await response.dump()
        this.log.info('next hop answered ILP-over-HTTP with an error status', { account: this.accounts.get(account).id, status: statusCode })
        return this.shards.submitSendFailure(shard, pendingId, SendFailure.PeerHttpStatus)
      }
      this.shards.submitReply(shard, pendingId, account, new Uint8Array(await response.arrayBuffer()))
    }, (err: Error) => {
      // No answer at all; a body that fails after its head still came from a reachable peer.
      this.reach.failed(account, failureOf(err), Date.now())
      throw err
    }).catch((err: Error) => {
      if (incarnation !== this.shards.incarnation) return
      this.log.info('ILP-over-HTTP request to next hop failed', { account: this.accounts.get(account).id, error: err.message })
      this.shards.submitSendFailure(shard, pendingId, SendFailure.PeerNotConnected)
    })
  }

  /** Sends a control-plane prepare (CCP) to `account` and resolves with its ILP answer. */
  async sendControl(account: number, prepare: Uint8Array): Promise<Uint8Array> {
    const endpoint = this.endpoints[account]
    if (endpoint === null || endpoint === undefined) throw new Error('not connected')
    let answer: Dispatcher.ResponseData
    try {
      answer = await endpoint.pool.request({
        path: endpoint.path,
        method: 'POST',
        headers: { authorization: endpoint.authorization, 'content-type': 'application/octet-stream', 'ilp-peer-name': this.config.ilpAddress },
        body: Buffer.from(prepare),
      })
    } catch (err) {
      // Route updates keep the admin API's view of an idle peer current.
      this.reach.failed(account, failureOf(err), Date.now())
      throw err
    }
    this.reach.answered(account, Date.now())
    const { statusCode, body } = answer
    if (statusCode !== 200) {
      await body.dump()
      throw new Error(`HTTP ${statusCode}`)
    }
    return new Uint8Array(await body.arrayBuffer())
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()))
  }
}
