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
// With fullDiskEvery > 0, DATA_DIR is a real tmpfs (support/small_disk.ts; root is needed to
// mount it) with a reserve of RESERVE_BYTES, and every fullDiskEvery-th round fills that disk to
// the last page while the load runs (store/storage_health.ts says what the node promises then).
// The load is then made to grow the LMDB file, as a burst would: bob holds each prepare
// FULL_DISK_HOLD_MS before he fulfils it and the senders widen their window, so thousands of
// prepares are journalled at once; and the operator's adjustments carry long reasons, which are
// kept, so the file must grow beyond the pages earlier rounds left free in it. The round checks
// that the node really hit the fault: /health 503 and its log line that its reserve is in use
// (past the data file: a top-up found the disk full; as a file: it gave the file back).
// Then, each layout taking both in turn:
//   freed before the kill  every fulfill bob sent reached its sender while the disk was full (the
//                          commits the node owed were made from the reserve), and the senders got
//                          T00 "storage unavailable" for new prepares; then the disk is freed,
//                          /health must be 200 again and payments go through, and the node is
//                          killed later in the round as usual;
//   killed while full      SIGKILL at a random moment after the fault, the disk filled again (so
//                          the reserve the node used cannot be taken whole), and a start on it must
//                          fail with exit code 73 and one line; then the disk is freed and the
//                          node started for real.
// Either way the audit that follows is the same: every party's own view against the books.
// An adjustment answered 503 (storage_unavailable, or outcome_unknown when its own write failed)
// is sent again with its key until it is answered, or after the restart; it must count once.
// A node that exits by itself is a failure too, kept apart from drift (nodeFailures), as is any
// of the full-disk checks above.

import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connectBtp } from '../support/btp_connect'

/** What the node logs when its reserve goes to what it owes: a top-up found the disk full, or a shard gave the reserve file back. */
const RESERVE_IN_USE = /storage reserve is in use|gave back the storage reserve/

/** The thread layouts the rounds cycle through. */
const LAYOUTS = [
  { IO_THREADS: '1', SHARDS: '0' },
  { IO_THREADS: '2', SHARDS: '2' },
  { IO_THREADS: '1', SHARDS: '2' },
  { IO_THREADS: '2', SHARDS: '1' },
]
import { startNodeProcess, type NodeProcess } from '../../src/testing/node_process'
import { BtpFrame, BTP_MESSAGE, BTP_RESPONSE, BTP_TRANSFER, encodeResponse, ilpFrameLength, writeIlpFrame } from '../../src/codec/btp_packet'
import { encodeFulfill, encodePrepare } from '../../src/codec/ilp_packet'
import { connectPlugin, peerBalance, prng, sleep } from '../support/helpers'
import { mountSmallDisk, type SmallDisk } from '../support/small_disk'

export interface CrashOptions {
  kills: number
  senders: number
  window: number
  /** Each round runs for a random time in [min, max] before the kill. */
  minRunMs: number
  maxRunMs: number
  seed: number
  /**
   * Every this many rounds (the 3rd, 6th, …; 0: none) the disk fills while the load runs; DATA_DIR
   * is then on a small tmpfs for the whole run (root only). Each layout's full-disk rounds
   * alternate between a kill while the disk is still full (its first) and a disk freed before the kill.
   */
  fullDiskEvery?: number
  /** Each sender's window once the disk is full (the burst that makes the LMDB file grow). */
  fullDiskWindow?: number
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
  /** Rounds in which the disk was filled, and in how many of them the node hit the fault (/health 503 and its log line). */
  fullDiskRounds: number
  faultsSeen: number
  /** T00 "storage unavailable" rejects the senders got. */
  storageRejects: number
  /**
   * The operator's adjustments answered 503, sent again later with the same key: storage_unavailable
   * (refused, nothing written) and outcome_unknown (the adjustment's own write failed).
   */
  adjustmentsRefused: number
  adjustmentsOutcomeUnknown: number
  /** Rounds freed before the kill in which every fulfill bob sent while the disk was full reached its sender. */
  owedCommitsMade: number
  killsWhileFull: number
  /** Starts on the still-full disk refused with exit code 73 and one line. */
  startsRefused73: number
  /** Times the node exited without being killed (a crash of its own). */
  nodeDeaths: number
  /** The books against each party's own view: any entry here is drift. */
  failures: string[]
  /** What the node promises on a full disk and did not do, and exits of its own: not drift, but failures. */
  nodeFailures: string[]
}

const FULFILLMENT = Buffer.alloc(32, 0x42)
const CONDITION = createHash('sha256').update(FULFILLMENT).digest()
const MAXIMUM = 1_000_000_000n
const ADMIN_TOKEN = 'crash-test-admin-token'
/** bob's settlement: the node pays bob when it owes him more than this (units). */
const BOB_SETTLE_THRESHOLD = '-20000'
/** How often the operator adjusts s0's balance while the load runs. */
const ADJUST_EVERY_MS = 1
/** The full-disk phase: the tmpfs, the node's reserve on it, and how long bob holds each prepare then. */
const DISK_BYTES = 64 * 1024 * 1024
const RESERVE_BYTES = 4 * 1024 * 1024
const FULL_DISK_HOLD_MS = 300
/** A prepare refused for storage is sent again after this (a client backing off), while its sender has room in its window. */
const STORAGE_RETRY_MS = 100
/** Bounds on the waits of the full-disk phase. */
const FAULT_WITHIN_MS = 20_000
const RESUME_WITHIN_MS = 10_000

interface Sender {
  user: string
  seen: bigint
  outstanding: Map<number, bigint>
  /** Operator adjustments known to have been made (their answer seen, or found by a retry). */
  adjusted: bigint
}

/** An adjustment as the operator sends it (the same amount and reason each time its key is sent). */
interface Adjustment { amount: bigint; reason: string }

/** POST /admin/accounts/<user>/adjust: the adjustment's answer, or null if the node was gone. */
async function adjust(port: number, user: string, key: string, a: Adjustment): Promise<{ status: number; replayed: boolean; code?: string } | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/admin/accounts/${user}/adjust`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'idempotency-key': key },
      body: JSON.stringify({ amount: a.amount.toString(), reason: a.reason }),
      signal: AbortSignal.timeout(10_000),
    })
    const body = await res.json() as { replayed?: boolean; code?: string }
    return { status: res.status, replayed: body.replayed === true, code: body.code }
  } catch {
    return null
  }
}

/** GET /health: its status (0 if there was no answer). */
async function healthStatus(port: number): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) })
    await res.arrayBuffer()
    return res.status
  } catch {
    return 0
  }
}

/** Waits until `check` holds, polling; false if it did not within `ms`. */
async function waitUntil(ms: number, check: () => boolean | Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check()) return true
    if (Date.now() >= deadline) return false
    await sleep(20)
  }
}

/** The last `n` lines of a process's output, each cut to 300 characters. */
function lastLines(output: string, n: number): string {
  return output.split('\n').filter((l) => l.trim() !== '').slice(-n).map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l)).join('\n')
}

/** True if an ILP packet is a T00 reject saying the storage is unavailable. */
function isStorageReject(ilp: Uint8Array): boolean {
  if (ilp[0] !== 14 || ilp.length < 6) return false
  // The packet's length prefix: one byte below 128, else 0x80 | count and count bytes.
  const start = ilp[1] < 0x80 ? 2 : 2 + (ilp[1] & 0x7f)
  if (ilp[start] !== 0x54 || ilp[start + 1] !== 0x30 || ilp[start + 2] !== 0x30) return false // 'T00'
  return Buffer.from(ilp.buffer, ilp.byteOffset, ilp.byteLength).indexOf('storage unavailable', start + 3, 'latin1') >= 0
}

/**
 * Starts the node where it must refuse (a full disk): its exit code and what it printed. A node
 * that starts listening anyway is killed at once (code null); so is one that hangs.
 */
function startRefused(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [join(__dirname, '..', '..', 'src', 'main.js')], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000)
  proc.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
    if (/ listening |"msg":"ilp-node listening"/.test(stdout)) proc.kill('SIGKILL')
  })
  proc.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  return new Promise((resolve) => proc.once('close', (code) => {
    clearTimeout(timer)
    resolve({ code, stdout, stderr })
  }))
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
  const fullDiskEvery = o.fullDiskEvery ?? 0
  const fullDiskWindow = o.fullDiskWindow ?? 1500
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-crash-'))
  let disk: SmallDisk | null = null
  const unmountAtExit = () => disk?.unmount()
  const users = Array.from({ length: o.senders }, (_, i) => `s${i}`)
  const accounts: Record<string, unknown> = {}
  for (const user of [...users, 'bob']) {
    accounts[user] = { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: `${user}-token` }, balance: { minimum: '-1000000000000', maximum: MAXIMUM.toString() } }
  }
  accounts.bob = {
    ...(accounts.bob as object), settlement: { engine: 'btp-transfer', retryMs: 100 },
    balance: { minimum: '-1000000000000', maximum: MAXIMUM.toString(), settleThreshold: BOB_SETTLE_THRESHOLD, settleTo: '0' },
  }
  // On the small disk the reserve must leave room for the run's own growth; prepares held by bob
  // are journalled soon, so that a burst of them grows the file.
  const limits = fullDiskEvery > 0 ? { storageReserveBytes: RESERVE_BYTES, journalDelayMs: 20 } : undefined
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ilpAddress: 'test.crash', adminToken: ADMIN_TOKEN, limits, accounts }))
  const senders: Sender[] = users.map((user) => ({ user, seen: 0n, outstanding: new Map(), adjusted: 0n }))
  /** Adjustments of s0 sent whose answer the kill cut off (or a 503 left open): sent again after the restart. */
  const unanswered = new Map<string, Adjustment>()
  let adjustments = 0
  let adjustmentsRetried = 0
  const report: CrashReport = {
    kills: 0, packetsFulfilled: 0, unitsFulfilled: 0n, unitsInFlightAtKills: 0n, unitsCommittedUnseen: 0n, audits: 0, adjustments: 0, adjustmentsRetried: 0,
    settlements: 0, settlementFrames: 0, settlementsInFlightAtKills: 0,
    fullDiskRounds: 0, faultsSeen: 0, storageRejects: 0, adjustmentsRefused: 0, adjustmentsOutcomeUnknown: 0, owedCommitsMade: 0, killsWhileFull: 0, startsRefused73: 0,
    nodeDeaths: 0, failures: [], nodeFailures: [],
  }
  let bobFulfilled = 0n
  /** How long bob holds a prepare before he fulfils it (0: at once), and how many he holds now. */
  let bobHoldMs = 0
  let bobHolding = 0
  /** What bob booked: each settlement id once, with its amount. */
  const bobSettled = new Map<string, bigint>()
  const bobFrame = new BtpFrame()
  /** bob's side of the link: fulfils every prepare, books every settlement once per id. */
  const bobHandler = (bob: { send(data: Uint8Array): void; closed: boolean }, fulfillPrepares: boolean) => {
    const fulfill = encodeFulfill(FULFILLMENT, Buffer.alloc(0))
    const response = Buffer.allocUnsafe(ilpFrameLength(fulfill.length))
    const fulfillNow = (requestId: number, amount: bigint) => {
      bobFulfilled += amount
      writeIlpFrame(response, BTP_RESPONSE, requestId, fulfill)
      bob.send(response)
    }
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
      const amount = ilp.readBigUInt64BE(2) // amount: after type and a one-byte length
      if (bobHoldMs === 0) return fulfillNow(frame.requestId, amount)
      const requestId = frame.requestId
      bobHolding++
      setTimeout(() => {
        bobHolding--
        // A link the kill ended gets nothing more: what bob fulfilled is what he sent.
        if (!bob.closed && !killed) fulfillNow(requestId, amount)
      }, bobHoldMs)
    }
  }
  let killed = false
  let node: NodeProcess | null = null
  let dataDir = join(dir, 'data')
  const env = (round: number) => ({ CONFIG: join(dir, 'config.json'), DATA_DIR: dataDir, ...LAYOUTS[round % LAYOUTS.length] })
  const start = (round: number) => startNodeProcess(env(round))
  try {
    if (fullDiskEvery > 0) {
      disk = mountSmallDisk(DISK_BYTES)
      // The finally below unmounts it; this covers an exit that skips it (process.exit on a signal).
      process.once('exit', unmountAtExit)
      dataDir = join(disk.dir, 'data')
    }
    /** Per layout, whether its last full-disk round was killed while full: each layout takes both in turn. */
    const lastKilledWhileFull = LAYOUTS.map(() => false)
    for (let round = 0; round <= o.kills; round++) {
      node = await start(round)
      killed = false
      // A node that exits before its kill is a failure to report, and the kill must not wait for an exit that has been.
      const proc = node.proc
      const output = node.output
      let died = false
      const exited = new Promise<void>((resolve) => proc.once('exit', (code, signal) => {
        if (!killed) {
          died = true
          report.nodeDeaths++
          report.nodeFailures.push(`round ${round}: the node exited by itself (code ${code}, signal ${signal}); its last output:\n${lastLines(output(), 12)}`)
        }
        resolve()
      }))
      // Audit what the previous rounds left, before any new traffic.
      await audit(node.port)
      if (round === o.kills) {
        await finalSettlementAudit(node.port)
        killed = true // stopped below, not by itself
        break
      }
      const fullDisk = disk !== null && round % fullDiskEvery === fullDiskEvery - 1
      const killWhileFull = fullDisk && !lastKilledWhileFull[round % LAYOUTS.length]
      if (fullDisk) lastKilledWhileFull[round % LAYOUTS.length] = killWhileFull
      const roundStarted = Date.now()
      /** The node's log said its reserve is in use (its lines are watched as they come). */
      let reserveInUseLogged = false
      let carry = ''
      const watchLog = (chunk: Buffer) => {
        // Each chunk whole, with the end of the one before (a line split between two chunks).
        const text = carry + chunk.toString()
        if (RESERVE_IN_USE.test(text)) reserveInUseLogged = true
        carry = text.slice(-200)
      }
      node.proc.stdout!.on('data', watchLog)
      node.proc.stderr!.on('data', watchLog)

      const bob = await connectBtp(node.port, 'bob', 'bob-token')
      bob.onMessage = bobHandler(bob, true)
      const sockets = await Promise.all(senders.map((s) => connectBtp(node!.port, s.user, `${s.user}-token`)))
      let stopped = false
      let nextId = 2
      /** Each sender's window now (raised while the disk fills), and what they saw fulfilled this round. */
      let senderWindow = o.window
      let roundSeen = 0n
      let roundRejects = 0
      const bobAtStart = bobFulfilled
      const bobFulfilledRound = () => bobFulfilled - bobAtStart
      /** Adjustments now carry long reasons (each is kept: the file grows). */
      let longReasons = false
      const reply = new BtpFrame()
      const sends = senders.map((sender, i) => {
        const ws = sockets[i]
        const send = () => {
          if (stopped || ws.closed || sender.outstanding.size >= senderWindow) return
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
            roundSeen += amount
            report.packetsFulfilled++
            report.unitsFulfilled += amount
          } else if (type === 14 && isStorageReject(reply.buf.subarray(reply.dataOffset[0], reply.dataOffset[0] + reply.dataLength[0]))) {
            // Try again later, as a client would; meanwhile the window shrinks back as the held prepares finish.
            report.storageRejects++
            roundRejects++
            return void setTimeout(send, STORAGE_RETRY_MS)
          }
          send()
        }
        for (let k = 0; k < o.window; k++) send()
        return send
      })
      const operator = (async () => {
        const port = node!.port
        for (let k = 0; !stopped; k++) {
          const key = `r${round}-${k}`
          const amount = BigInt((k % 2 === 0 ? 1 : -1) * (1 + (k % 7)))
          const a: Adjustment = { amount, reason: longReasons ? `crash test ${key} ${'the disk fills; '.repeat(60)}` : `crash test ${key}` }
          unanswered.set(key, a)
          for (;;) {
            const answer = await adjust(port, senders[0].user, key, a)
            if (answer === null) return // the node is gone: the key stays unanswered
            if (answer.status === 503) {
              // storage_unavailable (nothing written) or outcome_unknown: the same key again later.
              if (answer.code === 'storage_unavailable') report.adjustmentsRefused++
              else if (answer.code === 'outcome_unknown') report.adjustmentsOutcomeUnknown++
              else report.failures.push(`adjustment ${key}: 503 ${answer.code}`)
              if (stopped) return
              await sleep(50)
              continue
            }
            unanswered.delete(key)
            // 200 replayed: a 503 outcome_unknown before it had been made after all.
            if (answer.status !== 201 && !(answer.status === 200 && answer.replayed)) report.failures.push(`adjustment ${key}: status ${answer.status}, replayed ${answer.replayed}`)
            senders[0].adjusted += amount
            adjustments++
            break
          }
          await sleep(ADJUST_EVERY_MS)
        }
      })()
      let runMs = o.minRunMs + random() * (o.maxRunMs - o.minRunMs)
      /** A wait that ends early if the node died (that is reported once, by its exit). */
      const until = async (ms: number, check: () => boolean | Promise<boolean>) => (await waitUntil(ms, async () => died || await check())) && !died
      /** The round's full-disk phase: true if the node showed the fault (its reserve in use). */
      const fullDiskPhase = async (): Promise<boolean> => {
        report.fullDiskRounds++
        const d = disk!
        const port = node!.port
        const before = Math.min(runMs, 300)
        await sleep(before)
        runMs -= before
        const filled = Date.now()
        d.fill()
        // The burst: thousands of prepares held by bob, so journalled, and adjustments with long
        // reasons, each kept: the LMDB file must grow beyond what earlier rounds left free in it.
        bobHoldMs = FULL_DISK_HOLD_MS
        longReasons = true
        senderWindow = fullDiskWindow
        for (const send of sends) for (let k = 0; k < fullDiskWindow; k++) send()
        const fault = await until(FAULT_WITHIN_MS, async () => (await healthStatus(port)) === 503)
        const faultMs = Date.now() - filled
        const logged = fault && await until(5000, () => reserveInUseLogged)
        // Growth is forced no more: the prepares already taken are what the node owes.
        senderWindow = o.window
        longReasons = false
        if (died) {
          phase = 'the node died by itself'
          return false
        }
        if (!fault || !logged) {
          report.nodeFailures.push(`round ${round}: the full disk did not show: /health 503 ${fault ? `after ${faultMs} ms` : 'not seen'}, the reserve in use ${logged ? 'logged' : 'not logged'}; the node's last output:\n${lastLines(output(), 12)}`)
          phase = 'no fault shown'
          return false
        }
        report.faultsSeen++
        if (killWhileFull) {
          const delay = random() * 1000
          await sleep(delay)
          phase = `killed ${Math.round(delay)} ms after /health 503 (${faultMs} ms after the fill), disk full`
          runMs = 0
          return true
        }
        // Every fulfill bob sends reaches its sender while the disk is full: what the node owed it committed from its reserve.
        const owed = await until(RESUME_WITHIN_MS, () => bobHolding === 0 && bobFulfilledRound() === roundSeen)
        if (owed) report.owedCommitsMade++
        else if (!died) report.nodeFailures.push(`round ${round}: with the disk full, bob fulfilled ${bobFulfilledRound()} this round (holding ${bobHolding}) and the senders saw ${roundSeen}: the node did not commit what it owed`)
        const rejected = await until(RESUME_WITHIN_MS, () => roundRejects > 0)
        if (!rejected && !died) report.nodeFailures.push(`round ${round}: no sender got T00 storage unavailable while the disk was full`)
        const stillRefusing = !died && (await healthStatus(port)) === 503
        if (!stillRefusing && !died) report.nodeFailures.push(`round ${round}: /health not 503 while the disk is still full`)
        d.free()
        bobHoldMs = 0
        const freed = Date.now()
        const healthy = await until(RESUME_WITHIN_MS, async () => (await healthStatus(port)) === 200)
        const healthyMs = Date.now() - freed
        const seenBefore = roundSeen
        for (const send of sends) for (let k = 0; k < o.window; k++) send()
        const flowing = healthy && await until(RESUME_WITHIN_MS, () => roundSeen > seenBefore)
        if ((!healthy || !flowing) && !died) report.nodeFailures.push(`round ${round}: after the disk was freed: /health ${healthy ? `200 after ${healthyMs} ms` : 'not 200'}, payments ${flowing ? 'flowing' : 'not flowing'}`)
        phase = died ? 'the node died by itself' : `/health 503 ${faultMs} ms after the fill, ${roundRejects} T00 rejects, owed commits ${owed ? 'made' : 'NOT made'}, freed: /health 200 after ${healthyMs} ms`
        return true
      }
      let phase = ''
      const faultShown = fullDisk && await fullDiskPhase()
      await sleep(runMs)
      killed = true
      node.proc.kill('SIGKILL')
      await exited
      stopped = true
      bobHoldMs = 0
      await operator
      report.kills++
      // What was in flight is now of unknown outcome to the senders: the audit finds out.
      let inFlight = 0n
      for (const s of senders) for (const a of s.outstanding.values()) inFlight += a
      report.unitsInFlightAtKills += inFlight
      log(`kill ${report.kills}/${o.kills} after ${Date.now() - roundStarted} ms${fullDisk ? ` (full disk: ${phase})` : ''}: ${report.packetsFulfilled} packets fulfilled so far, ${inFlight} units in flight at the kill`)
      for (const ws of [...sockets, bob]) ws.close()
      await node.stop().catch(() => {})
      node = null
      if (fullDisk && killWhileFull) {
        if (!died) report.killsWhileFull++
        // A node that showed the fault has used some of its reserve (or given back its file), and
        // cannot start while the disk is still full: no whole reserve fits. (One that died before
        // would start, as it should: its reserve is there.)
        disk!.fill()
        if (faultShown) {
          const refused = await startRefused(env(round + 1))
          const lines = refused.stderr.split('\n').filter((l) => l.trim() !== '')
          if (refused.code === 73 && lines.length === 1 && /storage reserve/.test(lines[0])) report.startsRefused73++
          else report.nodeFailures.push(`round ${round}: a start on the full disk: exit ${refused.code}, stderr:\n${refused.stderr}${refused.stdout.slice(-2000)}`)
          log(`  start on the full disk (${disk!.available()} bytes free): exit ${refused.code}: ${lines[0] ?? ''}`)
        }
        disk!.free()
      }
    }
  } finally {
    try {
      if (node !== null) await node.stop()
    } finally {
      rmSync(dir, { recursive: true, force: true })
      if (disk !== null) {
        process.off('exit', unmountAtExit)
        disk.unmount()
      }
    }
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
    for (const [key, a] of unanswered) {
      const answer = await adjust(port, senders[0].user, key, a)
      if (answer === null || (answer.status !== 200 && answer.status !== 201)) {
        report.failures.push(`audit ${report.audits}: adjustment ${key} sent again: ${answer === null ? 'no answer' : `status ${answer.status}`}`)
        continue
      }
      if (answer.replayed) adjustmentsRetried++
      senders[0].adjusted += a.amount
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
