// What the command-line scripts share: connecting to a node within a time limit, so that a script
// pointed at a node that is not there says so and exits instead of redialling in silence (the
// BTP client retries forever on its own).

'use strict'
const BtpPlugin = require('ilp-plugin-btp')

/** How long a script waits for the node before it gives up (ms); --timeout-ms overrides it. */
const DEFAULT_TIMEOUT_MS = 10_000

/** Rejects with `message` if `promise` has not settled within `ms`. */
function within(promise, ms, message) {
  let timer
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms) })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** A BTP client of `url` (btp+ws://user:token@host:port), connected within `ms`. */
async function connectBtp(url, ms) {
  const parsed = new URL(url)
  const plugin = new BtpPlugin({ server: url })
  const where = `${parsed.protocol}//${parsed.host}${parsed.username ? ` as ${decodeURIComponent(parsed.username)}` : ''}`
  await within(plugin.connect(), ms, `could not connect to ${where} within ${ms} ms: is the node running there (npm start), and is the token right?`)
  return plugin
}

/** fetch() that gives up after `ms` with a message naming the URL. */
async function fetchWithin(url, init, ms) {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(ms) })
  } catch (err) {
    const why = err.name === 'TimeoutError' ? `no answer within ${ms} ms` : (err.cause && err.cause.code) || err.message
    throw new Error(`could not reach ${url}: ${why}: is the node running there (npm start)?`)
  }
}

/** The value of `--name <value>` in `args`, or undefined. */
function option(args, name) {
  const at = args.indexOf(name)
  return at >= 0 ? args[at + 1] : undefined
}

module.exports = { DEFAULT_TIMEOUT_MS, within, connectBtp, fetchWithin, option }
