// The reference: ilp-connector@23 configured like the node under test, run as a child process by
// the bench. As its README describes: backend one-to-one with spread 0, an in-memory store, and
// two child accounts served by ilp-plugin-btp listeners (one port each, as that plugin does).
// Balances are on (the same limits as the node's development config); the per-account rate limit
// is relaxed far above anything the bench sends, so it never rejects.
//
// With TRANSPORT=http both accounts use ilp-plugin-http instead (alice's prepares are POSTed to
// ALICE_PORT, bob's go out to BOB_URL), for the ILP-over-HTTP run.
//
// Env: ALICE_PORT, BOB_PORT, TRANSPORT, BOB_URL. Prints the same "listening … port=" line as the node.

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { createApp } = require('ilp-connector') as { createApp(opts: unknown): { listen(): Promise<void>; shutdown(): Promise<void> } }

const RELAXED_RATE_LIMIT = { refillPeriod: 1000, refillCount: 100_000_000, capacity: 100_000_000 }

function account(port: number, token: string, outgoingUrl?: string): Record<string, unknown> {
  const plugin = process.env.TRANSPORT === 'http'
    ? { plugin: 'ilp-plugin-http', options: { incoming: { port, staticToken: token }, outgoing: { url: outgoingUrl ?? 'http://127.0.0.1:9/', staticToken: token } } }
    : { plugin: 'ilp-plugin-btp', options: { listener: { port, secret: token } } }
  return {
    relation: 'child',
    assetCode: 'USD',
    assetScale: 9,
    ...plugin,
    balance: { minimum: '-1000000000000', maximum: '1000000000000' },
    maxPacketAmount: '1000000000',
    rateLimit: RELAXED_RATE_LIMIT,
  }
}

async function main(): Promise<void> {
  const alicePort = Number(process.env.ALICE_PORT)
  const bobPort = Number(process.env.BOB_PORT)
  const app = createApp({
    ilpAddress: 'test.ilpnode',
    backend: 'one-to-one',
    spread: 0,
    store: 'memory',
    accounts: { alice: account(alicePort, 'alice-token'), bob: account(bobPort, 'bob-token', process.env.BOB_URL) },
    initialConnectTimeout: 1000,
  })
  await app.listen()
  console.log(`ilp-connector listening (reference) port=${alicePort} bob=${bobPort}`)
  process.once('SIGTERM', () => { void app.shutdown().then(() => process.exit(0)) })
}

main().catch((err: Error) => {
  console.error(err.stack)
  process.exit(1)
})
