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
// Meanwhile an operator adjusts s0's balance through the admin API (POST .../adjust, each with its
// own idempotency key); an adjustment whose answer the kill cut off is sent again, same key, after
// the restart, as an operator would: each must then count exactly once, so s0's balance is what it
// saw fulfilled plus the adjustments, and the balances sum to the adjustments (they are the only
// money that enters from outside).
// And the node settles with bob (balance.settleThreshold, BTP transfers): bob records every
// TRANSFER it gets by id and books each id once, as a peer must. After each restart the audit
// checks the node's settlement log (GET /admin/settlements) against what bob got: everything bob
// got is in the log with the same amount (nothing sent before it was committed), every settlement
// the log has as acknowledged bob got, and at the end, with bob connected until no settlement is
// in flight, bob got exactly the log's settlements, each once; the balances then sum to the
// adjustments plus the settlements.
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
import { BtpFrame, BTP_MESSAGE, BTP_RESPONSE, BTP_TRANSFER, encodeResponse, ilpFrameLength, writeIlpFrame } from '../../src/codec/btp_packet'
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
  /** Operator adjustments made, and how many of those a retry after a kill found already made. */
  adjustments: number
  adjustmentsRetried: number
  /** Settlements the node made to bob (its log at the end), and TRANSFER frames bob got for them. */
  settlements: number
  settlementFrames: number
  /** Settlements logged `sending` when an audit looked (in flight at the kill before it). */
  settlementsInFlightAtKills: number
  failures: string[]
}

const FULFILLMENT = Buffer.alloc(32, 0x42)
const CONDITION = createHash('sha256').update(FULFILLMENT).digest()
const MAXIMUM = 1_000_000_000n
const ADMIN_TOKEN = 'crash-test-admin-token'
/** bob's settlement: the node pays bob when it owes him more than this (units). */
const BOB_SETTLE_THRESHOLD = '-20000'
/** How often the operator adjusts s0's balance while the load runs. */
const ADJUST_EVERY_MS = 1

interface Sender {
  user: string
  seen: bigint
  outstanding: Map<number, bigint>
  /** Operator adjustments known to have been made (their answer seen, or found by a retry). */
  adjusted: bigint
}

/** POST /admin/accounts/<user>/adjust: the adjustment's answer, or null if the node was gone. */
async function adjust(port: number, user: string, key: string, amount: bigint): Promise<{ status: number; replayed: boolean } | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/admin/accounts/${user}/adjust`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'idempotency-key': key },
      body: JSON.stringify({ amount: amount.toString(), reason: `crash test ${key}` }),
    })
    const body = await res.json() as { replayed?: boolean }
    return { status: res.status, replayed: body.replayed === true }
  } catch {
    return null
  }
}

interface SettlementView { id: string; account: string; amount: string; state: string }

/** The whole log of settlements sent, page by page (a page has 10,000 at most). */
async function settlementLog(port: number): Promise<SettlementView[]> {
  const sent: SettlementView[] = []
  let after: string | null = null
  do {
    const query: string = `list=sent&limit=10000${after === null ? '' : `&sentAfter=${after}`}`
    const res = await fetch(`http://127.0.0.1:${port}/admin/settlements?${query}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    const page = (await res.json()) as { sent: SettlementView[]; next: { sent: string | null } }
    sent.push(...page.sent)
    after = page.next.sent
  } while (after !== null)
  return sent
}

async function adminBalance(port: number, account: string): Promise<bigint> {
  const res = await fetch(`http://127.0.0.1:${port}/admin/accounts/${account}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  return BigInt(((await res.json()) as { balance: string }).balance)
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
  accounts.bob = {
    ...(accounts.bob as object), settlement: { engine: 'btp-transfer', retryMs: 100 },
    balance: { minimum: '-1000000000000', maximum: MAXIMUM.toString(), settleThreshold: BOB_SETTLE_THRESHOLD, settleTo: '0' },
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ilpAddress: 'test.crash', adminToken: ADMIN_TOKEN, accounts }))
  const senders: Sender[] = users.map((user) => ({ user, seen: 0n, outstanding: new Map(), adjusted: 0n }))
  /** Adjustments of s0 sent whose answer the kill cut off: sent again after the restart. */
  const unanswered = new Map<string, bigint>()
  let adjustments = 0
  let adjustmentsRetried = 0
  const report: CrashReport = {
    kills: 0, packetsFulfilled: 0, unitsFulfilled: 0n, unitsInFlightAtKills: 0n, unitsCommittedUnseen: 0n, audits: 0, adjustments: 0, adjustmentsRetried: 0,
    settlements: 0, settlementFrames: 0, settlementsInFlightAtKills: 0, failures: [],
  }
  let bobFulfilled = 0n
  /** What bob booked: each settlement id once, with its amount. */
  const bobSettled = new Map<string, bigint>()
  const bobFrame = new BtpFrame()
  /** bob's side of the link: fulfils every prepare, books every settlement once per id. */
  const bobHandler = (bob: { send(data: Uint8Array): void }, fulfillPrepares: boolean) => {
    const fulfill = encodeFulfill(FULFILLMENT, Buffer.alloc(0))
    const response = Buffer.allocUnsafe(ilpFrameLength(fulfill.length))
    return (data: Uint8Array) => {
      const frame = bobFrame
      if (!frame.parse(data)) return
      if (frame.type === BTP_TRANSFER) {
        report.settlementFrames++
        const i = frame.findEntry(Buffer.from('transfer_id'))
        if (i < 0) return void report.failures.push('bob got a transfer without a transfer_id')
        const id = Buffer.from(frame.entryData(i)).toString('hex')
        const known = bobSettled.get(id)
        if (known !== undefined && known !== frame.amount) report.failures.push(`settlement ${id} came with ${frame.amount} after ${known}`)
        bobSettled.set(id, frame.amount)
        return bob.send(encodeResponse(frame.requestId))
      }
      if (!fulfillPrepares || frame.type !== BTP_MESSAGE) return
      const ilp = Buffer.from(frame.buf.buffer, frame.buf.byteOffset + frame.dataOffset[0], frame.dataLength[0])
      bobFulfilled += ilp.readBigUInt64BE(2) // amount: after type and a one-byte length
      writeIlpFrame(response, BTP_RESPONSE, frame.requestId, fulfill)
      bob.send(response)
    }
  }
  let node: NodeProcess | null = null
  const start = (round: number) => startNodeProcess({ CONFIG: join(dir, 'config.json'), DATA_DIR: dataDir, ...LAYOUTS[round % LAYOUTS.length] })
  try {
    for (let round = 0; round <= o.kills; round++) {
      node = await start(round)
      // Audit what the previous rounds left, before any new traffic.
      await audit(node.port)
      if (round === o.kills) {
        await finalSettlementAudit(node.port)
        break
      }

      const bob = await connectBtp(node.port, 'bob', 'bob-token')
      bob.onMessage = bobHandler(bob, true)
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
      const operator = (async () => {
        const port = node!.port
        for (let k = 0; !stopped; k++) {
          const key = `r${round}-${k}`
          const amount = BigInt((k % 2 === 0 ? 1 : -1) * (1 + (k % 7)))
          unanswered.set(key, amount)
          const answer = await adjust(port, senders[0].user, key, amount)
          if (answer === null) return // the node is gone: the key stays unanswered
          unanswered.delete(key)
          if (answer.status !== 201) report.failures.push(`adjustment ${key}: status ${answer.status}, replayed ${answer.replayed}`)
          senders[0].adjusted += amount
          adjustments++
          await new Promise((resolve) => setTimeout(resolve, ADJUST_EVERY_MS))
        }
      })()
      const runMs = o.minRunMs + random() * (o.maxRunMs - o.minRunMs)
      await new Promise((resolve) => setTimeout(resolve, runMs))
      node.proc.kill('SIGKILL')
      await new Promise((resolve) => node!.proc.once('exit', resolve))
      stopped = true
      await operator
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

  /** bob connected until the node has no settlement in flight: then bob got exactly the log's, each once. */
  async function finalSettlementAudit(port: number): Promise<void> {
    const bob = await connectBtp(port, 'bob', 'bob-token')
    bob.onMessage = bobHandler(bob, false)
    try {
      const deadline = Date.now() + 15000
      let logged = await settlementLog(port)
      while (logged.some((e) => e.state === 'sending') && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        logged = await settlementLog(port)
      }
      const pending = logged.filter((e) => e.state !== 'acknowledged')
      if (pending.length > 0) report.failures.push(`final audit: ${pending.length} settlements not acknowledged (${pending.map((e) => `${e.id} ${e.state} ${(e as { reason?: string }).reason}`).join(", ")})`)
      const key = (id: string, amount: bigint | string) => `${id} ${amount}`
      const theirs = [...bobSettled].map(([id, amount]) => key(id, amount)).sort()
      const ours = logged.map((e) => key(e.id, e.amount)).sort()
      if (JSON.stringify(theirs) !== JSON.stringify(ours)) report.failures.push(`final audit: bob got ${theirs.length} settlements, the node logged ${ours.length}; they differ`)
      report.settlements = logged.length
    } finally {
      bob.close()
    }
  }

  async function audit(port: number): Promise<void> {
    report.audits++
    // The operator sends again what the kill cut off: made before the kill (replayed) or not (made now), once either way.
    for (const [key, amount] of unanswered) {
      const answer = await adjust(port, senders[0].user, key, amount)
      if (answer === null || (answer.status !== 200 && answer.status !== 201)) {
        report.failures.push(`audit ${report.audits}: adjustment ${key} sent again: ${answer === null ? 'no answer' : `status ${answer.status}`}`)
        continue
      }
      if (answer.replayed) adjustmentsRetried++
      senders[0].adjusted += amount
      adjustments++
    }
    unanswered.clear()
    let sum = 0n
    let adjustedTotal = 0n
    for (const s of senders) {
      const balance = await balanceOf(port, s.user)
      sum += balance
      adjustedTotal += s.adjusted
      const expected = s.seen + s.adjusted
      const maxInFlight = [...s.outstanding.values()].reduce((a, b) => a + b, 0n)
      if (balance < expected) report.failures.push(`audit ${report.audits}: ${s.user} balance ${balance} < fulfills it saw ${s.seen} + adjustments ${s.adjusted}`)
      if (balance > expected + maxInFlight) report.failures.push(`audit ${report.audits}: ${s.user} balance ${balance} > seen ${s.seen} + adjustments ${s.adjusted} + in flight ${maxInFlight}`)
      // Prepares in flight at the kill were committed (the balance says so) or not; settle them.
      const unseen = balance - expected
      report.unitsCommittedUnseen += unseen > 0n ? unseen : 0n
      s.seen = balance - s.adjusted
      s.outstanding.clear()
    }
    // The settlement log against what bob got: nothing bob got is missing from the log (or has
    // another amount), and everything the log has as acknowledged, bob got.
    const logged = await settlementLog(port)
    if (report.audits > 1) report.settlementsInFlightAtKills += logged.filter((e) => e.state === 'sending').length
    const byId = new Map(logged.map((e) => [e.id, e]))
    for (const [id, amount] of bobSettled) {
      const e = byId.get(id)
      if (e === undefined) report.failures.push(`audit ${report.audits}: bob got settlement ${id} (${amount}) that the node has not logged`)
      else if (BigInt(e.amount) !== amount || e.state === 'refused') report.failures.push(`audit ${report.audits}: settlement ${id}: bob got ${amount}, the log has ${e.amount} ${e.state}`)
    }
    for (const e of logged) if (e.state === 'acknowledged' && !bobSettled.has(e.id)) report.failures.push(`audit ${report.audits}: settlement ${e.id} logged acknowledged, bob never got it`)
    const settled = logged.reduce((total, e) => total + (e.state === 'refused' ? 0n : BigInt(e.amount)), 0n)
    // bob's balance from the admin API: a client connected as bob would be his newest link, and
    // the node would send it the settlements in flight (ilp-plugin-btp refuses them, F00).
    const bob = await adminBalance(port, 'bob')
    sum += bob
    if (-(bob - settled) > bobFulfilled) report.failures.push(`audit ${report.audits}: bob credited ${-(bob - settled)} > fulfilled ${bobFulfilled}`)
    if (sum !== adjustedTotal + settled) report.failures.push(`audit ${report.audits}: balances sum to ${sum}, not the adjustments' ${adjustedTotal} plus the settlements' ${settled}`)
    report.adjustments = adjustments
    report.adjustmentsRetried = adjustmentsRetried
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
