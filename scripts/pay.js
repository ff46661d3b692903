#!/usr/bin/env node
// Pays from the command line through a node, from one of its BTP accounts:
//
//   node scripts/pay.js <receiver> <amount> [--via btp+ws://user:token@host:port] [--stream] [--timeout-ms N]
//
// <receiver> is one of:
//   bob                           an account of the node, in the development config's form: the script
//                                 connects as it (token `bob-token`, on --via's host and port),
//                                 starts a STREAM receiver there and pays it
//   btp+ws://bob:token@host:port  the same for any account the script has the token of
//   $host/name, http://…/name     a payment pointer or SPSP URL (the node's payees): PSK2, one
//                                 request (SPSP for PSK2), or STREAM with --stream (SPSP v4)
// <amount> is in the sender's base units. --via defaults to the development config's account
// alice of a node on 127.0.0.1:7768. It prints what was sent and what was delivered, and gives up
// with a message if the node does not answer within --timeout-ms (10 s). Uses the real client
// libraries (dev dependencies): ilp-plugin-btp, ilp-protocol-stream, ilp-protocol-psk2.

'use strict'
const PSK2 = require('ilp-protocol-psk2')
const { createConnection, createServer } = require('ilp-protocol-stream')
const { DEFAULT_TIMEOUT_MS, within, connectBtp, fetchWithin, option } = require('./btp_connect')

function usage(message) {
  if (message) console.error(`pay: ${message}`)
  console.error('usage: node scripts/pay.js <receiver: account | btp+ws://… | $pointer | SPSP URL> <amount> [--via btp+ws://user:token@host:port] [--stream] [--timeout-ms N]')
  process.exit(2)
}

function endpointOf(receiver) {
  const url = new URL(receiver.startsWith('$') ? `https://${receiver.slice(1)}` : receiver)
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/.well-known/pay'
  return url.href
}

/** The BTP URL of a receiving account: as given, or a bare name in the development config's form. */
function receivingAccountUrl(receiver, via) {
  if (receiver.startsWith('btp+ws://') || receiver.startsWith('btp+wss://')) return receiver
  if (!/^[a-zA-Z0-9_~-]{1,64}$/.test(receiver)) return null
  const url = new URL(via)
  url.username = receiver
  url.password = `${receiver}-token`
  return url.href
}

function accountOf(url) {
  return decodeURIComponent(new URL(url).username) || new URL(url).host
}

/** Pays a STREAM receiver the script starts as another account of the node. */
async function payAccount(sender, receiverUrl, amount, ms) {
  const receiver = await connectBtp(receiverUrl, ms)
  try {
    const server = await within(createServer({ plugin: receiver }), ms, `the node gave ${accountOf(receiverUrl)} no address (IL-DCP) within ${ms} ms`)
    let received = 0n
    server.on('connection', (connection) => connection.on('stream', (stream) => {
      stream.setReceiveMax('18446744073709551615')
      stream.on('money', (value) => { received += BigInt(value) })
    }))
    const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
    console.log(`paying ${amount} to ${destinationAccount} (a STREAM receiver started as ${accountOf(receiverUrl)})`)
    const delivered = await sendStream(sender, destinationAccount, sharedSecret, amount, ms)
    await new Promise((resolve) => setTimeout(resolve, 100))
    console.log(`sent ${delivered.sent}, delivered ${delivered.delivered}; ${accountOf(receiverUrl)} received ${received}`)
    await settle(server.close())
  } finally {
    await settle(receiver.disconnect())
  }
}

async function sendStream(plugin, destinationAccount, sharedSecret, amount, ms) {
  const connection = await within(createConnection({ plugin, destinationAccount, sharedSecret }), ms, `no STREAM connection to ${destinationAccount} within ${ms} ms`)
  try {
    await within(connection.createStream().sendTotal(amount), 3 * ms, `the payment did not complete within ${3 * ms} ms`)
    return { sent: connection.totalSent, delivered: connection.totalDelivered }
  } finally {
    await settle(connection.end())
  }
}

/** Pays a payee of the node found by SPSP: PSK2, or STREAM with --stream. */
async function payPayee(sender, receiver, amount, stream, ms) {
  const endpoint = endpointOf(receiver)
  const res = await fetchWithin(endpoint, { headers: { accept: stream ? 'application/spsp4+json' : 'application/spsp+json' } }, ms)
  if (res.status !== 200) throw new Error(`SPSP query to ${endpoint} answered ${res.status}: ${await res.text()}`)
  const spsp = await res.json()
  const destinationAccount = spsp.destination_account
  const sharedSecret = Buffer.from(spsp.shared_secret, 'base64')
  console.log(`paying ${amount} to ${destinationAccount} with ${stream ? 'STREAM' : 'PSK2'}`)
  if (stream) {
    const { sent, delivered } = await sendStream(sender, destinationAccount, sharedSecret, amount, ms)
    console.log(`sent ${sent}, delivered ${delivered}`)
    return
  }
  const result = await within(PSK2.sendRequest(sender, { destinationAccount, sharedSecret, sourceAmount: amount, minDestinationAmount: '0' }), 3 * ms, `no answer to the payment within ${3 * ms} ms`)
  if (!result.fulfilled) throw new Error(`payment rejected: ${result.code} ${result.message}`)
  console.log(`sent ${amount}, delivered ${result.destinationAmount.toString()}`)
}

async function main() {
  const args = process.argv.slice(2)
  const stream = args.includes('--stream')
  const via = option(args, '--via') ?? 'btp+ws://alice:alice-token@127.0.0.1:7768'
  const ms = Number(option(args, '--timeout-ms') ?? DEFAULT_TIMEOUT_MS)
  const valued = new Set(['--via', '--timeout-ms'])
  const positional = args.filter((a, i) => !a.startsWith('--') && !valued.has(args[i - 1]))
  if (positional.length !== 2) usage()
  const [receiver, amount] = positional
  if (!/^[0-9]+$/.test(amount) || BigInt(amount) === 0n) usage('amount must be a positive integer of base units')
  if (!Number.isInteger(ms) || ms <= 0) usage('--timeout-ms must be a positive integer')
  if (!via.startsWith('btp+ws://') && !via.startsWith('btp+wss://')) usage('--via needs a btp+ws:// URL')

  const sender = await connectBtp(via, ms)
  try {
    const account = receivingAccountUrl(receiver, via)
    if (account !== null) await payAccount(sender, account, amount, ms)
    else await payPayee(sender, receiver, amount, stream, ms)
  } finally {
    await settle(sender.disconnect())
  }
}

/** Waits a moment for a client to close politely; the payment is over either way. */
function settle(closing) {
  return within(closing, 1000, 'closing took too long').catch(() => undefined)
}

main().then(() => process.exit(0), (err) => {
  console.error(`pay: ${err.message}`)
  process.exit(1)
})
