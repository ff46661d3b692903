// Goal: the books hold at every step, whatever the order of events, however the peers misbehave
// and whenever the storage fails. A deterministic simulation of two shards (the real Shard and
// ShardLoop on real rings and a real LMDB in a temporary directory) with the I/O side and every
// peer played by the test, a fake clock, seeded settlement ids, and a seeded random schedule of:
//   prepares; next-hop answers: the right fulfillment, a wrong one (F05 upstream), a reject, none
//     (R00 at expiry); and hostile ones: an answer again after it was answered or expired, an
//     answer to an id never sent or to a slot taken since, an answer from another account;
//   settlements the node sends (a0, a1 settle with the node), answered by the peer after any
//     delay and in any order, sometimes twice, sometimes refused (F) and then acknowledged for
//     another copy of the same id, sometimes "not now" (T), copies lost on the way;
//   transfers peers send the node (a2, a3), with copies repeated and reordered;
//   commits that fail for a while (the LMDB transaction aborted, as a full disk aborts it) and
//     then succeed; shard turns in any order; time passing; crashes (both shards dropped with
//     whatever they held, connections and what was on them lost, recovered from LMDB), also
//     while commits fail, between the decision to settle and its commit.
// After every step:
//   the committed balances sum to what moved outside ILP (settlements − transfers, as logged)
//   no committed balance is past its account's limits (but a settling account's, see checkBooks)
//   a fulfill the sender receives is already committed                        seen ⇒ booked
//   a settlement the peer receives is already in the node's log (committed)   nothing sent early
// and at each crash and at the end, each account's committed balance is what the fulfills its side
// saw and what moved outside ILP say, give or take only the fulfills in flight at the crash; at
// the end, every settlement and transfer id is booked by both sides or by neither, with one
// amount. A failing run prints its seed and step; SIM_SEED=<seed> replays it.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, describe, it } from 'node:test'
import { encodeFulfill, encodePrepare, encodeReject, PrepareView } from '../../src/codec/ilp_packet'
import { AccountTable, shardOfAccount } from '../../src/config/account_table'
import { parseConfig } from '../../src/config/parse'
import type { Config } from '../../src/config/schema'
import { logger, setLogLevel } from '../../src/log'
import { LinkTable } from '../../src/shared/link_table'
import { pendingIdHigh, pendingIdLow, pendingIdOf, RecordKind, SettleAnswer, SETTLEMENT_ID_BYTES, TransferAnswer } from '../../src/ring/records'
import { RingReader, RingWriter } from '../../src/ring/ring'
import { createWiring, type Wiring } from '../../src/ring/wiring'
import { WakeUps } from '../../src/ring/doorbell'
import type { ShardLoop } from '../../src/shard/shard_loop'
import { createShardLoop } from '../../src/shard/shard_runtime'
import { configuredRates } from '../../src/shard/exchange'
import { openStore, readBalance, readSettlements, readTransfer, readTransfers, recoverOnStart, type Store } from '../../src/store/balance_store'
import { createStorageHealth } from '../../src/store/storage_health'
import { IlpPacket, MACHINE, prng, removeDir, tempDir } from '../support/helpers'
import { captureStderrPerTest } from '../support/stderr_capture'

const ACCOUNTS = ['a0', 'a1', 'a2', 'a3', 'a4']
/** a0 and a1: the node pays them when it owes them more than 400 (settleThreshold). */
const SETTLING = new Set([0, 1])
/** a0 … a3 have the settlement engine: they take the node's settlements and send their own. */
const WITH_ENGINE = new Set([0, 1, 2, 3])
/** a2, a3 pay the node with transfers now and then. */
const TRANSFERRING = [2, 3]
const MAXIMUM = 2_500n
const MINIMUM = -2_500n
const MAX_PACKET = 1000n
const SHARDS = 2
const STEPS = 5000
const EPOCH_MS = Date.UTC(2026, 0, 1)
const TRANSFER_REQUESTS = 2 ** 31

interface Request {
  from: number
  to: number
  amount: bigint
  fulfillment: Buffer
}

interface AtNextHop {
  shard: number
  pendingId: number
  /** The account the prepare was forwarded to (who answers it). */
  to: number
  request: number
}

function simConfig(dataDir: string): Config {
  const accounts = Object.fromEntries(ACCOUNTS.map((id, i) => [id, {
    relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: `${id}-token` },
    balance: { minimum: MINIMUM.toString(), maximum: MAXIMUM.toString(), ...(SETTLING.has(i) ? { settleThreshold: '-400', settleTo: '0' } : {}) },
    maxPacketAmount: MAX_PACKET.toString(),
    ...(WITH_ENGINE.has(i) ? { settlement: { engine: 'btp-transfer', retryMs: 300 } } : {}),
  }]))
  return parseConfig({
    ilpAddress: 'test.sim', port: 0, accounts, shards: SHARDS, ioThreads: 1, dataDir, logLevel: 'error',
    limits: { ringBytes: 1 << 20, pendingPerShard: 64, maxInFlightPerAccount: 40, journalDelayMs: 50, maxHoldTimeMs: 3000 },
  }, {}, MACHINE)
}

/** Commits that fail: the transaction runs, then is aborted, as LMDB aborts one that cannot be written. */
class FailingCommits {
  failing = false
  failures = 0

  constructor(store: Store) {
    const real = store.root.transactionSync.bind(store.root)
    store.root.transactionSync = (<T>(fn: () => T): T => {
      if (!this.failing) return real(fn)
      this.failures++
      return real(() => {
        fn()
        throw Object.assign(new Error('injected: Input/output error'), { code: 5 })
      })
    }) as typeof store.root.transactionSync
  }
}

/** The simulated node: two shard loops on one wiring, and the I/O thread's ends of their rings. */
class World {
  wiring!: Wiring
  loops: ShardLoop[] = []
  toShard: RingWriter[] = []
  fromShard: RingReader[] = []
  readonly links: SharedArrayBuffer

  constructor(readonly config: Config, readonly store: Store, private readonly settlementIds: () => Uint8Array) {
    this.links = LinkTable.create(config.maxAccounts, 1)
    const table = new LinkTable(this.links, config.maxAccounts, 1)
    config.accounts.forEach((_, i) => table.tryLinkUp(i, 0, Infinity))
    this.boot()
  }

  /** Starts (or restarts, after a crash) both shards from what LMDB holds. */
  boot(): void {
    recoverOnStart(this.store, (id) => shardOfAccount(id, SHARDS))
    this.wiring = createWiring(this.config, new WakeUps(1, false), null, createStorageHealth())
    const routes = ACCOUNTS.map((id, i): [string, number] => [`test.sim.${id}`, i])
    const log = logger('simulation')
    this.loops = Array.from({ length: SHARDS }, (_, s) => createShardLoop(
      this.config, new AccountTable(this.config).slots(), this.wiring, this.links, s, this.store, routes, configuredRates(this.config, EPOCH_MS), log, true, this.settlementIds,
    ))
    this.toShard = this.wiring.ioToShard[0].map((sab) => new RingWriter(sab))
    this.fromShard = this.wiring.shardToIo.map((rings) => new RingReader(rings[0]))
  }

  send(shard: number, kind: RecordKind, a: number, b: number, c: number, payload: Uint8Array | null): void {
    assert.ok(this.toShard[shard].tryWrite(kind, a, b, c, 0, payload), 'simulation ring full')
    this.toShard[shard].flush()
  }
}

/** The peers' side of settlement, as each peer keeps its own books. */
interface Settlements {
  /** Settlement copies the node sent, on their way to the peer (a crash loses them). */
  copies: { account: number; id: string; amount: bigint }[]
  /** The peer's answers on their way to the node (a crash loses them). */
  answers: { account: number; id: string; answer: SettleAnswer }[]
  /** What each peer booked of the node's settlements, by id. */
  booked: Map<string, { account: number; amount: bigint }>
  refused: Set<string>
  /**
   * Ids a peer booked after it had refused another copy, until the node has committed that
   * acknowledgement. Were it lost (a crash drops the connection, or the node's memory of it), the
   * peer would keep a booking the node cannot learn of (it sends an id no more once refused): a
   * peer that does so disagrees with the node for good, so the simulated peers take such a
   * booking back if its acknowledgement is lost.
   */
  bookedAfterRefusal: Set<string>
  /** Transfers the peers made to the node, as each peer sees it. */
  transfers: Map<string, { account: number; amount: bigint; state: 'sending' | 'booked' | 'refused' }>
  /** Transfer copies on their way to the node, and which transfer each request id carried. */
  transferCopies: string[]
  transferRequests: Map<number, string>
}

// The hostile steps make the shards log once per peer per minute of fake time: kept quiet here.
setLogLevel(process.env.TEST_LOG_LEVEL === 'debug' || process.env.TEST_LOG_LEVEL === 'info' ? process.env.TEST_LOG_LEVEL : 'error')

describe('shard simulation: seeded schedules of prepares, hostile answers, settlements, failing commits and crashes', () => {
  const dirs: string[] = []
  after(() => dirs.forEach(removeDir))
  const logs = captureStderrPerTest()

  const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [1, 2, 3]
  for (const seed of seeds) {
    it(`keeps the books at every step (seed ${seed}, ${STEPS} steps)`, async () => {
      const dir = tempDir('ilp-node-sim-')
      dirs.push(dir)
      const config = simConfig(dir)
      const store = openStore(dir, 'process')
      const commits = new FailingCommits(store)
      const random = prng(seed)
      const ids = prng(seed * 7919 + 1)
      const world = new World(config, store, () => Buffer.from(Array.from({ length: SETTLEMENT_ID_BYTES }, () => Math.floor(ids() * 256))))
      let nowMs = EPOCH_MS
      const requests = new Map<number, Request>()
      const atNextHop: AtNextHop[] = []
      /** Answers already given, or prepares the node answered upstream: their ids, for answers that come again or late. */
      const answered: AtNextHop[] = []
      /** Each forwarded prepare still waiting upstream, by request. */
      const hopByRequest = new Map<number, AtNextHop>()
      let nextRequest = 1
      let nextTransferRequest = TRANSFER_REQUESTS
      /** What each account's committed balance must be from the fulfills its side has seen (outside ILP moves apart). */
      const expected = new Map<string, bigint>(ACCOUNTS.map((id) => [id, 0n]))
      const view = new PrepareView()
      const fulfillmentByCondition = new Map<string, number>()
      /** How each request's own next hop answered it: what the node may relay is only that. */
      const answerSent = new Map<number, 'fulfill' | 'wrong' | 'reject'>()
      const s: Settlements = { copies: [], answers: [], booked: new Map(), refused: new Set(), bookedAfterRefusal: new Set(), transfers: new Map(), transferCopies: [], transferRequests: new Map() }
      let step = 0
      let failUntilStep = -1
      const stats = { crashes: 0, fulfilled: 0, hostile: 0, settlements: 0, refusals: 0, transfers: 0, failingSteps: 0 }
      const at = () => `seed ${seed} step ${step}`

      const committed = (id: string): bigint => readBalance(store, id)
      /** What moved each account's balance outside ILP, as the node's logs have it (committed). */
      const outside = (): Map<string, bigint> => {
        const sums = new Map<string, bigint>(ACCOUNTS.map((id) => [id, 0n]))
        for (const e of readSettlements(store)) if (e.state !== 'refused') sums.set(e.account, sums.get(e.account)! + e.amount)
        for (const t of readTransfers(store)) sums.set(t.account, sums.get(t.account)! - t.amount)
        return sums
      }
      const checkBooks = (): void => {
        let sum = 0n
        let moved = 0n
        const out = outside()
        for (const [i, id] of ACCOUNTS.entries()) {
          const balance = committed(id)
          sum += balance
          moved += out.get(id)!
          // A settling account's balance moves outside the packets' limits when the peer refuses a
          // settlement (reversed: it may go below the minimum) and acknowledges it after all (booked
          // again: above the maximum); no other balance leaves its limits.
          if (SETTLING.has(i)) continue
          assert.ok(balance <= MAXIMUM, `${at()}: ${id} committed ${balance} over its maximum`)
          assert.ok(balance >= MINIMUM, `${at()}: ${id} committed ${balance} below its minimum`)
        }
        assert.equal(sum, moved, `${at()}: balances sum to ${sum}, what moved outside ILP to ${moved}`)
      }

      /** Amounts of requests still waiting that involve `id` (fulfills committed but not yet seen). */
      const outstandingInvolving = (id: string): bigint => {
        let total = 0n
        for (const r of requests.values()) if (ACCOUNTS[r.from] === id || ACCOUNTS[r.to] === id) total += r.amount
        return total
      }

      // The I/O side: take what the shards published.
      const drain = (): void => {
        for (let sh = 0; sh < SHARDS; sh++) {
          const ring = world.fromShard[sh]
          if (!ring.hasData()) continue
          ring.beginBatch()
          while (ring.next()) {
            const bytes = Buffer.from(ring.payload())
            if (ring.kind === RecordKind.PrepareOut) {
              assert.ok(view.parse(bytes, 0, bytes.length), `${at()}: forwarded prepare malformed`)
              const condition = bytes.subarray(view.conditionOffset, view.conditionOffset + 32).toString('hex')
              const request = fulfillmentByCondition.get(condition)
              assert.ok(request !== undefined, 'forwarded a prepare nobody sent')
              assert.equal(view.amount, requests.get(request)!.amount, 'same asset and scale: the amount is unchanged')
              const hop = { shard: sh, pendingId: pendingIdOf(ring.b, ring.d), to: ring.a, request }
              atNextHop.push(hop)
              hopByRequest.set(request, hop)
            } else if (ring.kind === RecordKind.ReplyOut) {
              const request = requests.get(ring.b)
              assert.ok(request !== undefined, `${at()}: a reply to request ${ring.b}, which is not waiting`)
              requests.delete(ring.b)
              // Its prepare is over at the node (answered, or expired: R00): any answer to it now is late.
              const hop = hopByRequest.get(ring.b)
              if (hop !== undefined) answered.push(hop)
              hopByRequest.delete(ring.b)
              const own = answerSent.get(ring.b)
              answerSent.delete(ring.b)
              if (bytes[0] === 14) {
                // A reject: ours (before forwarding, R00, T00 …), or the next hop's own (F99, F05 for its wrong fulfillment).
                const reject = IlpPacket.deserializeIlpReject(bytes)
                assert.ok(!reject.message.includes('hostile'), `${at()}: a hostile answer was applied to request ${ring.b}`)
                if (reject.code === 'F99') assert.equal(own, 'reject', `${at()}: request ${ring.b} got F99, which its next hop did not send`)
                if (reject.code === 'F05') assert.equal(own, 'wrong', `${at()}: request ${ring.b} got F05, but its next hop sent no wrong fulfillment`)
              }
              if (bytes[0] === 13) {
                assert.equal(own, 'fulfill', `${at()}: request ${ring.b} was fulfilled, but not by its next hop`)
                assert.deepEqual(bytes.subarray(1 + 1, 1 + 1 + 32), request.fulfillment, `${at()}: the fulfill relayed is the one of this request's next hop`)
                const from = ACCOUNTS[request.from]
                const to = ACCOUNTS[request.to]
                expected.set(from, expected.get(from)! + request.amount)
                expected.set(to, expected.get(to)! - request.amount)
                stats.fulfilled++
                // Seen ⇒ booked: what the sender's side saw is in LMDB by now.
                const out = outside()
                for (const id of [from, to]) {
                  const extra = committed(id) - out.get(id)! - expected.get(id)!
                  assert.ok(extra === 0n || outstandingInvolving(id) > 0n, `${at()}: ${id} committed ${committed(id)}, fulfills seen say ${expected.get(id)}`)
                }
              }
            } else if (ring.kind === RecordKind.SettleOut) {
              const id = bytes.subarray(0, SETTLEMENT_ID_BYTES).toString('hex')
              const amount = bytes.readBigUInt64BE(SETTLEMENT_ID_BYTES)
              const logged = [...readSettlements(store)].find((e) => e.id === id)
              assert.ok(logged !== undefined && logged.amount === amount && logged.account === ACCOUNTS[ring.a], `${at()}: settlement ${id} sent before it was committed`)
              s.copies.push({ account: ring.a, id, amount })
            } else if (ring.kind === RecordKind.TransferReply) {
              const transferId = s.transferRequests.get(ring.b)
              assert.ok(transferId !== undefined, `${at()}: an answer to transfer request ${ring.b}, never sent`)
              s.transferRequests.delete(ring.b)
              const t = s.transfers.get(transferId)!
              const code = bytes.toString('latin1', 1, 4)
              if (bytes[0] === TransferAnswer.Booked) {
                assert.notEqual(t.state, 'refused', `${at()}: transfer ${transferId} booked after it was refused`)
                t.state = 'booked'
              } else if (code.startsWith('F')) {
                assert.notEqual(t.state, 'booked', `${at()}: transfer ${transferId} refused after it was booked`)
                t.state = 'refused'
              } // T: not now; the peer sends it again
            } else {
              assert.fail(`unexpected record kind ${ring.kind}`)
            }
          }
          ring.endBatch()
        }
      }

      const sendPrepare = (): void => {
        const from = Math.floor(random() * ACCOUNTS.length)
        let to = Math.floor(random() * (ACCOUNTS.length - 1))
        if (to >= from) to++
        const amount = BigInt(1 + Math.floor(random() * Number(MAX_PACKET) * 1.1)) // some over the maximum: F08
        const fulfillment = randomBytes(32)
        const condition = createHash('sha256').update(fulfillment).digest()
        const id = nextRequest++
        requests.set(id, { from, to, amount, fulfillment })
        fulfillmentByCondition.set(condition.toString('hex'), id)
        const expiresAtMs = nowMs + 1500 + Math.floor(random() * 4000)
        const prepare = encodePrepare({ amount, expiresAtMs, executionCondition: condition, destination: `test.sim.${ACCOUNTS[to]}`, data: Buffer.alloc(0) })
        world.send(shardOfAccount(ACCOUNTS[from], SHARDS), RecordKind.PrepareIn, from, 1, id, prepare)
      }

      const reply = (hop: AtNextHop, from: number, ilp: Buffer): void => {
        world.send(hop.shard, RecordKind.ReplyIn, pendingIdLow(hop.pendingId), pendingIdHigh(hop.pendingId), from, ilp)
      }

      const answerOne = (): void => {
        if (atNextHop.length === 0) return
        const hop = atNextHop.splice(Math.floor(random() * atNextHop.length), 1)[0]
        const request = requests.get(hop.request)
        const roll = random()
        let ilp: Buffer
        if (request === undefined || roll < 0.55) {
          ilp = encodeFulfill(request?.fulfillment ?? randomBytes(32), Buffer.alloc(0))
          answerSent.set(hop.request, 'fulfill')
        } else if (roll < 0.65) {
          ilp = encodeFulfill(randomBytes(32), Buffer.alloc(0)) // wrong: F05 upstream, never relayed
          answerSent.set(hop.request, 'wrong')
        } else if (roll < 0.85) {
          ilp = encodeReject('F99', `test.sim.${ACCOUNTS[hop.to]}`, 'no')
          answerSent.set(hop.request, 'reject')
        } else return // never answered: expires (R00)
        answered.push(hop)
        reply(hop, hop.to, ilp)
      }

      /** A hostile next hop: an answer that must be dropped, never applied. */
      const hostileAnswer = (): void => {
        stats.hostile++
        const roll = random()
        const fulfill = (): Buffer => {
          // The right fulfillment when the test still knows it: a misapplied answer would pass the hash check.
          const r = answered.length > 0 ? requests.get(answered[Math.floor(random() * answered.length)].request) : undefined
          return encodeFulfill(r?.fulfillment ?? randomBytes(32), Buffer.alloc(0))
        }
        if (roll < 0.5 && answered.length > 0) {
          // Again, after it was answered or expired (its slot may have been taken since).
          const hop = answered[Math.floor(random() * answered.length)]
          reply(hop, hop.to, random() < 0.5 ? fulfill() : encodeReject('F99', 'test.sim.x', 'hostile: again'))
        } else if (roll < 0.75 && atNextHop.length > 0) {
          // From another account than the prepare went to.
          const hop = atNextHop[Math.floor(random() * atNextHop.length)]
          const other = (hop.to + 1 + Math.floor(random() * (ACCOUNTS.length - 1))) % ACCOUNTS.length
          const request = requests.get(hop.request)
          reply(hop, other, encodeFulfill(request?.fulfillment ?? randomBytes(32), Buffer.alloc(0)))
        } else {
          // An id never sent.
          const hop: AtNextHop = { shard: Math.floor(random() * SHARDS), pendingId: Math.floor(random() * 2 ** 40), to: Math.floor(random() * ACCOUNTS.length), request: 0 }
          reply(hop, hop.to, fulfill())
        }
      }

      /** The peer takes one settlement copy the node sent (a0, a1 are paid by the node). */
      const peerTakesSettlement = (): void => {
        if (s.copies.length === 0) return
        const copy = s.copies.splice(Math.floor(random() * s.copies.length), 1)[0]
        const roll = random()
        let answer: SettleAnswer | null
        const known = s.booked.get(copy.id)
        if (known !== undefined) {
          assert.equal(known.amount, copy.amount, `${at()}: settlement ${copy.id} sent again with another amount`)
          answer = SettleAnswer.Acknowledged
        } else if (roll < 0.08) return // lost on the way: the node sends it again
        else if (roll < 0.18) answer = null // "not now" (a T error): the node sends it again
        else if (roll < 0.4 && !s.refused.has(copy.id)) {
          s.refused.add(copy.id)
          stats.refusals++
          answer = SettleAnswer.Refused
        } else {
          // Books it (even one it refused before, for another copy: the node must book it again).
          if (s.refused.delete(copy.id)) s.bookedAfterRefusal.add(copy.id)
          s.booked.set(copy.id, { account: copy.account, amount: copy.amount })
          answer = SettleAnswer.Acknowledged
        }
        if (answer !== null) s.answers.push({ account: copy.account, id: copy.id, answer })
      }

      /** One of the peers' answers reaches the node (in any order; sometimes twice). */
      const settlementAnswerArrives = (): void => {
        if (s.answers.length === 0) return
        const k = Math.floor(random() * s.answers.length)
        const a = random() < 0.15 ? s.answers[k] : s.answers.splice(k, 1)[0]
        const payload = Buffer.concat([Buffer.from(a.id, 'hex'), Buffer.from(a.answer === SettleAnswer.Refused ? 'F00 NotAcceptedError: no' : '', 'utf8')])
        world.send(shardOfAccount(ACCOUNTS[a.account], SHARDS), RecordKind.SettleAnswer, a.account, a.answer, 0, payload)
      }

      /** A peer pays the node, or sends a transfer it has no answer for again. */
      const peerTransfers = (): void => {
        const sending = [...s.transfers].filter(([, t]) => t.state === 'sending')
        if (sending.length > 0 && random() < 0.5) {
          s.transferCopies.push(sending[Math.floor(random() * sending.length)][0])
          return
        }
        const account = TRANSFERRING[Math.floor(random() * TRANSFERRING.length)]
        const id = Buffer.from(Array.from({ length: SETTLEMENT_ID_BYTES }, () => Math.floor(random() * 256))).toString('hex')
        s.transfers.set(id, { account, amount: BigInt(1 + Math.floor(random() * 800)), state: 'sending' })
        s.transferCopies.push(id, id) // and a duplicate, delivered in any order
        stats.transfers++
      }

      const transferArrives = (): void => {
        if (s.transferCopies.length === 0) return
        const id = s.transferCopies.splice(Math.floor(random() * s.transferCopies.length), 1)[0]
        const t = s.transfers.get(id)!
        const requestId = nextTransferRequest++
        s.transferRequests.set(requestId, id)
        const payload = Buffer.alloc(8 + SETTLEMENT_ID_BYTES)
        payload.writeBigUInt64BE(t.amount, 0)
        Buffer.from(id, 'hex').copy(payload, 8)
        world.send(shardOfAccount(ACCOUNTS[t.account], SHARDS), RecordKind.TransferIn, t.account, 1, requestId, payload)
      }

      const crash = (): void => {
        // Whatever the shards held in memory and had not published is gone (a commit that was
        // failing takes its decisions with it, settlements decided among them); so is whatever
        // was on the connections. Each account's committed balance may include fulfills its side
        // never saw, and nothing else.
        stats.crashes++
        commits.failing = false // the node restarts on a disk that works again
        failUntilStep = -1
        world.boot()
        const out = outside()
        for (const id of ACCOUNTS) {
          const drift = committed(id) - out.get(id)! - expected.get(id)!
          const bound = outstandingInvolving(id)
          assert.ok(drift <= bound && -drift <= bound, `${at()}: ${id} committed ${committed(id)}, seen ${expected.get(id)}, outside ILP ${out.get(id)}, in flight ${bound}`)
          expected.set(id, committed(id) - out.get(id)!)
        }
        requests.clear()
        atNextHop.length = 0
        fulfillmentByCondition.clear()
        answerSent.clear()
        hopByRequest.clear()
        // The restarted shards' ids start over: the I/O side forgets every request of the shards it
        // restarts (abandons them), as a restarted process has no connections left to answer on.
        answered.length = 0
        s.copies.length = 0
        s.answers.length = 0
        const log = new Map([...readSettlements(store)].map((e) => [e.id, e.state]))
        for (const id of s.bookedAfterRefusal) {
          if (log.get(id) === 'acknowledged') continue
          s.booked.delete(id)
          s.refused.add(id)
        }
        s.bookedAfterRefusal.clear()
        s.transferCopies.length = 0
        s.transferRequests.clear()
        assert.equal([...store.inflight.getKeys({})].length, 0, 'no hold survives a restart')
      }

      for (step = 0; step < STEPS; step++) {
        const roll = random()
        if (roll < 0.25) sendPrepare()
        else if (roll < 0.42) answerOne()
        else if (roll < 0.47) hostileAnswer()
        else if (roll < 0.52) peerTakesSettlement()
        else if (roll < 0.56) settlementAnswerArrives()
        else if (roll < 0.58) peerTransfers()
        else if (roll < 0.61) transferArrives()
        else if (roll < 0.8) world.loops[Math.floor(random() * SHARDS)].turn(nowMs)
        else if (roll < 0.99) nowMs += Math.floor(random() * 400)
        else if (roll < 0.996) failUntilStep = step + 5 + Math.floor(random() * 60) // a disk that fails for a while
        else crash()
        commits.failing = step < failUntilStep
        if (commits.failing) stats.failingSteps++
        drain()
        checkBooks()
      }
      // Wind down on a disk that works: answer, deliver and expire everything; then the books are exact.
      commits.failing = false
      for (let i = 0; i < 400 && (requests.size > 0 || atNextHop.length > 0 || s.copies.length > 0 || s.answers.length > 0 || s.transferCopies.length > 0 ||
        [...s.transfers.values()].some((t) => t.state === 'sending') || [...readSettlements(store)].some((e) => e.state === 'sending')); i++) {
        while (atNextHop.length > 0) answerOne()
        while (s.copies.length > 0) {
          // At the end the peers take every copy (booked, or acknowledged again).
          const copy = s.copies.pop()!
          if (!s.booked.has(copy.id) && !s.refused.has(copy.id)) s.booked.set(copy.id, { account: copy.account, amount: copy.amount })
          if (s.booked.has(copy.id)) s.answers.push({ account: copy.account, id: copy.id, answer: SettleAnswer.Acknowledged })
          else s.answers.push({ account: copy.account, id: copy.id, answer: SettleAnswer.Refused })
        }
        while (s.answers.length > 0) settlementAnswerArrives()
        for (const [id, t] of s.transfers) if (t.state === 'sending' && !s.transferCopies.includes(id)) s.transferCopies.push(id)
        while (s.transferCopies.length > 0) transferArrives()
        nowMs += 500
        for (const loop of world.loops) loop.turn(nowMs)
        drain()
        checkBooks()
      }
      assert.equal(requests.size, 0, 'every request was answered')
      const out = outside()
      for (const id of ACCOUNTS) assert.equal(committed(id) - out.get(id)!, expected.get(id), `${id}: committed balance against the fulfills seen`)

      // Both sides' books of settlement agree, id by id, each booked once with one amount.
      const log = [...readSettlements(store)]
      assert.equal(new Set(log.map((e) => e.id)).size, log.length, 'one log entry per settlement id')
      for (const e of log) {
        assert.notEqual(e.state, 'sending', `settlement ${e.id} still unanswered at the end`)
        const peer = s.booked.get(e.id)
        if (e.state === 'acknowledged') assert.ok(peer !== undefined && peer.amount === e.amount && ACCOUNTS[peer.account] === e.account, `settlement ${e.id}: the node booked it, the peer did not`)
        else assert.equal(peer, undefined, `settlement ${e.id}: the peer booked it, the node reversed it`)
      }
      for (const id of s.booked.keys()) assert.ok(log.some((e) => e.id === id), `settlement ${id} booked by the peer is not in the node's log`)
      for (const [id, t] of s.transfers) {
        const booked = readTransfer(store, ACCOUNTS[t.account], id)
        const nodeBooked = booked !== null && booked.refused === null
        assert.equal(nodeBooked, t.state === 'booked', `transfer ${id}: the peer says ${t.state}, the node ${nodeBooked ? 'booked it' : 'did not'}`)
        if (nodeBooked) assert.equal(booked.amount, t.amount)
      }
      stats.settlements = log.length
      assert.ok(stats.fulfilled > 100 && stats.crashes > 0 && stats.hostile > 100 && stats.settlements > 5 && stats.refusals > 0 && stats.transfers > 5 && commits.failures > 10,
        `the schedule exercised too little: ${JSON.stringify(stats)}, ${commits.failures} failed commits`)
      // The failing commits are logged as errors, and so are the peers' refusals; nothing else is.
      logs.assertErrors([/ERROR simulation: a commit failed: .* error="injected: Input\/output error"/],
        [/ERROR simulation: the peer refused a settlement/, /ERROR simulation: the peer acknowledged a settlement it had refused/])
      await store.root.close()
    })
  }
})
