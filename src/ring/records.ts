// What crosses the rings. Each record carries four u32 fields (a, b, c, d) and an optional
// payload (see ring/ring.ts for the frame); this table says what they mean per kind.
//
//   kind          direction      a             b            c                 d          payload
//   PREPARE_IN    io → shard     account       connId       requestId         -          ILP prepare
//   REPLY_IN      io → shard     pendingId lo  pendingId hi from: account    -          ILP fulfill/reject
//                                                           that answered
//   SEND_FAILED   io → shard     pendingId lo  SendFailure  pendingId hi      -          -
//   REPLY_OUT     shard → io     connId        requestId    account           -          ILP fulfill/reject
//   PREPARE_OUT   shard → io     account       pendingId lo expiresAt (s)     pendingId hi  ILP prepare
//   CREDIT        shard → shard  account       amount hi    amount lo         -          -
//   CONTROL_OUT   shard → io     connId        requestId    account           -          CCP prepare (control plane)
//   DELIVER_IN    shard → shard  payee         pendingId lo sender's shard    pendingId hi  ILP prepare for a payee of the
//                                                                                        receiving shard (answered by DELIVERY_REPLY)
//   DELIVERY_REPLY shard → shard pendingId lo  pendingId hi payee             -          the payee's fulfill/reject
//   SPEND_IN      io → shard     shop account  connId       requestId         -          price u64 ‖ pay token (answered by
//                                                                                        REPLY_OUT: ok u8 ‖ balance u64)
//   SETTLE_OUT    shard → io     account       -            -                 -          settlement id (16) ‖ amount u64: send it
//                                                                                        to the peer (shard/settlement/settler.ts)
//   SETTLE_ANSWER io → shard     account       SettleAnswer -                 -          settlement id (16) ‖ the peer's reason
//   TRANSFER_IN   io → shard     account       connId       requestId         -          amount u64 ‖ transfer id (16): a peer
//                                                                                        settled with us (answered by TRANSFER_REPLY)
//   TRANSFER_REPLY shard → io    connId        requestId    account           -          TransferAnswer u8 ‖ ILP code (3) ‖ message
//
// connId/requestId are an I/O thread's handle on where a reply goes (a BTP request on a socket, an
// HTTP exchange); the shard only carries them. The top byte of a connId is the I/O thread that
// made it, so a shard knows which ring the reply goes into. pendingId is the shard's handle on a
// forwarded prepare, an integer below 2^47 (shard/pending_table.ts), carried in two fields.

/**
 * Every pendingId is below this (shard/pending_table.ts), so that an I/O thread can keep a shard
 * index with it in one JS integer (shard × 2^47 + pendingId, below 2^53 for up to 64 shards).
 */
export const PENDING_ID_LIMIT = 2 ** 47

/** The low 32 bits of a pendingId (below 2^47), as a record field. */
export function pendingIdLow(pendingId: number): number {
  return pendingId >>> 0
}

/** The bits of a pendingId above the low 32, as a record field. */
export function pendingIdHigh(pendingId: number): number {
  return Math.floor(pendingId / 2 ** 32)
}

/** The pendingId whose two record fields are `low` and `high`. */
export function pendingIdOf(low: number, high: number): number {
  return high * 2 ** 32 + low
}

export const enum RecordKind {
  PrepareIn = 1,
  ReplyIn = 2,
  SendFailed = 3,
  ReplyOut = 4,
  PrepareOut = 5,
  Credit = 6,
  ControlOut = 7,
  DeliverIn = 8,
  SpendIn = 9,
  DeliveryReply = 10,
  SettleOut = 11,
  SettleAnswer = 12,
  TransferIn = 13,
  TransferReply = 14,
}

/** What a peer answered to a settlement we sent (field b of SETTLE_ANSWER). */
export const enum SettleAnswer {
  /** It booked it (now, or when an earlier copy came). */
  Acknowledged = 0,
  /** It refused it for good (a BTP error with an F code): nothing was booked there. */
  Refused = 1,
}

/** The shard's answer to a peer's settlement (first payload byte of TRANSFER_REPLY). */
export const enum TransferAnswer {
  Booked = 0,
  Refused = 1,
}

/** Bytes of a settlement's id on the wire (BTP protocol data `transfer_id`) and in records. */
export const SETTLEMENT_ID_BYTES = 16

/** Bits of a connId below the I/O thread's index. */
export const CONN_ID_BITS = 24

export function ioThreadOf(connId: number): number {
  return connId >>> CONN_ID_BITS
}

/** Room a shard keeps free in its outbound ring before it takes another input record. */
export const OUTPUT_SLACK_BYTES = 4096
