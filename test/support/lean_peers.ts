// Lean BTP peers for the tests that play a sender or a next hop at volume or with exact timing
// (late answers, floods, full disks): raw frames on a WebSocket (btp_connect.ts), no plugin
// between the test and the wire. Packets are read back with ilp-packet, an independent codec.

import { createHash } from 'node:crypto'
import { BTP_MESSAGE, BTP_RESPONSE, BtpFrame, ilpFrameLength, writeIlpFrame } from '../../src/codec/btp_packet'
import { encodeFulfill, encodePrepare } from '../../src/codec/ilp_packet'
import * as IlpPacket from 'ilp-packet'
import { connectBtp } from './btp_connect'
import type { BenchWebSocket } from './ws_client'

/** The one fulfillment (and its condition) these peers use, unless a test gives its own. */
export const FULFILLMENT = Buffer.alloc(32, 9)
export const CONDITION = createHash('sha256').update(FULFILLMENT).digest()

/** Fulfill, or the reject's code, of an ILP answer. */
export function kindOf(ilp: Buffer): string {
  return ilp[0] === IlpPacket.Type.TYPE_ILP_FULFILL ? 'fulfill' : IlpPacket.deserializeIlpReject(ilp).code
}

function frame(type: number, requestId: number, ilp: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ilpFrameLength(ilp.length))
  writeIlpFrame(out, type, requestId, ilp)
  return out
}

/**
 * A sender: pay() sends one prepare and resolves with its answer; keep() keeps `window` prepares
 * outstanding to one destination, counting what comes back (fulfilled amount, rejects by code).
 */
export class LeanSender {
  /** Sum of the amounts fulfilled, as this sender saw them. */
  seen = 0n
  readonly rejects = new Map<string, number>()
  /** Rejects whose message says the storage is unavailable (store/storage_health.ts). */
  storageRefusals = 0
  window = 0
  private destination = ''
  private amountOf: (id: number) => bigint = () => 1n
  private expiresInMs = 20_000
  private nextId = 2
  private readonly waiting = new Map<number, { amount: bigint; resolve: ((ilp: Buffer) => void) | null }>()
  private readonly reply = new BtpFrame()

  private constructor(readonly ws: BenchWebSocket) {
    ws.onMessage = (data) => {
      if (!this.reply.parse(data) || this.reply.type !== BTP_RESPONSE) return
      const waiting = this.waiting.get(this.reply.requestId)
      if (waiting === undefined) return
      this.waiting.delete(this.reply.requestId)
      const ilp = Buffer.from(this.reply.entryData(0))
      if (ilp[0] === IlpPacket.Type.TYPE_ILP_FULFILL) this.seen += waiting.amount
      else {
        const reject = IlpPacket.deserializeIlpReject(ilp)
        this.rejects.set(reject.code, (this.rejects.get(reject.code) ?? 0) + 1)
        if (reject.code === 'T00' && reject.message.includes('storage unavailable')) this.storageRefusals++
      }
      if (waiting.resolve !== null) waiting.resolve(ilp)
      else this.topUp()
    }
  }

  static async connect(port: number, account: string): Promise<LeanSender> {
    return new LeanSender(await connectBtp(port, account, `${account}-token`))
  }

  /** Prepares sent and not yet answered. */
  get outstanding(): number {
    return this.waiting.size
  }

  pay(destination: string, amount: bigint, expiresInMs = 20_000, condition = CONDITION): Promise<Buffer> {
    return new Promise((resolve) => this.send(destination, amount, expiresInMs, condition, resolve))
  }

  /** Sends `count` prepares at once, without waiting; their answers are counted as they come. */
  burst(destination: string, amount: bigint, count: number, expiresInMs = 20_000): void {
    for (let i = 0; i < count; i++) this.send(destination, amount, expiresInMs, CONDITION, null)
  }

  /** Keeps `window` prepares to `destination` outstanding, amounts by request id, until window is 0. */
  keep(destination: string, window: number, amountOf: (id: number) => bigint = (id) => BigInt(1 + (id % 89)), expiresInMs = 20_000): void {
    this.destination = destination
    this.amountOf = amountOf
    this.expiresInMs = expiresInMs
    this.window = window
    this.topUp()
  }

  topUp(): void {
    while (this.waiting.size < this.window && !this.ws.closed) this.send(this.destination, this.amountOf(this.nextId), this.expiresInMs, CONDITION, null)
  }

  /** Stops sending and waits, at most `ms`, until every prepare sent has its answer; the number still waiting. */
  async settle(ms: number): Promise<number> {
    this.window = 0
    const deadline = Date.now() + ms
    while (this.waiting.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    return this.waiting.size
  }

  private send(destination: string, amount: bigint, expiresInMs: number, condition: Buffer, resolve: ((ilp: Buffer) => void) | null): void {
    const id = this.nextId++
    const prepare = encodePrepare({ amount, expiresAtMs: Date.now() + expiresInMs, executionCondition: condition, destination, data: Buffer.alloc(0) })
    this.waiting.set(id, { amount, resolve })
    this.ws.send(frame(BTP_MESSAGE, id, prepare))
  }
}

/**
 * A next hop: answers every prepare at once with `autoAnswer`, after `holdMs` if set, or keeps it
 * (by request id) until the test answers it. Counts what it fulfilled, as its own books would.
 */
export class LeanNextHop {
  readonly held: { requestId: number; amount: bigint }[] = []
  autoAnswer: Buffer | null = null
  holdMs = 0
  /** Sum of the amounts this next hop fulfilled (answers it sent). */
  fulfilled = 0n
  /** Prepares waiting for their timed answer (holdMs). */
  holding = 0
  private readonly frame = new BtpFrame()

  private constructor(readonly ws: BenchWebSocket) {
    ws.onMessage = (data) => {
      if (!this.frame.parse(data) || this.frame.type !== BTP_MESSAGE || this.frame.entryCount === 0) return
      const requestId = this.frame.requestId
      const ilp = Buffer.from(this.frame.entryData(0))
      // The amount follows the type and the length prefix (one byte, or 0x80 + n and n bytes).
      const amount = ilp.readBigUInt64BE(ilp[1] < 0x80 ? 2 : 2 + (ilp[1] & 0x7f))
      const answer = this.autoAnswer
      if (answer === null) return void this.held.push({ requestId, amount })
      if (this.holdMs === 0) return this.answer(requestId, amount, answer)
      this.holding++
      setTimeout(() => {
        this.holding--
        this.answer(requestId, amount, answer)
      }, this.holdMs)
    }
  }

  static async connect(port: number, account: string): Promise<LeanNextHop> {
    return new LeanNextHop(await connectBtp(port, account, `${account}-token`))
  }

  /** Fulfils every prepare (with FULFILLMENT), after `holdMs`. */
  fulfillAll(holdMs = 0): void {
    this.holdMs = holdMs
    this.autoAnswer = encodeFulfill(FULFILLMENT, Buffer.alloc(0))
  }

  answer(requestId: number, amount: bigint, ilp: Buffer): void {
    if (this.ws.closed) return
    this.ws.send(frame(BTP_RESPONSE, requestId, ilp))
    if (ilp[0] === IlpPacket.Type.TYPE_ILP_FULFILL) this.fulfilled += amount
  }
}
