// One process of the load generator (load.ts forks one or more). Over BTP it plays its share of
// the senders, each keeping its own window of prepares outstanding, and of the receivers, each
// fulfilling every prepare that reaches it; over ILP over HTTP, its share of the connections,
// each with one request outstanding. It counts what the senders get back between the bench's
// `measure` and `stop`. A process of its own so that its CPU, read from /proc by the
// bench, is the generator's alone, and so that several can load a node with many cores.
//
// The bench drives it over the IPC channel: connect (a GeneratorJob) → ready, start, measure,
// stop → result. It says `done` when its senders have had their share of the run's packets.

import { createHash } from 'node:crypto'
import { BTP_ERROR, BTP_MESSAGE, BTP_RESPONSE, ilpFrameLength, writeIlpFrame } from '../../src/codec/btp_packet'
import { encodeFulfill } from '../../src/codec/ilp_packet'
import { maskedFrame } from '../../src/testing/websocket'
import { BtpSocket, ilpTypeOfReply, requestIdOffset } from './btp_socket'
import { HttpSocket, ILP_FULFILL } from './http_socket'
import { countLatency, newLatencyCounts } from './latency_histogram'

export interface GeneratorJob {
  /** The port senders connect to, and the one receivers connect to (ilp-plugin-btp listens per account). */
  port: number
  bobPort: number
  senders: { user: string; token: string; prepare: Uint8Array; window: number }[]
  receivers: { user: string; token: string }[]
  /** ILP over HTTP in place of BTP senders and receivers (bob is the bench's own server then). */
  http: HttpJob | null
  /** Stop counting (and say done) after this many replies. */
  maxPackets: number
}

/** Keep-alive connections, each sending `request` again and again, one outstanding. */
export interface HttpJob {
  /** The whole request, encoded (http_socket.ts encodeRequest). */
  request: Uint8Array
  /** Where each request's 8-byte tag goes (a prepare's data), or -1: this process's number and a count, so that no two are the same. */
  tagOffset: number
  connections: number
  tag: number
  /** ILP over HTTP: an answer counts as fulfilled if it is a 200 with a Fulfill; else any 2xx does. */
  ilp: boolean
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

/**
 * The counts and the bench's messages, whatever the transport: each answer is counted while the
 * bench measures, and says whether its sender sends again (not once the bench said stop).
 */
class Run {
  readonly counts: GeneratorCounts = { packets: 0, fulfilled: 0, rejected: 0, latencyCounts: newLatencyCounts() }
  private inFlight = 0
  private measuring = false
  private stopping = false
  private reported = false

  constructor(private readonly maxPackets: number, private readonly closeAll: () => void) {}

  sent(): void {
    this.inFlight++
  }

  /** One answer, `latencyUs` after its prepare left; true if its sender sends another. */
  answered(fulfilled: boolean, latencyUs: number): boolean {
    this.inFlight--
    if (this.measuring) {
      countLatency(this.counts.latencyCounts, latencyUs)
      if (fulfilled) this.counts.fulfilled++
      else this.counts.rejected++
      if (++this.counts.packets === this.maxPackets) send({ kind: 'done' })
    }
    if (!this.stopping) return true
    if (this.inFlight === 0) this.report()
    return false
  }

  /** A connection lost mid-run fails it; after the stop, the answers it owed are not waited for. */
  lost(reason: string): void {
    if (this.stopping) return this.report()
    send({ kind: 'failed', message: reason })
  }

  /** Follows the bench's messages; `start` sends every sender's first window. */
  listen(start: () => void): void {
    process.on('message', (m: ToGenerator) => {
      if (m.kind === 'start') {
        start()
      } else if (m.kind === 'measure') {
        this.measuring = true
      } else if (m.kind === 'stop') {
        this.measuring = false
        this.stopping = true
        if (this.inFlight === 0) this.report()
        else setTimeout(() => this.report(), DRAIN_MS).unref()
      }
    })
    send({ kind: 'ready' })
  }

  private report(): void {
    if (this.reported) return
    this.reported = true
    send({ kind: 'result', ...this.counts })
    this.closeAll()
  }
}

async function runBtp(job: GeneratorJob): Promise<void> {
  const receivers = await connectReceivers(job)
  const lanes = await connectSenders(job)
  const sentAt = new Float64Array(SENT_AT_SLOTS)
  const run = new Run(job.maxPackets, () => { for (const ws of [...lanes.map((l) => l.ws), ...receivers]) ws.close() })
  let nextId = 1

  const sendPrepare = (lane: Lane, nowMs: number) => {
    const id = nextId++
    sentAt[id & (SENT_AT_SLOTS - 1)] = nowMs
    run.sent()
    lane.ws.queue(lane.frame, lane.idOffset, id)
  }
  const onReply = (lane: Lane, buf: Buffer, at: number, length: number) => {
    const type = buf[at]
    if (type !== BTP_RESPONSE && type !== BTP_ERROR) return
    const nowMs = performance.now()
    const fulfilled = type === BTP_RESPONSE && ilpTypeOfReply(buf, at, length) === ILP_FULFILL
    if (run.answered(fulfilled, (nowMs - sentAt[buf.readUInt32BE(at + 1) & (SENT_AT_SLOTS - 1)]) * 1000)) sendPrepare(lane, nowMs)
  }
  for (const lane of lanes) lane.ws.onMessage = (buf, at, length) => onReply(lane, buf, at, length)
  run.listen(() => {
    const nowMs = performance.now()
    for (const lane of lanes) {
      for (let i = 0; i < lane.window; i++) sendPrepare(lane, nowMs)
      lane.ws.flush()
    }
  })
}

/** HTTP: `http.connections` keep-alive connections, one request outstanding on each. */
async function runHttp(job: GeneratorJob, http: HttpJob): Promise<void> {
  const request = Buffer.from(http.request)
  const sockets = await Promise.all(Array.from({ length: http.connections }, () => HttpSocket.connect(job.port, request, http.tagOffset)))
  const run = new Run(job.maxPackets, () => { for (const s of sockets) s.close() })
  let nextTag = 1
  const send = (s: HttpSocket, nowMs: number) => {
    run.sent()
    s.send(http.tag, nextTag++, nowMs)
  }
  const answered = http.ilp
    ? (status: number, firstByte: number) => status === 200 && firstByte === ILP_FULFILL
    : (status: number) => status >= 200 && status < 300
  for (const s of sockets) {
    s.onAnswer = (status, firstByte) => {
      const nowMs = performance.now()
      if (run.answered(answered(status, firstByte), (nowMs - s.sentAtMs) * 1000)) send(s, nowMs)
    }
    s.onClose = (reason) => run.lost(`HTTP: ${reason}`)
  }
  run.listen(() => {
    const nowMs = performance.now()
    for (const s of sockets) send(s, nowMs)
  })
}

if (require.main === module) {
  process.once('message', (m: ToGenerator) => {
    if (m.kind !== 'connect') return
    (m.job.http === null ? runBtp(m.job) : runHttp(m.job, m.job.http)).catch((err: Error) => send({ kind: 'failed', message: err.message }))
  })
}
