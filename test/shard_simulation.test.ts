// Goal: the books hold at every step, whatever the order of events. A deterministic simulation of
// two shards (the real Shard and ShardLoop on real rings and a real LMDB in a temporary directory)
// with the I/O side played by the test, a fake clock, and a seeded random schedule of prepares,
// next-hop replies (right fulfillment, wrong fulfillment, reject, none), shard turns in any order,
// time passing, and crashes (both shards dropped with whatever they held, recovered from LMDB).
// After every step:
//   the committed balances sum to zero                                  nothing created or lost
//   no committed balance is over its account's maximum                  limits hold
//   a fulfill the sender receives is already committed                  seen ⇒ booked
// and at each crash and at the end, each account's committed balance is what the fulfills its
// side saw say, give or take only the fulfills in flight at the crash. A failing run prints its
// seed and step; SIM_SEED=<seed> replays it.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, describe, it } from 'node:test'
import { encodeFulfill, encodePrepare, encodeReject, PrepareView } from '../src/codec/ilp_packet'
import { AccountTable, shardOfAccount } from '../src/config/account_table'
import { parseConfig, type Config } from '../src/config/schema'
import { logger } from '../src/log'
import { LinkTable } from '../src/ring/link_table'
import { pendingIdHigh, pendingIdLow, pendingIdOf, RecordKind } from '../src/ring/records'
import { RingReader, RingWriter } from '../src/ring/ring'
import { createWiring, type Wiring } from '../src/ring/wiring'
import { WakeUps } from '../src/ring/doorbell'
import type { ShardLoop } from '../src/shard/shard_loop'
import { createShardLoop } from '../src/shard/shard_runtime'
import { configuredRates } from '../src/shard/exchange'
import { openStore, readBalance, recoverOnStart, type Store } from '../src/store/balance_store'
import { createStorageHealth } from '../src/store/storage_health'
import { MACHINE, prng, removeDir, tempDir } from './helpers'

const ACCOUNTS = ['a0', 'a1', 'a2', 'a3', 'a4']
const MAXIMUM = 2_500n
const MAX_PACKET = 1000n
const SHARDS = 2
const STEPS = 4000
const EPOCH_MS = Date.UTC(2026, 0, 1)

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
  const accounts = Object.fromEntries(ACCOUNTS.map((id) => [id, {
    relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: `${id}-token` },
    balance: { minimum: '-1000000000', maximum: MAXIMUM.toString() }, maxPacketAmount: MAX_PACKET.toString(),
  }]))
  return parseConfig({
    ilpAddress: 'test.sim', port: 0, accounts, shards: SHARDS, ioThreads: 1, dataDir, logLevel: 'error',
    limits: { ringBytes: 1 << 20, pendingPerShard: 256, maxInFlightPerAccount: 40, journalDelayMs: 50, maxHoldTimeMs: 3000 },
  }, {}, MACHINE)
}

/** The simulated node: two shard loops on one wiring, and the I/O thread's ends of their rings. */
class World {
  wiring!: Wiring
  loops: ShardLoop[] = []
  toShard: RingWriter[] = []
  fromShard: RingReader[] = []
  readonly links: SharedArrayBuffer

  constructor(readonly config: Config, readonly store: Store) {
    this.links = LinkTable.create(config.maxAccounts, 1)
    const table = new LinkTable(this.links, config.accounts.length, 1)
    config.accounts.forEach((_, i) => table.linkUp(i, 0))
    this.boot()
  }

  /** Starts (or restarts, after a crash) both shards from what LMDB holds. */
  boot(): void {
    recoverOnStart(this.store, (id) => shardOfAccount(id, SHARDS))
    this.wiring = createWiring(this.config, new WakeUps(1, false), null, createStorageHealth())
    const routes = ACCOUNTS.map((id, i): [string, number] => [`test.sim.${id}`, i])
    const log = logger('simulation')
    this.loops = Array.from({ length: SHARDS }, (_, s) => createShardLoop(this.config, new AccountTable(this.config).slots(), this.wiring, this.links, s, this.store, routes, configuredRates(this.config, Date.now()), log, true))
    this.toShard = this.wiring.ioToShard[0].map((sab) => new RingWriter(sab))
    this.fromShard = this.wiring.shardToIo.map((rings) => new RingReader(rings[0]))
  }

  send(shard: number, kind: RecordKind, a: number, b: number, c: number, payload: Uint8Array | null): void {
    assert.ok(this.toShard[shard].tryWrite(kind, a, b, c, 0, payload), 'simulation ring full')
    this.toShard[shard].flush()
  }
}

describe('shard simulation: seeded schedules of prepares, replies, expiries and crashes', () => {
  const dirs: string[] = []
  after(() => dirs.forEach(removeDir))

  const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [1, 2, 3]
  for (const seed of seeds) {
    it(`keeps the books at every step (seed ${seed}, ${STEPS} steps)`, async () => {
      const dir = tempDir('ilp-node-sim-')
      dirs.push(dir)
      const config = simConfig(dir)
      const store = openStore(dir, 'process')
      const world = new World(config, store)
      const random = prng(seed)
      let nowMs = EPOCH_MS
      const requests = new Map<number, Request>()
      const atNextHop: AtNextHop[] = []
      let nextRequest = 1
      /** What each account's committed balance must be, from the fulfills its side has seen. */
      const expected = new Map<string, bigint>(ACCOUNTS.map((id) => [id, 0n]))
      const view = new PrepareView()
      const fulfillmentByCondition = new Map<string, number>()
      let step = 0
      let crashes = 0
      let fulfilled = 0

      const committed = (id: string): bigint => readBalance(store, id)
      const checkBooks = (): void => {
        let sum = 0n
        for (const id of ACCOUNTS) {
          const balance = committed(id)
          sum += balance
          assert.ok(balance <= MAXIMUM, `seed ${seed} step ${step}: ${id} committed ${balance} over its maximum`)
        }
        assert.equal(sum, 0n, `seed ${seed} step ${step}: balances sum to ${sum}`)
      }

      // The I/O side: take what the shards published.
      const drain = (): void => {
        for (let s = 0; s < SHARDS; s++) {
          const ring = world.fromShard[s]
          if (!ring.hasData()) continue
          ring.beginBatch()
          while (ring.next()) {
            const bytes = Buffer.from(ring.payload())
            if (ring.kind === RecordKind.PrepareOut) {
              assert.ok(view.parse(bytes, 0, bytes.length), `seed ${seed} step ${step}: forwarded prepare malformed`)
              const condition = bytes.subarray(view.conditionOffset, view.conditionOffset + 32).toString('hex')
              const request = fulfillmentByCondition.get(condition)
              assert.ok(request !== undefined, 'forwarded a prepare nobody sent')
              assert.equal(view.amount, requests.get(request)!.amount, 'same asset and scale: the amount is unchanged')
              atNextHop.push({ shard: s, pendingId: pendingIdOf(ring.b, ring.d), to: ring.a, request })
            } else if (ring.kind === RecordKind.ReplyOut) {
              const request = requests.get(ring.b)
              assert.ok(request !== undefined, `seed ${seed} step ${step}: a reply to request ${ring.b}, which is not waiting`)
              requests.delete(ring.b)
              if (bytes[0] === 13) {
                assert.deepEqual(bytes.subarray(1 + 1, 1 + 1 + 32), request.fulfillment, 'the fulfill relayed is the next hop\'s')
                const from = ACCOUNTS[request.from]
                const to = ACCOUNTS[request.to]
                expected.set(from, expected.get(from)! + request.amount)
                expected.set(to, expected.get(to)! - request.amount)
                fulfilled++
                // Seen ⇒ booked: what the sender's side saw is in LMDB by now.
                for (const id of [from, to]) {
                  const extra = committed(id) - expected.get(id)!
                  assert.ok(extra === 0n || outstandingInvolving(id) > 0n,
                    `seed ${seed} step ${step}: ${id} committed ${committed(id)}, fulfills seen say ${expected.get(id)}`)
                }
              }
            } else {
              assert.fail(`unexpected record kind ${ring.kind}`)
            }
          }
          ring.endBatch()
        }
      }

      /** Amounts of requests still waiting that involve `id` (fulfills committed but not yet seen). */
      const outstandingInvolving = (id: string): bigint => {
        let total = 0n
        for (const r of requests.values()) if (ACCOUNTS[r.from] === id || ACCOUNTS[r.to] === id) total += r.amount
        return total
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

      const answerOne = (): void => {
        if (atNextHop.length === 0) return
        const at = atNextHop.splice(Math.floor(random() * atNextHop.length), 1)[0]
        const request = requests.get(at.request)
        const roll = random()
        let reply: Buffer
        if (request === undefined || roll < 0.55) reply = encodeFulfill(request?.fulfillment ?? randomBytes(32), Buffer.alloc(0))
        else if (roll < 0.65) reply = encodeFulfill(randomBytes(32), Buffer.alloc(0)) // wrong: F05 upstream, never relayed
        else if (roll < 0.85) reply = encodeReject('F99', `test.sim.${ACCOUNTS[request.to]}`, 'no')
        else return // never answered: expires (R00)
        world.send(at.shard, RecordKind.ReplyIn, pendingIdLow(at.pendingId), pendingIdHigh(at.pendingId), at.to, reply)
      }

      const crash = (): void => {
        // Whatever the shards held in memory and had not published is gone; each account's
        // committed balance may include fulfills its side never saw, and nothing else.
        crashes++
        world.boot()
        for (const id of ACCOUNTS) {
          const drift = committed(id) - expected.get(id)!
          const bound = outstandingInvolving(id)
          assert.ok(drift <= bound && -drift <= bound, `seed ${seed} step ${step}: ${id} committed ${committed(id)}, seen ${expected.get(id)}, in flight ${bound}`)
          expected.set(id, committed(id))
        }
        requests.clear()
        atNextHop.length = 0
        fulfillmentByCondition.clear()
        assert.equal([...store.inflight.getKeys({})].length, 0, 'no hold survives a restart')
      }

      for (step = 0; step < STEPS; step++) {
        const roll = random()
        if (roll < 0.35) sendPrepare()
        else if (roll < 0.6) answerOne()
        else if (roll < 0.85) world.loops[Math.floor(random() * SHARDS)].turn(nowMs)
        else if (roll < 0.995) nowMs += Math.floor(random() * 400)
        else crash()
        drain()
        checkBooks()
      }
      // Wind down: answer or expire everything, then the books are exact.
      for (let i = 0; i < 200 && (requests.size > 0 || atNextHop.length > 0); i++) {
        while (atNextHop.length > 0) answerOne()
        nowMs += 500
        for (const loop of world.loops) loop.turn(nowMs)
        drain()
        checkBooks()
      }
      assert.equal(requests.size, 0, 'every request was answered')
      for (const id of ACCOUNTS) assert.equal(committed(id), expected.get(id), `${id}: committed balance against the fulfills seen`)
      assert.ok(fulfilled > 100 && crashes > 0, `the schedule exercised too little (${fulfilled} fulfills, ${crashes} crashes)`)
      await store.root.close()
    })
  }
})
