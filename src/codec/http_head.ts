// http-head (interledger/rfcs de237e8, Dec 2017, the draft before RFC 35): ILP fields in HTTP headers, the data in the body.
//
//   request   ILP-Destination, ILP-Condition (base64, padded), ILP-Expiry (ISO 8601), ILP-Amount
//   fulfill   200, ILP-Fulfillment (base64, padded), body = data
//   reject    400, ILP-Error-Code / -Name / -Triggered-By / -Triggered-At / -Forwarded-By / -Message,
//             body = data (the draft has no message header; its implementation added one)

import { ILP_ERROR_NAMES, type IlpErrorCode } from './ilp_errors'
import { encodePrepare, isValidAddress, MAX_DATA_LENGTH } from './ilp_packet'
import { OerReader, UINT64_MAX } from './oer'

export interface HttpHeadFields {
  destination: string
  condition: string
  expiry: string
  amount: string
}

/** Builds the OER prepare an http-head request stands for; throws a message for a 400. */
export function prepareFromHead(h: HttpHeadFields, data: Uint8Array): Buffer {
  if (!isValidAddress(h.destination)) throw new Error('ILP-Destination is not a valid ILP address')
  const condition = Buffer.from(h.condition, 'base64')
  if (condition.length !== 32) throw new Error('ILP-Condition must be 32 bytes in base64')
  const expiresAtMs = Date.parse(h.expiry)
  if (!/^\d{4}-\d\d-\d\dT/.test(h.expiry) || Number.isNaN(expiresAtMs)) throw new Error('ILP-Expiry must be an ISO 8601 timestamp')
  if (!/^\d{1,20}$/.test(h.amount) || BigInt(h.amount) > UINT64_MAX) throw new Error('ILP-Amount must be a decimal 64-bit unsigned integer')
  if (data.length > MAX_DATA_LENGTH) throw new Error(`data is over ${MAX_DATA_LENGTH} bytes`)
  return encodePrepare({ amount: BigInt(h.amount), expiresAtMs, executionCondition: condition, destination: h.destination, data })
}

export interface HeadReply {
  status: string
  headers: [string, string][]
  body: Uint8Array
}

/** The http-head response for an OER fulfill or reject (already validated by the shard or peer). */
export function headReplyFromPacket(packet: Uint8Array, nowMs = Date.now()): HeadReply {
  const r = new OerReader().reset(packet, 0, packet.length)
  const type = r.readUInt8()
  r.readLength()
  if (type === 13) {
    const fulfillment = Buffer.from(packet.subarray(r.pos, r.pos + 32)).toString('base64')
    r.pos += 32
    const data = r.readVarOctetString()
    return { status: '200 OK', headers: [['ILP-Fulfillment', fulfillment]], body: packet.subarray(data, r.pos) }
  }
  const code = Buffer.from(packet.subarray(r.pos, r.pos + 3)).toString('latin1') as IlpErrorCode
  r.pos += 3
  const text = () => {
    const start = r.readVarOctetString()
    return start < 0 ? '' : Buffer.from(packet.subarray(start, r.pos)).toString('utf8')
  }
  const triggeredBy = text()
  const message = text()
  const dataStart = r.readVarOctetString()
  return {
    status: '400 Bad Request',
    headers: [
      ['ILP-Error-Code', code],
      ['ILP-Error-Name', ILP_ERROR_NAMES[code] ?? 'Unknown Error'],
      ['ILP-Error-Triggered-By', triggeredBy],
      ['ILP-Error-Triggered-At', new Date(nowMs).toISOString()],
      ['ILP-Error-Forwarded-By', ''],
      // Header values must be one line of visible text.
      ['ILP-Error-Message', message.replace(/[^\x20-\x7e]/g, '?')],
    ],
    body: dataStart < 0 ? new Uint8Array(0) : packet.subarray(dataStart, r.pos),
  }
}
