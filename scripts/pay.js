#!/usr/bin/env node
// Pays a payee from the command line, through a BTP account of a node:
//
//   node scripts/pay.js <receiver> <amount> [--via btp+ws://user:token@host:port] [--stream]
//
// <receiver> is a payment pointer ($host/name, resolved to https://host/name) or an SPSP URL
// (http://127.0.0.1:7768/alice; payment pointers cannot carry a port). <amount> is in the
// sender's base units. By default it pays with PSK2 (SPSP for PSK2, one request); with --stream
// it asks for SPSP v4 and pays with STREAM. --via defaults to the embedded development account
// alice of a node on 127.0.0.1:7768. Uses the real client libraries (dev dependencies).

'use strict'
const BtpPlugin = require('ilp-plugin-btp')
const PSK2 = require('ilp-protocol-psk2')
const { createConnection } = require('ilp-protocol-stream')

function usage(message) {
  if (message) console.error(`pay: ${message}`)
  console.error('usage: node scripts/pay.js <receiver> <amount> [--via btp+ws://user:token@host:port] [--stream]')
  process.exit(2)
}

function endpointOf(receiver) {
  const url = new URL(receiver.startsWith('$') ? `https://${receiver.slice(1)}` : receiver)
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/.well-known/pay'
  return url.href
}

async function main() {
  const args = process.argv.slice(2)
  const stream = args.includes('--stream')
  const viaAt = args.indexOf('--via')
  const via = viaAt >= 0 ? args[viaAt + 1] : 'btp+ws://alice:alice-token@127.0.0.1:7768'
  const positional = args.filter((a, i) => !a.startsWith('--') && (viaAt < 0 || i !== viaAt + 1))
  if (positional.length !== 2) usage()
  const [receiver, amount] = positional
  if (!/^[0-9]+$/.test(amount) || BigInt(amount) === 0n) usage('amount must be a positive integer of base units')
  if (via === undefined) usage('--via needs a btp+ws:// URL')

  const endpoint = endpointOf(receiver)
  const accept = stream ? 'application/spsp4+json' : 'application/spsp+json'
  const res = await fetch(endpoint, { headers: { accept } })
  if (res.status !== 200) throw new Error(`SPSP query to ${endpoint} answered ${res.status}: ${await res.text()}`)
  const spsp = await res.json()
  const destinationAccount = spsp.destination_account
  const sharedSecret = Buffer.from(spsp.shared_secret, 'base64')
  console.log(`paying ${amount} to ${destinationAccount} with ${stream ? 'STREAM' : 'PSK2'} via ${new URL(via).host}`)

  const plugin = new BtpPlugin({ server: via })
  await plugin.connect()
  try {
    if (stream) {
      const connection = await createConnection({ plugin, destinationAccount, sharedSecret })
      await connection.createStream().sendTotal(amount)
      const delivered = connection.totalDelivered
      await connection.end()
      console.log(`delivered ${delivered}`)
    } else {
      const result = await PSK2.sendRequest(plugin, { destinationAccount, sharedSecret, sourceAmount: amount, minDestinationAmount: '0' })
      if (!result.fulfilled) throw new Error(`payment rejected: ${result.code} ${result.message}`)
      console.log(`delivered ${result.destinationAmount.toString()}`)
    }
  } finally {
    await plugin.disconnect()
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(`pay: ${err.message}`)
  process.exit(1)
})
