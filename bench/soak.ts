// `npm run soak -- --minutes N [--rate R]`: the node (a child process, as `npm start` runs it)
// forwards alice → bob at a steady R packets/s for N minutes; every minute the soak prints the
// packets forwarded, p50/p99 latency, the node's CPU per packet, its resident memory (VmRSS, and
// its anonymous part) and the count in flight. Anonymous memory must stay flat after a 3-minute
// warm-up: the last line compares the last third of the judged minutes with the first third (the
// run fails above 10 %).
// Bounded by N minutes and by at most 2·R/100 prepares outstanding.

import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { BTP_MESSAGE, BTP_RESPONSE, ilpFrameLength, writeIlpFrame } from '../src/codec/btp_packet'
import { encodeFulfill, encodePrepare } from '../src/codec/ilp_packet'
import { startServerProcess } from './server_process'
import { maskedFrame } from '../src/testing/websocket'
import { BtpSocket, ilpTypeOfReply, requestIdOffset } from './generator/btp_socket'

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? Number(process.argv[at + 1]) : fallback
}

/** The node's resident memory: all of it, and the anonymous part (heap and buffers; the rest is
 * mapped files, the binary and its libraries, which grow as more of their pages are touched). */
function memory(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024
  return { rss: kb('VmRSS'), anon: kb('RssAnon') }
}

const WARMUP_MINUTES = 3

async function main(): Promise<void> {
  const minutes = arg('minutes', 10)
  const rate = arg('rate', 20_000)
  const node = await startServerProcess({})
  console.log(`soak: ${minutes} min at ${rate} packets/s, alice → node (pid ${node.proc.pid}, port ${node.port}) → bob`)
  const alice = await BtpSocket.connect(node.port, 'alice', 'alice-token')
  const bob = await BtpSocket.connect(node.port, 'bob', 'bob-token')
  const fulfillment = Buffer.alloc(32, 0x42)
  const condition = createHash('sha256').update(fulfillment).digest()
  const fulfill = encodeFulfill(fulfillment, Buffer.alloc(0))
  const response = Buffer.alloc(ilpFrameLength(fulfill.length))
  writeIlpFrame(response, BTP_RESPONSE, 0, fulfill)
  const responseFrame = maskedFrame(response)
  bob.onMessage = (buf, at) => {
    if (buf[at] === BTP_MESSAGE) bob.queue(responseFrame, requestIdOffset(responseFrame), buf.readUInt32BE(at + 1))
  }

  const sentAt = new Map<number, number>()
  let latencies: number[] = []
  let fulfilled = 0
  let rejected = 0
  let nextId = 2
  const maxOutstanding = Math.max(100, (2 * rate) / 100)
  alice.onMessage = (buf, at, length) => {
    if (buf[at] !== BTP_RESPONSE) return
    const id = buf.readUInt32BE(at + 1)
    const sent = sentAt.get(id)
    if (sent === undefined) return
    sentAt.delete(id)
    latencies.push(performance.now() - sent)
    if (ilpTypeOfReply(buf, at, length) === 13) fulfilled++
    else rejected++
  }
  // Prepares are made fresh each tick (expiry 30 s ahead); the amount is 1 unit.
  const tick = () => {
    const prepare = encodePrepare({ amount: 1n, expiresAtMs: Date.now() + 30_000, executionCondition: condition, destination: 'test.ilpnode.bob', data: Buffer.alloc(0) })
    const message = Buffer.alloc(ilpFrameLength(prepare.length))
    writeIlpFrame(message, BTP_MESSAGE, 0, prepare)
    const frame = maskedFrame(message)
    for (let i = 0; i < rate / 100 && sentAt.size < maxOutstanding; i++) {
      const id = nextId++
      sentAt.set(id, performance.now())
      alice.queue(frame, requestIdOffset(frame), id)
    }
    alice.flush()
  }
  const pacer = setInterval(tick, 10)
  const samples: number[] = []
  let cpuBefore = node.cpuMicros()
  for (let minute = 1; minute <= minutes; minute++) {
    await new Promise((resolve) => setTimeout(resolve, 60_000))
    // The node's CPU per packet tells a node that works harder per packet (it would rise) from a
    // machine that got slower (latency rises, CPU per packet does not).
    const cpu = node.cpuMicros()
    const cpuPerPacket = (cpu - cpuBefore) / Math.max(1, fulfilled + rejected)
    cpuBefore = cpu
    const sorted = latencies.sort((a, b) => a - b)
    const pct = (p: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] * 1000)
    const { rss, anon } = memory(node.proc.pid!)
    samples.push(anon)
    console.log(`  minute ${String(minute).padStart(3)}: ${fulfilled.toLocaleString('en-US').padStart(10)} fulfilled, ${rejected} rejected, ` +
      `p50 ${pct(0.5).toFixed(0)} µs, p99 ${pct(0.99).toFixed(0)} µs, node CPU ${cpuPerPacket.toFixed(1)} µs/packet, node RSS ${(rss / 1048576).toFixed(1)} MiB ` +
      `(anonymous ${(anon / 1048576).toFixed(1)} MiB), in flight ${sentAt.size}`)
    latencies = []
    fulfilled = 0
    rejected = 0
  }
  clearInterval(pacer)
  alice.close()
  bob.close()
  await node.stop()
  // V8 sizes its heap over the first minutes; a leak is growth that goes on after that. So the
  // first WARMUP_MINUTES are not judged, and the last third of the rest is compared with the
  // first third of it (at least one minute each).
  const judged = samples.slice(WARMUP_MINUTES)
  if (judged.length >= 2) {
    const third = Math.max(1, Math.floor(judged.length / 3))
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
    const early = mean(judged.slice(0, third))
    const late = mean(judged.slice(-third))
    const growth = (late - early) / early
    const mib = (b: number) => (b / 1048576).toFixed(1)
    console.log(`anonymous memory after a ${WARMUP_MINUTES}-minute warm-up: minutes ${WARMUP_MINUTES + 1}–${WARMUP_MINUTES + third} ${mib(early)} MiB → ` +
      `last ${third} ${mib(late)} MiB (${(growth * 100).toFixed(1)} %), peak ${mib(Math.max(...judged))} MiB`)
    if (growth > 0.1) {
      console.log('anonymous memory grew by more than 10 % after warm-up')
      process.exit(1)
    }
  }
}

main().catch((err: Error) => {
  console.error(err.stack)
  process.exit(1)
})
