// Our BTP load generator: alice (or many senders) keeps W prepares outstanding to `<node>.bob`,
// bob fulfills each one. Both are lean WebSocket clients (ws_client.ts) with pre-encoded frames, so the generator
// costs little CPU next to the node (ilp-plugin-btp allocates promises and timers per packet and
// would be the bottleneck). Every run is bounded by a packet count and a duration.

import { createHash } from 'node:crypto'
import { BtpFrame, BTP_MESSAGE, BTP_RESPONSE, encodeMessage, ilpFrameLength, writeIlpFrame } from '../src/codec/btp_packet'
import { encodeFulfill, encodePrepare } from '../src/codec/ilp_packet'
import { BenchWebSocket } from './ws_client'

export interface LoadResult {
  window: number
  senders: number
  packets: number
  fulfilled: number
  rejected: number
  seconds: number
  packetsPerSecond: number
  p50Us: number
  p90Us: number
  p99Us: number
  generatorCpuUsPerPacket: number
  /** Latency at every whole percentile, 0..100, in µs (the chart's distribution). */
  latencyPercentilesUs: number[]
}

export interface LoadOptions {
  port: number
  /** bob's port when the server listens per account (ilp-plugin-btp listeners); default `port`. */
  bobPort?: number
  destination: string
  window: number
  durationMs: number
  maxPackets: number
  warmupMs: number
  /** The sending accounts (default alice); `window` is spread over them. */
  senders?: { user: string; token: string }[]
  bobToken?: string
  bobUser?: string
  /** The prepare to send (default: 1 unit to `destination`, for bob to fulfill). */
  prepare?: Buffer
  /** Connect bob and fulfill what reaches him (default true; false when a payee answers). */
  receiver?: boolean
  /** Called when measurement starts and ends (to sample the node's CPU over the same span). */
  onMeasureStart?: () => void
  onMeasureEnd?: () => void
}

const FULFILLMENT = Buffer.alloc(32, 0x42)
const CONDITION = createHash('sha256').update(FULFILLMENT).digest()

/** A lean BTP client: opens the WebSocket and authenticates; rejects if the auth is refused. */
export async function connectBtp(port: number, username: string, token: string): Promise<BenchWebSocket> {
  const ws = await BenchWebSocket.open(port)
  return new Promise((resolve, reject) => {
    ws.onMessage = (data) => {
      if (data[0] !== BTP_RESPONSE) reject(new Error(`auth refused for ${username}`))
      else resolve(ws)
    }
    ws.send(encodeMessage(1, [
      { protocolName: 'auth', contentType: 0, data: Buffer.alloc(0) },
      { protocolName: 'auth_username', contentType: 1, data: Buffer.from(username) },
      { protocolName: 'auth_token', contentType: 1, data: Buffer.from(token) },
    ]))
  })
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

/** Runs one bounded load run and returns its figures. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const senderAccounts = o.senders ?? [{ user: 'alice', token: 'alice-token' }]
  const senders = await Promise.all(senderAccounts.map((a) => connectBtp(o.port, a.user, a.token)))
  const bob = o.receiver === false ? null : await connectBtp(o.bobPort ?? o.port, o.bobUser ?? 'bob', o.bobToken ?? 'bob-token')

  const fulfill = encodeFulfill(FULFILLMENT, Buffer.alloc(0))
  const frame = new BtpFrame()
  const response = Buffer.allocUnsafe(ilpFrameLength(fulfill.length))
  if (bob !== null) {
    bob.onMessage = (data) => {
      if (!frame.parse(data) || frame.type !== BTP_MESSAGE) return
      writeIlpFrame(response, BTP_RESPONSE, frame.requestId, fulfill)
      bob.send(response)
    }
  }

  // One prepare, re-sent with a new requestId each time; its expiry covers the whole run.
  const prepare = o.prepare ?? encodePrepare({
    amount: 1n,
    expiresAtMs: Date.now() + o.warmupMs + o.durationMs + 30_000,
    executionCondition: CONDITION,
    destination: o.destination,
    data: Buffer.alloc(0),
  })
  const frameLength = ilpFrameLength(prepare.length)
  const template = Buffer.allocUnsafe(frameLength)
  writeIlpFrame(template, BTP_MESSAGE, 0, prepare)

  const sentAt = new Float64Array(1 << 20)
  const latencies = new Float64Array(Math.min(o.maxPackets, 4_000_000))
  let nextId = 1
  let measuring = false
  let stopping = false
  let measured = 0
  let fulfilled = 0
  let rejected = 0
  let inFlight = 0

  const send = (sender: BenchWebSocket) => {
    const id = nextId++
    const out = template
    out.writeUInt32BE(id, 1)
    sentAt[id & (sentAt.length - 1)] = performance.now()
    inFlight++
    sender.send(out)
  }

  let finish: () => void = () => {}
  const done = new Promise<void>((resolve) => { finish = resolve })
  const replyFrame = new BtpFrame()
  const onReply = (sender: BenchWebSocket, data: Buffer) => {
    if (!replyFrame.parse(data) || replyFrame.type !== BTP_RESPONSE) return
    inFlight--
    if (measuring) {
      const latency = performance.now() - sentAt[replyFrame.requestId & (sentAt.length - 1)]
      if (measured < latencies.length) latencies[measured] = latency
      measured++
      const ilpType = replyFrame.entryCount > 0 ? replyFrame.buf[replyFrame.dataOffset[0]] : 0
      if (ilpType === 13) fulfilled++
      else rejected++
      if (measured >= o.maxPackets) stopping = true
    }
    if (!stopping) send(sender)
    else if (inFlight === 0) finish()
  }
  for (const sender of senders) sender.onMessage = (data) => onReply(sender, data)

  for (let i = 0; i < Math.max(o.window, senders.length); i++) send(senders[i % senders.length])
  await new Promise((resolve) => setTimeout(resolve, o.warmupMs))
  measuring = true
  o.onMeasureStart?.()
  const startCpu = process.cpuUsage()
  const started = performance.now()
  const timer = setTimeout(() => { stopping = true }, o.durationMs)
  await Promise.race([done, new Promise((resolve) => setTimeout(resolve, o.durationMs + 30_000))])
  clearTimeout(timer)
  const seconds = (performance.now() - started) / 1000
  const cpu = process.cpuUsage(startCpu)
  o.onMeasureEnd?.()
  for (const sender of senders) sender.close()
  bob?.close()

  const sorted = latencies.slice(0, Math.min(measured, latencies.length)).sort()
  return {
    window: o.window,
    senders: senders.length,
    packets: measured,
    fulfilled,
    rejected,
    seconds,
    packetsPerSecond: measured / seconds,
    p50Us: percentile(sorted, 0.5) * 1000,
    p90Us: percentile(sorted, 0.9) * 1000,
    p99Us: percentile(sorted, 0.99) * 1000,
    generatorCpuUsPerPacket: measured > 0 ? (cpu.user + cpu.system) / measured : 0,
    latencyPercentilesUs: Array.from({ length: 101 }, (_, i) => percentile(sorted, i / 100) * 1000),
  }
}
