// Goal: our lean ILP, BTP and OER codecs agree byte for byte with the reference libraries
// (ilp-packet, btp-packet, oer-utils) on ilp-packet's and btp-packet's own test vectors and on seeded random packets, and
// refuse malformed input with a reason instead of throwing or reading out of bounds.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as IlpPacket from 'ilp-packet'
import * as Btp from 'btp-packet'
import { Reader } from 'oer-utils'
import { createHash } from 'node:crypto'
import {
  classifyReply, digestMatches, encodeFulfill, encodePrepare, encodeReject, lastFulfillmentOffset, PrepareView, ReplyKind, isValidAddress,
} from '../../src/codec/ilp_packet'
import { readIlpTimestamp, writeIlpTimestamp, generalizedTime } from '../../src/codec/ilp_time'
import { OerReader, writeLength } from '../../src/codec/oer'
import { BtpFrame, encodeError, encodeMessage, encodeResponse, encodeTransfer, writeIlpFrame, ilpFrameLength, BTP_MESSAGE } from '../../src/codec/btp_packet'
import { F01_INVALID_PACKET } from '../../src/codec/ilp_errors'
import { prng } from '../support/helpers'
import { frameHeaderLength, framePayloadLength, readFrames } from '../../src/testing/websocket'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')


function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256)
  return b
}

function randomAddress(rand: () => number): string {
  const segments = 1 + Math.floor(rand() * 5)
  const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_~-'
  let s = ['g', 'test', 'example', 'private'][Math.floor(rand() * 4)]
  for (let i = 0; i < segments; i++) {
    s += '.'
    const len = 1 + Math.floor(rand() * (rand() < 0.1 ? 200 : 12))
    for (let k = 0; k < len; k++) s += chars[Math.floor(rand() * chars.length)]
  }
  return s
}

describe('ILP packet codec', () => {
  const prepareVector = hex(`0c 68 000000000000006b 3230313731323233303132313430353439
    74e1136dc71c9e5f283bec83461cbf1261c4014f72d48f8dd65453a0b84e7de1
    0d 6578616d706c652e616c696365
    20 5db343fdc41898f6df4202329139dc242dd0f558a811b46b28918fdab37c6cb0`)

  it('parses the prepare test vector of ilp-packet', () => {
    const view = new PrepareView()
    assert.ok(view.parse(prepareVector, 0, prepareVector.length), view.error)
    assert.equal(view.amount, 107n)
    assert.equal(view.expiresAtMs, Date.parse('2017-12-23T01:21:40.549Z'))
    assert.equal(view.destination(), 'example.alice')
    assert.equal(view.dataLength, 32)
    assert.equal(view.packetLength, prepareVector.length)
  })

  it('serializes the prepare, fulfill and reject test vectors of ilp-packet exactly', () => {
    const p = IlpPacket.deserializeIlpPrepare(prepareVector)
    assert.deepEqual(encodePrepare({ amount: 107n, expiresAtMs: p.expiresAt.getTime(), executionCondition: p.executionCondition, destination: p.destination, data: p.data }), prepareVector)
    const fulfillVector = hex(`0d 41 c3866b48749ccf113b2e15c25d2407fbfc14476fe7296bb1bf1bcd9e6e416650
      20 673febd78a33b28e1c0db14c9a06251a05fa831ed4ed91ebcd150e7249c2e600`)
    assert.deepEqual(encodeFulfill(fulfillVector.subarray(2, 34), fulfillVector.subarray(35)), fulfillVector)
    const rejectVector = hex(`0e 41 463031 0e 6578616d706c652e75732e626f62
      27 6d697373696e672064657374696e6174696f6e2e206c65646765723d6578616d706c652e75732e
      06 000000041041`)
    assert.deepEqual(encodeReject(F01_INVALID_PACKET, 'example.us.bob', 'missing destination. ledger=example.us.', hex('000000041041')), rejectVector)
  })

  it('matches ilp-packet on 2,000 random prepares, fulfills and rejects (seed 42)', () => {
    const rand = prng(42)
    const view = new PrepareView()
    for (let i = 0; i < 2000; i++) {
      const dataLength = rand() < 0.05 ? Math.floor(rand() * 32768) : Math.floor(rand() * 300)
      const fields = {
        amount: BigInt.asUintN(64, BigInt('0x' + randomBytes(rand, 8).toString('hex'))),
        expiresAtMs: Math.floor(rand() * 4102444800000),
        executionCondition: randomBytes(rand, 32),
        destination: randomAddress(rand),
        data: randomBytes(rand, dataLength),
      }
      const ours = encodePrepare(fields)
      const theirs = IlpPacket.serializeIlpPrepare({ ...fields, amount: fields.amount.toString(), expiresAt: new Date(fields.expiresAtMs) })
      assert.deepEqual(ours, theirs, `prepare ${i}`)
      assert.ok(view.parse(theirs, 0, theirs.length), view.error)
      assert.equal(view.amount, fields.amount)
      assert.equal(view.expiresAtMs, fields.expiresAtMs)
      assert.equal(view.destination(), fields.destination)

      const fulfillment = randomBytes(rand, 32)
      assert.deepEqual(encodeFulfill(fulfillment, fields.data), IlpPacket.serializeIlpFulfill({ fulfillment, data: fields.data }))
      const message = randomBytes(rand, Math.floor(rand() * 300)).toString('latin1').replace(/[^\x20-\x7e]/g, 'x')
      assert.deepEqual(
        encodeReject('T04', fields.destination, message, fields.data),
        IlpPacket.serializeIlpReject({ code: 'T04', triggeredBy: fields.destination, message, data: fields.data }),
      )
    }
  })

  it('patches amount and expiry in place, leaving every other byte alone', () => {
    const packet = Buffer.from(prepareVector)
    const view = new PrepareView()
    assert.ok(view.parse(packet, 0, packet.length))
    view.setAmount(0xfffffffffffffffen)
    view.setExpiresAt(Date.parse('2030-02-28T23:59:59.999Z'))
    const decoded = IlpPacket.deserializeIlpPrepare(packet)
    assert.equal(decoded.amount, '18446744073709551614')
    assert.equal(decoded.expiresAt.toISOString(), '2030-02-28T23:59:59.999Z')
    assert.deepEqual(packet.subarray(34), prepareVector.subarray(34))
  })

  it('refuses malformed prepares with a reason, never throwing', () => {
    const view = new PrepareView()
    const cases: [string, Buffer][] = [
      ['empty', Buffer.alloc(0)],
      ['wrong type', Buffer.from([0x0d, 0x00])],
      ['length past the end', hex('0c 7f 00')],
      ['non-canonical length', Buffer.concat([hex('0c 81 68'), prepareVector.subarray(2)])],
      ['zero-length long form', hex('0c 80')],
      ['truncated', prepareVector.subarray(0, 60)],
      ['bad timestamp digit', Buffer.from(prepareVector.toString('hex').replace('3230313731323233', '3230313731323a33'), 'hex')],
      ['month 13', Buffer.from(prepareVector.toString('hex').replace('3230313731323233', '3230313731333233'), 'hex')],
      ['invalid address', Buffer.from(prepareVector.toString('hex').replace('6578616d706c652e616c696365', '6578616d706c652e616c69632e'), 'hex')],
    ]
    for (const [name, bytes] of cases) {
      assert.equal(view.parse(bytes, 0, bytes.length), false, name)
      assert.ok(view.error.length > 0, name)
    }
    const rand = prng(7)
    for (let i = 0; i < 20000; i++) {
      const bytes = Buffer.from(prepareVector)
      const flips = 1 + Math.floor(rand() * 4)
      for (let k = 0; k < flips; k++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256)
      const cut = rand() < 0.3 ? Math.floor(rand() * bytes.length) : bytes.length
      if (view.parse(bytes, 0, cut)) {
        // Anything we accept, the reference library must accept too.
        IlpPacket.deserializeIlpPrepare(bytes.subarray(0, cut))
      }
    }
  })

  it('classifies replies and finds the fulfillment', () => {
    const f = encodeFulfill(Buffer.alloc(32, 9), Buffer.from('x'))
    assert.equal(classifyReply(f, 0, f.length), ReplyKind.Fulfill)
    assert.deepEqual(f.subarray(lastFulfillmentOffset, lastFulfillmentOffset + 32), Buffer.alloc(32, 9))
    const r = encodeReject('F99', 'test.x', 'y')
    assert.equal(classifyReply(r, 0, r.length), ReplyKind.Reject)
    for (const bad of [Buffer.alloc(0), hex('0d 05 0000'), hex('0e 03 463030'), hex('0c 00'), f.subarray(0, f.length - 1)]) {
      assert.equal(classifyReply(bad, 0, bad.length), ReplyKind.Malformed, bad.toString('hex'))
    }
  })

  it('checks fulfillments against conditions byte for byte, bytes above 0x7f included (seed 8)', () => {
    const rand = prng(8)
    for (let n = 0; n < 200; n++) {
      const fulfillment = randomBytes(rand, 32)
      const at = Math.floor(rand() * 40)
      const condition = Buffer.concat([randomBytes(rand, at), createHash('sha256').update(fulfillment).digest(), randomBytes(rand, 7)])
      assert.ok(digestMatches(fulfillment, condition, at))
      const i = at + Math.floor(rand() * 32)
      condition[i] ^= 1 << Math.floor(rand() * 8)
      assert.ok(!digestMatches(fulfillment, condition, at), `bit flipped at ${i - at}`)
    }
    const view = new PrepareView()
    const fulfillment = Buffer.alloc(32, 0xfe)
    const prepare = encodePrepare({ amount: 1n, expiresAtMs: Date.UTC(2030, 0, 1), executionCondition: createHash('sha256').update(fulfillment).digest(), destination: 'test.a.b', data: Buffer.alloc(0) })
    assert.ok(view.parse(prepare, 0, prepare.length))
    assert.ok(view.conditionMatches(fulfillment))
    assert.ok(!view.conditionMatches(Buffer.alloc(32, 0xff)))
  })

  it('validates ILP addresses like the RFC regex', () => {
    for (const ok of ['g.a', 'test.node.alice', 'test3.x_y~z-1', 'peer.config', 'private.a.b.c']) assert.ok(isValidAddress(ok), ok)
    for (const bad of ['', 'g', 'g.', 'g..a', '.g.a', 'bobby', 'foo.bar', 'test.a b', 'test.é', 'test4.a', 'g.' + 'a'.repeat(1022)]) {
      assert.ok(!isValidAddress(bad), bad)
    }
  })
})

describe('ILP timestamps', () => {
  it('round-trips every millisecond-precision instant across leap years and centuries (seed 3)', () => {
    const rand = prng(3)
    const buf = Buffer.alloc(17)
    const samples = [0, 951782400000, 4107542399999, 1709164800000, 253402300799999]
    for (let i = 0; i < 20000; i++) samples.push(Math.floor(rand() * 253402300799999))
    for (const ms of samples) {
      writeIlpTimestamp(buf, 0, ms)
      assert.equal(buf.toString('latin1'), new Date(ms).toISOString().replace(/[-:T.Z]/g, ''))
      assert.equal(readIlpTimestamp(buf, 0), ms)
    }
  })

  it('writes runs of instants on one day, across midnights and back again, as Date does (the cached date digits; seed 4)', () => {
    const rand = prng(4)
    const buf = Buffer.alloc(20)
    for (let run = 0; run < 200; run++) {
      const midnight = Math.floor(rand() * 2e12 / 86400000) * 86400000
      for (const ms of [midnight - 1, midnight, midnight + 1, midnight + 86399999, midnight + 86400000, midnight - 1, midnight + Math.floor(rand() * 86400000)]) {
        writeIlpTimestamp(buf, 3, ms)
        assert.equal(buf.toString('latin1', 3, 20), new Date(ms).toISOString().replace(/[-:T.Z]/g, ''), String(ms))
      }
    }
  })

  it('refuses impossible dates', () => {
    for (const s of ['20170229000000000', '20171231240000000', '2017123123600000x', '20170001000000000', '20171200000000000']) {
      assert.ok(Number.isNaN(readIlpTimestamp(Buffer.from(s, 'latin1'), 0)), s)
    }
    assert.equal(readIlpTimestamp(Buffer.from('20160229000000000', 'latin1'), 0), Date.parse('2016-02-29T00:00:00.000Z'))
  })

  it('writes GeneralizedTime for BTP errors', () => {
    assert.equal(generalizedTime(Date.parse('2018-01-01T00:00:00.000Z')), '20180101000000.000Z')
  })
})

describe('OER length determinants', () => {
  it('match oer-utils on canonical encodings and refuse what it refuses', () => {
    for (const n of [0, 1, 127, 128, 200, 234, 255, 256, 4660, 65535, 65536, 16777216]) {
      const buf = Buffer.alloc(8)
      const end = writeLength(buf, 0, n)
      const r = new OerReader().reset(buf, 0, end)
      assert.equal(r.readLength(), n)
      assert.equal(new Reader(buf.subarray(0, end)).readLengthPrefix(), n)
    }
    assert.deepEqual(Buffer.from([0x81, 0x80]), (() => { const b = Buffer.alloc(2); writeLength(b, 0, 128); return b })())
    for (const bad of [hex('80'), hex('81 05'), hex('82 00 80'), hex('81'), hex('85 01 02 03 04 05')]) {
      assert.equal(new OerReader().reset(bad, 0, bad.length).readLength(), -1, bad.toString('hex'))
    }
  })
})

describe('BTP codec', () => {
  const entries = [
    { protocolName: 'ilp', contentType: 0, data: Buffer.alloc(0) },
    { protocolName: 'foo', contentType: 0, data: Buffer.from('bar') },
    { protocolName: 'beep', contentType: 1, data: Buffer.from('boop') },
    { protocolName: 'json', contentType: 2, data: Buffer.from('{}') },
  ]

  it('encodes the test vectors of btp-packet exactly', () => {
    assert.equal(encodeResponse(1, entries).toString('hex'), '010000000125010403696c70000003666f6f000362617204626565700104626f6f70046a736f6e02027b7d')
    assert.equal(encodeMessage(1, entries).toString('hex'), '060000000125010403696c70000003666f6f000362617204626565700104626f6f70046a736f6e02027b7d')
    assert.equal(encodeTransfer(1, 100n, entries).toString('hex'), '07000000012d0000000000000064010403696c70000003666f6f000362617204626565700104626f6f70046a736f6e02027b7d')
    assert.equal(
      encodeError(1, 'L13', 'errorName', 'boo', Date.parse('2017-08-28T18:32:00.000Z'), entries).toString('hex'),
      '02000000014a4c3133096572726f724e616d651332303137303832383138333230302e3030305a03626f6f010403696c70000003666f6f000362617204626565700104626f6f70046a736f6e02027b7d',
    )
    assert.equal(encodeResponse(0x01020304).toString('hex'), '0101020304020100')
  })

  it('parses the auth vector and reads each entry', () => {
    const frame = new BtpFrame()
    const auth = hex('06 01020304 31 0103 04617574680000 0d617574685f757365726e616d65 01 05616c696365 0a617574685f746f6b656e 01 06736563726574')
    assert.ok(frame.parse(auth), frame.error)
    assert.equal(frame.type, BTP_MESSAGE)
    assert.equal(frame.requestId, 0x01020304)
    assert.equal(frame.entryCount, 3)
    assert.deepEqual([0, 1, 2].map((i) => frame.entryName(i)), ['auth', 'auth_username', 'auth_token'])
    assert.equal(frame.entryText(1), 'alice')
    assert.equal(frame.entryText(2), 'secret')
  })

  it('writes ilp frames that btp-packet reads back, and reads what btp-packet writes (seed 11)', () => {
    const rand = prng(11)
    const frame = new BtpFrame()
    for (let i = 0; i < 500; i++) {
      const ilp = randomBytes(rand, Math.floor(rand() * (rand() < 0.1 ? 40000 : 300)))
      const requestId = Math.floor(rand() * 2 ** 32)
      const out = Buffer.alloc(ilpFrameLength(ilp.length))
      writeIlpFrame(out, BTP_MESSAGE, requestId, ilp)
      const theirs = Btp.serializeMessage(requestId, [{ protocolName: 'ilp', contentType: 0, data: ilp }])
      assert.deepEqual(out, theirs)
      const decoded = Btp.deserialize(out)
      assert.equal(decoded.requestId, requestId)
      assert.ok(frame.parse(theirs), frame.error)
      assert.deepEqual(frame.entryData(0), ilp)
    }
  })

  it('refuses malformed frames with a reason (seed 5)', () => {
    const frame = new BtpFrame()
    for (const bad of [Buffer.alloc(0), hex('06 000000'), hex('09 00000001 00'), hex('06 00000001 05 0101'), hex('06 00000001 03 01 05 03'), hex('02 00000001 02 4630')]) {
      assert.equal(frame.parse(bad), false, bad.toString('hex'))
      assert.ok(frame.error.length > 0)
    }
    const good = encodeMessage(9, entries)
    const rand = prng(5)
    for (let i = 0; i < 20000; i++) {
      const bytes = Buffer.from(good)
      bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256)
      frame.parse(bytes.subarray(0, Math.floor(rand() * (bytes.length + 1))))
    }
  })
})

describe('WebSocket frames as a client reads them (RFC 6455 §5.2)', () => {
  // A server's binary frames (FIN, opcode 2, unmasked) with payloads of each length form.
  const frame = (payload: number): Buffer => {
    const header = payload < 126 ? Buffer.from([0x82, payload])
      : payload < 65536 ? Buffer.from([0x82, 126, payload >> 8, payload & 0xff])
        : Buffer.concat([Buffer.from([0x82, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(payload)); return b })()])
    return Buffer.concat([header, Buffer.alloc(payload, 7)])
  }

  it('reads the header and payload lengths of each form, at any offset', () => {
    for (const [payload, header] of [[0, 2], [125, 2], [126, 4], [65535, 4], [65536, 10]]) {
      const buf = Buffer.concat([Buffer.from([9, 9, 9]), frame(payload)])
      assert.equal(frameHeaderLength(buf, 3), header, `payload ${payload}`)
      assert.equal(framePayloadLength(buf, 3), payload, `payload ${payload}`)
    }
  })

  it('says 0 while only part of a header has come, for every split point', () => {
    for (const payload of [5, 300, 70000]) {
      const whole = frame(payload)
      const header = frameHeaderLength(whole, 0)
      for (let cut = 0; cut < header; cut++) assert.equal(frameHeaderLength(whole.subarray(0, cut), 0), 0, `payload ${payload}, ${cut} bytes`)
      assert.equal(frameHeaderLength(whole.subarray(0, header), 0), header)
    }
  })

  it('hands on each whole frame in order and stops before a partial one, for every split point', () => {
    const frames = [frame(3), frame(200), frame(0), frame(70000)]
    const bytes = Buffer.concat(frames)
    for (let cut = 0; cut <= bytes.length; cut += cut < 300 ? 1 : 997) {
      const seen: [number, number][] = []
      const read = readFrames(bytes.subarray(0, cut), (opcode, buf, at, length) => {
        assert.equal(opcode, 2)
        assert.ok(buf.subarray(at, at + length).every((b) => b === 7))
        seen.push([at, length])
      })
      let whole = 0
      let ends = 0
      for (const f of frames) {
        if (ends + f.length > cut) break
        ends += f.length
        whole++
      }
      assert.equal(read, ends, `cut at ${cut}`)
      assert.deepEqual(seen.map(([, length]) => length), [3, 200, 0, 70000].slice(0, whole), `cut at ${cut}`)
    }
  })
})
