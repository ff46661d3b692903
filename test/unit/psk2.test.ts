// Goal: our PSK2 codec reproduces fixed vectors (made with ilp-protocol-psk2's own
// sender tests' fixed IV), and refuses malformed plaintexts and envelopes.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import {
  decrypt, encrypt, parseDraft1, parseDraft2, psk2Fulfillment, psk2Keys, serializeDraft1, serializeDraft2, sharedSecretFor,
} from '../../src/codec/psk2'

const hex = (s: string) => Buffer.from(s.replace(/[\s|]/g, ''), 'hex')
const SECRET = Buffer.alloc(32)
const IV = hex('6c93ab43f2b70ac9a0d3844f')
const ID = hex('465736837f790f773baafd63828f38b6')
const MAX = 0xffffffffffffffffn


/**
 * One draft's test vector, with SECRET and IV: the plaintext's bytes, its envelope (the prepare's
 * data), the fulfillment and its condition. Returns the envelope decrypted again.
 */
function assertVector(plaintext: Buffer, v: { plaintext: string; data: string; fulfillment: string; condition: string }): Buffer {
  const keys = psk2Keys(SECRET)
  assert.equal(plaintext.toString('hex'), v.plaintext)
  const data = encrypt(keys.encryption, plaintext, IV)
  assert.deepEqual(data, hex(v.data))
  const fulfillment = psk2Fulfillment(keys, data)
  assert.equal(fulfillment.toString('hex'), v.fulfillment)
  assert.equal(createHash('sha256').update(fulfillment).digest('hex'), v.condition)
  return decrypt(keys.encryption, data)!
}
describe('PSK2 codec against fixed vectors', () => {
  it('derives the keys with the library\'s strings', () => {
    const keys = psk2Keys(SECRET)
    assert.equal(keys.encryption.toString('hex'), '0d2df4d3a1bceb1a59e06941d51a67707d52c73e1ac75c78394f002d4e20c9ca')
    assert.equal(keys.fulfillment.toString('hex'), 'b958abcb7ef19a68b2ba01e16b01530927e64ef0632637160d53bd0f0411e676')
  })

  it('derives a receiver\'s shared secret from its secret and the token', () => {
    assert.equal(sharedSecretFor(Buffer.alloc(32, 1), Buffer.alloc(18, 2)).toString('hex'), 'cbc35c60bcf577122493adbb07de69d0f8b6c603983d39e5ce09fe38d39fe659')
  })

  it('draft 1: plaintext, envelope, fulfillment and condition', () => {
    const plaintext = assertVector(serializeDraft1(1, ID, 0, MAX, 50n), {
      plaintext: '01465736837f790f773baafd63828f38b600000000ffffffffffffffff00000000000000320000',
      data: '6c93ab43f2b70ac9a0d3844f | dc7e16045af9449f99743ee2024cbc36 | 8c59dff59cde8b28ef46036b86401ab46596d15f9b7ed2e73a6bcee2e952fa54d0ef425b220124',
      fulfillment: '0de77e566fd39f0b9ea26bb10e4b6aa3ff813eee37758caf0c1adfd69edd572b',
      condition: 'dbe5899c51056feae0d6b42dc8677f40a5452ca03512f058d95132c2cf5b7bf8',
    })
    const chunk = parseDraft1(plaintext)!
    assert.deepEqual({ ...chunk, paymentId: chunk.paymentId.toString('hex') },
      { type: 1, paymentId: ID.toString('hex'), sequence: 0, paymentAmount: MAX, chunkAmount: 50n, applicationData: Buffer.alloc(0) })
  })

  it('draft 2: plaintext, envelope, fulfillment and condition', () => {
    const plaintext = assertVector(serializeDraft2(4, 1, 50n), {
      plaintext: '0400000001000000000000003200',
      data: '6c93ab43f2b70ac9a0d3844f | 5b7bc9e30ce034c10fcd5c9b9ae82d26 | 891f88c31ea1f227987da996d7c2',
      fulfillment: '5ce62343b3e5a6be604dd550943413b4c8b433330abfb382ac8c8733d26ae5e4',
      condition: 'fe4160c0d0477f2631c9e3f32e4dd54c1ddc8085bf887df7552af8747c56b089',
    })
    assert.deepEqual(parseDraft2(plaintext), { type: 4, requestId: 1, amount: 50n, data: Buffer.alloc(0) })
  })

  it('tolerates trailing junk, refuses truncated plaintexts and envelopes that do not authenticate', () => {
    const withJunk = Buffer.concat([serializeDraft1(0, ID, 7, 100n, 10n), Buffer.alloc(5)])
    assert.equal(parseDraft1(withJunk)?.sequence, 7)
    const full = serializeDraft1(0, ID, 7, 100n, 10n)
    for (let n = 0; n < full.length; n++) assert.equal(parseDraft1(full.subarray(0, n)), null, `draft 1 cut at ${n}`)
    const request = serializeDraft2(4, 9, 3n, Buffer.from('abc'))
    for (let n = 0; n < request.length; n++) assert.equal(parseDraft2(request.subarray(0, n)), null, `draft 2 cut at ${n}`)
    const key = psk2Keys(SECRET).encryption
    const data = encrypt(key, full)
    assert.equal(decrypt(key, data.subarray(0, 27)), null)
    for (const at of [0, 13, 40]) {
      const tampered = Buffer.from(data)
      tampered[at] ^= 1
      assert.equal(decrypt(key, tampered), null, `flipped byte ${at}`)
    }
    assert.equal(decrypt(psk2Keys(Buffer.alloc(32, 9)).encryption, data), null)
  })
})
