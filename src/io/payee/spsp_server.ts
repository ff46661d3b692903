// SPSP for the node's payees (RFC 9; payment pointers, RFC 26), on the node's one port:
//   GET /<payee>, GET /.well-known/pay (the default payee)     a payment pointer's endpoint
//     Accept: application/spsp+json   → SPSP for PSK2 (destination_account, shared_secret in
//                                       padded base64, asset_info, and ledger_info / receiver_info
//                                       for the clients of 2018)
//     Accept: application/spsp4+json  → SPSP v4, for STREAM
//   unknown payee → 404 {"id":"InvalidReceiverError","message":"Invalid receiver ID"}
//   GET /payees/<payee> with Authorization: Bearer <adminToken> → the payee's balance and payments
// Each query makes a fresh token, so each sender gets its own address and shared secret; the
// receiver derives the same secret from the token in the address (shard/payee/receiver.ts).

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js'
import type { AccountConfig, Config } from '../../config/schema'
import type { Logger } from '../../log'
import { decodePayment, readBalance, type Store } from '../../store/balance_store'
import { tokenDigest } from '../auth'
import type { ClientGate } from '../client_gate'
import { newReceiverAddress } from '../../codec/receiver_address'

const SPSP4 = 'application/spsp4+json'
const SPSP = 'application/spsp+json'
const NOT_FOUND = JSON.stringify({ id: 'InvalidReceiverError', message: 'Invalid receiver ID' })
/** Most payments a payee view lists (newest first). */
const MAX_LISTED_PAYMENTS = 1000

export class SpspServer {
  private readonly payees = new Map<string, AccountConfig>()
  /** What the admin view can show: the payees and the shop's own. */
  private readonly viewable = new Map<string, AccountConfig>()
  private readonly adminDigest: Buffer | null

  constructor(private readonly config: Config, private readonly store: Store, private readonly gate: ClientGate, private readonly log: Logger) {
    for (const a of config.accounts) {
      if (a.payee === null) continue
      this.viewable.set(a.id, a)
      if (!a.payee.shop) this.payees.set(a.id, a)
    }
    this.adminDigest = config.adminToken === null ? null : tokenDigest(config.adminToken)
  }

  register(app: TemplatedApp): void {
    app.get('/.well-known/pay', (res, req) => this.query(res, req, this.config.defaultPayee))
    app.options('/.well-known/pay', (res) => this.preflight(res))
    for (const name of this.payees.keys()) {
      app.get(`/${name}`, (res, req) => this.query(res, req, name))
      app.options(`/${name}`, (res) => this.preflight(res))
    }
    app.get('/payees/:name', (res, req) => this.view(res, req))
  }

  /** Answers GETs that asked for SPSP at a path that is no payee's (the caller's 404 otherwise). */
  wantsSpsp(req: HttpRequest): boolean {
    const accept = req.getHeader('accept')
    return accept.includes(SPSP) || accept.includes(SPSP4)
  }

  notFound(res: HttpResponse): void {
    res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json').writeHeader('Access-Control-Allow-Origin', '*').end(NOT_FOUND)
  }

  private query(res: HttpResponse, req: HttpRequest, name: string | null): void {
    const payee = name === null ? undefined : this.payees.get(name)
    if (payee === undefined) return this.notFound(res)
    const address = `${this.config.ilpAddress}.${payee.id}`
    const accept = req.getHeader('accept')
    let type: string
    let body: string
    if (accept.includes(SPSP4)) {
      type = SPSP4
      const { destination, sharedSecret } = newReceiverAddress('stream', address, payee.payee!.secret!)
      body = JSON.stringify({
        destination_account: destination,
        shared_secret: sharedSecret.toString('base64'),
        asset_info: { code: payee.assetCode, scale: payee.assetScale },
      })
    } else {
      type = SPSP
      const receiverInfo: Record<string, string> = {}
      if (payee.payee!.name !== null) receiverInfo.name = payee.payee!.name
      if (payee.payee!.imageUrl !== null) receiverInfo.image_url = payee.payee!.imageUrl
      const { destination, sharedSecret } = newReceiverAddress('psk2', address, payee.payee!.secret!)
      body = JSON.stringify({
        destination_account: destination,
        shared_secret: sharedSecret.toString('base64'),
        asset_info: { code: payee.assetCode, scale: payee.assetScale },
        ledger_info: { currency_code: payee.assetCode, currency_scale: payee.assetScale },
        receiver_info: receiverInfo,
      })
    }
    this.log.debug('SPSP query answered', { payee: payee.id, type })
    res.writeStatus('200 OK')
      .writeHeader('Content-Type', type)
      .writeHeader('Cache-Control', 'no-store')
      .writeHeader('Access-Control-Allow-Origin', '*')
      .end(body)
  }

  private preflight(res: HttpResponse): void {
    res.writeStatus('204 No Content')
      .writeHeader('Access-Control-Allow-Origin', '*')
      .writeHeader('Access-Control-Allow-Methods', 'GET, OPTIONS')
      .writeHeader('Access-Control-Allow-Headers', 'web-monetization-id')
      .end()
  }

  private view(res: HttpResponse, req: HttpRequest): void {
    const name = req.getParameter(0) ?? ''
    const authorization = req.getHeader('authorization')
    const json = (status: string, value: unknown, headers: [string, string][] = []): void => {
      res.cork(() => {
        res.writeStatus(status).writeHeader('Content-Type', 'application/json')
        for (const [header, text] of headers) res.writeHeader(header, text)
        res.end(JSON.stringify(value))
      })
    }
    if (this.adminDigest === null) return json('404 Not Found', { error: 'the admin API is off (set adminToken in the config)' })
    const client = this.gate.clientOf(res, req)
    let aborted = false
    res.onAborted(() => { aborted = true })
    const authorized = this.gate.authorizeBearer(client, 'payee', authorization, [this.adminDigest], () => aborted, (status, retryAfter) => {
      if (status === 429) json('429 Too Many Requests', { error: 'too many failed authentications from this address; try again later' }, [['Retry-After', retryAfter!]])
      else json('401 Unauthorized', { error: 'missing or invalid admin bearer token' }, [['WWW-Authenticate', 'Bearer']])
    })
    if (!authorized) return
    let payee: AccountConfig | undefined
    try {
      payee = this.viewable.get(decodeURIComponent(name))
    } catch {
      return json('400 Bad Request', { error: 'the payee name has a malformed percent-escape' })
    }
    if (payee === undefined) return json('404 Not Found', { error: `no payee ${name.slice(0, 64)}` })
    // The payee's account balance is negative when the node owes it: a payee's view is the opposite.
    const balance = -readBalance(this.store, payee.id)
    const payments: { id: string; received: string; chunks: number; finished: boolean; lastAt: string }[] = []
    for (const { key, value } of this.store.payments.getRange({ start: [payee.id], end: [payee.id, '\uffff'] })) {
      const p = decodePayment(value)
      payments.push({ id: key[1], received: p.received.toString(), chunks: p.chunks, finished: p.finished, lastAt: new Date(p.lastAtMs).toISOString() })
    }
    payments.sort((a, b) => (a.lastAt < b.lastAt ? 1 : -1))
    json('200 OK', {
      payee: payee.id,
      address: `${this.config.ilpAddress}.${payee.id}`,
      asset: { code: payee.assetCode, scale: payee.assetScale },
      balance: balance.toString(),
      payments: payments.slice(0, MAX_LISTED_PAYMENTS),
    })
  }
}
