// Goal: the SAB ring never loses, reorders, splits or corrupts a record, and pushes back when
// full. Method (after ringbuf.js): seeded random record sizes that force many wrap-arounds,
// checked against a plain array queue in one thread; then a producer and a consumer on two
// threads with the doorbell, the consumer verifying sequence numbers and contents.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { Worker } from 'node:worker_threads'
import { createRing, RingReader, RingWriter } from '../src/ring/ring'
import { createDoorbell, Doorbell } from '../src/ring/doorbell'
import { prng } from './helpers'


function fill(bytes: Uint8Array, seq: number): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = (seq * 31 + i) & 0xff
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

  it('carries 200,000 records between two threads intact, waking the consumer with the doorbell', async () => {
    const sab = createRing(64 * 1024)
    const bell = createDoorbell()
    const ringModule = join(__dirname, '..', 'src', 'ring', 'ring.js')
    const bellModule = join(__dirname, '..', 'src', 'ring', 'doorbell.js')
    const count = 200_000
    const worker = new Worker(`
      const { workerData, parentPort } = require('node:worker_threads')
      const { RingReader } = require(${JSON.stringify(ringModule)})
      const { Doorbell } = require(${JSON.stringify(bellModule)})
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
    `, { eval: true, workerData: { sab, bell, count } })
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
})
