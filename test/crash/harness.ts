// The crash test: the node (the `npm start` entry point, a child process) forwards under load from
// several senders to bob, W prepares outstanding per sender, amounts varying per packet; it is
// killed with SIGKILL at a random moment, restarted on the same LMDB directory (in the next of
// LAYOUTS each time: sockets on the main thread or on I/O threads, the shard inline or on 2
// threads, so recovery re-shards too), and audited, many times over. What the clients saw is the
// evidence:
//   every Fulfill a sender received is in its balance     seen ≤ balance
//   a sender is never charged more than it had in flight  balance ≤ seen + outstanding at the kill
//   bob is never credited more than he fulfilled          credit ≤ what bob fulfilled
//   nothing is created or lost                            Σ balances = 0
//   no hold survives a restart                            a sender can again use its full maximum
// The node's promise about a Fulfill in flight at the crash: if the node had committed it, the
// sender is charged and bob credited even though the sender never saw it (it may query
// peer.balance); if not, neither happened. Either way both sides of the books agree.

import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connectBtp } from '../support/btp_connect'

/** The thread layouts the rounds cycle through. */
const LAYOUTS = [
  { IO_THREADS: '1', SHARDS: '0' },
  { IO_THREADS: '2', SHARDS: '2' },
  { IO_THREADS: '1', SHARDS: '2' },
  { IO_THREADS: '2', SHARDS: '1' },
]
import { startNodeProcess, type NodeProcess } from '../support/node_process'
import { BtpFrame, BTP_MESSAGE, BTP_RESPONSE, ilpFrameLength, writeIlpFrame } from '../../src/codec/btp_packet'
import { encodeFulfill, encodePrepare } from '../../src/codec/ilp_packet'
import { connectPlugin, peerBalance, prng } from '../helpers'

export interface CrashOptions {
  kills: number
  senders: number
  window: number
  /** Each round runs for a random time in [min, max] before the kill. */
  minRunMs: number
  maxRunMs: number
  seed: number
  log?: (line: string) => void
}

export interface CrashReport {
  kills: number
  packetsFulfilled: number
  unitsFulfilled: bigint
  /** Units in flight when the node was killed (their outcome unknown to the senders), over all kills. */
  unitsInFlightAtKills: bigint
  /** Fulfills committed by the node that their senders never saw (found by the audits). */
  unitsCommittedUnseen: bigint
  audits: number
  failures: string[]
}

const FULFILLMENT = Buffer.alloc(32, 0x42)
const CONDITION = createHash('sha256').update(FULFILLMENT).digest()
const MAXIMUM = 1_000_000_000n

interface Sender {
  user: string
  seen: bigint
  outstanding: Map<number, bigint>
}

/** The committed balance of an account, as the node reports it (peer.balance, negated back). */
async function balanceOf(port: number, user: string): Promise<bigint> {
  const plugin = await connectPlugin(port, user, `${user}-token`)
  try {
    return -(await peerBalance(plugin))
  } finally {
    await plugin.disconnect()
  }
}

export async function runCrashTest(o: CrashOptions): Promise<CrashReport> {
  const log = o.log ?? (() => {})
  const random = prng(o.seed)
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-crash-'))
  const dataDir = join(dir, 'data')
  const users = Array.from({ length: o.senders }, (_, i) => `s${i}`)
  const accounts: Record<string, unknown> = {}
  for (const user of [...users, 'bob']) {
    accounts[user] = { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: `${user}-token` }, balance: { minimum: '-1000000000000', maximum: MAXIMUM.toString() } }
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ilpAddress: 'test.crash', accounts }))
  const senders: Sender[] = users.map((user) => ({ user, seen: 0n, outstanding: new Map() }))
  const report: CrashReport = { kills: 0, packetsFulfilled: 0, unitsFulfilled: 0n, unitsInFlightAtKills: 0n, unitsCommittedUnseen: 0n, audits: 0, failures: [] }
  let bobFulfilled = 0n
  let node: NodeProcess | null = null
  const start = (round: number) => startNodeProcess({ CONFIG: join(dir, 'config.json'), DATA_DIR: dataDir, ...LAYOUTS[round % LAYOUTS.length] })
  try {
    for (let round = 0; round <= o.kills; round++) {
      node = await start(round)
      // Audit what the previous rounds left, before any new traffic.
      await audit(node.port)
      if (round === o.kills) break

      const bob = await connectBtp(node.port, 'bob', 'bob-token')
      const frame = new BtpFrame()
      const fulfill = encodeFulfill(FULFILLMENT, Buffer.alloc(0))
      const response = Buffer.allocUnsafe(ilpFrameLength(fulfill.length))
      bob.onMessage = (data) => {
        if (!frame.parse(data) || frame.type !== BTP_MESSAGE) return
        const ilp = Buffer.from(frame.buf.buffer, frame.buf.byteOffset + frame.dataOffset[0], frame.dataLength[0])
        bobFulfilled += ilp.readBigUInt64BE(2) // amount: after type and a one-byte length
        writeIlpFrame(response, BTP_RESPONSE, frame.requestId, fulfill)
        bob.send(response)
      }
      const sockets = await Promise.all(senders.map((s) => connectBtp(node!.port, s.user, `${s.user}-token`)))
      let stopped = false
      let nextId = 2
      const reply = new BtpFrame()
      senders.forEach((sender, i) => {
        const ws = sockets[i]
        const send = () => {
          if (stopped || ws.closed) return
          const id = nextId++
          const amount = BigInt(1 + (id % 97))
          const prepare = encodePrepare({ amount, expiresAtMs: Date.now() + 20_000, executionCondition: CONDITION, destination: 'test.crash.bob', data: Buffer.alloc(0) })
          const out = Buffer.allocUnsafe(ilpFrameLength(prepare.length))
          writeIlpFrame(out, BTP_MESSAGE, id, prepare)
          sender.outstanding.set(id, amount)
          ws.send(out)
        }
        ws.onMessage = (data) => {
          if (!reply.parse(data) || reply.type !== BTP_RESPONSE) return
          const amount = sender.outstanding.get(reply.requestId)
          if (amount === undefined) return
          sender.outstanding.delete(reply.requestId)
          const type = reply.entryCount > 0 ? reply.buf[reply.dataOffset[0]] : 0
          if (type === 13) {
            sender.seen += amount
            report.packetsFulfilled++
            report.unitsFulfilled += amount
          }
          send()
        }
        for (let k = 0; k < o.window; k++) send()
      })
      const runMs = o.minRunMs + random() * (o.maxRunMs - o.minRunMs)
      await new Promise((resolve) => setTimeout(resolve, runMs))
      node.proc.kill('SIGKILL')
      await new Promise((resolve) => node!.proc.once('exit', resolve))
      stopped = true
      report.kills++
      // What was in flight is now of unknown outcome to the senders: the audit finds out.
      let inFlight = 0n
      for (const s of senders) for (const a of s.outstanding.values()) inFlight += a
      report.unitsInFlightAtKills += inFlight
      log(`kill ${report.kills}/${o.kills} after ${Math.round(runMs)} ms: ${report.packetsFulfilled} packets fulfilled so far, ${inFlight} units in flight at the kill`)
      for (const ws of [...sockets, bob]) ws.close()
      await node.stop().catch(() => {})
      node = null
    }
  } finally {
    if (node !== null) await node.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  return report

  async function audit(port: number): Promise<void> {
    report.audits++
    let sum = 0n
    for (const s of senders) {
      const balance = await balanceOf(port, s.user)
      sum += balance
      const maxInFlight = [...s.outstanding.values()].reduce((a, b) => a + b, 0n)
      if (balance < s.seen) report.failures.push(`audit ${report.audits}: ${s.user} balance ${balance} < fulfills it saw ${s.seen}`)
      if (balance > s.seen + maxInFlight) report.failures.push(`audit ${report.audits}: ${s.user} balance ${balance} > seen ${s.seen} + in flight ${maxInFlight}`)
      // Prepares in flight at the kill were committed (the balance says so) or not; settle them.
      const unseen = balance - s.seen
      report.unitsCommittedUnseen += unseen > 0n ? unseen : 0n
      s.seen = balance
      s.outstanding.clear()
    }
    const bob = await balanceOf(port, 'bob')
    sum += bob
    if (-bob > bobFulfilled) report.failures.push(`audit ${report.audits}: bob credited ${-bob} > fulfilled ${bobFulfilled}`)
    if (sum !== 0n) report.failures.push(`audit ${report.audits}: balances sum to ${sum}, not 0`)
    // No hold survived: each sender can be held up to its full maximum again.
    const probe = senders[Math.floor(random() * senders.length)]
    const room = MAXIMUM - (await balanceOf(port, probe.user))
    const plugin = await connectPlugin(port, probe.user, `${probe.user}-token`)
    try {
      // bob is not connected during the audit: a prepare that passes the hold check gets T01 (no
      // next hop); one that a surviving hold pushes over the maximum gets T04.
      const answer = await plugin.sendData(encodePrepare({ amount: room, expiresAtMs: Date.now() + 5_000, executionCondition: randomBytes(32), destination: 'test.crash.bob', data: Buffer.alloc(0) }))
      const code = answer.subarray(2, 5).toString()
      if (answer[0] !== 14 || code !== 'T01') report.failures.push(`audit ${report.audits}: ${probe.user} cannot use its full maximum (${code}): a hold survived`)
    } finally {
      await plugin.disconnect()
    }
  }
}
