// Goal: the admin API's `connected` for an ILP-over-HTTP peer is what its newest request found: an
// HTTP answer of any status (true, with when), none (false, with why), or no request yet (null).
// Method: erin's http.url is a port on 127.0.0.1 that nothing listens on; alice (ilp-plugin-btp)
// sends prepares routed to erin, then a node:http server takes erin's port and answers a reject
// (200), then a 503, then closes. The I/O thread that sends erin's requests is a worker thread
// when the run sets IO_THREADS=2: the view then comes through shared memory.

import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { after, before, describe, it } from 'node:test'
import {
  addHttpPeer, ADMIN_TOKEN, adminRequest, asReject, closeServer, freePort, IlpPacket, layoutName, NODE_ADDRESS, prepare, testConfigJson, withNode,
} from '../support/helpers'

interface ReachView {
  connected: boolean | null
  lastAnswerAt: string | null
  lastFailureAt: string | null
  lastFailure: string | null
}

describe(`an ILP-over-HTTP peer's reachability in the admin API (${layoutName(0)})`, () => {
  let erinPort: number
  let erin: Server | null = null
  let status = 200

  const view = async (): Promise<ReachView> => {
    const res = await adminRequest(fixture.node.port, 'GET', '/admin/accounts/erin')
    assert.equal(res.status, 200)
    return res.body as unknown as ReachView
  }
  const sendToErin = async (): Promise<string> => asReject(await fixture.clients.alice.sendData(prepare({ destination: `${NODE_ADDRESS}.erin.x`, amount: '1' }))).code

  before(async () => { erinPort = await freePort() })
  after(() => closeServer(erin))
  const fixture = withNode(0, () => {
    const json: Record<string, unknown> = { ...testConfigJson(), adminToken: ADMIN_TOKEN }
    addHttpPeer(json, 'erin', `http://127.0.0.1:${erinPort}/ilp`)
    return json
  }, ['alice'])

  it('shows null before any request is sent', async () => {
    const { connected, lastAnswerAt, lastFailureAt, lastFailure } = await view()
    assert.deepEqual({ connected, lastAnswerAt, lastFailureAt, lastFailure }, { connected: null, lastAnswerAt: null, lastFailureAt: null, lastFailure: null })
  })

  it('shows false with the reason when the URL\'s port is closed', async () => {
    assert.equal(await sendToErin(), 'T01')
    const v = await view()
    assert.equal(v.connected, false)
    assert.equal(v.lastFailure, 'connection refused')
    assert.ok(Math.abs(Date.parse(v.lastFailureAt!) - Date.now()) < 5000, `lastFailureAt ${v.lastFailureAt}`)
    assert.equal(v.lastAnswerAt, null)
  })

  it('shows true and when, once the peer answers, whatever the status', async () => {
    erin = createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        if (status !== 200) return void res.writeHead(status).end()
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        res.end(IlpPacket.serializeIlpReject({ code: 'F99', triggeredBy: `${NODE_ADDRESS}.erin`, message: 'no', data: Buffer.alloc(0) }))
      })
    })
    await new Promise<void>((resolve) => erin!.listen(erinPort, '127.0.0.1', resolve))
    const sent = Date.now()
    assert.equal(await sendToErin(), 'F99')
    const v = await view()
    assert.equal(v.connected, true)
    assert.equal(v.lastFailure, null)
    assert.equal(v.lastFailureAt, null)
    // Kept to the second.
    assert.ok(Date.parse(v.lastAnswerAt!) >= Math.floor(sent / 1000) * 1000 && Date.parse(v.lastAnswerAt!) <= Date.now(), `lastAnswerAt ${v.lastAnswerAt}`)

    status = 503
    assert.equal(await sendToErin(), 'T00')
    assert.equal((await view()).connected, true, 'a 503 is an answer: the peer is reachable')
  })

  it('shows false again when the peer goes away', async () => {
    erin!.closeAllConnections()
    await new Promise((resolve) => erin!.close(resolve))
    erin = null
    assert.equal(await sendToErin(), 'T01')
    const v = await view()
    assert.equal(v.connected, false)
    assert.equal(typeof v.lastFailure, 'string')
    assert.notEqual(v.lastAnswerAt, null, 'the last answer\'s time stays')
  })
})
