// Goal: the payee role with the real senders of 2018. A BTP client of the node pays the payee
// alice with ilp-protocol-spsp@2.0.0 (SPSP query + PSK2 draft-1 single chunk) and with
// ilp-protocol-psk2@0.5.0 (sendSingleChunk, sendRequest, a chunked sendSourceAmount of 100+
// chunks, quotes of both drafts); alice's balance equals exactly what arrived, a replayed chunk
// is refused, and bad PSK2 data gets the rejects ilp-protocol-psk2's receiver gives, with no credit. With SHARDS=0 and
// SHARDS=2 (alice's shard is not the sender's there, so payments cross shards).

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { before, describe, it } from 'node:test'
import * as PSK2 from 'ilp-protocol-psk2'
import { createConnection } from 'ilp-protocol-stream'
import { request } from 'undici'
import type { RunningNode } from '../../src/node'
import { shardOfAccount } from '../../src/config/account_table'
import { asReject, BtpPlugin, connectPlugin, layoutName, peerBalance, prepare, sleep, withNode } from '../support/helpers'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const SPSP = require('ilp-protocol-spsp') as {
  query(receiver: string): Promise<{ destinationAccount: string; sharedSecret: Buffer; ledgerInfo?: unknown }>
  pay(plugin: unknown, o: { receiver: string; sourceAmount: string }): Promise<{ sourceAmount: string; destinationAmount: string }>
}

const ADMIN = 'admin-token-0123456789'
const execFileAsync = promisify(execFile)
// ilp-protocol-psk2 checks amounts with instanceof against its own copy of bignumber.js.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const BigNumber = require(require.resolve('bignumber.js', { paths: [require.resolve('ilp-protocol-psk2')] })) as new (v: string | number) => unknown

function config(): Record<string, unknown> {
  return {
    ilpAddress: 'test.node',
    adminToken: ADMIN,
    accounts: {
      sender: { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'sender-token' } },
    },
    payees: { alice: { name: 'Alice' }, bea: {} },
    defaultPayee: 'alice',
  }
}

for (const shards of [0, 2]) {
  describe(`payee alice paid by PSK2 senders (${layoutName(shards)})`, () => {
    let node: RunningNode
    let sender: BtpPlugin
    let base: string
    const fixture = withNode(shards, config(), ['sender'])

    before(() => {
      if (shards === 2) assert.notEqual(shardOfAccount('alice', 2), shardOfAccount('sender', 2), 'alice and sender on different shards')
      ;({ node, clients: { sender } } = fixture)
      base = `http://127.0.0.1:${node.port}`
    })

    async function view(name = 'alice', token = ADMIN): Promise<{ status: number; body: { balance: string; payments: { id: string; received: string; chunks: number; finished: boolean }[] } }> {
      const res = await request(`${base}/payees/${name}`, { headers: { authorization: `Bearer ${token}` } })
      return { status: res.statusCode, body: await res.body.json() as never }
    }
    const balance = async () => BigInt((await view()).body.balance)
    const spspQuery = async () => SPSP.query(`${base}/alice`)

    it('answers SPSP queries: PSK2 JSON for application/spsp+json, fresh secrets, 404 JSON for unknown payees', async () => {
      const res = await request(`${base}/alice`, { headers: { accept: 'application/spsp+json' } })
      assert.equal(res.statusCode, 200)
      assert.equal(res.headers['content-type'], 'application/spsp+json')
      const json = await res.body.json() as Record<string, unknown>
      assert.match(json.destination_account as string, /^test\.node\.alice\.psk2\.[A-Za-z0-9_-]{24}$/)
      assert.equal(Buffer.from(json.shared_secret as string, 'base64').length, 32)
      assert.match(json.shared_secret as string, /=$/, 'padded base64')
      assert.deepEqual(json.asset_info, { code: 'USD', scale: 9 })
      assert.deepEqual(json.ledger_info, { currency_code: 'USD', currency_scale: 9 })
      assert.deepEqual(json.receiver_info, { name: 'Alice' })
      const again = await spspQuery()
      assert.notEqual(again.destinationAccount, json.destination_account, 'each query gets its own address')
      const wellKnown = await request(`${base}/.well-known/pay`, { headers: { accept: 'application/spsp+json' } })
      assert.equal(wellKnown.statusCode, 200)
      assert.match((await wellKnown.body.json() as { destination_account: string }).destination_account, /^test\.node\.alice\./)
      const unknown = await request(`${base}/nobody`, { headers: { accept: 'application/spsp+json' } })
      assert.equal(unknown.statusCode, 404)
      assert.deepEqual(await unknown.body.json(), { id: 'InvalidReceiverError', message: 'Invalid receiver ID' })
    })

    it('ilp-protocol-spsp@2.0.0 pay(): query + PSK2 draft-1 single chunk; alice is credited exactly', async () => {
      const before = await balance()
      const result = await SPSP.pay(sender, { receiver: `${base}/alice`, sourceAmount: '500' })
      assert.equal(String(result.destinationAmount), '500')
      assert.equal(await balance(), before + 500n)
    })

    it('ilp-protocol-psk2@0.5.0: sendSingleChunk and sendRequest', async () => {
      const before = await balance()
      const { destinationAccount, sharedSecret } = await spspQuery()
      const single = await PSK2.sendSingleChunk(sender as never, { destinationAccount, sharedSecret, sourceAmount: '250', minDestinationAmount: '250' })
      assert.equal(single.destinationAmount, '250')
      const response = await PSK2.sendRequest(sender as never, { destinationAccount, sharedSecret, sourceAmount: '100', minDestinationAmount: '100', data: Buffer.from('thanks') })
      assert.ok(PSK2.isPskResponse(response), `request fulfilled (${JSON.stringify(response)})`)
      assert.equal(response.destinationAmount.toString(), '100')
      assert.equal(await balance(), before + 350n)
    })

    it('ilp-protocol-psk2@0.5.0: a chunked sendSourceAmount of 100+ chunks arrives whole', async () => {
      const before = await balance()
      const { destinationAccount, sharedSecret } = await spspQuery()
      const result = await PSK2.sendSourceAmount(sender as never, { destinationAccount, sharedSecret, sourceAmount: '150000000' })
      assert.ok(result.chunksFulfilled >= 100, `${result.chunksFulfilled} chunks`)
      assert.equal(result.destinationAmount, '150000000')
      assert.equal(await balance(), before + 150_000_000n)
      const listed = (await view()).body.payments.find((p) => p.id === result.id.toString('hex'))
      assert.ok(listed !== undefined, 'the payment is listed')
      assert.equal(listed.received, '150000000')
      assert.equal(listed.chunks, result.chunksFulfilled)
      assert.equal(listed.finished, true)
    })

    it('quotes of both drafts: F99 with a type-3 packet (draft 1), F05 with a type-6 packet (draft 2); nothing credited', async () => {
      const before = await balance()
      const { destinationAccount, sharedSecret } = await spspQuery()
      const quote = await PSK2.quoteSourceAmount(sender as never, { destinationAccount, sharedSecret, sourceAmount: '1234' })
      assert.equal(quote.destinationAmount, '1234')
      const probe = await PSK2.sendRequest(sender as never, { destinationAccount, sharedSecret, sourceAmount: '77', unfulfillableCondition: randomBytes(32) })
      assert.ok(PSK2.isPskError(probe))
      assert.equal(probe.code, 'F05')
      assert.equal(probe.destinationAmount.toString(), '77')
      assert.equal(await balance(), before)
    })

    it('a replayed chunk is refused (F99) and not counted twice', async () => {
      const { destinationAccount, sharedSecret } = await spspQuery()
      const sent: Buffer[] = []
      const wrapped = new Proxy(sender, {
        get: (target, key) => (key === 'sendData' ? async (data: Buffer) => { sent.push(data); return target.sendData(data) } : Reflect.get(target, key)),
      })
      await PSK2.sendSingleChunk(wrapped as never, { destinationAccount, sharedSecret, sourceAmount: '40' })
      const after1 = await balance()
      assert.equal(sent.length, 1)
      const replay = asReject(await sender.sendData(sent[0]))
      assert.equal(replay.code, 'F99')
      assert.equal(await balance(), after1)
    })

    it('bad PSK2 data: wrong key, truncated, tampered → F06; too little → F99, wrong condition → F05; wrong address → F02; never a credit', async () => {
      const before = await balance()
      const { destinationAccount, sharedSecret } = await spspQuery()
      const id = randomBytes(16)
      const good = (secret: Buffer, chunkAmount = '0') => {
        // A valid draft-1 chunk for `secret`, as ilp-protocol-psk2 builds it.
        const encoding = PSK2 as unknown as { serializeLegacyPskPacket(s: Buffer, p: unknown): Buffer }
        return encoding.serializeLegacyPskPacket(secret, { type: 1, paymentId: id, sequence: 0, paymentAmount: new BigNumber('18446744073709551615'), chunkAmount: new BigNumber(chunkAmount) })
      }
      const send = (data: Buffer, destination = destinationAccount, amount = '10') => sender.sendData(prepare({ destination, amount, data }))
      const wrongKey = asReject(await send(good(randomBytes(32))))
      assert.equal(wrongKey.code, 'F06')
      assert.equal(wrongKey.data.length, 0)
      assert.equal(asReject(await send(good(sharedSecret).subarray(0, 20))).code, 'F06')
      const tampered = good(sharedSecret)
      tampered[tampered.length - 3] ^= 0x55
      assert.equal(asReject(await send(tampered)).code, 'F06')
      assert.equal(asReject(await send(Buffer.alloc(0))).code, 'F06')
      assert.equal(asReject(await send(good(sharedSecret), 'test.node.alice')).code, 'F02')
      assert.equal(asReject(await send(good(sharedSecret), 'test.node.alice.psk2.short')).code, 'F02')
      // Well-formed chunks that cannot be fulfilled: asking more than arrives (F99, checked first:
      // the quote path), and a condition that is not the data's (F05). Both carry a type-3 packet.
      const tooLittle = asReject(await send(good(sharedSecret, '11')))
      assert.equal(tooLittle.code, 'F99')
      assert.equal((PSK2 as unknown as { deserializeLegacyPskPacket(s: Buffer, d: Buffer): { type: number } }).deserializeLegacyPskPacket(sharedSecret, tooLittle.data).type, 3)
      const wrongCondition = asReject(await send(good(sharedSecret)))
      assert.equal(wrongCondition.code, 'F05')
      assert.equal((PSK2 as unknown as { deserializeLegacyPskPacket(s: Buffer, d: Buffer): { type: number } }).deserializeLegacyPskPacket(sharedSecret, wrongCondition.data).type, 3)
      assert.equal(await balance(), before)
    })

    it('ilp-protocol-stream (2.7.2-alpha.3) after SPSP v4 discovery: what it delivered is exactly alice\'s credit', async () => {
      const res = await request(`${base}/alice`, { headers: { accept: 'application/spsp4+json, application/spsp+json' } })
      assert.equal(res.headers['content-type'], 'application/spsp4+json')
      const spsp = await res.body.json() as { destination_account: string; shared_secret: string }
      assert.match(spsp.destination_account, /^test\.node\.alice\.stream\./)
      const before = await balance()
      // A wallet's own link. The STREAM client disconnects its plugin at end() without waiting for
      // the answer to its last packet; the test keeps the link until that answer is in.
      const wallet = await connectPlugin(node.port, 'sender', 'sender-token')
      const link = new Proxy(wallet, { get: (target, key) => (key === 'disconnect' ? async () => {} : Reflect.get(target, key)) })
      const connection = await createConnection({ plugin: link as never, destinationAccount: spsp.destination_account, sharedSecret: Buffer.from(spsp.shared_secret, 'base64') })
      assert.equal(connection.destinationAssetCode, 'USD')
      const stream = connection.createStream()
      await stream.sendTotal(5000)
      assert.equal(connection.totalDelivered, '5000')
      await connection.end()
      assert.equal(await balance(), before + 5000n)
      // The payee marks the connection closed when the sender's ConnectionClose arrives.
      const id = `stream-${spsp.destination_account.split('.').pop()}`
      let listed = (await view()).body.payments.find((p) => p.id === id)
      for (let i = 0; i < 50 && listed?.finished !== true; i++) {
        await sleep(20)
        listed = (await view()).body.payments.find((p) => p.id === id)
      }
      assert.equal(listed?.received, '5000')
      assert.equal(listed?.finished, true, 'closed by the sender')
      await sleep(50)
      await wallet.disconnect()
    })

    it('scripts/pay.js pays from the command line, with PSK2 and with --stream', async () => {
      const script = join(__dirname, '..', '..', '..', 'scripts', 'pay.js')
      const via = `btp+ws://sender:sender-token@127.0.0.1:${node.port}`
      for (const extra of [[], ['--stream']]) {
        const before = await balance()
        const { stdout } = await execFileAsync(process.execPath, [script, `${base}/alice`, '123', '--via', via, ...extra], { timeout: 20_000 })
        assert.match(stdout, /delivered 123\n/)
        assert.equal(await balance(), before + 123n)
      }
      await assert.rejects(execFileAsync(process.execPath, [script, `${base}/nobody`, '5', '--via', via]), /answered 404/)
      await assert.rejects(execFileAsync(process.execPath, [script, `${base}/alice`, 'ten']), /positive integer/)
    })

    it('the payee view needs the admin token; unknown payees are 404', async () => {
      assert.equal((await view('alice', 'wrong-token-wrong-token')).status, 401)
      assert.equal((await view('nobody')).status, 404)
      const bea = await view('bea')
      assert.equal(bea.status, 200)
      assert.equal(bea.body.balance, '0')
      assert.deepEqual(bea.body.payments, [])
      // The sender paid exactly what alice received: nothing lost, nothing made.
      assert.equal(-(await peerBalance(sender)), await balance())
    })

    it('fulfills payments of 0 but keeps no record of them: a sender could otherwise add one per packet for free', async () => {
      const { destinationAccount, sharedSecret } = await SPSP.query(`${base}/bea`)
      for (let i = 0; i < 10; i++) {
        const single = await PSK2.sendSingleChunk(sender as never, { destinationAccount, sharedSecret, sourceAmount: '0', minDestinationAmount: '0' })
        assert.equal(single.destinationAmount, '0')
        const response = await PSK2.sendRequest(sender as never, { destinationAccount, sharedSecret, sourceAmount: '0' })
        assert.ok(PSK2.isPskResponse(response), `request of 0 fulfilled (${JSON.stringify(response)})`)
      }
      const bea = await view('bea')
      assert.equal(bea.body.balance, '0')
      assert.deepEqual(bea.body.payments, [], 'no payment record for payments of 0')
    })
  })
}
