// CCP, the connector-to-connector routing protocol (as ilp-protocol-ccp and ilp-connector ≥ v21 speak it). Both
// messages ride in the data of a peer-protocol prepare (amount 0, the peer condition); the
// answer is a fulfill with 32 zero bytes and empty data.
//
//   peer.route.control  mode u8 (0 idle, 1 sync) | lastKnownRoutingTableId 16 | lastKnownEpoch u32
//                       | features: VarUInt count, var-strings
//   peer.route.update   routingTableId 16 | currentEpochIndex u32 | fromEpochIndex u32
//                       | toEpochIndex u32 | holdDownTime u32 (ms) | speaker var-string
//                       | newRoutes: VarUInt count, { prefix var-str | path: count, var-strs
//                         | auth 32 | props: count, { meta u8 | id u16 | value var-oct } }
//                       | withdrawnRoutes: VarUInt count, var-strs
// Control plane only (a few messages a minute), so these allocate freely.

import { OerReader, writeLength } from './oer'

export const MODE_IDLE = 0
export const MODE_SYNC = 1

export interface RouteControl {
  mode: number
  lastKnownRoutingTableId: Buffer
  lastKnownEpoch: number
  features: string[]
}

export interface CcpRoute {
  prefix: string
  path: string[]
  auth: Buffer
}

export interface RouteUpdate {
  routingTableId: Buffer
  currentEpochIndex: number
  fromEpochIndex: number
  toEpochIndex: number
  holdDownTime: number
  speaker: string
  newRoutes: CcpRoute[]
  withdrawnRoutes: string[]
}

class Reader {
  private readonly r: OerReader

  constructor(readonly buf: Uint8Array) {
    this.r = new OerReader().reset(buf, 0, buf.length)
  }

  bytes(n: number): Buffer {
    if (this.r.pos + n > this.r.end) throw new Error('truncated')
    const out = Buffer.from(this.buf.subarray(this.r.pos, this.r.pos + n))
    this.r.pos += n
    return out
  }

  u8(): number {
    const v = this.r.readUInt8()
    if (v < 0) throw new Error('truncated')
    return v
  }

  u16(): number {
    return (this.u8() << 8) | this.u8()
  }

  u32(): number {
    const v = this.r.readUInt32()
    if (v < 0) throw new Error('truncated')
    return v
  }

  count(): number {
    const v = this.r.readVarUIntSmall()
    if (v < 0 || v > 100_000) throw new Error('bad count')
    return v
  }

  octets(): Buffer {
    const start = this.r.readVarOctetString()
    if (start < 0) throw new Error('bad length')
    return Buffer.from(this.buf.subarray(start, this.r.pos))
  }

  string(): string {
    return this.octets().toString('utf8')
  }
}

export function decodeRouteControl(data: Uint8Array): RouteControl {
  const r = new Reader(data)
  const mode = r.u8()
  if (mode !== MODE_IDLE && mode !== MODE_SYNC) throw new Error(`unknown mode ${mode}`)
  const lastKnownRoutingTableId = r.bytes(16)
  const lastKnownEpoch = r.u32()
  const features: string[] = []
  for (let n = r.count(); n > 0; n--) features.push(r.string())
  return { mode, lastKnownRoutingTableId, lastKnownEpoch, features }
}

export function decodeRouteUpdate(data: Uint8Array): RouteUpdate {
  const r = new Reader(data)
  const routingTableId = r.bytes(16)
  const currentEpochIndex = r.u32()
  const fromEpochIndex = r.u32()
  const toEpochIndex = r.u32()
  const holdDownTime = r.u32()
  const speaker = r.string()
  const newRoutes: CcpRoute[] = []
  for (let n = r.count(); n > 0; n--) {
    const prefix = r.string()
    const path: string[] = []
    for (let k = r.count(); k > 0; k--) path.push(r.string())
    const auth = r.bytes(32)
    for (let k = r.count(); k > 0; k--) {
      r.u8()
      r.u16()
      r.octets()
    }
    newRoutes.push({ prefix, path, auth })
  }
  const withdrawnRoutes: string[] = []
  for (let n = r.count(); n > 0; n--) withdrawnRoutes.push(r.string())
  return { routingTableId, currentEpochIndex, fromEpochIndex, toEpochIndex, holdDownTime, speaker, newRoutes, withdrawnRoutes }
}

class Writer {
  private buf = Buffer.alloc(256)
  private pos = 0

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const grown = Buffer.alloc(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(grown, 0, 0, this.pos)
    this.buf = grown
  }

  bytes(b: Uint8Array): this {
    this.room(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
    return this
  }

  u8(v: number): this {
    this.room(1)
    this.buf[this.pos++] = v
    return this
  }

  u16(v: number): this {
    return this.u8(v >>> 8).u8(v & 0xff)
  }

  u32(v: number): this {
    this.room(4)
    this.buf.writeUInt32BE(v >>> 0, this.pos)
    this.pos += 4
    return this
  }

  /** VarUInt as oer-utils writes counts: length byte, then minimal big-endian bytes. */
  count(v: number): this {
    const bytes: number[] = []
    do {
      bytes.unshift(v & 0xff)
      v = Math.floor(v / 256)
    } while (v > 0)
    return this.u8(bytes.length).bytes(Uint8Array.from(bytes))
  }

  octets(b: Uint8Array): this {
    this.room(5 + b.length)
    this.pos = writeLength(this.buf, this.pos, b.length)
    return this.bytes(b)
  }

  string(s: string): this {
    return this.octets(Buffer.from(s, 'utf8'))
  }

  done(): Buffer {
    return this.buf.subarray(0, this.pos)
  }
}

export function encodeRouteControl(c: RouteControl): Buffer {
  const w = new Writer().u8(c.mode).bytes(c.lastKnownRoutingTableId).u32(c.lastKnownEpoch).count(c.features.length)
  for (const f of c.features) w.string(f)
  return w.done()
}

export function encodeRouteUpdate(u: RouteUpdate): Buffer {
  const w = new Writer()
    .bytes(u.routingTableId).u32(u.currentEpochIndex).u32(u.fromEpochIndex).u32(u.toEpochIndex).u32(u.holdDownTime)
    .string(u.speaker).count(u.newRoutes.length)
  for (const route of u.newRoutes) {
    w.string(route.prefix).count(route.path.length)
    for (const hop of route.path) w.string(hop)
    w.bytes(route.auth).count(0)
  }
  w.count(u.withdrawnRoutes.length)
  for (const prefix of u.withdrawnRoutes) w.string(prefix)
  return w.done()
}
