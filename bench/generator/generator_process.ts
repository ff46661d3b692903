// One process of the BTP load generator (load.ts forks one or more). It plays its share of the
// senders, each keeping its own window of prepares outstanding, and of the receivers, each
// fulfilling every prepare that reaches it, and counts what the senders get back between the
// bench's `measure` and `stop`. A process of its own so that its CPU, read from /proc by the
// bench, is the generator's alone, and so that several can load a node with many cores.
//
// The bench drives it over the IPC channel: connect (a GeneratorJob) → ready, start, measure,
// stop → result. It says `done` when its senders have had their share of the run's packets.

import { createHash } from 'node:crypto'
import { BTP_ERROR, BTP_MESSAGE, BTP_RESPONSE, ilpFrameLength, writeIlpFrame } from '../../src/codec/btp_packet'
import { encodeFulfill } from '../../src/codec/ilp_packet'
import { maskedFrame } from '../../src/testing/websocket'
import { BtpSocket, ilpTypeOfReply, requestIdOffset } from './btp_socket'
import { countLatency, newLatencyCounts } from './latency_histogram'

export interface GeneratorJob {
  /** The port senders connect to, and the one receivers connect to (ilp-plugin-btp listens per account). */
  port: number
  bobPort: number
  senders: { user: string; token: string; prepare: Uint8Array; window: number }[]
  receivers: { user: string; token: string }[]
  /** Stop counting (and say done) after this many replies. */
  maxPackets: number
}

export type ToGenerator = { kind: 'connect'; job: GeneratorJob } | { kind: 'start' } | { kind: 'measure' } | { kind: 'stop' }

export interface GeneratorCounts {
  packets: number
  fulfilled: number
  rejected: number
  latencyCounts: Uint32Array
}

export type FromGenerator = { kind: 'ready' } | { kind: 'failed'; message: string } | { kind: 'done' } | ({ kind: 'result' } & GeneratorCounts)

/** The fulfillment of every prepare the bench sends (its condition is this one's SHA-256). */
export const BENCH_FULFILLMENT = Buffer.alloc(32, 0x42)
export const BENCH_CONDITION = createHash('sha256').update(BENCH_FULFILLMENT).digest()

const ILP_FULFILL = 13
/** Request ids are looked up modulo this (a power of two) for their send time: above any window. */
const SENT_AT_SLOTS = 1 << 20
/** How long a stopped run waits for the prepares still outstanding before it reports without them. */
const DRAIN_MS = 10_000

/** A sender's connection, its pre-encoded prepare frame and where that frame's request id goes. */
interface Lane {
  ws: BtpSocket
  frame: Buffer
  idOffset: number
  window: number
}

function send(message: FromGenerator): void {
  process.send!(message)
}

async function connectReceivers(job: GeneratorJob): Promise<BtpSocket[]> {
  const fulfill = encodeFulfill(BENCH_FULFILLMENT, Buffer.alloc(0))
  const response = Buffer.alloc(ilpFrameLength(fulfill.length))
  writeIlpFrame(response, BTP_RESPONSE, 0, fulfill)
  const frame = maskedFrame(response)
  const idOffset = requestIdOffset(frame)
  const receivers = await Promise.all(job.receivers.map((a) => BtpSocket.connect(job.bobPort, a.user, a.token)))
  for (const ws of receivers) {
    ws.onMessage = (buf, at) => {
      if (buf[at] === BTP_MESSAGE) ws.queue(frame, idOffset, buf.readUInt32BE(at + 1))
    }
  }
  return receivers
}

async function connectSenders(job: GeneratorJob): Promise<Lane[]> {
  return Promise.all(job.senders.map(async (s) => {
    const ws = await BtpSocket.connect(job.port, s.user, s.token)
    const message = Buffer.alloc(ilpFrameLength(s.prepare.length))
    writeIlpFrame(message, BTP_MESSAGE, 0, s.prepare)
    const frame = maskedFrame(message)
    return { ws, frame, idOffset: requestIdOffset(frame), window: s.window }
  }))
}

async function run(job: GeneratorJob): Promise<void> {
  const receivers = await connectReceivers(job)
  const lanes = await connectSenders(job)
  const sentAt = new Float64Array(SENT_AT_SLOTS)
  const counts: GeneratorCounts = { packets: 0, fulfilled: 0, rejected: 0, latencyCounts: newLatencyCounts() }
  let nextId = 1
  let inFlight = 0
  let measuring = false
  let stopping = false
  let reported = false

  const sendPrepare = (lane: Lane, nowMs: number) => {
    const id = nextId++
    sentAt[id & (SENT_AT_SLOTS - 1)] = nowMs
    inFlight++
    lane.ws.queue(lane.frame, lane.idOffset, id)
  }
  const report = () => {
    if (reported) return
    reported = true
    send({ kind: 'result', ...counts })
    for (const ws of [...lanes.map((l) => l.ws), ...receivers]) ws.close()
  }
  const onReply = (lane: Lane, buf: Buffer, at: number, length: number) => {
    const type = buf[at]
    if (type !== BTP_RESPONSE && type !== BTP_ERROR) return
    inFlight--
    const nowMs = performance.now()
    if (measuring) {
      countLatency(counts.latencyCounts, (nowMs - sentAt[buf.readUInt32BE(at + 1) & (SENT_AT_SLOTS - 1)]) * 1000)
      if (type === BTP_RESPONSE && ilpTypeOfReply(buf, at, length) === ILP_FULFILL) counts.fulfilled++
      else counts.rejected++
      if (++counts.packets === job.maxPackets) send({ kind: 'done' })
    }
    if (!stopping) sendPrepare(lane, nowMs)
    else if (inFlight === 0) report()
  }
  for (const lane of lanes) lane.ws.onMessage = (buf, at, length) => onReply(lane, buf, at, length)

  process.on('message', (m: ToGenerator) => {
    if (m.kind === 'start') {
      const nowMs = performance.now()
      for (const lane of lanes) {
        for (let i = 0; i < lane.window; i++) sendPrepare(lane, nowMs)
        lane.ws.flush()
      }
    } else if (m.kind === 'measure') {
      measuring = true
    } else if (m.kind === 'stop') {
      measuring = false
      stopping = true
      if (inFlight === 0) report()
      else setTimeout(report, DRAIN_MS).unref()
    }
  })
  send({ kind: 'ready' })
}

if (require.main === module) {
  process.once('message', (m: ToGenerator) => {
    if (m.kind !== 'connect') return
    run(m.job).catch((err: Error) => send({ kind: 'failed', message: err.message }))
  })
}
