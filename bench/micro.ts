// Micro-benchmarks: our codecs against the libraries' (benchmark.js), the routing lookup, the
// fulfillment hash, PSK2 receiving (ours against ilp-protocol-psk2's decoder), the SAB ring
// between two threads (records/s one way, and round-trip latency for batches of 1, 16 and 256
// records), and what a wake-up between two sleeping threads costs (native futex and Atomics).
// Bounded by benchmark.js's maxTime per case and by fixed counts for the ring and the wake-ups.

import Benchmark from 'benchmark'
import { createHash, hash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import * as IlpPacket from 'ilp-packet'
import * as Btp from 'btp-packet'
import { BtpFrame, BTP_MESSAGE, ilpFrameLength, writeIlpFrame } from '../src/codec/btp_packet'
import { digestMatches, encodePrepare, PrepareView } from '../src/codec/ilp_packet'
import { createDoorbell, Doorbell } from '../src/ring/doorbell'
import { nativeWake } from '../src/ring/native_wake'
import { createRing, RingReader, RingWriter } from '../src/ring/ring'
import { RoutingTable } from '../src/shard/routing_table'
import { decrypt, encrypt, parseDraft1, psk2Fulfillment, psk2Keys, serializeDraft1 } from '../src/codec/psk2'
import * as Psk2 from 'ilp-protocol-psk2'
import { AccountTable } from '../src/config/account_table'
import { parseConfig } from '../src/config/parse'
import { configuredRates, Exchange } from '../src/shard/exchange'

export interface MicroResult {
  name: string
  opsPerSecond: number
  /** Relative margin of error, percent. */
  rme: number
}

export interface RingResult {
  oneWayRecordsPerSecond: number
  roundTrip: { batch: number; p50Us: number; p99Us: number }[]
}

/** Results of the benchmarked calls land here, so that no call can be optimized away. */
export let sink = 0

function suite(cases: [string, () => void][], maxTime: number): MicroResult[] {
  const results: MicroResult[] = []
  const s = new Benchmark.Suite()
  for (const [name, fn] of cases) s.add(name, fn, { maxTime, minSamples: 5 })
  s.on('cycle', (event: { target: Benchmark }) => {
    const t = event.target
    results.push({ name: String(t.name), opsPerSecond: t.hz, rme: t.stats.rme })
    process.stdout.write(`    ${String(t.name).padEnd(48)} ${Math.round(t.hz).toLocaleString('en-US').padStart(12)} ops/s ±${t.stats.rme.toFixed(1)}%\n`)
  })
  s.run({ async: false })
  return results
}

export function runCodecBenchmarks(maxTimeSeconds: number): MicroResult[] {
  const prepareFields = {
    amount: 1000n,
    expiresAtMs: Date.parse('2030-01-01T00:00:00.000Z'),
    executionCondition: Buffer.alloc(32, 7),
    destination: 'g.us.bank.alice.wallet.a1b2c3',
    data: Buffer.alloc(64, 1),
  }
  const prepare = encodePrepare(prepareFields)
  const libraryFields = { ...prepareFields, amount: '1000', expiresAt: new Date(prepareFields.expiresAtMs) }
  const view = new PrepareView()
  const frameBytes = Buffer.alloc(ilpFrameLength(prepare.length))
  writeIlpFrame(frameBytes, BTP_MESSAGE, 1, prepare)
  const frame = new BtpFrame()
  const scratch = Buffer.alloc(frameBytes.length)
  const patchable = Buffer.from(prepare)
  const routes = new RoutingTable()
  for (let i = 0; i < 1000; i++) routes.set(`g.us.bank${i}`, i)
  routes.set('g.us.bank.alice', 5000)
  const destination = Buffer.from(prepareFields.destination)
  const fulfillment = Buffer.alloc(32, 3)
  const condition = createHash('sha256').update(fulfillment).digest()
  // A PSK2 draft-1 chunk as a payee receives it: open the envelope, read it, derive the fulfillment.
  const sharedSecret = Buffer.alloc(32, 5)
  const keys = psk2Keys(sharedSecret)
  const chunk = encrypt(keys.encryption, serializeDraft1(1, Buffer.alloc(16, 9), 0, 0xffffffffffffffffn, 0n))
  const library = Psk2 as unknown as { deserializeLegacyPskPacket(secret: Buffer, data: Buffer): { sequence: number } }
  // Step 6 of a prepare: alice (USD) to bob (USD) with no fee, to erin (EUR) at a rate with a spread.
  const child = (assetCode: string) => ({ relation: 'child', assetCode, assetScale: 9, btp: { token: `${assetCode}-${Math.random()}` } })
  const exchangeConfig = (spread: string) => parseConfig({
    ilpAddress: 'test.micro', spread, rates: { backend: 'static', base: 'USD', table: { EUR: '0.9173' } },
    accounts: { alice: child('USD'), bob: child('USD'), erin: child('EUR') },
  }, {}, { cores: 1, shards: 0 })
  const plain = exchangeConfig('0')
  const plainExchange = new Exchange(new AccountTable(plain), configuredRates(plain, Date.now()))
  const spread = exchangeConfig('0.002')
  const spreadExchange = new Exchange(new AccountTable(spread), configuredRates(spread, Date.now()))
  const amounts = Array.from({ length: 1024 }, (_, i) => 1000n + BigInt(i * 7919))
  let k = 0

  return suite([
    ['ILP prepare decode: ilp-node PrepareView', () => { sink += view.parse(prepare, 0, prepare.length) ? 1 : 0 }],
    ['ILP prepare decode: ilp-packet@3', () => { sink += IlpPacket.deserializeIlpPrepare(prepare).data.length }],
    ['ILP prepare encode: ilp-node encodePrepare', () => { sink += encodePrepare(prepareFields).length }],
    ['ILP prepare encode: ilp-packet@3', () => { sink += IlpPacket.serializeIlpPrepare(libraryFields).length }],
    ['ILP prepare forward: patch amount + expiry in place', () => {
      view.parse(patchable, 0, patchable.length)
      view.setAmount(999n)
      view.setExpiresAt(prepareFields.expiresAtMs - 1000)
    }],
    ['BTP frame decode: ilp-node BtpFrame', () => { sink += frame.parse(frameBytes) ? frame.dataLength[0] : 0 }],
    ['BTP frame decode: btp-packet@2', () => { sink += Btp.deserialize(frameBytes).requestId }],
    ['BTP frame encode: ilp-node writeIlpFrame', () => { sink += writeIlpFrame(scratch, BTP_MESSAGE, 1, prepare) }],
    ['BTP frame encode: btp-packet@2', () => { sink += Btp.serializeMessage(1, [{ protocolName: 'ilp', contentType: 0, data: prepare }]).length }],
    ['route lookup: longest prefix among 1,001 routes', () => { sink += routes.lookup(destination, 0, destination.length) }],
    ['fulfillment check: ilp-node digestMatches (crypto.hash to a binary string)', () => { sink += digestMatches(fulfillment, condition, 0) ? 1 : 0 }],
    ['fulfillment check: crypto.hash sha256 to a Buffer', () => { sink += (hash('sha256', fulfillment, 'buffer') as unknown as Buffer)[0] }],
    ['fulfillment check: createHash sha256', () => { sink += createHash('sha256').update(fulfillment).digest()[0] }],
    ['PSK2 chunk receive: ilp-node decrypt+parse+fulfillment', () => {
      sink += parseDraft1(decrypt(keys.encryption, chunk)!)!.sequence + psk2Fulfillment(keys, chunk)[0]
    }],
    ['PSK2 chunk receive: ilp-protocol-psk2@0.5 decrypt+parse', () => { sink += library.deserializeLegacyPskPacket(sharedSecret, chunk).sequence }],
    ['exchange: same asset, no spread', () => { sink += Number(plainExchange.convert(amounts[k++ & 1023], 0, 1, 0) & 1n) }],
    ['exchange: USD → EUR, rate and spread', () => { sink += Number(spreadExchange.convert(amounts[k++ & 1023], 0, 2, 0) & 1n) }],
    ['exchange: two pairs in turn, rate and spread', () => { sink += Number(spreadExchange.convert(amounts[k & 1023], 0, 1 + (k++ & 1), 0) & 1n) }],
  ], maxTimeSeconds)
}

/**
 * The ring between two threads: a worker echoes every record it reads back on a second ring.
 * One-way throughput: 1M records of 100 bytes pushed as fast as the echo allows. Round trip:
 * batches of 1, 16 and 256 records, timed from the first write to the last echo.
 */
export async function runRingBenchmark(records: number): Promise<RingResult> {
  const there = createRing(1 << 20)
  const back = createRing(1 << 20)
  // The shards' doorbells: native futex wake-ups when the addon is built.
  const native = nativeWake !== null
  const bellThere = { sab: createDoorbell(), native, pipe: null }
  const bellBack = { sab: createDoorbell(), native, pipe: null }
  const ringModule = join(__dirname, '..', 'src', 'ring', 'ring.js')
  const bellModule = join(__dirname, '..', 'src', 'ring', 'doorbell.js')
  const worker = new Worker(`
    const { workerData } = require('node:worker_threads')
    const { RingReader, RingWriter } = require(${JSON.stringify(ringModule)})
    const { Doorbell } = require(${JSON.stringify(bellModule)})
    const reader = new RingReader(workerData.there), writer = new RingWriter(workerData.back)
    const bell = new Doorbell(workerData.bellThere), bellBack = new Doorbell(workerData.bellBack)
    for (;;) {
      reader.beginBatch()
      let n = 0
      while (reader.next()) {
        if (reader.kind === 9) process.exit(0)
        while (!writer.tryWrite(reader.kind, reader.a, 0, 0, 0, reader.payload())) { writer.flush(); bellBack.ring() }
        n++
      }
      reader.endBatch()
      if (n > 0) { writer.flush(); bellBack.ring(); continue }
      const seen = bell.prepareToSleep()
      if (reader.hasData()) bell.cancelSleep(); else bell.sleep(seen, 100)
    }
  `, { eval: true, workerData: { there, back, bellThere, bellBack } })
  const writer = new RingWriter(there)
  const reader = new RingReader(back)
  const bell = new Doorbell(bellThere)
  const payload = Buffer.alloc(100, 1)

  // One way: keep the ring full, count echoes.
  let sent = 0
  let received = 0
  const started = performance.now()
  while (received < records) {
    while (sent < records && sent - received < 4096 && writer.tryWrite(1, sent, 0, 0, 0, payload)) sent++
    writer.flush()
    bell.ring()
    reader.beginBatch()
    while (reader.next()) received++
    reader.endBatch()
  }
  const oneWayRecordsPerSecond = records / ((performance.now() - started) / 1000)

  const roundTrip: RingResult['roundTrip'] = []
  for (const batch of [1, 16, 256]) {
    const samples: number[] = []
    for (let i = 0; i < 2000; i++) {
      const t0 = performance.now()
      for (let k = 0; k < batch; k++) writer.tryWrite(1, k, 0, 0, 0, payload)
      writer.flush()
      bell.ring()
      let got = 0
      while (got < batch) {
        reader.beginBatch()
        while (reader.next()) got++
        reader.endBatch()
      }
      samples.push((performance.now() - t0) * 1000)
    }
    samples.sort((a, b) => a - b)
    roundTrip.push({ batch, p50Us: samples[Math.floor(samples.length / 2)], p99Us: samples[Math.floor(samples.length * 0.99)] })
  }
  writer.tryWrite(9, 0, 0, 0, 0, null)
  writer.flush()
  bell.wake()
  await new Promise((resolve) => worker.once('exit', resolve))
  return { oneWayRecordsPerSecond, roundTrip }
}

export interface WakeResult {
  /** 'native futex' or 'Atomics'. */
  how: string
  /** 'any CPU' (where the kernel puts the two threads), or 'one CPU' (both pinned to CPU 0). */
  placement: string
  roundTrips: number
  /** Per round trip: two wake-ups (there and back), both threads asleep in between. */
  wallUs: number
  cpuUs: number
}

/**
 * What a wake-up costs here: two threads ping-pong through two doorbells, each asleep until the
 * other rings (no ring data at all), with the shards' futex wake-ups (native) and with V8's
 * Atomics. CPU is the whole process's (both threads) per round trip, so it is the price of two
 * sleeps and two wake-ups, system calls and scheduling included: the figure that multiplies the
 * layout grid's sleeps per packet.
 */
export async function runWakeBenchmark(roundTrips: number, alsoPinned = true): Promise<WakeResult[]> {
  const bellModule = join(__dirname, '..', 'src', 'ring', 'doorbell.js')
  const results: WakeResult[] = []
  for (const native of nativeWake === null ? [false] : [true, false]) {
    const there = { sab: createDoorbell(), native, pipe: null }
    const back = { sab: createDoorbell(), native, pipe: null }
    const turn = new Int32Array(new SharedArrayBuffer(8))
    // turn[0]: the last round the main thread started; turn[1]: the last the worker answered.
    const worker = new Worker(`
      const { workerData } = require('node:worker_threads')
      const { Doorbell } = require(${JSON.stringify(bellModule)})
      const there = new Doorbell(workerData.there), back = new Doorbell(workerData.back)
      const turn = new Int32Array(workerData.turn)
      for (let round = 1; round <= workerData.roundTrips; round++) {
        for (;;) {
          const seen = there.prepareToSleep()
          if (Atomics.load(turn, 0) >= round) { there.cancelSleep(); break }
          there.sleep(seen, 1000)
        }
        Atomics.store(turn, 1, round)
        back.ring()
      }
    `, { eval: true, workerData: { there, back, turn: turn.buffer, roundTrips } })
    await new Promise((resolve) => worker.once('online', resolve))
    const thereBell = new Doorbell(there)
    const backBell = new Doorbell(back)
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    for (let round = 1; round <= roundTrips; round++) {
      Atomics.store(turn, 0, round)
      thereBell.ring()
      for (;;) {
        const seen = backBell.prepareToSleep()
        if (Atomics.load(turn, 1) >= round) { backBell.cancelSleep(); break }
        backBell.sleep(seen, 1000)
      }
    }
    const wallUs = ((performance.now() - t0) * 1000) / roundTrips
    const cpu = process.cpuUsage(cpu0)
    await new Promise((resolve) => worker.once('exit', resolve))
    results.push({ how: native ? 'native futex' : 'Atomics', placement: 'any CPU', roundTrips, wallUs, cpuUs: (cpu.user + cpu.system) / roundTrips })
  }
  return alsoPinned ? [...results, ...pinnedWakeResults(roundTrips)] : results
}

/**
 * The same ping-pong with both threads on one CPU (a child process under `taskset -c 0`): a
 * wake-up that needs no other CPU, against one that must wake an idle one. Empty where taskset
 * is missing.
 */
function pinnedWakeResults(roundTrips: number): WakeResult[] {
  const script = `require(${JSON.stringify(__filename)}).runWakeBenchmark(${roundTrips}, false).then((r) => process.stdout.write(JSON.stringify(r)))`
  const child = spawnSync('taskset', ['-c', '0', process.execPath, '-e', script], { encoding: 'utf8', timeout: 120_000 })
  if (child.status !== 0) return []
  return (JSON.parse(child.stdout) as WakeResult[]).map((r) => ({ ...r, placement: 'one CPU' }))
}
