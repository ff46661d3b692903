// IL-DCP as a client (RFC 31): with no ILP_ADDRESS, the node asks its parent for its
// address before it starts (children then get `<that>.<accountId>`). One short-lived connection
// over the parent's transport (BTP or ILP-over-HTTP), a peer.config prepare, the fulfill's data
// read as clientAddress / assetScale / assetCode. Retried with backoff until the parent answers.

import WebSocket from 'ws'
import { request } from 'undici'
import { BTP_RESPONSE, BtpFrame, CONTENT_OCTET_STREAM, CONTENT_TEXT_PLAIN, encodeMessage } from '../../codec/btp_packet'
import { classifyReply, isValidAddress, lastFulfillmentOffset, ReplyKind } from '../../codec/ilp_packet'
import { peerProtocolPrepare } from '../../codec/peer_protocol'
import { OerReader } from '../../codec/oer'
import type { AccountConfig, Config } from '../../config/schema'
import { showValue } from '../../display'
import type { Logger } from '../../log'
import { parseBtpUrl } from '../../io/btp/btp_dialer'

const ATTEMPT_TIMEOUT_MS = 10_000

export interface IldcpInfo {
  clientAddress: string
  assetScale: number
  assetCode: string
}

function ildcpRequest(): Buffer {
  return peerProtocolPrepare('peer.config', Buffer.alloc(0))
}

/** Reads an IL-DCP fulfill; throws with the reason if it is a reject or malformed. */
function parseIldcpReply(reply: Uint8Array): IldcpInfo {
  const kind = classifyReply(reply, 0, reply.length)
  if (kind !== ReplyKind.Fulfill) throw new Error(kind === ReplyKind.Reject ? 'parent rejected the IL-DCP request' : 'malformed IL-DCP reply')
  const r = new OerReader().reset(reply, lastFulfillmentOffset + 32, reply.length)
  const data = r.readVarOctetString()
  if (data < 0) throw new Error('malformed IL-DCP reply')
  r.reset(reply, data, r.pos)
  const address = r.readVarOctetString()
  if (address < 0) throw new Error('malformed IL-DCP data')
  const clientAddress = Buffer.from(reply.subarray(address, r.pos)).toString('latin1')
  const assetScale = r.readUInt8()
  const code = r.readVarOctetString()
  if (assetScale < 0 || code < 0) throw new Error('malformed IL-DCP data')
  if (!isValidAddress(clientAddress)) throw new Error(`parent assigned an invalid address ${showValue(clientAddress)}`)
  return { clientAddress, assetScale, assetCode: Buffer.from(reply.subarray(code, r.pos)).toString('utf8') }
}

function overBtp(btpUrl: string): Promise<Uint8Array> {
  const target = parseBtpUrl(btpUrl)
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target.url, { perMessageDeflate: false })
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('timed out')) }, ATTEMPT_TIMEOUT_MS)
    const done = (err: Error | null, reply?: Uint8Array) => {
      clearTimeout(timer)
      ws.close()
      if (err !== null) reject(err)
      else resolve(reply!)
    }
    const frame = new BtpFrame()
    ws.on('error', (err) => done(err))
    ws.on('open', () => {
      ws.send(encodeMessage(1, [
        { protocolName: 'auth', contentType: CONTENT_OCTET_STREAM, data: Buffer.alloc(0) },
        { protocolName: 'auth_username', contentType: CONTENT_TEXT_PLAIN, data: Buffer.from(target.username) },
        { protocolName: 'auth_token', contentType: CONTENT_TEXT_PLAIN, data: Buffer.from(target.token) },
      ]))
      ws.send(encodeMessage(2, [{ protocolName: 'ilp', contentType: CONTENT_OCTET_STREAM, data: ildcpRequest() }]))
    })
    ws.on('message', (data: Buffer) => {
      if (!frame.parse(data)) return done(new Error('malformed BTP frame from parent'))
      if (frame.type !== BTP_RESPONSE) return done(new Error(`parent answered with BTP error ${showValue(frame.errorCode)} ${showValue(frame.errorData)}`))
      if (frame.requestId === 2) done(null, Buffer.from(frame.entryData(0)))
    })
  })
}

async function overHttp(url: string, token: string): Promise<Uint8Array> {
  const { statusCode, body } = await request(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    body: ildcpRequest(),
    headersTimeout: ATTEMPT_TIMEOUT_MS,
    bodyTimeout: ATTEMPT_TIMEOUT_MS,
  })
  if (statusCode !== 200) {
    await body.dump()
    throw new Error(`parent answered HTTP ${statusCode}`)
  }
  return new Uint8Array(await body.arrayBuffer())
}

async function fetchIldcp(parent: AccountConfig): Promise<IldcpInfo> {
  const reply = parent.btpUrl !== null ? await overBtp(parent.btpUrl) : await overHttp(parent.httpUrl!, parent.httpOutgoingToken ?? '')
  return parseIldcpReply(reply)
}

/** The config with the address the parent assigns; waits (with backoff) until it answers. */
export async function withAddressFromParent(config: Config, log: Logger): Promise<Config> {
  const parent = config.accounts.find((a) => a.relation === 'parent')!
  let delayMs = 1000
  for (;;) {
    try {
      const info = await fetchIldcp(parent)
      if (info.assetCode !== parent.assetCode || info.assetScale !== parent.assetScale) {
        log.warn('the parent\'s asset differs from the configured one; using the configured one', {
          parent: parent.id, theirs: `${showValue(info.assetCode)}/${info.assetScale}`, ours: `${parent.assetCode}/${parent.assetScale}`,
        })
      }
      log.info('address assigned by the parent (IL-DCP)', { parent: parent.id, address: info.clientAddress })
      return Object.freeze({ ...config, ilpAddress: info.clientAddress })
    } catch (err) {
      log.warn('asking the parent for an address failed; retrying', { parent: parent.id, error: (err as Error).message, inMs: delayMs })
      await new Promise((resolve) => setTimeout(resolve, delayMs))
      delayMs = Math.min(delayMs * 2, 30_000)
    }
  }
}
