// Goal: nothing a peer sends grows the settlement logs without bound, the logs keep what
// idempotency needs for limits.settlementLogRetentionMs and no more, the books do not change when
// they are pruned, and the admin view pages through them.
// Method: real nodes on 127.0.0.1 (in the suite's layout) on temporary LMDB directories, BTP
// clients over real sockets (the project's own codec on the lean WebSocket client):
//   - 30,000 transfers refused for balance.minimum grow the LMDB file by less than 1 MB, and a
//     copy of a refused id gets the same F00 after the balance has room;
//   - old entries (written into LMDB between two runs, with times two hours back, some as an
//     earlier version wrote them: no time key, no asset) are pruned by a node with a retention of
//     one hour, except a settlement still `sending`; GET /admin/books is the same before and
//     after; a copy of a transfer within the retention is acknowledged and not booked twice;
//   - more entries than a page, paged with `limit` and the `next` cursors, each seen once;
//   - POST /admin/accounts/:id/adjust refuses an amount outside the signed 64-bit range.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { BtpFrame, BTP_ERROR, BTP_RESPONSE, BTP_TRANSFER, CONTENT_OCTET_STREAM, encodeResponse, encodeTransfer } from '../../src/codec/btp_packet'
import type { RunningNode } from '../../src/node'
import { openStore, writeSettlement, writeTransfer } from '../../src/store/balance_store'
import { connectBtp } from '../support/btp_connect'
import type { BenchWebSocket } from '../support/ws_client'
import { ADMIN_TOKEN, adminRequest, layoutName, removeDir, sleep, startTestNode, tempDir } from '../support/helpers'

const SETTLES = { engine: 'btp-transfer', retryMs: 100 }
const account = (token: string, balance: Record<string, string> = {}) =>
  ({ relation: 'child', assetCode: 'USD', assetScale: 6, btp: { token }, settlement: SETTLES, balance })

type Answer = { ok: true } | { ok: false; code: string; message: string }

/** A peer that sends BTP Transfers and waits for their answers; it acknowledges the node's own. */
class TransferClient {
  private readonly waiting = new Map<number, (answer: Answer) => void>()
  private nextRequestId = 1
  /** The ids of the node's settlements this client acknowledged (hex). */
  readonly acknowledged: string[] = []

  private constructor(private readonly ws: BenchWebSocket) {
    const frame = new BtpFrame()
    ws.onMessage = (data) => {
      if (!frame.parse(data)) return
      if (frame.type === BTP_TRANSFER) {
        this.acknowledged.push(Buffer.from(frame.entryData(frame.findEntry(Buffer.from('transfer_id')))).toString('hex'))
        ws.send(encodeResponse(frame.requestId))
        return
      }
      const done = this.waiting.get(frame.requestId)
      if (done === undefined) return
      this.waiting.delete(frame.requestId)
      if (frame.type === BTP_RESPONSE) done({ ok: true })
      else if (frame.type === BTP_ERROR) done({ ok: false, code: frame.errorCode, message: frame.errorData })
    }
  }

  static async connect(port: number, account: string, token: string): Promise<TransferClient> {
    return new TransferClient(await connectBtp(port, account, token))
  }

  /** One transfer; sent again while the node answers T03 (busy). */
  async send(amount: bigint, id: Buffer): Promise<Answer> {
    for (;;) {
      const requestId = this.nextRequestId++
      const answer = new Promise<Answer>((resolve) => this.waiting.set(requestId, resolve))
      this.ws.send(encodeTransfer(requestId, amount, [{ protocolName: 'transfer_id', contentType: CONTENT_OCTET_STREAM, data: id }]))
      const a = await answer
      if (a.ok || a.code !== 'T03') return a
      await sleep(5)
    }
  }

  close(): void {
    this.ws.close()
  }
}

/** `count` transfers, `window` of them in flight at a time; the answers in order. */
async function sendMany(client: TransferClient, count: number, amount: bigint, idOf: (i: number) => Buffer, window = 200): Promise<Answer[]> {
  const answers: Answer[] = new Array<Answer>(count)
  let next = 0
  const lane = async () => {
    while (next < count) {
      const i = next++
      answers[i] = await client.send(amount, idOf(i))
    }
  }
  await Promise.all(Array.from({ length: window }, lane))
  return answers
}

const idOf = (tag: number) => (i: number) => {
  const id = Buffer.alloc(16, tag)
  id.writeUInt32BE(i, 12)
  return id
}

const adjust = (node: RunningNode, id: string, amount: string, key: string) =>
  adminRequest(node.port, 'POST', `/admin/accounts/${id}/adjust`, { body: { amount, reason: 'test' }, headers: { 'idempotency-key': key } })

/** Every page of one list of GET /admin/settlements, `limit` at a time; `between` runs after each page. */
async function pageAll(node: RunningNode, list: 'sent' | 'received', limit: number, between: (page: number) => Promise<void> = async () => {}): Promise<{ pages: number[]; entries: Record<string, string>[] }> {
  const pages: number[] = []
  const entries: Record<string, string>[] = []
  let after: string | null = null
  do {
    const cursor: string = after === null ? '' : `&${list}After=${after}`
    const res = await adminRequest(node.port, 'GET', `/admin/settlements?list=${list}&limit=${limit}${cursor}`)
    assert.equal(res.status, 200)
    const page = res.body[list] as Record<string, string>[]
    pages.push(page.length)
    entries.push(...page)
    after = (res.body.next as Record<string, string | null>)[list]
    await between(pages.length)
  } while (after !== null)
  return { pages, entries }
}

describe(`settlement logs with ${layoutName(0)}`, () => {
  const dirs: string[] = []
  let node: RunningNode | null = null
  const clients: TransferClient[] = []
  after(async () => {
    for (const c of clients) c.close()
    await node?.stop()
    for (const d of dirs) removeDir(d)
  })
  const start = async (dir: string, accounts: Record<string, unknown>, limits: Record<string, unknown> = {}) => {
    await node?.stop()
    node = await startTestNode(0, dir, { ilpAddress: 'test.k', adminToken: ADMIN_TOKEN, accounts, limits })
    return node
  }
  const connect = async (n: RunningNode, id: string) => {
    const c = await TransferClient.connect(n.port, id, `${id}-token`)
    clients.push(c)
    return c
  }
  const waitFor = async (what: string, check: () => Promise<boolean>) => {
    const deadline = Date.now() + 10000
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await sleep(50)
    }
  }

  it('writes nothing for 30,000 refused transfers, and answers every copy of a refused id the same', async (t) => {
    const dir = tempDir()
    dirs.push(dir)
    const n = await start(dir, { flood: account('flood-token', { minimum: '-1000' }) })
    const client = await connect(n, 'flood')
    const file = join(dir, 'ilp-node.lmdb')
    await sleep(100)
    const sizeBefore = statSync(file).size
    // Each would take the balance (0) to -2000, below the minimum of -1000.
    const ids = idOf(0x70)
    const answers = await sendMany(client, 30000, 2000n, ids)
    const message = 'the settlement would take the balance below balance.minimum (-1000)'
    assert.deepEqual(answers.filter((a) => a.ok || a.code !== 'F00' || a.message !== message), [])
    await sleep(200)
    const grown = statSync(file).size - sizeBefore
    t.diagnostic(`LMDB file grew by ${grown} bytes for 30,000 refused transfers`)
    assert.ok(grown < 1024 * 1024, `the LMDB file grew by ${grown} bytes`)
    assert.equal(n.balance('flood'), 0n)

    // The balance gets room: copies of the refused ids still get the refusal (the sender has
    // reversed its booking on the first F); a new id is booked.
    assert.equal((await adjust(n, 'flood', '1000000', 'room')).status, 201)
    const copies = await Promise.all(Array.from({ length: 50 }, (_, k) => client.send(2000n, ids(29999 - k))))
    assert.deepEqual(copies.filter((a) => a.ok || a.code !== 'F00' || a.message !== message), [])
    assert.deepEqual(await client.send(2000n, idOf(0x71)(0)), { ok: true })
    await sleep(20)
    assert.equal(n.balance('flood'), 1000000n - 2000n)
  })

  it('prunes what is older than the retention, except a settlement in flight, and the books stay the same', async () => {
    const dir = tempDir()
    dirs.push(dir)
    const pal = account('pal-token', { minimum: '-1000000', settleThreshold: '-100', settleTo: '0' })
    // 1. A run with the default retention: pal settles with the node both ways, once each.
    let n = await start(dir, { pal })
    let client = await connect(n, 'pal')
    const recent = Buffer.alloc(16, 0x21)
    assert.deepEqual(await client.send(50n, recent), { ok: true })
    assert.equal((await adjust(n, 'pal', '-300', 'pal-1')).status, 201)
    await waitFor('the settlement acknowledged', async () =>
      ((await adminRequest(n.port, 'GET', '/admin/settlements')).body.sent as { state: string }[]).some((e) => e.state === 'acknowledged'))
    const sentRecent = client.acknowledged[0]
    client.close()
    await n.stop()
    node = null

    // 2. Entries two hours old, as if from long ago: acknowledged and refused settlements, one
    // still sending, booked transfers (one of an account deleted since), and some as an earlier
    // version wrote them (no asset, no time key; one a refusal).
    const old = Date.now() - 2 * 3600_000
    const sendingOld = randomBytes(16).toString('hex')
    const store = openStore(dir, 'process')
    store.root.transactionSync(() => {
      for (let i = 0; i < 300; i++) {
        writeSettlement(store, { id: randomBytes(16).toString('hex'), account: 'pal', amount: BigInt(i + 1), atMs: old + i, state: 'acknowledged', endedAtMs: old + i + 10, reason: null, asset: 'USD 6' })
        writeTransfer(store, { account: 'pal', id: randomBytes(16).toString('hex'), amount: BigInt(1000 + i), atMs: old + i, refused: null, asset: 'USD 6' })
      }
      for (let i = 0; i < 20; i++) {
        writeSettlement(store, { id: randomBytes(16).toString('hex'), account: 'pal', amount: 77n, atMs: old, state: 'refused', endedAtMs: old + 5, reason: 'F00 no', asset: 'USD 6' })
      }
      for (let i = 0; i < 10; i++) writeTransfer(store, { account: 'gone', id: randomBytes(16).toString('hex'), amount: 5n, atMs: old, refused: null, asset: 'EUR 2' })
      writeSettlement(store, { id: sendingOld, account: 'pal', amount: 7n, atMs: old, state: 'sending', endedAtMs: null, reason: null, asset: 'USD 6' })
      for (let i = 0; i < 5; i++) {
        const id = randomBytes(16).toString('hex')
        store.settlements.put(id, Buffer.from(JSON.stringify({ id, account: 'pal', amount: '11', atMs: old, state: 'acknowledged', endedAtMs: old, reason: null })))
        store.transfers.put(['pal', randomBytes(16).toString('hex')], Buffer.from(JSON.stringify({ amount: '13', atMs: old, ...(i === 0 ? { refused: 'old refusal' } : {}) })))
      }
    })
    await store.root.close()

    // 3. The books with all of them (the default retention keeps them), once the node has indexed
    // the old-format entries, and removed the refusal among them (refusals are not kept in LMDB).
    n = await start(dir, { pal })
    const expected = JSON.stringify({ sent: 1 + 300 + 20 + 1 + 5, received: 1 + 300 + 10 + 4, sending: 1 })
    // The totals are LMDB's entry counts, right once the refusal is gone; the listing walks the time
    // index, complete only when the indexing's last batch has run: wait for both.
    await waitFor('the old entries indexed', async () => {
      const all = (await adminRequest(n.port, 'GET', '/admin/settlements?limit=10000')).body
      return JSON.stringify(all.totals) === expected && (all.received as unknown[]).length === 1 + 300 + 10 + 4
    })
    const books = (await adminRequest(n.port, 'GET', '/admin/books')).body
    await n.stop()
    node = null

    // 4. A retention of one hour: everything but this run's two entries and the one in flight goes.
    n = await start(dir, { pal }, { settlementLogRetentionMs: 3600_000 })
    await waitFor('the pruning', async () => {
      const totals = (await adminRequest(n.port, 'GET', '/admin/settlements?limit=1')).body.totals as Record<string, number>
      return totals.sent === 2 && totals.received === 1
    })
    const view = (await adminRequest(n.port, 'GET', '/admin/settlements')).body as { sent: { id: string; state: string }[]; received: { id: string; amount: string }[] }
    assert.deepEqual(view.sent.map((e) => [e.id, e.state]).sort(), [[sentRecent, 'acknowledged'], [sendingOld, 'sending']].sort())
    assert.deepEqual(view.received.map((e) => [e.id, e.amount]), [[recent.toString('hex'), '50']])
    assert.deepEqual((await adminRequest(n.port, 'GET', '/admin/books')).body, books)

    // 5. A copy of the transfer kept is acknowledged and not booked again; the settlement in
    // flight goes to pal once it is back, and stays in the log, acknowledged now.
    const balance = n.balance('pal')
    client = await connect(n, 'pal')
    assert.deepEqual(await client.send(50n, recent), { ok: true })
    await waitFor('the old settlement acknowledged', async () =>
      ((await adminRequest(n.port, 'GET', '/admin/settlements')).body.sent as { id: string; state: string }[]).every((e) => e.state === 'acknowledged'))
    assert.ok(client.acknowledged.includes(sendingOld))
    await sleep(20)
    assert.equal(n.balance('pal'), balance)
    const received = (await adminRequest(n.port, 'GET', '/admin/settlements')).body.received as { id: string }[]
    assert.deepEqual(received.map((e) => e.id), [recent.toString('hex')])
    assert.deepEqual((await adminRequest(n.port, 'GET', '/admin/books')).body, books)
  })

  it('pages through both logs, each entry once, newest first, and refuses a bad cursor', async () => {
    const dir = tempDir()
    dirs.push(dir)
    // 25 settlements made a minute ago, three to a millisecond (the cursor must tell them apart).
    const base = Date.now() - 60_000
    const store = openStore(dir, 'process')
    const made: string[] = []
    store.root.transactionSync(() => {
      for (let i = 0; i < 25; i++) {
        const id = randomBytes(16).toString('hex')
        made.push(id)
        writeSettlement(store, { id, account: 'pay', amount: 1n, atMs: base + Math.floor(i / 3), state: 'acknowledged', endedAtMs: base, reason: null, asset: 'USD 6' })
      }
    })
    await store.root.close()
    const n = await start(dir, { pay: account('pay-token') })
    const client = await connect(n, 'pay')
    const ids = idOf(0x30)
    assert.ok((await sendMany(client, 23, 1n, ids, 4)).every((a) => a.ok))

    const sent = await pageAll(n, 'sent', 7)
    assert.deepEqual(sent.pages, [7, 7, 7, 4])
    assert.deepEqual(sent.entries.map((e) => e.id).sort(), [...made].sort())
    const times = sent.entries.map((e) => Date.parse(e.at))
    assert.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first')
    // A transfer that comes while a client pages is newer than its cursor: the rest are seen once.
    const received = await pageAll(n, 'received', 7, async (page) => {
      if (page === 1) assert.deepEqual(await client.send(1n, ids(99)), { ok: true })
    })
    assert.deepEqual(received.pages, [7, 7, 7, 2])
    assert.deepEqual(received.entries.map((e) => e.id).sort(), Array.from({ length: 23 }, (_, i) => ids(i).toString('hex')).sort())

    // Both lists at once, each with its cursor; a limit above the maximum is the maximum.
    const both = (await adminRequest(n.port, 'GET', '/admin/settlements?limit=10')).body as { sent: unknown[]; received: unknown[]; next: Record<string, string | null> }
    assert.deepEqual([both.sent.length, both.received.length], [10, 10])
    assert.ok(both.next.sent !== null && both.next.received !== null)
    const second = (await adminRequest(n.port, 'GET', `/admin/settlements?limit=10&sentAfter=${both.next.sent}&receivedAfter=${both.next.received}`)).body as typeof both
    assert.deepEqual([second.sent.length, second.received.length], [10, 10])
    const all = (await adminRequest(n.port, 'GET', '/admin/settlements?limit=1000000')).body as typeof both & { totals: unknown }
    assert.deepEqual([all.sent.length, all.received.length, all.next.sent, all.next.received], [25, 24, null, null])
    assert.deepEqual(all.totals, { sent: 25, received: 24, sending: 0 })
    for (const [query, field] of [['sentAfter=xyz', 'sentAfter'], [`sentAfter=${both.next.received}`, 'sentAfter'], ['receivedAfter=%2F', 'receivedAfter'], ['list=both', 'list'], ['limit=0', 'limit']]) {
      const bad = await adminRequest(n.port, 'GET', `/admin/settlements?${query}`)
      assert.deepEqual([bad.status, bad.body.code, bad.body.field], [400, 'invalid_field', field], query)
    }
  })

  it('takes an adjustment of a signed 64-bit amount, and refuses one outside that range naming the field', async () => {
    const dir = tempDir()
    dirs.push(dir)
    const plain = { relation: 'child', assetCode: 'USD', assetScale: 6 }
    const n = await start(dir, { lo: plain, hi: plain, other: plain })
    for (const amount of ['9223372036854775808', '-9223372036854775809', '-18446744073709551616', '18446744073709551615', '99999999999999999999']) {
      const res = await adjust(n, 'other', amount, `out-${amount}`)
      assert.deepEqual([res.status, res.body.code, res.body.field], [400, 'invalid_field', 'amount'], amount)
    }
    assert.equal(n.balance('other'), 0n)
    // A balance stays within ±(2^63 − 1) (its negation is what peer.balance reports): −2^63 is
    // refused for the balance it would make; the ends of that range are taken.
    const floor = await adjust(n, 'lo', '-9223372036854775808', 'in-floor')
    assert.deepEqual([floor.status, floor.body.code, floor.body.field], [400, 'invalid_field', 'amount'])
    for (const [id, amount] of [['lo', '-9223372036854775807'], ['hi', '9223372036854775807']]) {
      const res = await adjust(n, id, amount, `in-${amount}`)
      assert.equal(res.status, 201, `${amount}: ${JSON.stringify(res.body)}`)
      assert.equal(n.balance(id), BigInt(amount))
    }
  })
})
