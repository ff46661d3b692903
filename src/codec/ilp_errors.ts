// ILP reject codes (RFC 27, Error Codes), spelled as the RFC names them. Every reject this node
// creates takes its code from this table; nothing else in the tree writes a code literal.

export type IlpErrorCode =
  | 'F00' | 'F01' | 'F02' | 'F03' | 'F04' | 'F05' | 'F06' | 'F07' | 'F08' | 'F99'
  | 'T00' | 'T01' | 'T02' | 'T03' | 'T04' | 'T05' | 'T99'
  | 'R00' | 'R01' | 'R02' | 'R99'

export const F00_BAD_REQUEST: IlpErrorCode = 'F00'
export const F01_INVALID_PACKET: IlpErrorCode = 'F01'
export const F02_UNREACHABLE: IlpErrorCode = 'F02'
export const F03_INVALID_AMOUNT: IlpErrorCode = 'F03'
export const F05_WRONG_CONDITION: IlpErrorCode = 'F05'
export const F06_UNEXPECTED_PAYMENT: IlpErrorCode = 'F06'
export const F08_AMOUNT_TOO_LARGE: IlpErrorCode = 'F08'
export const F99_APPLICATION_ERROR: IlpErrorCode = 'F99'
export const T00_INTERNAL_ERROR: IlpErrorCode = 'T00'
export const T01_PEER_UNREACHABLE: IlpErrorCode = 'T01'
export const T02_PEER_BUSY: IlpErrorCode = 'T02'
export const T03_CONNECTOR_BUSY: IlpErrorCode = 'T03'
export const T04_INSUFFICIENT_LIQUIDITY: IlpErrorCode = 'T04'
export const R00_TRANSFER_TIMED_OUT: IlpErrorCode = 'R00'
export const R01_INSUFFICIENT_SOURCE_AMOUNT: IlpErrorCode = 'R01'
export const R02_INSUFFICIENT_TIMEOUT: IlpErrorCode = 'R02'

/** RFC 27 names, for transports that carry them (http-head's ILP-Error-Name). */
export const ILP_ERROR_NAMES: Record<IlpErrorCode, string> = {
  F00: 'Bad Request', F01: 'Invalid Packet', F02: 'Unreachable', F03: 'Invalid Amount', F04: 'Insufficient Destination Amount',
  F05: 'Wrong Condition', F06: 'Unexpected Payment', F07: 'Cannot Receive', F08: 'Amount Too Large', F99: 'Application Error',
  T00: 'Internal Error', T01: 'Peer Unreachable', T02: 'Peer Busy', T03: 'Connector Busy', T04: 'Insufficient Liquidity',
  T05: 'Rate Limited', T99: 'Application Error', R00: 'Transfer Timed Out', R01: 'Insufficient Source Amount',
  R02: 'Insufficient Timeout', R99: 'Application Error',
}

/**
 * Reasons an I/O thread reports to a shard when it could not deliver a prepare to the next
 * hop. They cross the ring as small integers; the shard maps them to reject codes here.
 */
export const enum SendFailure {
  PeerNotConnected = 1,
  PeerBusy = 2,
  PeerDisconnected = 3,
  /** The peer answered the BTP request with a BTP Error instead of an ILP reply. */
  PeerError = 4,
  /** The peer answered the ILP-over-HTTP POST with a status other than 200. */
  PeerHttpStatus = 5,
}

export function sendFailureReject(reason: SendFailure): { code: IlpErrorCode; message: string } {
  switch (reason) {
    case SendFailure.PeerBusy:
      return { code: T02_PEER_BUSY, message: 'next hop is not accepting more data' }
    case SendFailure.PeerDisconnected:
      return { code: T01_PEER_UNREACHABLE, message: 'next hop disconnected before it answered' }
    case SendFailure.PeerError:
      return { code: T00_INTERNAL_ERROR, message: 'next hop answered with a BTP error' }
    case SendFailure.PeerHttpStatus:
      return { code: T00_INTERNAL_ERROR, message: 'next hop answered with an HTTP error' }
    case SendFailure.PeerNotConnected:
    default:
      return { code: T01_PEER_UNREACHABLE, message: 'next hop is not connected' }
  }
}
