// Goal: the SAB ring never loses, reorders, splits or corrupts a record, and pushes back when
// full. Method (after ringbuf.js): seeded random record sizes that force many wrap-arounds,
// checked against a plain array queue in one thread; then a producer and a consumer on two
// threads with the doorbell, the consumer verifying sequence numbers and contents, once with each
// way of waking (native futex, Atomics); and an event-loop consumer woken through its doorbell's
// pipe (or Atomics.waitAsync) many times by a worker, which must never wait for a wake-up it missed.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { Worker } from 'node:worker_threads'
import { createRing, RingReader, RingWriter } from '../../src/ring/ring'
import { createDoorbell, Doorbell, DoorbellWatch, WakeUps } from '../../src/ring/doorbell'
import { nativeWake } from '../../src/ring/native_wake'
import { prng } from '../support/helpers'


function fill(bytes: Uint8Array, seq: number): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = (seq * 31 + i) & 0xff
}


/** A worker's source with the compiled ring and doorbell loaded, as the node's threads load them. */
function withRingModules(body: string): string {
  const ring = join(__dirname, '..', '..', 'src', 'ring', 'ring.js')
  const doorbell = join(__dirname, '..', '..', 'src', 'ring', 'doorbell.js')
  return `
      const { workerData, parentPort } = require('node:worker_threads')
      const { RingReader, RingWriter } = require(${JSON.stringify(ring)})
      const { Doorbell } = require(${JSON.stringify(doorbell)})
${body}`
}
describe('SAB ring', () => {
  it('matches a plain queue over 100+ laps of random sizes, with back-pressure (seed 1)', () => {
    const sab = createRing(4096)
    const writer = new RingWriter(sab)
    const reader = new RingReader(sab)
    const model: { seq: number; length: number }[] = []
    const rand = prng(1)
    let written = 0
    let read = 0
    let refused = 0
    let bytesThrough = 0
    while (read < 20000) {
      const burst = Math.floor(rand() * 20)
      for (let k = 0; k < burst; k++) {
        const length = rand() < 0.05 ? Math.floor(rand() * writer.maxPayload()) : Math.floor(rand() * 200)
        const at = writer.reserve(7, length, written, length, 0xdeadbeef, written ^ 0x5555)
        if (at < 0) {
          refused++
          break
        }
        fill(writer.data.subarray(at, at + length), written)
        writer.commit()
        model.push({ seq: written, length })
        written++
        bytesThrough += length
      }
      writer.flush()
      const take = Math.floor(rand() * 25)
      reader.beginBatch()
      for (let k = 0; k < take && reader.next(); k++) {
        const expected = model.shift()!
        assert.equal(reader.kind, 7)
        assert.equal(reader.a, expected.seq)
        assert.equal(reader.b, expected.length)
        assert.equal(reader.c, 0xdeadbeef)
        assert.equal(reader.d, (expected.seq ^ 0x5555) >>> 0)
        assert.equal(reader.payloadLength, expected.length)
        const payload = reader.payload()
        for (let i = 0; i < payload.length; i++) assert.equal(payload[i], (expected.seq * 31 + i) & 0xff)
        read++
      }
      reader.endBatch()
    }
    assert.ok(refused > 0, 'the ring filled up at least once')
    assert.ok(bytesThrough / 4096 > 100, `only ${bytesThrough / 4096} laps`)
  })

  it('keeps unflushed records invisible, and refuses oversized records', () => {
    const sab = createRing(1024)
    const writer = new RingWriter(sab)
    const reader = new RingReader(sab)
    assert.ok(writer.tryWrite(1, 1, 2, 3, 4, new Uint8Array([9])))
    assert.equal(reader.hasData(), false)
    assert.ok(writer.flush())
    assert.equal(reader.hasData(), true)
    assert.throws(() => writer.reserve(1, 1024, 0, 0, 0, 0), RangeError)
    assert.throws(() => createRing(1000), RangeError)
  })

  it('has the native wake-up addon built and loaded (npm run build compiles src/native/wake.c)', () => {
    assert.notEqual(nativeWake, null, 'dist/native/wake.node did not load: the node would fall back to Atomics wake-ups')
  })

  for (const native of [true, false]) it(`carries 200,000 records between two threads intact, waking the consumer with the doorbell (${native ? 'native futex' : 'Atomics'})`, async () => {
    const sab = createRing(64 * 1024)
    const bell = { sab: createDoorbell(), native, pipe: null }
    const count = 200_000
    const worker = new Worker(withRingModules(`
      const reader = new RingReader(workerData.sab)
      const bell = new Doorbell(workerData.bell)
      let expected = 0, errors = 0, sleeps = 0
      const deadline = Date.now() + 60000
      while (expected < workerData.count && Date.now() < deadline) {
        reader.beginBatch()
        let got = false
        while (reader.next()) {
          got = true
          if (reader.a !== expected || reader.payloadLength !== expected % 300) errors++
          const p = reader.payload()
          for (let i = 0; i < p.length; i++) if (p[i] !== ((expected * 31 + i) & 0xff)) { errors++; break }
          expected++
        }
        reader.endBatch()
        if (!got) {
          const seen = bell.prepareToSleep()
          if (reader.hasData()) bell.cancelSleep()
          else { sleeps++; bell.sleep(seen, 1000) }
        }
      }
      parentPort.postMessage({ expected, errors, sleeps })
    `), { eval: true, workerData: { sab, bell, count } })
    const result = new Promise<{ expected: number; errors: number; sleeps: number }>((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    const writer = new RingWriter(sab)
    const doorbell = new Doorbell(bell)
    const scratch = new Uint8Array(300)
    let seq = 0
    const deadline = Date.now() + 60000
    while (seq < count && Date.now() < deadline) {
      const payload = scratch.subarray(0, seq % 300)
      fill(payload, seq)
      if (writer.tryWrite(2, seq, 0, 0, 0, payload)) {
        seq++
        if (seq % 64 === 0 || seq === count) {
          writer.flush()
          doorbell.ring()
        }
      } else {
        writer.flush()
        doorbell.ring()
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
    const { expected, errors } = await result
    await worker.terminate()
    assert.equal(seq, count)
    assert.equal(expected, count)
    assert.equal(errors, 0)
  })

  for (const native of [true, false]) it(`wakes an event-loop consumer every time a worker rings, never missing one (${native ? 'pipe' : 'Atomics.waitAsync'})`, async () => {
    const wakeUps = new WakeUps(1, native)
    const wiring = wakeUps.ioDoorbell(0)
    const sab = createRing(64 * 1024)
    const taken = new Int32Array(new SharedArrayBuffer(4))
    const count = 5_000
    // The worker publishes one record, rings, and waits until the consumer has taken it before it
    // writes the next: every record needs a wake-up of its own, so a lost one stalls the run.
    const worker = new Worker(withRingModules(`
      const writer = new RingWriter(workerData.sab)
      const bell = new Doorbell(workerData.wiring)
      const taken = new Int32Array(workerData.taken)
      let stalls = 0
      for (let seq = 0; seq < workerData.count; seq++) {
        writer.tryWrite(1, seq, 0, 0, 0, null)
        writer.flush()
        bell.ring()
        while (Atomics.load(taken, 0) <= seq) if (Atomics.wait(taken, 0, seq, 2000) === 'timed-out') { stalls++; break }
        if (stalls > 0) break
      }
      parentPort.postMessage(stalls)
    `), { eval: true, workerData: { sab, wiring, count, taken: taken.buffer } })
    const reader = new RingReader(sab)
    const consumer = new Doorbell(wiring)
    let expected = 0
    let errors = 0
    let wakes = 0
    // The consumer's turn, as an I/O thread runs it: drain, announce the sleep, re-check last.
    const turn = () => {
      wakes++
      for (;;) {
        reader.beginBatch()
        while (reader.next()) {
          if (reader.a !== expected) errors++
          expected++
        }
        reader.endBatch()
        Atomics.store(taken, 0, expected)
        Atomics.notify(taken, 0)
        consumer.prepareToSleep()
        if (!reader.hasData()) return
        consumer.cancelSleep()
      }
    }
    const watch = new DoorbellWatch(consumer, () => setImmediate(turn), (err) => { throw err })
    consumer.prepareToSleep()
    const stalls = await new Promise<number>((resolve, reject) => {
      worker.once('error', reject)
      worker.once('message', resolve)
    })
    watch.close()
    await worker.terminate()
    wakeUps.close()
    assert.equal(stalls, 0, 'the worker waited 2 s for a record to be taken: a wake-up was lost')
    assert.equal(expected, count)
    assert.equal(errors, 0)
    assert.ok(wakes > 0)
  })
})
