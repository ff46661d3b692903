// Goal: configuration errors stop start-up with a message naming the field; without CONFIG the
// node writes the development config to DATA_DIR once and reads it from there (so SIGHUP reloads
// it), and that config starts a usable node; environment variables override the file.

import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { defaultLayout, DEVELOPMENT_ADMIN_TOKEN, developmentTokensIn, EMBEDDED_DEFAULT_CONFIG, envOverrides, loadConfig, writeDevelopmentConfig } from '../../src/config/load'
import { parseConfig } from '../../src/config/parse'
import { configJsonSchema, ConfigError, isAccountId } from '../../src/config/schema'
import { combine, readOverlay, writeOverlay } from '../../src/control/ops/config_overlay'
import { startingConfig } from '../../src/control/ops/reconfigure'
import type { Logger } from '../../src/log'
import { RoutingTable } from '../../src/shard/routing_table'
import { openStore } from '../../src/store/balance_store'
import { DataDirUnusableError } from '../../src/store/data_dir_lock'
import { MACHINE, removeDir, tempDir, testConfigJson } from '../support/helpers'

function withAccount(patch: Record<string, unknown>): Record<string, unknown> {
  const json = testConfigJson()
  const accounts = json.accounts as Record<string, Record<string, unknown>>
  accounts.alice = { ...accounts.alice, ...patch }
  return json
}

/** The README's example config, the one "with every field the node reads". */
function readmeConfig(): unknown {
  const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8')
  const at = readme.indexOf('with every field the node reads')
  assert.ok(at > 0)
  const block = /```json\n([\s\S]*?)\n```/.exec(readme.slice(at))
  assert.ok(block !== null)
  return JSON.parse(block[1])
}

function withPayeeAndMixedAssets(): Record<string, unknown> {
  const json = withAccount({ assetCode: 'EUR' })
  return { ...json, payees: { shop: {} } }
}

describe('configuration', () => {
  it('parses the embedded default into a usable node on 127.0.0.1:7768', () => {
    const config = parseConfig(EMBEDDED_DEFAULT_CONFIG, {}, MACHINE)
    assert.equal(config.host, '127.0.0.1')
    assert.equal(config.port, 7768)
    assert.equal(config.dataDir, './data')
    assert.deepEqual(config.accounts.map((a) => a.id), ['alice', 'bob', 'carol'])
    assert.equal(config.accounts[0].btpToken, 'alice-token')
    assert.notEqual(config.accounts[2].payee, null, 'carol is a payee')
    assert.equal(config.defaultPayee, 'carol')
    assert.equal(config.adminToken, DEVELOPMENT_ADMIN_TOKEN)
    assert.equal(config.spread, '0')
    assert.deepEqual(developmentTokensIn(config), ['alice', 'bob', 'adminToken'])
    const own = parseConfig({ ...EMBEDDED_DEFAULT_CONFIG, adminToken: 'an-admin-token-of-its-own', accounts: { alice: { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: 'a-token-of-its-own' } } } }, {}, MACHINE)
    assert.deepEqual(developmentTokensIn(own), [])
  })

  it('writes the development config to DATA_DIR/config.json once, owner-only, and reads it from there', () => {
    const dir = tempDir()
    try {
      const dataDir = join(dir, 'data')
      const first = loadConfig({ DATA_DIR: dataDir })
      const file = join(dataDir, 'config.json')
      assert.equal(first.path, file)
      assert.equal(first.wroteDevelopmentConfig, true)
      assert.equal(first.config.source.path, file, 'a reload re-reads the file')
      assert.equal(statSync(file).mode & 0o777, 0o600, 'it holds tokens')
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), EMBEDDED_DEFAULT_CONFIG)
      assert.deepEqual(readdirSync(dataDir), ['config.json'], 'no temporary file is left')
      // An edit survives the next start: the file is written only when there is none.
      writeFileSync(file, JSON.stringify({ ...EMBEDDED_DEFAULT_CONFIG, spread: '0.01' }))
      const second = loadConfig({ DATA_DIR: dataDir })
      assert.equal(second.wroteDevelopmentConfig, false)
      assert.equal(second.config.spread, '0.01')
      assert.equal(writeDevelopmentConfig(file), false)
      // CONFIG wins: the development config is neither read nor written.
      const other = join(dir, 'other.json')
      writeFileSync(other, JSON.stringify(testConfigJson()))
      const elsewhere = join(dir, 'elsewhere')
      const configured = loadConfig({ CONFIG: other, DATA_DIR: elsewhere })
      assert.equal(configured.path, other)
      assert.equal(configured.wroteDevelopmentConfig, false)
      assert.throws(() => statSync(elsewhere), /ENOENT/)
      // A DATA_DIR the node cannot create (under a file: refused even to root): exit 73, as for LMDB.
      assert.throws(() => loadConfig({ DATA_DIR: join(other, 'data') }), (err: Error) => err instanceof DataDirUnusableError && /is not usable: ENOTDIR/.test(err.message))
      // A broken edit stops the start with the file's name.
      writeFileSync(file, '{ "accounts": ')
      assert.throws(() => loadConfig({ DATA_DIR: dataDir }), (err: ConfigError) => err.field === 'CONFIG' && err.problem.includes(file))
    } finally {
      removeDir(dir)
    }
  })

  it('defaults to the inline layout on two cores and to half the cores for sockets above, spinning only with a core to spare', () => {
    assert.deepEqual(defaultLayout(1), { ioThreads: 1, shards: 0 })
    assert.deepEqual(defaultLayout(2), { ioThreads: 1, shards: 0 })
    assert.deepEqual(defaultLayout(4), { ioThreads: 2, shards: 2 })
    assert.deepEqual(defaultLayout(8), { ioThreads: 4, shards: 4 })
    assert.deepEqual(defaultLayout(9), { ioThreads: 4, shards: 5 })
    const eight = { cores: 8, ...defaultLayout(8) }
    const layout = (json: Record<string, unknown>, env = {}) => {
      const c = parseConfig({ ...testConfigJson(), ...json }, env, eight)
      return `${c.ioThreads}x${c.shards}`
    }
    assert.equal(layout({}), '4x4')
    assert.equal(layout({}, { shards: '0' }), '1x0', 'SHARDS=0 alone keeps the sockets on the main thread')
    assert.equal(layout({}, { shards: '3' }), '4x3')
    assert.equal(parseConfig({ ...testConfigJson(), ioThreads: 3 }, {}, MACHINE).shards, 3, 'IO_THREADS alone on 2 cores gets as many shards')
    assert.throws(() => parseConfig({ ...testConfigJson(), ioThreads: 2, shards: 0 }, {}, MACHINE), /ioThreads \(IO_THREADS\): more than 1 I\/O thread needs at least 1 shard/)
    assert.throws(() => parseConfig({ ...testConfigJson(), ioThreads: 65, shards: 1 }, {}, MACHINE), /ioThreads \(IO_THREADS\)/)
    assert.equal(parseConfig({ ...testConfigJson(), shards: 1 }, {}, MACHINE).shardSpinMicros, 200)
    assert.equal(parseConfig({ ...testConfigJson(), shards: 2 }, {}, MACHINE).shardSpinMicros, 0)
    assert.equal(parseConfig({ ...testConfigJson(), shards: 2, limits: { shardSpinMicros: 30 } }, {}, MACHINE).shardSpinMicros, 30)
  })

  it('reads payees: accounts with no transport, the shared asset by default, a configured secret', () => {
    const secret = Buffer.alloc(32, 7).toString('base64')
    const config = parseConfig({ ...testConfigJson(), payees: { shop: { name: 'Shop', secret }, kiosk: { assetCode: 'EUR', assetScale: 2 } }, defaultPayee: 'kiosk' }, {}, MACHINE)
    const shop = config.accounts.find((a) => a.id === 'shop')!
    assert.equal(shop.assetCode, 'USD')
    assert.equal(shop.assetScale, 9)
    assert.equal(shop.btpToken, null)
    assert.equal(shop.payee?.name, 'Shop')
    assert.deepEqual(Buffer.from(shop.payee!.secret!), Buffer.alloc(32, 7))
    const kiosk = config.accounts.find((a) => a.id === 'kiosk')!
    assert.equal(kiosk.payee?.secret, null, 'made at start when not configured')
    assert.equal(kiosk.assetCode, 'EUR')
    assert.equal(config.defaultPayee, 'kiosk')
    assert.equal(parseConfig({ ...testConfigJson(), payees: { shop: {} } }, {}, MACHINE).defaultPayee, 'shop', 'the only payee is the default')
    assert.equal(config.adminToken, null)
  })

  it("parses the README's config with every field the node reads (the unknown-field check keeps the two in step)", () => {
    const config = parseConfig(readmeConfig(), {}, MACHINE)
    assert.equal(config.metrics.token, 'a-long-random-metrics-token')
    assert.equal(config.drainMs, 31000)
    assert.equal(config.accounts.find((a) => a.id === 'zed')?.routeProtocol, 'ccp')
    assert.equal(config.spread, '0.002')
    assert.equal(config.rates.table.EUR, '0.9173')
    assert.equal(config.accounts.find((a) => a.id === 'up')?.settleThreshold, -500000000n)
    assert.equal(config.accounts.find((a) => a.id === 'eve')?.spread, '0.001')
  })

  it('lets environment variables override the file', () => {
    const env = envOverrides({ ILP_ADDRESS: 'g.override', PORT: '9000', SHARDS: '3', IO_THREADS: '2', DATA_DIR: '/tmp/x', HOST: '::1', LOG_LEVEL: 'debug', DURABILITY: 'fsync' })
    const config = parseConfig(testConfigJson(), env, MACHINE)
    assert.equal(config.ilpAddress, 'g.override')
    assert.equal(config.port, 9000)
    assert.equal(config.shards, 3)
    assert.equal(config.ioThreads, 2)
    assert.equal(config.dataDir, '/tmp/x')
    assert.equal(config.host, '::1')
    assert.equal(config.durability, 'fsync')
  })

  it('reads amounts as bigint from decimal strings, with unlimited balances by default', () => {
    const config = parseConfig(testConfigJson(), {}, MACHINE)
    const alice = config.accounts[0]
    assert.equal(alice.balanceMaximum, 1000000000n)
    assert.equal(alice.maxPacketAmount, 1000000n)
    assert.equal(config.accounts[1].balanceMaximum, 0x7fffffffffffffffn)
    assert.equal(config.accounts[1].maxPacketAmount, 0xffffffffffffffffn)
  })

  it('limits clients by default (README: "Security"), and keeps /metrics private', () => {
    const config = parseConfig(testConfigJson(), {}, MACHINE)
    assert.equal(config.maxConnections, 10000)
    assert.equal(config.reservedConnections, 5000)
    assert.equal(config.anonymousPerAddress, 32)
    assert.equal(config.authFailuresFree, 5)
    assert.equal(config.authPenaltyMs, 1000)
    assert.equal(config.authPenaltyMaxMs, 60000)
    assert.equal(config.maxLinksPerAccount, 8)
    assert.deepEqual(config.trustedProxies, [])
    assert.equal(config.metrics.public, false)
    const proxied = parseConfig({ ...testConfigJson(), limits: { maxConnections: 300, trustedProxies: ['127.0.0.1', '10.0.0.0/8', 'fd00::/8'] } }, {}, MACHINE)
    assert.equal(proxied.reservedConnections, 150, 'half of maxConnections')
    assert.deepEqual(proxied.trustedProxies, ['127.0.0.1', '10.0.0.0/8', 'fd00::/8'])
  })

  it('publishes the JSON Schema of the config as the schema generates it, and the README\'s config meets it', () => {
    const published = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'scripts', 'config.schema.json'), 'utf8'))
    assert.deepEqual(published, JSON.parse(JSON.stringify(configJsonSchema())), 'stale: run `npm run config-schema`')
    assert.deepEqual(schemaProblems(published, readmeConfig()), [])
    assert.deepEqual(schemaProblems(published, EMBEDDED_DEFAULT_CONFIG), [])
    const withSchema = { $schema: './config.schema.json', ...testConfigJson() }
    assert.deepEqual(schemaProblems(published, withSchema), [])
    assert.equal(parseConfig(withSchema, {}, MACHINE).accounts.length, 3, 'a config may name its schema')
    // The check itself finds what the parser refuses.
    assert.deepEqual(schemaProblems(published, withAccount({ maxPacketAmmount: '5', assetScale: 256 })), [
      'accounts.alice.assetScale: no alternative matches', 'accounts.alice.maxPacketAmmount: not allowed'])
  })

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['a non-decimal amount', withAccount({ maxPacketAmount: 1000 }), /accounts\.alice\.maxPacketAmount: must be a decimal integer string/],
    ['a negative max packet amount', withAccount({ maxPacketAmount: '-1' }), /accounts\.alice\.maxPacketAmount: must be from 0/],
    ['minimum above maximum', withAccount({ balance: { minimum: '10', maximum: '5' } }), /accounts\.alice\.balance: minimum is greater/],
    ['a missing asset scale', withAccount({ assetScale: undefined }), /accounts\.alice\.assetScale: is required/],
    ['an unknown relation', withAccount({ relation: 'friend' }), /accounts\.alice\.relation: must be one of child, peer, parent/],
    ['a token without a string', withAccount({ btp: { token: 5 } }), /accounts\.alice\.btp\.token: must be a non-empty string/],
    ['a shared token', withAccount({ btp: { token: 'bob-token' } }), /btp\.token: is used by another account/],
    ['an invalid address', { ...testConfigJson(), ilpAddress: 'bobby' }, /ilpAddress \(ILP_ADDRESS\): "bobby" is not a valid ILP address/],
    ['a route to nobody', { ...testConfigJson(), routes: [{ targetPrefix: 'g.x', peerId: 'zed' }] }, /routes\[0\]\.peerId: names no account/],
    ['a bad route prefix', { ...testConfigJson(), routes: [{ targetPrefix: 'nope', peerId: 'bob' }] }, /routes\[0\]\.targetPrefix/],
    ['a bad account id', { ...testConfigJson(), accounts: { 'a b': {} } }, /accounts\."a b": account ids/],
    ['a port out of range', { ...testConfigJson(), port: 70000 }, /port \(PORT\): must be an integer from 0 to 65535/],
    ['a ring size that is not a power of two', { ...testConfigJson(), limits: { ringBytes: 100000 } }, /limits\.ringBytes: must be a power of two/],
    ['a payee named like an account', { ...testConfigJson(), payees: { bob: {} } }, /payees\.bob: has the name of an account/],
    ['a payee on a path the node serves', { ...testConfigJson(), payees: { health: {} } }, /payees\.health: "health" is a path/],
    ['a payee secret that is not 32 bytes', { ...testConfigJson(), payees: { shop: { secret: 'c2hvcnQ=' } } }, /payees\.shop\.secret: must be 32 bytes/],
    ['payees that are not an object', { ...testConfigJson(), payees: [] }, /payees: must be an object/],
    ['a payee without an asset among mixed assets', withPayeeAndMixedAssets(), /payees\.shop\.assetCode/],
    ['an unknown default payee', { ...testConfigJson(), payees: { shop: {} }, defaultPayee: 'nobody' }, /defaultPayee: "nobody" is not one of the payees/],
    ['a short admin token', { ...testConfigJson(), adminToken: 'short' }, /adminToken: must be at least 16 characters/],
    ['a shop without routes', { ...testConfigJson(), shop: { routes: [] } }, /shop\.routes: must be a non-empty array/],
    ['a shop route without a price', { ...testConfigJson(), shop: { routes: [{ path: '/a' }] } }, /shop\.routes\[0\]\.price: is required/],
    ['a shop route on a node path', { ...testConfigJson(), shop: { routes: [{ path: '/health', price: '1' }] } }, /shop\.routes\[0\]\.path: \/health is a path/],
    ['a shop route listed twice', { ...testConfigJson(), shop: { routes: [{ path: '/a', price: '1' }, { path: '/a', price: '2' }] } }, /GET \/a is listed twice/],
    ['a shop upstream with a path', { ...testConfigJson(), shop: { routes: [{ path: '/a', price: '1', upstream: 'http://127.0.0.1:9000/x' }] } }, /upstream: must be an origin/],
    ['a shop route with a bad method', { ...testConfigJson(), shop: { routes: [{ method: 'TRACE', path: '/a', price: '1' }] } }, /method: must be one of GET/],
    ['an unknown route protocol', withAccount({ routeProtocol: 'rip' }), /accounts\.alice\.routeProtocol: must be one of ccp, json/],
    // Unknown fields (typos would otherwise be ignored, their defaults used in silence).
    ['a misspelt account field', withAccount({ maxPacketAmmount: '5' }), /accounts\.alice\.maxPacketAmmount: is not a field the node knows; did you mean "maxPacketAmount"\?/],
    ['a misspelt relation field', withAccount({ relaton: 'peer' }), /accounts\.alice\.relaton: is not a field the node knows; did you mean "relation"\?/],
    ['an unknown top-level field', { ...testConfigJson(), ilpAdress: 'test.x' }, /^invalid configuration: ilpAdress: is not a field the node knows; did you mean "ilpAddress"\?/],
    ['a field unlike any known one', { ...testConfigJson(), colour: 'blue' }, /colour: is not a field the node knows \(known here: ilpAddress,/],
    ['a misspelt limit', { ...testConfigJson(), limits: { maxConections: 5 } }, /limits\.maxConections: .*did you mean "maxConnections"\?/],
    ['limits that are not an object', { ...testConfigJson(), limits: 5 }, /limits: must be an object/],
    ['an unknown btp field', withAccount({ btp: { token: 't', urll: 'x' } }), /accounts\.alice\.btp\.urll: .*did you mean "url"\?/],
    ['an unknown http field', withAccount({ http: { incomingToken: 't', outgoingTokn: 'x' } }), /accounts\.alice\.http\.outgoingTokn: .*"outgoingToken"/],
    ['pipelining without an outgoing URL', withAccount({ http: { incomingToken: 't', pipelining: 4 } }), /accounts\.alice\.http\.pipelining: is for the node's requests to the peer: it needs http\.url/],
    ['pipelining past 64', withAccount({ btp: undefined, http: { url: 'http://127.0.0.1:1/', outgoingToken: 't', pipelining: 65 } }), /accounts\.alice\.http\.pipelining: must be an integer from 1 to 64/],
    ['an unknown balance field', withAccount({ balance: { maximum: '5', maxium: '6' } }), /accounts\.alice\.balance\.maxium: .*did you mean "maximum"\?/],
    ['a settlement threshold without an engine', withAccount({ balance: { settleThreshold: '-5' } }), /accounts\.alice\.balance\.settleThreshold: needs a settlement engine/],
    ['settleTo without a threshold', withAccount({ balance: { settleTo: '0' } }), /accounts\.alice\.balance\.settleTo: needs balance\.settleThreshold/],
    ['a threshold above settleTo', withAccount({ settlement: { engine: 'btp-transfer' }, balance: { settleThreshold: '5', settleTo: '0' } }), /settleThreshold: is above settleTo/],
    ['settleTo above the maximum', withAccount({ settlement: { engine: 'btp-transfer' }, balance: { maximum: '10', settleThreshold: '-5', settleTo: '20' } }), /settleTo: is above balance\.maximum/],
    ['an unknown settlement engine', withAccount({ settlement: { engine: 'xrp-paychan' } }), /accounts\.alice\.settlement\.engine: must be one of btp-transfer/],
    ['a settlement without an engine', withAccount({ settlement: {} }), /accounts\.alice\.settlement\.engine: is required/],
    ['btp-transfer settlement without BTP', withAccount({ btp: undefined, http: { incomingToken: 'h' }, settlement: { engine: 'btp-transfer' } }), /settlement: the btp-transfer engine .* needs btp\.token or btp\.url/],
    ['a spread of 1', { ...testConfigJson(), spread: 1 }, /^invalid configuration: spread: must be a decimal from 0 to below 1/],
    ['a negative spread', { ...testConfigJson(), spread: '-0.1' }, /spread: must be a decimal/],
    ['a spread in exponent form', withAccount({ spread: '2e-3' }), /accounts\.alice\.spread: must be a decimal/],
    ['rates without a backend', { ...testConfigJson(), rates: {} }, /rates\.backend: is required/],
    ['an unknown rate backend', { ...testConfigJson(), rates: { backend: 'coinmarketcap' } }, /rates\.backend: must be one of one-to-one, static, ecb/],
    ['a static table without a base', { ...testConfigJson(), rates: { backend: 'static', table: {} } }, /rates\.base: is required \(1-16 printable ASCII/],
    ['a zero static rate', { ...testConfigJson(), rates: { backend: 'static', base: 'USD', table: { EUR: '0' } } }, /rates\.table\.EUR: must be a positive decimal/],
    ['a float-looking static rate', { ...testConfigJson(), rates: { backend: 'static', base: 'USD', table: { EUR: '0.9e1' } } }, /rates\.table\.EUR: must be a positive decimal/],
    ['a base rate other than 1', { ...testConfigJson(), rates: { backend: 'static', base: 'USD', table: { USD: '2' } } }, /rates\.table\.USD: is the base/],
    ['maxAgeMs with static rates', { ...testConfigJson(), rates: { backend: 'static', base: 'USD', table: {}, maxAgeMs: 5 } }, /rates\.maxAgeMs: is not a field/],
    ['an ecb URL that is not http', { ...testConfigJson(), rates: { backend: 'ecb', url: 'ftp://x/y.xml' } }, /rates\.url: must be an http/],
    ['maxAgeMs below refreshMs', { ...testConfigJson(), rates: { backend: 'ecb', refreshMs: 5000, maxAgeMs: 1000 } }, /rates\.maxAgeMs: is less than rates\.refreshMs/],
    ['ilp-connector\'s throughput field', withAccount({ throughput: { incomingAmount: '5' } }), /accounts\.alice\.throughput: throughput limits are not supported/],
    ['an unknown route field', { ...testConfigJson(), routes: [{ targetPrefix: 'test.a', peerId: 'bob', peer: 'x' }] }, /routes\[0\]\.peer: .*did you mean "peerId"\?/],
    ['an unknown payee field', { ...testConfigJson(), payees: { shop: { nmae: 'x' } } }, /payees\.shop\.nmae: .*did you mean "name"\?/],
    ['an unknown shop field', { ...testConfigJson(), shop: { routes: [{ path: '/a', price: '1' }], timeout: 5 } }, /shop\.timeout: is not a field/],
    ['an unknown shop route field', { ...testConfigJson(), shop: { routes: [{ path: '/a', prize: '1', price: '1' }] } }, /shop\.routes\[0\]\.prize: .*did you mean "price"\?/],
    ['a trusted proxy that is no address', { ...testConfigJson(), limits: { trustedProxies: ['127.0.0.1', 'proxy.example'] } }, /limits\.trustedProxies\[1\]: must be an IPv4 or IPv6 address or CIDR block/],
    ['a trusted proxy block too wide', { ...testConfigJson(), limits: { trustedProxies: ['10.0.0.0/33'] } }, /limits\.trustedProxies\[0\]/],
    ['trusted proxies that are no list', { ...testConfigJson(), limits: { trustedProxies: '127.0.0.1' } }, /limits\.trustedProxies: must be an array/],
    ['all connections reserved for accounts', { ...testConfigJson(), limits: { maxConnections: 10, reservedConnections: 10 } }, /limits\.reservedConnections: must be an integer from 0 to 9/],
    ['a longest wait below the first', { ...testConfigJson(), limits: { authPenaltyMs: 5000, authPenaltyMaxMs: 1000 } }, /limits\.authPenaltyMaxMs: is less than limits\.authPenaltyMs/],
    ['an HTTP body larger than a frame', { ...testConfigJson(), limits: { maxHttpBodyBytes: 100_000 } }, /limits\.maxHttpBodyBytes: is more than limits\.maxFrameBytes \(65536\)/],
    ['metrics both public and with a token', { ...testConfigJson(), metrics: { public: true, token: 'a-metrics-token-of-16+' } }, /metrics\.public: is true, so metrics\.token would never be asked for/],
  ]
  for (const [name, json, message] of bad) {
    it(`refuses ${name}, naming the field`, () => {
      assert.throws(() => parseConfig(json, {}, MACHINE), (err: unknown) => err instanceof ConfigError && message.test(err.message))
    })
  }

  it('reads http.pipelining, 1 (none) unless set', () => {
    const http = (pipelining?: number) => withAccount({ btp: undefined, http: { url: 'http://127.0.0.1:1/', outgoingToken: 't', pipelining } })
    const alice = (json: Record<string, unknown>) => parseConfig(json, {}, MACHINE).accounts.find((a) => a.id === 'alice')!
    assert.equal(alice(http()).httpPipelining, 1)
    assert.equal(alice(http(8)).httpPipelining, 8)
    assert.equal(alice(testConfigJson()).httpPipelining, 1)
  })
})

describe('routing table', () => {
  it('picks the longest prefix on segment boundaries, with an optional default route', () => {
    const t = new RoutingTable()
    t.set('test.a', 1)
    t.set('test.a.b', 2)
    t.set('test.ab', 3)
    assert.equal(t.lookupAddress('test.a'), 1)
    assert.equal(t.lookupAddress('test.a.x'), 1)
    assert.equal(t.lookupAddress('test.a.b.c'), 2)
    assert.equal(t.lookupAddress('test.a.bc'), 1)
    assert.equal(t.lookupAddress('test.abc'), -1)
    assert.equal(t.lookupAddress('test.ab.c'), 3)
    assert.equal(t.lookupAddress('g.other'), -1)
    t.set('', 9)
    assert.equal(t.lookupAddress('g.other'), 9)
  })
})

describe('rates, spread and settlement in the config', () => {
  it('reads a spread as exact decimal text, rates by backend, and an account\'s settlement', () => {
    const json = withAccount({ spread: 0.01, settlement: { engine: 'btp-transfer', retryMs: 250 }, balance: { minimum: '-100', maximum: '100', settleThreshold: '-50', settleTo: '-10' } })
    const config = parseConfig({ ...json, spread: 0.002, rates: { backend: 'static', base: 'USD', table: { EUR: 0.9173, JPY: '138.050' } } }, {}, MACHINE)
    assert.equal(config.spread, '0.002')
    assert.deepEqual({ ...config.rates.table }, { USD: '1', EUR: '0.9173', JPY: '138.05' })
    const alice = config.accounts[0]
    assert.equal(alice.spread, '0.01')
    assert.deepEqual([alice.settleThreshold, alice.settleTo, alice.settlement], [-50n, -10n, { engine: 'btp-transfer', retryMs: 250 }])
    assert.equal(config.accounts[1].settlement, null)
    const plain = parseConfig(testConfigJson(), {}, MACHINE)
    assert.equal(plain.spread, '0')
    assert.equal(plain.rates.backend, 'one-to-one')
    const ecb = parseConfig({ ...testConfigJson(), rates: { backend: 'ecb' } }, {}, MACHINE).rates
    assert.deepEqual([ecb.url, ecb.refreshMs, ecb.maxAgeMs, ecb.base], ['https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml', 3600000, 86400000, 'EUR'])
  })

  it('keeps the settlement logs 30 days by default, limits.settlementLogRetentionMs from 1 s to 3650 days', () => {
    const DAY_MS = 86_400_000
    const retention = (value: unknown) => parseConfig({ ...testConfigJson(), limits: { settlementLogRetentionMs: value } }, {}, MACHINE).settlementLogRetentionMs
    assert.equal(parseConfig(testConfigJson(), {}, MACHINE).settlementLogRetentionMs, 30 * DAY_MS)
    assert.equal(retention(1000), 1000)
    assert.equal(retention(3650 * DAY_MS), 3650 * DAY_MS)
    assert.equal(retention('7200000'), 7200000)
    for (const bad of [999, 0, -1, 3650 * DAY_MS + 1, 1.5e3 + 0.5, 'a week', null]) {
      assert.throws(() => retention(bad), (err: unknown) => err instanceof ConfigError &&
        /^invalid configuration: limits\.settlementLogRetentionMs: must be an integer from 1000 to 315360000000$/.test(err.message), String(bad))
    }
  })
})

/** Names every plain object answers to (Object.prototype's, and `prototype`). */
const OBJECT_NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'toLocaleString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'propertyIsEnumerable', '__defineGetter__', '__lookupSetter__']

/**
 * The test config with one more account or payee. A computed key is an own key even when it is
 * "__proto__", as JSON.parse makes it from a file (a literal `__proto__: …` would set the prototype).
 */
function withKey(section: 'accounts' | 'payees', key: string): Record<string, unknown> {
  const json = testConfigJson()
  if (section === 'payees') return { ...json, payees: { [key]: {} } }
  return { ...json, accounts: { ...(json.accounts as object), [key]: { relation: 'child', assetCode: 'USD', assetScale: 9 } } }
}

/** The ConfigError parseConfig throws for `json`. */
function refusal(json: unknown): ConfigError {
  try {
    parseConfig(json, {}, MACHINE)
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  assert.fail('the config was accepted')
}

/** A message safe to show: one line, no invisible or reversing characters, short, no object's or function's text. */
function assertShownSafely(message: string): void {
  assert.doesNotMatch(message, /\[object Object\]|function/, message)
  assert.doesNotMatch(message, /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069]/, JSON.stringify(message))
  assert.ok(message.length < 600, `${message.length} characters: ${message.slice(0, 200)}`)
}

describe('names, asset codes and values from outside', () => {
  it('refuses account ids and payee names that every object has (__proto__, constructor, prototype, toString, ...)', () => {
    for (const name of OBJECT_NAMES) {
      assert.equal(isAccountId(name), false, name)
      const account = refusal(withKey('accounts', name))
      assert.equal(account.field, `accounts.${name}`)
      assert.match(account.problem, /^account ids are 1-64 characters .* other than the names JavaScript objects have built in/)
      const payee = refusal(withKey('payees', name))
      assert.equal(payee.field, `payees.${name}`)
      assert.match(payee.problem, /^payee names are 1-64 characters/)
    }
    assert.equal(isAccountId('alice'), true)
    assert.equal(isAccountId('proto'), true)
    assert.ok(Object.hasOwn(withKey('accounts', '__proto__').accounts as object, '__proto__'), 'the test sets the key, not the prototype')
  })

  it('takes an asset code of 1-16 printable ASCII characters wherever one is set, and nothing else', () => {
    const good = ['USD', 'XRP', 'A', 'x'.repeat(16), 'USDC.e', '!~']
    const bad: unknown[] = ['', 'x'.repeat(17), 'x'.repeat(5000), 'US\u0000D', 'US\nD', 'US\u202eD', 'U D', 'ÜSD', 5, {}, [], null, true]
    const places: [string, (code: unknown) => unknown][] = [
      ['accounts.alice.assetCode', (code) => withAccount({ assetCode: code })],
      ['payees.shop.assetCode', (code) => ({ ...testConfigJson(), payees: { shop: { assetCode: code, assetScale: 2 } } })],
      ['shop.payee.assetCode', (code) => ({ ...testConfigJson(), shop: { routes: [{ path: '/a', price: '1' }], payee: { assetCode: code, assetScale: 2 } } })],
      ['rates.base', (code) => ({ ...testConfigJson(), rates: { backend: 'static', base: code, table: {} } })],
    ]
    for (const [field, config] of places) {
      for (const code of good) assert.doesNotThrow(() => parseConfig(config(code), {}, MACHINE), `${field} ${code}`)
      for (const code of bad) {
        const err = refusal(config(code))
        assert.equal(err.field, field)
        assert.match(err.problem, /^must be 1-16 printable ASCII characters \(no spaces\), e\.g\. "USD", not /)
        assertShownSafely(err.message)
      }
    }
    const table = (code: string) => ({ ...testConfigJson(), rates: { backend: 'static', base: 'USD', table: { [code]: '2' } } })
    for (const code of good.filter((c) => c !== 'USD')) assert.equal(parseConfig(table(code), {}, MACHINE).rates.table[code], '2')
    for (const code of bad.filter((c): c is string => typeof c === 'string')) {
      const err = refusal(table(code))
      assert.match(err.field, /^rates\.table\./)
      assertShownSafely(err.message)
    }
    assert.equal(refusal(table('U D')).field, 'rates.table."U D"')
    assert.equal(refusal(withAccount({ assetCode: undefined })).problem, 'is required (1-16 printable ASCII characters (no spaces), e.g. "USD")')
    assert.match(refusal(withAccount({ assetCode: 'x'.repeat(5000) })).problem, /not "x{64}"… \(5000 characters\)$/)
    assert.match(refusal(withAccount({ assetCode: 'US\u202eD\n' })).problem, /not "US\\u202eD\\n"$/)
  })

  it('keeps a rate for an asset code that is a name objects have, and finds no rate where none is set', () => {
    const config = parseConfig({ ...testConfigJson(), rates: { backend: 'static', base: 'USD', table: { ['__proto__']: '5', constructor: '2' } } }, {}, MACHINE)
    const table = config.rates.table
    assert.deepEqual(Object.entries(table), [['USD', '1'], ['__proto__', '5'], ['constructor', '2']])
    assert.equal(Object.getPrototypeOf(table), null)
    assert.equal(table.toString, undefined)
  })

  it('shows outside values safely in every message, naming the field', () => {
    const long = 'y'.repeat(5000)
    const cases: [unknown, string][] = [
      [withAccount({ assetCode: {} }), 'accounts.alice.assetCode'],
      [withAccount({ balance: [] }), 'accounts.alice.balance'],
      [withAccount({ relation: { constructor: 1 } }), 'accounts.alice.relation'],
      [withAccount({ constructor: 1 }), 'accounts.alice.constructor'],
      [withAccount({ toString: 'x' }), 'accounts.alice.toString'],
      [withAccount({ ['__proto__']: { a: 1 } }), 'accounts.alice.__proto__'],
      [withAccount({ assetScale: 'nine' }), 'accounts.alice.assetScale'],
      [withAccount({ maxPacketAmount: { value: 1 } }), 'accounts.alice.maxPacketAmount'],
      [withAccount({ spread: [0.1] }), 'accounts.alice.spread'],
      [withAccount({ http: { url: `\n${long}`, outgoingToken: 't' } }), 'accounts.alice.http.url'],
      [withAccount({ [`x\n\u202e${long}`]: 1 }), `accounts.alice."x\\n\\u202e${'y'.repeat(61)}"… (5003 characters)`],
      [{ ...testConfigJson(), accounts: { [`a\nb${long}`]: {} } }, `accounts."a\\nb${'y'.repeat(61)}"… (5003 characters)`],
      [{ ...testConfigJson(), routes: [{ targetPrefix: 'test.a', peerId: `${long}\u202e` }] }, 'routes[0].peerId'],
      [{ ...testConfigJson(), ilpAddress: `test.${long}\n` }, 'ilpAddress (ILP_ADDRESS)'],
      [{ ...testConfigJson(), payees: { x: {} }, defaultPayee: `\u0000${long}` }, 'defaultPayee'],
      [{ ...testConfigJson(), payees: { [`\u202e${long}`]: {} } }, `payees."\\u202e${'y'.repeat(63)}"… (5001 characters)`],
      [{ ...testConfigJson(), shop: { routes: [{ path: '/a', price: '1', upstream: `${long}\n` }] } }, 'shop.routes[0].upstream'],
      [{ ...testConfigJson(), rates: { backend: 'static', base: 'USD', table: { EUR: {} } } }, 'rates.table.EUR'],
      [{ ...testConfigJson(), rates: { backend: 'static', base: 'USD', table: { toString: [] } } }, 'rates.table.toString'],
      [{ ...testConfigJson(), hasOwnProperty: 1 }, 'hasOwnProperty'],
    ]
    for (const [json, field] of cases) {
      const err = refusal(json)
      assert.equal(err.field, field, err.message)
      assert.ok(err.message.startsWith(`invalid configuration: ${field}: `), err.message)
      assertShownSafely(err.message)
    }
  })

  it('keeps an account id the admin API set as an account, whatever it is, and forgets one the node no longer allows', () => {
    const entry = { value: { relation: 'child', assetCode: 'USD', assetScale: 9 }, file: null }
    const combined = combine(testConfigJson(), { accounts: new Map([['__proto__', entry]]), routes: new Map() }).raw as { accounts: object }
    assert.deepEqual(Object.keys(combined.accounts), ['alice', 'bob', 'carl', '__proto__'])
    assert.equal(refusal(combined).field, 'accounts.__proto__')

    const dir = tempDir()
    const store = openStore(dir, 'process')
    try {
      writeOverlay(store, 'account', 'toString', entry)
      writeOverlay(store, 'account', 'dave', entry)
      const warnings: string[] = []
      const log: Logger = { error: () => {}, info: () => {}, debug: () => {}, enabled: () => true, warn: (message, fields) => warnings.push(`${message} ${fields?.accounts}`) }
      const { config, overlay } = startingConfig(parseConfig(testConfigJson(), {}, MACHINE), store, log)
      assert.deepEqual(warnings, ['accounts set through the admin API dropped: their ids are no longer allowed toString'])
      assert.deepEqual([...overlay.accounts.keys()], ['dave'])
      assert.deepEqual([...readOverlay(store).accounts.keys()], ['dave'])
      assert.deepEqual(config.accounts.map((a) => a.id), ['alice', 'bob', 'carl', 'dave'])
    } finally {
      void store.root.close()
      removeDir(dir)
    }
  })
})

/**
 * What a JSON Schema (the keywords z.toJSONSchema writes) finds wrong with a value: enough of the
 * JSON Schema 2020-12 validation vocabulary to check a config without another dependency.
 */
function schemaProblems(schema: Record<string, any>, value: unknown, at = '(top level)'): string[] {
  const type = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value
  const types: string[] = schema.type === undefined ? [] : [schema.type].flat()
  if (types.length > 0 && !types.some((t) => t === type || (t === 'integer' && Number.isInteger(value)))) return [`${at}: not ${types.join(' or ')}`]
  if (schema.enum !== undefined && !schema.enum.includes(value)) return [`${at}: not one of ${schema.enum.join(', ')}`]
  if (schema.const !== undefined && schema.const !== value) return [`${at}: not ${schema.const}`]
  const alternatives = schema.anyOf ?? schema.oneOf
  if (alternatives !== undefined && !alternatives.some((s: object) => schemaProblems(s, value, at).length === 0)) return [`${at}: no alternative matches`]
  if (typeof value === 'string') {
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) return [`${at}: does not match ${schema.pattern}`]
    if (schema.minLength !== undefined && value.length < schema.minLength) return [`${at}: shorter than ${schema.minLength}`]
  }
  if (typeof value === 'number' && (value < (schema.minimum ?? -Infinity) || value > (schema.maximum ?? Infinity))) return [`${at}: out of range`]
  if (Array.isArray(value)) {
    if (value.length < (schema.minItems ?? 0)) return [`${at}: fewer than ${schema.minItems} items`]
    return schema.items === undefined ? [] : value.flatMap((v, i) => schemaProblems(schema.items, v, `${at}[${i}]`))
  }
  if (type !== 'object') return []
  const object = value as Record<string, unknown>
  const field = (key: string) => at === '(top level)' ? key : `${at}.${key}`
  return [
    ...(schema.required ?? []).filter((key: string) => !Object.hasOwn(object, key)).map((key: string) => `${field(key)}: required`),
    ...Object.entries(object).flatMap(([key, v]) => {
      if (schema.propertyNames !== undefined && schemaProblems(schema.propertyNames, key).length > 0) return [`${field(key)}: not an allowed name`]
      if (schema.properties !== undefined && Object.hasOwn(schema.properties, key)) return schemaProblems(schema.properties[key], v, field(key))
      if (schema.additionalProperties === false) return [`${field(key)}: not allowed`]
      return typeof schema.additionalProperties === 'object' ? schemaProblems(schema.additionalProperties, v, field(key)) : []
    }),
  ]
}
