// Settlement engines: how a settlement the settler decided on (shard/settlement/settler.ts: when, how much,
// booked and logged under an id) reaches the peer, and how a peer's settlement is read. The
// threshold logic, the books and the crash safety are the settler's, the same for every engine;
// an engine only carries a settlement over the account's BTP link and reads what the peer sends.
//
// btp-transfer, the first engine: a BTP TRANSFER (RFC 23) with the amount and the settlement's id
// in a `transfer_id` protocol data entry (16 octets), answered by a BTP Response once the peer
// has booked it (or had booked it before: the id makes a retry harmless), or by a BTP Error if it
// will not. The money itself moves outside ILP, as an operator's adjustment does: two operators
// whose nodes settle this way keep each other's books in step. An engine backed by a ledger
// (README: "Settlement ledgers") signs a payment-channel claim in send() and verifies one in
// receive(), over the same frames.

import { BTP_TRANSFER, CONTENT_OCTET_STREAM, encodeTransfer, type BtpFrame } from '../../codec/btp_packet'
import type { IlpErrorCode } from '../../codec/ilp_errors'
import type { SettlementEngineName } from '../../config/schema'
import { SETTLEMENT_ID_BYTES } from '../../ring/records'

export type ReceivedSettlement = { amount: bigint; id: Uint8Array } | { code: IlpErrorCode; name: string; message: string }

export interface SettlementEngine {
  readonly name: SettlementEngineName
  /** The frame that carries settlement `id` of `amount` to the peer, as BTP request `requestId`. */
  encode(requestId: number, id: Uint8Array, amount: bigint): Uint8Array
  /** A frame from the peer that may be a settlement: what to book, or why it is refused. */
  decode(frame: BtpFrame): ReceivedSettlement
}

const TRANSFER_ID = Buffer.from('transfer_id', 'latin1')

export const btpTransferEngine: SettlementEngine = {
  name: 'btp-transfer',

  encode(requestId, id, amount) {
    return encodeTransfer(requestId, amount, [{ protocolName: 'transfer_id', contentType: CONTENT_OCTET_STREAM, data: Buffer.from(id) }])
  },

  decode(frame) {
    if (frame.type !== BTP_TRANSFER) return { code: 'F00', name: 'NotAcceptedError', message: 'not a BTP transfer' }
    if (frame.amount === 0n) return { code: 'F00', name: 'InvalidFieldsError', message: 'a settlement amount must be positive' }
    const i = frame.findEntry(TRANSFER_ID)
    if (i < 0) return { code: 'F00', name: 'InvalidFieldsError', message: 'a transfer needs a transfer_id protocol data entry (16 octets) so that a retry is recognised' }
    const id = frame.entryData(i)
    if (id.length !== SETTLEMENT_ID_BYTES) return { code: 'F00', name: 'InvalidFieldsError', message: `transfer_id must be ${SETTLEMENT_ID_BYTES} octets (got ${id.length})` }
    return { amount: frame.amount, id }
  },
}

/** The engines by the name accounts.<id>.settlement.engine gives them. */
export const SETTLEMENT_ENGINES: Readonly<Record<SettlementEngineName, SettlementEngine>> = { 'btp-transfer': btpTransferEngine }

/**
 * An account's engine; the first one for an account without (its settlement config gone while a
 * settlement is still in flight, or a transfer the shard will refuse).
 */
export function engineOf(account: { settlement: { engine: SettlementEngineName } | null }): SettlementEngine {
  return account.settlement === null ? btpTransferEngine : SETTLEMENT_ENGINES[account.settlement.engine]
}
