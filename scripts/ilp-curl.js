#!/usr/bin/env node
// A small HTTP-ILP client (the "ilp-curl" of HTTP-ILP draft 3): makes a request with a Pay-Token;
// on 402 it pays what the Pay header asks (less the token's Pay-Balance) with PSK2 through a BTP
// account of a node, the token as the payment's data, and tries again.
//
//   node scripts/ilp-curl.js <url> [-X METHOD] [-H 'Name: value']… [-d body] [--max-price N]
//        [--via btp+ws://user:token@host:port] [--token <base64url>] [--tries N] [--timeout-ms N]
//
// Prints the answer's body to stdout, and the status, Pay-Balance and what was paid to stderr.
// Exits 0 on a 2xx answer, 1 otherwise. --via defaults to the development config's account alice
// of a node on 127.0.0.1:7768; --max-price (default 1000) caps what one request may cost. It gives
// up with a message when the server or the node does not answer within --timeout-ms (10 s).

'use strict'
const crypto = require('node:crypto')
const PSK2 = require('ilp-protocol-psk2')
const { DEFAULT_TIMEOUT_MS, within, connectBtp, fetchWithin } = require('./btp_connect')

function usage(message) {
  if (message) console.error(`ilp-curl: ${message}`)
  console.error('usage: node scripts/ilp-curl.js <url> [-X METHOD] [-H "Name: value"] [-d body] [--max-price N] [--via btp+ws://…] [--token T] [--tries N] [--timeout-ms N]')
  process.exit(2)
}

function parseArgs(argv) {
  const o = { method: 'GET', headers: {}, body: undefined, maxPrice: 1000n, via: 'btp+ws://alice:alice-token@127.0.0.1:7768', token: null, tries: 3, timeoutMs: DEFAULT_TIMEOUT_MS, url: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`))
    if (a === '-X') o.method = next().toUpperCase()
    else if (a === '-H') {
      const h = next()
      const at = h.indexOf(':')
      if (at < 1) usage(`bad header "${h}"`)
      o.headers[h.slice(0, at).trim()] = h.slice(at + 1).trim()
    } else if (a === '-d') o.body = next()
    else if (a === '--max-price') o.maxPrice = BigInt(next())
    else if (a === '--via') o.via = next()
    else if (a === '--token') o.token = next()
    else if (a === '--tries') o.tries = Number(next())
    else if (a === '--timeout-ms') o.timeoutMs = Number(next())
    else if (a.startsWith('-')) usage(`unknown option ${a}`)
    else if (o.url === null) o.url = a
    else usage(`unexpected argument ${a}`)
  }
  if (o.url === null) usage()
  if (o.body !== undefined && o.method === 'GET') o.method = 'POST'
  return o
}

async function main() {
  const o = parseArgs(process.argv.slice(2))
  const token = o.token === null ? crypto.randomBytes(16) : Buffer.from(o.token, 'base64url')
  const headers = { ...o.headers, 'Pay-Token': token.toString('base64url') }
  let plugin = null
  let paid = 0n
  try {
    for (let attempt = 1; ; attempt++) {
      const res = await fetchWithin(o.url, { method: o.method, headers, body: o.body }, o.timeoutMs)
      if (res.status !== 402 || attempt > o.tries) {
        const text = await res.text()
        process.stdout.write(text)
        console.error(`ilp-curl: ${res.status} ${res.statusText}; paid ${paid}; Pay-Balance ${res.headers.get('pay-balance') ?? '-'}`)
        return res.status >= 200 && res.status < 300 ? 0 : 1
      }
      await res.text()
      const [method, destinationAccount, secret, price] = (res.headers.get('pay') ?? '').split(' ')
      if (method !== 'interledger-psk2' || !destinationAccount || !secret) throw new Error(`cannot pay with this Pay header: "${res.headers.get('pay')}"`)
      const balance = BigInt(res.headers.get('pay-balance') ?? '0')
      const owed = BigInt(price ?? '0') - balance
      const amount = owed > 0n ? owed : 1n
      if (amount > o.maxPrice) throw new Error(`the price ${price} is above --max-price ${o.maxPrice}`)
      if (plugin === null) {
        plugin = await connectBtp(o.via, o.timeoutMs)
      }
      const result = await within(PSK2.sendRequest(plugin, {
        destinationAccount, sharedSecret: Buffer.from(secret, 'base64'), sourceAmount: amount.toString(), minDestinationAmount: amount.toString(), data: token,
      }), o.timeoutMs, `no answer to the payment within ${o.timeoutMs} ms`)
      if (!result.fulfilled) throw new Error(`payment rejected: ${result.code} ${result.message}`)
      paid += amount
    }
  } finally {
    if (plugin !== null) await plugin.disconnect()
  }
}

main().then((code) => process.exit(code), (err) => {
  console.error(`ilp-curl: ${err.message}`)
  process.exit(1)
})
