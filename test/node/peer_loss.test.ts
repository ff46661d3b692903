// Goal: a peer that goes away. The node dials a peer over BTP (a real ilp-plugin-btp server) and
// POSTs to another over ILP-over-HTTP (a real ilp-plugin-http server); each takes a prepare and
// then vanishes while holding it. The sender gets T01 at once (not R00 at expiry), its hold is
// released, the books on both sides of the node still balance, and when the peer comes back on
// the same port the node reaches it again (redialling BTP with backoff, new HTTP connections).

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import PluginHttp from 'ilp-plugin-http'
import type { RunningNode } from '../../src/node'
import {
  asFulfill, asReject, BtpPlugin, connectPlugin, freePort, fulfillmentPair, IlpPacket, peerBalance, prepare, removeDir, sleep, startTestNode,
  tempDir,
} from '../support/helpers'

const USD = { assetCode: 'USD', assetScale: 9 }

/** A peer as both transports see it: something that can answer prepares and go away. */
interface Peer {
  start(handler: (data: Buffer) => Promise<Buffer>): Promise<void>
  /** Vanishes abruptly: listener closed, open connections dropped. */
  vanish(): Promise<void>
  /** Asks the node for this peer's balance (positive: the node owes the peer). */
  balance(): Promise<bigint>
}

function btpPeer(port: number): Peer {
  let plugin: BtpPlugin | null = null
  return {
    async start(handler) {
      plugin = new BtpPlugin({ listener: { port, secret: 'up-secret' } })
      plugin.registerDataHandler(handler)
      // A listening plugin's connect() resolves once the node has dialled in and authenticated.
      await plugin.connect()
    },
    async vanish() {
      await plugin!.disconnect()
    },
    balance: () => peerBalance(plugin!),
  }
}

function httpPeer(port: number, nodePort: number): Peer {
  let plugin: PluginHttp | null = null
  return {
    async start(handler) {
      plugin = new PluginHttp({
        incoming: { port, staticToken: 'node-to-up' },
        outgoing: { url: `http://127.0.0.1:${nodePort}/ilp`, staticToken: 'up-to-node' },
      })
      plugin.registerDataHandler(handler)
      await plugin.connect()
    },
    async vanish() {
      // disconnect() stops listening; the process dying would also drop the open connections.
      const server = (plugin as unknown as { _httpServer: { closeAllConnections(): void } })._httpServer
      await plugin!.disconnect()
      server.closeAllConnections()
    },
    balance: () => peerBalance(plugin!),
  }
}

for (const transport of ['BTP', 'ILP-over-HTTP'] as const) {
  describe(`a peer reached over ${transport} goes away and comes back`, () => {
    let node: RunningNode
    let dir: string
    let alice: BtpPlugin
    let peer: Peer
    const { fulfillment, condition } = fulfillmentPair()
    let held = 0

    before(async () => {
      const peerPort = await freePort()
      const nodePort = await freePort()
      dir = tempDir()
      peer = transport === 'BTP' ? btpPeer(peerPort) : httpPeer(peerPort, nodePort)
      const link = transport === 'BTP'
        ? { btp: { url: `btp+ws://node:up-secret@127.0.0.1:${peerPort}` } }
        : { http: { url: `http://127.0.0.1:${peerPort}/`, outgoingToken: 'node-to-up', incomingToken: 'up-to-node' } }
      const handler = async (data: Buffer) => {
        const p = IlpPacket.deserializeIlpPrepare(data)
        if (p.destination === 'test.up.hold') {
          held++
          return new Promise<Buffer>(() => {}) // holds until the peer goes away
        }
        return IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
      }
      const started = peer.start(handler)
      node = await startTestNode(0, dir, {
        ilpAddress: 'test.node',
        port: nodePort,
        accounts: {
          alice: { relation: 'child', ...USD, btp: { token: 'alice-token' } },
          up: { relation: 'peer', ...USD, sendRoutes: false, receiveRoutes: false, ...link },
        },
        routes: [{ targetPrefix: 'test.up', peerId: 'up' }],
      })
      await started
      alice = await connectPlugin(node.port, 'alice', 'alice-token')
    })

    after(async () => {
      await alice.disconnect()
      await peer.vanish()
      await node.stop()
      removeDir(dir)
    })

    it('a fulfilled packet first: alice -20, the peer +20', async () => {
      asFulfill(await alice.sendData(prepare({ destination: 'test.up.ok', amount: '20', executionCondition: condition })))
      assert.equal(await peerBalance(alice), -20n)
      assert.equal(await peer.balance(), 20n)
    })

    it('prepares in flight when the peer vanishes are rejected T01 at once, and their holds released', async () => {
      const t0 = Date.now()
      const pending = [1, 2, 3].map(() => alice.sendData(prepare({ destination: 'test.up.hold', amount: '100', executionCondition: condition, expiresAt: new Date(Date.now() + 25_000) })))
      while (held < 3) await sleep(10)
      await peer.vanish()
      for (const reply of await Promise.all(pending)) {
        const reject = asReject(reply)
        assert.equal(reject.code, 'T01')
        assert.equal(reject.triggeredBy, 'test.node')
      }
      assert.ok(Date.now() - t0 < 10_000, 'rejected when the link dropped, not at expiry')
      assert.equal(await peerBalance(alice), -20n, 'no hold left on alice')
    })

    it('while the peer is away: T01 for new prepares, nothing changes', async () => {
      assert.equal(asReject(await alice.sendData(prepare({ destination: 'test.up.ok', amount: '5', executionCondition: condition }))).code, 'T01')
      assert.equal(await peerBalance(alice), -20n)
    })

    it('the peer comes back on the same port: the node reaches it again, and the books are exact', async () => {
      await peer.start(async () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) }))
      let reply = await alice.sendData(prepare({ destination: 'test.up.ok', amount: '30', executionCondition: condition }))
      // Over BTP the node is connected once start() resolved; over HTTP the first request succeeds.
      for (let i = 0; i < 20 && reply[0] === IlpPacket.Type.TYPE_ILP_REJECT; i++) {
        await sleep(100)
        reply = await alice.sendData(prepare({ destination: 'test.up.ok', amount: '30', executionCondition: condition }))
      }
      asFulfill(reply)
      assert.equal(await peerBalance(alice), -50n)
      assert.equal(await peer.balance(), 50n)
    })
  })
}
