// Fuzz targets: every parser of outside input, fed random and mutated inputs grown from valid
// seeds (the libraries' test vectors and real packets). Each target states what a parser may do with garbage:
// return its "no" (false, null, -1) or throw the one error type its caller turns into a clear
// reply (F01, a 400, a config message). Anything else, a hang or a throw of another kind, is a
// finding. The runner is deterministic for a seed, so a finding reproduces.

import { encodeMessage, encodeResponse, BtpFrame, writeIlpFrame, ilpFrameLength, BTP_MESSAGE } from '../../src/codec/btp_packet'
import { decodeRouteControl, decodeRouteUpdate, encodeRouteControl, encodeRouteUpdate, MODE_SYNC } from '../../src/codec/ccp'
import { prepareFromHead } from '../../src/codec/http_head'
import { classifyReply, encodeFulfill, encodePrepare, encodeReject, PrepareView } from '../../src/codec/ilp_packet'
import { decodeRouteBroadcast, RouteBroadcastError } from '../../src/codec/route_broadcast'
import { parseConfig } from '../../src/config/parse'
import { ConfigError } from '../../src/config/schema'
import { decrypt, encrypt, parseDraft1, parseDraft2, psk2Keys, serializeDraft1, serializeDraft2 } from '../../src/codec/psk2'
import { assetDetailsFrame, parseStreamPacket, serializeStreamPacket } from '../../src/codec/stream'
import { tokenProblem } from '../../src/io/shop/shop_server'
import { MACHINE, testConfigJson } from '../support/helpers'

export type Random = () => number

export interface FuzzTarget {
  name: string
  seeds: Buffer[]
  /** Runs one input; throws only for a finding. */
  run(input: Buffer): void
}

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex')

// ilp-packet's and btp-packet's test vectors, and packets of our own encoders.
const PREPARE_VECTOR = hex(`0c 68 000000000000006b 3230313731323233303132313430353439
  74e1136dc71c9e5f283bec83461cbf1261c4014f72d48f8dd65453a0b84e7de1 0d 6578616d706c652e616c696365
  20 5db343fdc41898f6df4202329139dc242dd0f558a811b46b28918fdab37c6cb0`)
const FULFILL_VECTOR = hex('0d 41 c3866b48749ccf113b2e15c25d2407fbfc14476fe7296bb1bf1bcd9e6e416650 20 673febd78a33b28e1c0db14c9a06251a05fa831ed4ed91ebcd150e7249c2e600')
const REJECT_VECTOR = hex('0e 41 463031 0e 6578616d706c652e75732e626f62 27 6d697373696e672064657374696e6174696f6e2e206c65646765723d6578616d706c652e75732e 06 000000041041')
const prepare = encodePrepare({ amount: 107n, expiresAtMs: Date.parse('2030-01-01T00:00:00.000Z'), executionCondition: Buffer.alloc(32, 1), destination: 'test.node.bob', data: Buffer.from('hello') })
const fulfill = encodeFulfill(Buffer.alloc(32, 2), Buffer.from('thanks'))
const reject = encodeReject('F02', 'test.node', 'no route', Buffer.alloc(3))

function must(condition: boolean, what: string): void {
  if (!condition) throw new Error(`finding: ${what}`)
}

function only(error: new (...args: never[]) => Error, fn: () => unknown): void {
  try {
    fn()
  } catch (err) {
    if (!(err instanceof error)) throw new Error(`finding: threw ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`)
  }
}

const CONFIG_SEED = {
  ...testConfigJson(),
  payees: { shop: { name: 'Shop' } },
  shop: { routes: [{ method: 'GET', path: '/a', price: '1', upstream: 'http://127.0.0.1:9000' }] },
  adminToken: 'admin-token-0123456789',
  limits: { ringBytes: 65536 },
}

/** The seed config with values replaced by others of every JSON type, chosen by `bytes`. */
function mutateStructure(seed: unknown, bytes: Buffer): unknown {
  const copy = JSON.parse(JSON.stringify(seed)) as Record<string, unknown>
  const values: unknown[] = [null, true, 0, -1, 1e300, 2 ** 53 + 1, '', 'x', '-5', '18446744073709551616', [], {}, [1, 'a'], { a: 1 }, '../../etc', 'test..x']
  for (let i = 0; i + 1 < bytes.length && i < 16; i += 2) {
    let node: Record<string, unknown> = copy
    let depth = 1 + (bytes[i] % 4)
    while (depth-- > 0) {
      const keys = Object.keys(node)
      if (keys.length === 0) break
      const key = keys[bytes[i + 1] % keys.length]
      const next = node[key]
      if (depth === 0 || typeof next !== 'object' || next === null) {
        node[key] = values[(bytes[i] ^ bytes[i + 1]) % values.length]
        break
      }
      node = next as Record<string, unknown>
    }
  }
  return copy
}

const frame = new BtpFrame()
const view = new PrepareView()
const psk2Key = psk2Keys(Buffer.alloc(32)).encryption

export const targets: FuzzTarget[] = [
  {
    name: 'BTP frame',
    seeds: [
      encodeMessage(1, [{ protocolName: 'ilp', contentType: 0, data: prepare }]),
      encodeMessage(7, [
        { protocolName: 'auth', contentType: 0, data: Buffer.alloc(0) },
        { protocolName: 'auth_username', contentType: 1, data: Buffer.from('alice') },
        { protocolName: 'auth_token', contentType: 1, data: Buffer.from('alice-token') },
      ]),
      encodeResponse(3, [{ protocolName: 'ilp', contentType: 0, data: fulfill }]),
      (() => { const b = Buffer.alloc(ilpFrameLength(reject.length)); writeIlpFrame(b, BTP_MESSAGE, 9, reject); return b })(),
    ],
    run(input) {
      if (frame.parse(input)) {
        for (let i = 0; i < frame.entryCount; i++) must(frame.dataOffset[i] + frame.dataLength[i] <= input.length, 'entry beyond the frame')
      }
    },
  },
  {
    name: 'ILP prepare',
    seeds: [PREPARE_VECTOR, prepare],
    run(input) {
      if (view.parse(input, 0, input.length)) {
        must(view.dataOffset + view.dataLength <= input.length, 'data beyond the packet')
        must(view.amount >= 0n, 'negative amount')
        view.destination()
      }
    },
  },
  { name: 'ILP fulfill/reject', seeds: [FULFILL_VECTOR, REJECT_VECTOR, fulfill, reject], run(input) { classifyReply(input, 0, input.length) } },
  {
    name: 'CCP control and update',
    seeds: [
      encodeRouteControl({ mode: MODE_SYNC, lastKnownRoutingTableId: Buffer.alloc(16, 3), lastKnownEpoch: 32, features: ['foo', 'bar'] }),
      encodeRouteUpdate({
        routingTableId: Buffer.alloc(16, 4), currentEpochIndex: 53, fromEpochIndex: 52, toEpochIndex: 53, holdDownTime: 45000, speaker: 'example.alice',
        newRoutes: [{ prefix: 'example.prefix1', path: ['example.alice'], auth: Buffer.alloc(32, 5) }], withdrawnRoutes: ['example.prefix2'],
      }),
    ],
    run(input) {
      only(Error, () => decodeRouteControl(input))
      only(Error, () => decodeRouteUpdate(input))
    },
  },
  {
    name: 'JSON route broadcast',
    seeds: [
      Buffer.from(JSON.stringify({ method: 'broadcast_routes', data: { hold_down_time: 45000, unreachable_through_me: ['test.a.'], new_routes: [{ destination_ledger: 'test.b.', min_message_window: 1 }] } })),
      Buffer.from(JSON.stringify({ custom: { method: 'broadcast_routes', data: { new_routes: [{ prefix: 'test.c', path: ['test.c'] }] } } })),
    ],
    run(input) { only(RouteBroadcastError, () => decodeRouteBroadcast(input)) },
  },
  {
    name: 'http-head fields',
    seeds: [Buffer.from(JSON.stringify({ destination: 'test.node.bob', condition: Buffer.alloc(32, 1).toString('base64'), expiry: '2030-01-01T00:00:00.000Z', amount: '25' }))],
    run(input) {
      let fields: unknown
      try {
        fields = JSON.parse(input.toString('latin1'))
      } catch {
        return
      }
      if (typeof fields !== 'object' || fields === null) return
      const f = fields as Record<string, unknown>
      const h = { destination: String(f.destination), condition: String(f.condition), expiry: String(f.expiry), amount: String(f.amount) }
      only(Error, () => prepareFromHead(h, input))
    },
  },
  {
    name: 'PSK2 plaintext and envelope',
    seeds: [
      serializeDraft1(1, Buffer.alloc(16, 6), 0, 0xffffffffffffffffn, 50n),
      serializeDraft2(4, 1, 50n, Buffer.from('token-token-16by')),
      encrypt(psk2Key, serializeDraft1(0, Buffer.alloc(16, 7), 3, 100n, 10n)),
    ],
    run(input) {
      parseDraft1(input)
      parseDraft2(input)
      decrypt(psk2Key, input)
    },
  },
  {
    name: 'STREAM packet',
    seeds: [serializeStreamPacket({ ilpPacketType: 12, sequence: 5n, prepareAmount: 100n, frames: [assetDetailsFrame('USD', 9), { type: 0x11, contents: Buffer.from([1, 1, 2, 3, 232]) }] })],
    run(input) { parseStreamPacket(input) },
  },
  {
    name: 'Pay-Token',
    seeds: [Buffer.from('AAAAAAAAAAAAAAAAAAAAAA'), Buffer.from(Buffer.alloc(32, 9).toString('base64url'))],
    run(input) { tokenProblem(input.toString('latin1')) },
  },
  {
    name: 'config',
    seeds: [Buffer.from(JSON.stringify(CONFIG_SEED))],
    run(input) {
      let json: unknown
      try {
        json = JSON.parse(input.toString('latin1'))
      } catch {
        // Text that is not JSON is load.ts's to report; use the bytes to mutate the structure instead.
        json = mutateStructure(CONFIG_SEED, input)
      }
      only(ConfigError, () => parseConfig(json, {}, MACHINE))
    },
  },
]

/** A mutation of a seed, or random bytes: flips, inserts, deletes, cuts, splices, big lengths. */
export function mutate(seeds: Buffer[], random: Random): Buffer {
  const pick = (n: number) => Math.floor(random() * n)
  if (random() < 0.05) {
    const b = Buffer.alloc(pick(200))
    for (let i = 0; i < b.length; i++) b[i] = pick(256)
    return b
  }
  let b = Buffer.from(seeds[pick(seeds.length)])
  const rounds = 1 + pick(4)
  for (let r = 0; r < rounds; r++) {
    const at = b.length === 0 ? 0 : pick(b.length)
    switch (pick(8)) {
      case 0: if (b.length > 0) b[at] ^= 1 << pick(8); break
      case 1: if (b.length > 0) b[at] = pick(256); break
      case 2: b = Buffer.concat([b.subarray(0, at), Buffer.from([pick(256)]), b.subarray(at)]); break
      case 3: b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + pick(8))]); break
      case 4: b = b.subarray(0, at); break
      case 5: { const other = seeds[pick(seeds.length)]; b = Buffer.concat([b.subarray(0, at), other.subarray(pick(other.length + 1))]); break }
      case 6: if (b.length > 0) b[at] = [0x00, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x88, 0xff][pick(8)]; break
      default: if (b.length > 0) b[at] = [0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x30][pick(8)] // JSON punctuation
    }
  }
  return b
}

export interface FuzzResult {
  name: string
  inputs: number
  findings: string[]
  /** Heap retained after the run (after a full collection under `--expose-gc`, as `npm run fuzz` runs). */
  heapGrowthBytes: number
  ms: number
}

/** Heap in use after a full collection where `--expose-gc` allows one (else as it stands). */
function heapUsed(): number {
  (globalThis as { gc?: () => void }).gc?.()
  return process.memoryUsage().heapUsed
}

export function fuzz(target: FuzzTarget, inputs: number, random: Random): FuzzResult {
  const findings: string[] = []
  const heapBefore = heapUsed()
  const started = Date.now()
  for (const seed of target.seeds) target.run(seed) // the seeds themselves must pass
  for (let i = 0; i < inputs; i++) {
    const input = mutate(target.seeds, random)
    try {
      target.run(input)
    } catch (err) {
      if (findings.length < 5) findings.push(`${(err as Error).message} on input ${input.toString('hex').slice(0, 200)}`)
    }
  }
  return { name: target.name, inputs, findings, heapGrowthBytes: heapUsed() - heapBefore, ms: Date.now() - started }
}
