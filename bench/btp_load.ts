// Our BTP load generator: alice (or many senders) keeps W prepares outstanding to `<node>.bob`
// (or each sender to its own receiver), bob (or every receiver) fulfills each one. All are lean
// WebSocket clients (ws_client.ts) with pre-encoded frames, so the generator costs little CPU next
// to the node (ilp-plugin-btp allocates promises and timers per packet and would be the
// bottleneck). Every run is bounded by a packet count and a duration.

import { createHash } from 'node:crypto'
import { BtpFrame, BTP_MESSAGE, BTP_RESPONSE, ilpFrameLength, writeIlpFrame } from '../src/codec/btp_packet'
import { connectBtp } from '../test/support/btp_connect'
import { encodeFulfill, encodePrepare } from '../src/codec/ilp_packet'
import { BenchWebSocket } from '../test/support/ws_client'

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

export interface BtpAccount {
  user: string
  token: string
}

export interface LoadOptions {
  port: number
  /** The receivers' port when the server listens per account (ilp-plugin-btp listeners); default `port`. */
  bobPort?: number
  /** Where prepares go, unless their sender names its own destination. */
  destination: string
  window: number
  durationMs: number
  maxPackets: number
  warmupMs: number
  /** The sending accounts (default alice); `window` is spread over them. */
  senders?: (BtpAccount & { destination?: string })[]
  /** The receiving accounts (default bob), each a connection that fulfills what reaches it. */
  receivers?: BtpAccount[]
  /** The prepare every sender sends (default: `amount` units to its destination, for a receiver to fulfill). */
  prepare?: Buffer
  /** The default prepare's amount (1 unit unless set). */
  amount?: bigint
  /** Connect the receivers and fulfill what reaches them (default true; false when a payee answers). */
  receiver?: boolean
  /** Called when measurement starts and ends (to sample the node's CPU over the same span). */
  onMeasureStart?: () => void
  onMeasureEnd?: () => void
}

/** A sender's connection and the frame it sends (its requestId rewritten per packet). */
interface Lane {
  ws: BenchWebSocket
  template: Buffer
}

const FULFILLMENT = Buffer.alloc(32, 0x42)
const CONDITION = createHash('sha256').update(FULFILLMENT).digest()

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

/** Runs one bounded load run and returns its figures. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const senderAccounts = o.senders ?? [{ user: 'alice', token: 'alice-token' }]
  const senders = await Promise.all(senderAccounts.map((a) => connectBtp(o.port, a.user, a.token)))
  const receiverAccounts = o.receiver === false ? [] : o.receivers ?? [{ user: 'bob', token: 'bob-token' }]
  const receivers = await Promise.all(receiverAccounts.map((a) => connectBtp(o.bobPort ?? o.port, a.user, a.token)))

  const fulfill = encodeFulfill(FULFILLMENT, Buffer.alloc(0))
  const frame = new BtpFrame()
  const response = Buffer.allocUnsafe(ilpFrameLength(fulfill.length))
  for (const receiver of receivers) {
    receiver.onMessage = (data) => {
      if (!frame.parse(data) || frame.type !== BTP_MESSAGE) return
      writeIlpFrame(response, BTP_RESPONSE, frame.requestId, fulfill)
      receiver.send(response)
    }
  }

  // One prepare per destination, re-sent with a new requestId each time; its expiry covers the
  // whole run. Each sender keeps the frame of its own destination.
  const expiresAtMs = Date.now() + o.warmupMs + o.durationMs + 30_000
  const templates = new Map<string, Buffer>()
  const templateFor = (destination: string): Buffer => {
    let template = templates.get(destination)
    if (template === undefined) {
      const prepare = o.prepare ?? encodePrepare({ amount: o.amount ?? 1n, expiresAtMs, executionCondition: CONDITION, destination, data: Buffer.alloc(0) })
      template = Buffer.allocUnsafe(ilpFrameLength(prepare.length))
      writeIlpFrame(template, BTP_MESSAGE, 0, prepare)
      templates.set(destination, template)
    }
    return template
  }
  const lanes = senders.map((ws, i) => ({ ws, template: templateFor(senderAccounts[i].destination ?? o.destination) }))

  const sentAt = new Float64Array(1 << 20)
  const latencies = new Float64Array(Math.min(o.maxPackets, 4_000_000))
  let nextId = 1
  let measuring = false
  let stopping = false
  let measured = 0
  let fulfilled = 0
  let rejected = 0
  let inFlight = 0

  const send = (lane: Lane) => {
    const id = nextId++
    lane.template.writeUInt32BE(id, 1)
    sentAt[id & (sentAt.length - 1)] = performance.now()
    inFlight++
    lane.ws.send(lane.template)
  }

  let finish: () => void = () => {}
  const done = new Promise<void>((resolve) => { finish = resolve })
  const replyFrame = new BtpFrame()
  const onReply = (lane: Lane, data: Buffer) => {
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
    if (!stopping) send(lane)
    else if (inFlight === 0) finish()
  }
  for (const lane of lanes) lane.ws.onMessage = (data) => onReply(lane, data)

  for (let i = 0; i < Math.max(o.window, lanes.length); i++) send(lanes[i % lanes.length])
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
  for (const ws of [...senders, ...receivers]) ws.close()

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
