// The payee's receiver, run by the shard that owns the payee: answers a prepare addressed to
// `<node>.<payee>.psk2.<token>` (PSK2) or `<node>.<payee>.stream.<token>` (STREAM) with a
// Fulfill or a Reject; PSK2 in the order ilp-protocol-psk2@0.5's receiver checks (the order is what makes senders'
// quotes work). The shared secret is derived from the payee's
// secret and the token in the address (the SPSP answer made the token), so no state is needed
// to decrypt; what is kept is each payment's total, so chunks, retries and replays count once.
//
// Draft 1 (types 0/1), per payment id:
//   undecryptable F06 · other type F06 · chunkAmount > amount F99+type 3 · finished or a sequence
//   already fulfilled F99+type 3 · wrong condition F05+type 3 · else Fulfill+type 2
// Draft 2 (type 4), per token:
//   wrong condition F05+type 6 · requested amount > amount F99+type 6 · else Fulfill+type 5
// STREAM, per connection (token):
//   undecryptable or malformed F06 · closed, a sequence already fulfilled, less than the packet's
//   prepareAmount or a wrong condition (test packets) F99+STREAM reject packet · else Fulfill+STREAM
//   fulfill packet; both carry our asset details when the sender announces its address, and a
//   StreamClose for each stream the sender closes. A ConnectionClose gets no close back
//   (ilp-protocol-stream would answer it with another StreamClose, and so on).
//
// The balance is not touched here: the fulfill goes back to the sender's shard, which commits it
// and credits the payee like any next hop. Payment totals are written to LMDB in this shard's
// batch, before its fulfills are published.

import type { Config } from '../../config/schema'
import {
  F02_UNREACHABLE, F05_WRONG_CONDITION, F06_UNEXPECTED_PAYMENT, F08_AMOUNT_TOO_LARGE, F99_APPLICATION_ERROR, R02_INSUFFICIENT_TIMEOUT, type IlpErrorCode,
} from '../../codec/ilp_errors'
import { encodeFulfill, encodeReject, type PrepareView } from '../../codec/ilp_packet'
import { UINT64_MAX, writeUInt64 } from '../../codec/oer'
import type { Logger } from '../../log'
import type { AccountTable } from '../../config/account_table'
import { decodePayment, encodePayment, type Store } from '../../store/balance_store'
import {
  assetDetailsFrame, FRAME_CONNECTION_ASSET_DETAILS, FRAME_CONNECTION_CLOSE, FRAME_CONNECTION_NEW_ADDRESS, FRAME_STREAM_CLOSE, frameStreamId, streamCloseFrame,
  parseStreamPacket, serializeStreamPacket, streamKeys, streamSharedSecretFor, type StreamFrame,
} from '../../codec/stream'
import {
  decrypt, encrypt, hmac, parseDraft1, parseDraft2, psk2Fulfillment, psk2Keys, serializeDraft1, serializeDraft2, sharedSecretFor, type EnvelopeKeys,
  TYPE_CHUNK, TYPE_ERROR, TYPE_FULFILL, TYPE_LAST_CHUNK, TYPE_REQUEST, TYPE_REQUEST_ERROR, TYPE_RESPONSE,
} from '../../codec/psk2'
import { SEGMENTS, TOKEN_CHARS, type ReceiverKind } from '../../codec/receiver_address'

const TYPE_ILP_PREPARE = 12
const TYPE_ILP_FULFILL = 13
const TYPE_ILP_REJECT = 14
/** Bounds on what is kept in memory (the totals are also in LMDB). */
const MAX_KEYS = 10_000
const MAX_PAYMENTS = 100_000
const MIN_TIME_LEFT_MS = 500
/** A payment's chunk count is stored in 32 bits. */
const MAX_CHUNKS = 0xffff_ffff
/** StreamClose frames answered per packet: their replies must fit one packet's data (32,767 bytes). */
const MAX_STREAM_CLOSES = 256
/** Pay tokens as koa-ilp and ilp-fetch make them (16 bytes), or draft 3's (32 bytes). */
const TOKEN_16 = 16
const TOKEN_32 = 32

interface Payment {
  payee: string
  id: string
  received: bigint
  chunks: number
  finished: boolean
  lastAtMs: number
  /** Sequences fulfilled (draft 1); a retry of one of them is not paid twice. */
  sequences: Set<number>
  dirty: boolean
}

export class PayeeReceiver {
  private readonly ilpAddress: string
  private readonly secrets: (Uint8Array | null)[]
  private readonly addresses: (string | null)[]
  /** Keys by kind, payee and token: a chunked payment or a STREAM connection derives them once. */
  private readonly keys = new Map<string, EnvelopeKeys>()
  private readonly payments = new Map<string, Payment>()
  private readonly dirty: Payment[] = []
  /** The shop's pay tokens and their balances (loaded from LMDB on first use), and those to write. */
  private readonly tokenBalances = new Map<string, bigint>()
  private readonly dirtyTokens = new Set<string>()

  constructor(config: Config, private readonly accounts: AccountTable, private readonly store: Store, private readonly log: Logger) {
    this.ilpAddress = config.ilpAddress
    this.secrets = accounts.accounts.map((a) => a.payee?.secret ?? null)
    this.addresses = accounts.accounts.map((a) => (a.payee === null ? null : `${config.ilpAddress}.${a.id}`))
    this.isShop = accounts.accounts.map((a) => a.payee?.shop === true)
  }

  private readonly isShop: boolean[]

  /** The answer (an OER Fulfill or Reject) to a prepare for `payee`. */
  receive(payee: number, view: PrepareView, nowMs: number): Buffer {
    const account = this.accounts.get(payee)
    const secret = this.secrets[payee]
    const destination = view.destination()
    const psk2Token = this.tokenOf(payee, destination, 'psk2')
    const streamToken = psk2Token === null ? this.tokenOf(payee, destination, 'stream') : null
    if (secret === null || (psk2Token === null && streamToken === null)) return this.reject(F02_UNREACHABLE, `no receiver at ${destination}`)
    // The sender's shard must still be waiting when our fulfill reaches it, or the payee would be
    // paid (a token credited, a payment counted) for a prepare the sender is never charged for.
    if (view.expiresAtMs - nowMs < MIN_TIME_LEFT_MS) return this.reject(R02_INSUFFICIENT_TIMEOUT, 'too little time left to answer')
    if (view.amount > account.maxPacketAmount) {
      const data = Buffer.alloc(16)
      writeUInt64(data, 0, view.amount)
      writeUInt64(data, 8, account.maxPacketAmount)
      return this.reject(F08_AMOUNT_TOO_LARGE, 'packet amount exceeds the payee\'s maximum', data)
    }
    const data = view.buf.subarray(view.dataOffset, view.dataOffset + view.dataLength)
    if (streamToken !== null) return this.receiveStream(payee, streamToken, this.keysFor(payee, secret, 'stream', streamToken), view, data, nowMs)
    const token = psk2Token!
    const keys = this.keysFor(payee, secret, 'psk2', token)
    const plaintext = decrypt(keys.encryption, data)
    if (plaintext === null || plaintext.length === 0) return this.reject(F06_UNEXPECTED_PAYMENT, 'unable to decrypt the PSK2 data')
    const type = plaintext[0]
    if (type === TYPE_REQUEST) return this.receiveRequest(payee, token, keys, view, data, plaintext, nowMs)
    if (type === TYPE_CHUNK || type === TYPE_LAST_CHUNK) return this.receiveChunk(payee, keys, view, data, plaintext, nowMs)
    return this.reject(F06_UNEXPECTED_PAYMENT, `unexpected PSK2 packet type ${type}`)
  }

  private receiveChunk(payee: number, keys: EnvelopeKeys, view: PrepareView, data: Uint8Array, plaintext: Buffer, nowMs: number): Buffer {
    const chunk = parseDraft1(plaintext)
    if (chunk === null) return this.reject(F06_UNEXPECTED_PAYMENT, 'malformed PSK2 chunk')
    const payment = this.payment(this.accounts.get(payee).id, chunk.paymentId.toString('hex'), nowMs)
    const refuse = (message: string, code: IlpErrorCode = F99_APPLICATION_ERROR) =>
      this.reject(code, message, encrypt(keys.encryption, serializeDraft1(TYPE_ERROR, chunk.paymentId, chunk.sequence, payment.received, view.amount)))
    // Amount before condition: a quote is an unfulfillable chunk asking for more than it carries.
    if (chunk.chunkAmount > view.amount) return refuse('chunk amount is below what the sender asked to arrive')
    if (payment.finished) return refuse('payment is already finished')
    if (payment.sequences.has(chunk.sequence)) return refuse('chunk already received')
    const fulfillment = psk2Fulfillment(keys, data)
    if (!view.conditionMatches(fulfillment)) return refuse('condition does not match the PSK2 data', F05_WRONG_CONDITION)
    // At the shop, a draft-1 payment's id names the pay token it funds (what koa-ilp does).
    if (this.isShop[payee]) this.creditToken(chunk.paymentId.toString('base64url'), view.amount)
    // A chunk of 0 is fulfilled but counted nowhere (see touch): it moves no money.
    if (view.amount > 0n) {
      this.count(payment, view.amount)
      payment.sequences.add(chunk.sequence)
    }
    if (chunk.type === TYPE_LAST_CHUNK || (chunk.paymentAmount !== UINT64_MAX && payment.received >= chunk.paymentAmount)) payment.finished = true
    this.touch(payment, nowMs)
    const reply = serializeDraft1(TYPE_FULFILL, chunk.paymentId, chunk.sequence, payment.received, view.amount)
    return encodeFulfill(fulfillment, encrypt(keys.encryption, reply))
  }

  private receiveRequest(payee: number, token: string, keys: EnvelopeKeys, view: PrepareView, data: Uint8Array, plaintext: Buffer, nowMs: number): Buffer {
    const request = parseDraft2(plaintext)
    if (request === null) return this.reject(F06_UNEXPECTED_PAYMENT, 'malformed PSK2 request')
    const refuse = (code: IlpErrorCode, message: string) =>
      this.reject(code, message, encrypt(keys.encryption, serializeDraft2(TYPE_REQUEST_ERROR, request.requestId, view.amount)))
    const fulfillment = psk2Fulfillment(keys, data)
    // The quote path of draft 2: senders read the amount from the type-6 packet under F05.
    if (!view.conditionMatches(fulfillment)) return refuse(F05_WRONG_CONDITION, 'condition does not match the PSK2 data')
    if (request.amount > view.amount) return refuse(F99_APPLICATION_ERROR, 'amount is below what the sender asked to arrive')
    if (this.isShop[payee]) {
      const token = payToken(request.data)
      if (token === null) return refuse(F99_APPLICATION_ERROR, 'a payment to the shop must carry its pay token (16 or 32 bytes) as data')
      this.creditToken(token, view.amount)
    }
    if (view.amount > 0n) {
      const payment = this.payment(this.accounts.get(payee).id, `request-${token}`, nowMs)
      this.count(payment, view.amount)
      this.touch(payment, nowMs)
    }
    return encodeFulfill(fulfillment, encrypt(keys.encryption, serializeDraft2(TYPE_RESPONSE, request.requestId, view.amount)))
  }

  private receiveStream(payee: number, token: string, keys: EnvelopeKeys, view: PrepareView, data: Uint8Array, nowMs: number): Buffer {
    const account = this.accounts.get(payee)
    const plaintext = decrypt(keys.encryption, data)
    const packet = plaintext === null ? null : parseStreamPacket(plaintext)
    if (packet === null || packet.ilpPacketType !== TYPE_ILP_PREPARE) return this.reject(F06_UNEXPECTED_PAYMENT, 'unable to decrypt or read the STREAM packet')
    const connection = this.payment(account.id, `stream-${token}`, nowMs)
    const frames: StreamFrame[] = []
    let assetDetails = false
    let closes = 0
    let closing = false
    for (const frame of packet.frames) {
      if (frame.type === FRAME_CONNECTION_NEW_ADDRESS || frame.type === FRAME_CONNECTION_ASSET_DETAILS) {
        if (!assetDetails) frames.push(assetDetailsFrame(account.assetCode, account.assetScale))
        assetDetails = true
      } else if (frame.type === FRAME_STREAM_CLOSE) {
        // The sender keeps a stream open until the receiver closes its side too. A packet closing
        // more streams than the reply can answer gets the first MAX_STREAM_CLOSES (it sends the
        // rest again).
        const id = frameStreamId(frame)
        if (id >= 0n && closes++ < MAX_STREAM_CLOSES) frames.push(streamCloseFrame(id))
      } else if (frame.type === FRAME_CONNECTION_CLOSE) {
        closing = true
      }
    }
    const sequence = Number(packet.sequence)
    const fulfillment = hmac(keys.fulfillment, data)
    // Packets of 0 carry control frames (a StreamClose, also after the ConnectionClose that can
    // overtake it): the sender expects them fulfilled, and resends them until they are. A closed
    // connection takes no more money.
    const fulfillable = !closing && (view.amount === 0n || !connection.finished) && view.amount >= packet.prepareAmount &&
      !connection.sequences.has(sequence) && view.conditionMatches(fulfillment)
    if (closing && !connection.finished) {
      connection.finished = true
      this.touch(connection, nowMs)
    }
    if (!fulfillable) {
      this.log.debug('STREAM packet not fulfilled', {
        payee: account.id, sequence, amount: view.amount, minimum: packet.prepareAmount, closed: connection.finished, closing, repeated: connection.sequences.has(sequence),
      })
      const reply = serializeStreamPacket({ ilpPacketType: TYPE_ILP_REJECT, sequence: packet.sequence, prepareAmount: view.amount, frames })
      return this.reject(F99_APPLICATION_ERROR, '', encrypt(keys.encryption, reply))
    }
    // Only paid packets are remembered: a 0 (a control packet) may come again, and is fulfilled again.
    if (view.amount > 0n) {
      connection.sequences.add(sequence)
      this.count(connection, view.amount)
      this.touch(connection, nowMs)
    }
    const reply = serializeStreamPacket({ ilpPacketType: TYPE_ILP_FULFILL, sequence: packet.sequence, prepareAmount: view.amount, frames })
    return encodeFulfill(fulfillment, encrypt(keys.encryption, reply))
  }

  /**
   * A paid request at the shop: `request` is price u64 ‖ pay token. Spends the price if the
   * token's balance covers it. Answers ok u8 ‖ balance u64 (after spending, or as it is).
   * One shard owns the tokens, so two requests can never spend the same balance.
   */
  spend(shop: number, request: Uint8Array): Buffer {
    const answer = Buffer.alloc(9)
    if (!this.isShop[shop] || request.length < 9) return answer
    const price = Buffer.from(request.buffer, request.byteOffset, 8).readBigUInt64BE(0)
    const token = Buffer.from(request.buffer, request.byteOffset + 8, request.length - 8).toString('latin1')
    const balance = this.tokenBalance(token)
    if (balance >= price) {
      this.setTokenBalance(token, balance - price)
      answer[0] = 1
      answer.writeBigUInt64BE(balance - price, 1)
    } else {
      answer.writeBigUInt64BE(balance, 1)
    }
    return answer
  }

  /** True if payment totals or token balances changed since the last commit. */
  get hasDirty(): boolean {
    return this.dirty.length > 0 || this.dirtyTokens.size > 0
  }

  /** Inside the shard's commit transaction; nothing is marked clean before it commits (written). */
  writeDirty(): void {
    for (const p of this.dirty) this.store.payments.put([p.payee, p.id], encodePayment(p))
    for (const token of this.dirtyTokens) {
      const value = Buffer.alloc(8)
      value.writeBigUInt64BE(this.tokenBalances.get(token)!, 0)
      this.store.tokens.put(token, value)
    }
  }

  /** After the commit's transaction committed: a failed one leaves everything dirty, to be written again. */
  written(): void {
    for (const p of this.dirty) p.dirty = false
    this.dirty.length = 0
    this.dirtyTokens.clear()
  }

  private creditToken(token: string, amount: bigint): void {
    if (amount === 0n) return
    const balance = this.tokenBalance(token) + amount
    this.setTokenBalance(token, balance > UINT64_MAX ? UINT64_MAX : balance)
  }

  /**
   * A token's balance: as set since start, else as stored. Only balances this shard set are kept
   * in memory (each took a payment or a spend of a funded token); a lookup of an unknown token
   * (anyone can send a paid request with a made-up one) leaves nothing behind.
   */
  private tokenBalance(token: string): bigint {
    const balance = this.tokenBalances.get(token)
    if (balance !== undefined) return balance
    const stored = this.store.tokens.get(token)
    return stored === undefined ? 0n : Buffer.from(stored).readBigUInt64BE(0)
  }

  private setTokenBalance(token: string, balance: bigint): void {
    this.tokenBalances.set(token, balance)
    this.dirtyTokens.add(token)
  }

  private tokenOf(payee: number, destination: string, kind: ReceiverKind): string | null {
    const base = this.addresses[payee]
    const segment = SEGMENTS[kind]
    if (base === null || !destination.startsWith(base) || !destination.startsWith(segment, base.length)) return null
    const start = base.length + segment.length
    const token = destination.slice(start, start + TOKEN_CHARS)
    const after = destination.charCodeAt(start + TOKEN_CHARS)
    return token.length === TOKEN_CHARS && (Number.isNaN(after) || after === 0x2e) ? token : null
  }

  private keysFor(payee: number, secret: Uint8Array, kind: ReceiverKind, token: string): EnvelopeKeys {
    const key = `${kind}/${payee}/${token}`
    let keys = this.keys.get(key)
    if (keys === undefined) {
      const tokenBytes = Buffer.from(token, 'base64url')
      keys = kind === 'psk2' ? psk2Keys(sharedSecretFor(secret, tokenBytes)) : streamKeys(streamSharedSecretFor(secret, tokenBytes))
      if (this.keys.size >= MAX_KEYS) this.keys.delete(this.keys.keys().next().value as string)
      this.keys.set(key, keys)
    }
    return keys
  }

  /** A payment's state: in memory, else as last written to LMDB, else new. */
  private payment(payee: string, id: string, nowMs: number): Payment {
    const key = `${payee}/${id}`
    let payment = this.payments.get(key)
    if (payment === undefined) {
      const stored = this.store.payments.get([payee, id])
      const record = stored === undefined ? { received: 0n, chunks: 0, finished: false, lastAtMs: nowMs } : decodePayment(stored)
      payment = { payee, id, ...record, sequences: new Set(), dirty: false }
      if (this.payments.size >= MAX_PAYMENTS) this.evictOldest()
      this.payments.set(key, payment)
    }
    return payment
  }

  /** One paid chunk: the totals saturate (their stored widths are 32 and 64 bits), never wrap or throw. */
  private count(payment: Payment, amount: bigint): void {
    const received = payment.received + amount
    payment.received = received > UINT64_MAX ? UINT64_MAX : received
    if (payment.chunks < MAX_CHUNKS) payment.chunks++
  }

  /**
   * Marks a payment to be written with the shard's next commit. One that has received nothing is
   * not written: it moves no money, and a sender could otherwise add a record per packet of 0 for
   * free (a new payment id or STREAM connection each time).
   */
  private touch(payment: Payment, nowMs: number): void {
    payment.lastAtMs = nowMs
    if (payment.received > 0n && !payment.dirty) {
      payment.dirty = true
      this.dirty.push(payment)
    }
  }

  /**
   * Forgets the oldest tenth of the payments in memory (their totals stay in LMDB). A chunk of a
   * forgotten payment that is retried after this could be paid again; at MAX_PAYMENTS payments in
   * memory that takes a sender retrying a chunk long after it was fulfilled.
   */
  private evictOldest(): void {
    let n = MAX_PAYMENTS / 10
    for (const [key, p] of this.payments) {
      if (n-- <= 0) break
      if (!p.dirty) this.payments.delete(key)
    }
    this.log.debug('forgot the oldest payments in memory', { kept: this.payments.size })
  }

  private reject(code: IlpErrorCode, message: string, data?: Uint8Array): Buffer {
    this.log.debug('payee rejected a packet', { code, message })
    return encodeReject(code, this.ilpAddress, message, data)
  }
}

/** The pay token a shop payment names in its data: all 32 bytes (draft 3), else the first 16. */
function payToken(data: Uint8Array): string | null {
  if (data.length === TOKEN_32) return Buffer.from(data).toString('base64url')
  if (data.length < TOKEN_16) return null
  return Buffer.from(data.buffer, data.byteOffset, TOKEN_16).toString('base64url')
}
