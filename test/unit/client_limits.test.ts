// Goal: the parts the client gate stands on, each alone: IP addresses and CIDR blocks parsed (and
// malformed ones refused), a client named by its IPv4 address or IPv6 /64, X-Forwarded-For read
// only from trusted proxies and from the right, and the shared table's counts: the wait after
// failed authentications (its doubling, its cap, its end, failures forgotten), anonymous
// connections per address and per node, and a full table making room without losing a wait.
// (With real sockets: test/node/hostile_clients.test.ts.)

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { addressBytes, clientKey, inBlock, parseBlock } from '../../src/codec/ip_address'
import { ClientAddresses } from '../../src/io/client_address'
import { ClientTable, createSharedLimits, type ClientLimits } from '../../src/shared/client_table'

describe('IP addresses and CIDR blocks', () => {
  it('parses IPv4, IPv6 in every written form, and IPv4-mapped IPv6 to the same 16 bytes', () => {
    const v4 = addressBytes('192.0.2.1')!
    assert.deepEqual([...v4], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1])
    assert.deepEqual(addressBytes('::ffff:192.0.2.1'), v4)
    assert.deepEqual(addressBytes('0000:0000:0000:0000:0000:ffff:c000:0201'), v4)
    assert.deepEqual(addressBytes('2001:db8::1'), addressBytes('2001:0db8:0000:0000:0000:0000:0000:0001'))
    assert.deepEqual([...addressBytes('::')!], new Array(16).fill(0))
    assert.deepEqual([...addressBytes('::1')!], [...new Array(15).fill(0), 1])
  })

  it('refuses what is no address', () => {
    for (const text of ['', 'localhost', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.4 ', '2001:db8:::1', '2001:db8::1::2', 'g::1', '12345::', '::ffff:1.2.3', '\u0000', '1.2.3.4/8']) {
      assert.equal(addressBytes(text), null, JSON.stringify(text))
    }
  })

  it('parses addresses and CIDR blocks, and refuses malformed ones', () => {
    assert.ok(parseBlock('10.0.0.0/8'))
    assert.ok(parseBlock('127.0.0.1'))
    assert.ok(parseBlock('fd00::/8'))
    assert.ok(parseBlock('::/0'))
    for (const text of ['10.0.0.0/33', '10.0.0.0/', '10.0.0.0/x', '10.0.0.0/-1', '10.0.0.0/08x', '::/129', 'abc', 'abc/8', '', '/8', '10.0.0.0/8/8']) {
      assert.equal(parseBlock(text), null, text)
    }
  })

  it('matches an address against a block on its prefix bits only, IPv4 and IPv6 alike', () => {
    const ten = parseBlock('10.0.0.0/8')!
    assert.ok(inBlock(addressBytes('10.255.1.2')!, ten))
    assert.ok(!inBlock(addressBytes('11.0.0.1')!, ten))
    assert.ok(inBlock(addressBytes('::ffff:10.1.1.1')!, ten), 'an IPv4-mapped address is the IPv4 address')
    const odd = parseBlock('192.168.0.0/23')!
    assert.ok(inBlock(addressBytes('192.168.1.255')!, odd))
    assert.ok(!inBlock(addressBytes('192.168.2.0')!, odd))
    const fd = parseBlock('fd00::/8')!
    assert.ok(inBlock(addressBytes('fd12:3456::1')!, fd))
    assert.ok(!inBlock(addressBytes('fe80::1')!, fd))
    assert.ok(inBlock(addressBytes('2001:db8::1')!, parseBlock('::/0')!))
  })

  it('names a client by its IPv4 address or its IPv6 /64; other text is kept short', () => {
    assert.equal(clientKey('0000:0000:0000:0000:0000:ffff:7f00:0001'), '127.0.0.1')
    assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64')
    assert.equal(clientKey('2001:db8:1:2:bbbb::9'), '2001:db8:1:2::/64', 'one /64 is one client')
    assert.notEqual(clientKey('2001:db8:1:3::1'), clientKey('2001:db8:1:2::1'))
    assert.equal(clientKey('x'.repeat(1000)).length, 64)
  })
})

describe('X-Forwarded-For', () => {
  const proxies = new ClientAddresses(['127.0.0.1', '10.0.0.0/8'])

  it('is read only from a trusted proxy, from the right, past every trusted hop', () => {
    assert.equal(proxies.behindProxies('127.0.0.1', '198.51.100.7'), '198.51.100.7')
    assert.equal(proxies.behindProxies('127.0.0.1', '203.0.113.1, 198.51.100.7, 10.1.1.1'), '198.51.100.7', 'two proxies deep')
    assert.equal(proxies.behindProxies('198.51.100.9', '203.0.113.1'), '198.51.100.9', 'from anyone else: ignored')
    assert.equal(proxies.behindProxies('127.0.0.1', ''), '127.0.0.1', 'no header: the proxy itself')
    assert.equal(proxies.behindProxies('127.0.0.1', 'not-an-address'), 'not-an-address', 'a hop that is no address is the client\'s own, not the proxy\'s')
    assert.equal(proxies.behindProxies('127.0.0.1', '198.51.100.7:5678'), '198.51.100.7', 'a port is not part of the client')
    assert.equal(proxies.behindProxies('127.0.0.1', '[2001:db8::7]:443'), '2001:db8::7')
    assert.equal(proxies.behindProxies('127.0.0.1', '2001:db8::7'), '2001:db8::7', 'an IPv6 address keeps its colons')
    assert.equal(proxies.behindProxies('127.0.0.1', '10.0.0.1, 10.0.0.2'), '10.0.0.1', 'all trusted: the leftmost read')
  })

  it('reads at most 16 hops: padding on the left buys nothing', () => {
    const padded = [...Array.from({ length: 100 }, (_, i) => `203.0.113.${i}`), ...Array.from({ length: 20 }, () => '10.0.0.1')].join(', ')
    assert.equal(proxies.behindProxies('127.0.0.1', padded), '10.0.0.1')
  })

  it('with no trusted proxies, never reads the header', () => {
    assert.equal(new ClientAddresses([]).behindProxies('127.0.0.1', '198.51.100.7'), '127.0.0.1')
  })
})

/** A clock of our own: a time in 2027, as the node's clock would read. */
const T0 = 1_800_000_000_000

const LIMITS: ClientLimits = { anonymousPerAddress: 3, anonymousMax: 10, authFailuresFree: 2, authPenaltyMs: 1000, authPenaltyMaxMs: 4000 }

describe('the shared table of clients', () => {
  it('waits after the free failures, doubling to the cap; checks resume when the wait ends', () => {
    const table = new ClientTable(createSharedLimits(), LIMITS)
    const t = T0
    assert.equal(table.failed('a', t), 0)
    assert.equal(table.failed('a', t), 0)
    assert.equal(table.anyPenalty(t), false)
    assert.deepEqual([table.failed('a', t), table.failed('a', t), table.failed('a', t), table.failed('a', t)], [1000, 2000, 4000, 4000])
    assert.equal(table.anyPenalty(t), true)
    assert.equal(table.penaltyLeftMs('a', t + 1000), 3000, 'the longest wait stands')
    assert.equal(table.penaltyLeftMs('b', t), 0, 'another client does not wait')
    assert.equal(table.penaltyLeftMs('a', t + 4000), 0)
    assert.equal(table.anyPenalty(t + 5000), false, 'the hint (whole seconds) ends within a second of the last wait')
  })

  it('forgets failures 10 minutes after the last one', () => {
    const table = new ClientTable(createSharedLimits(), LIMITS)
    const t = T0
    for (let i = 0; i < 3; i++) table.failed('a', t)
    assert.equal(table.failed('a', t + 10 * 60_000 + 1), 0, 'free again')
  })

  it('caps anonymous connections per address and per node, and gives them back', () => {
    const table = new ClientTable(createSharedLimits(), LIMITS)
    const tickets = [0, 1, 2].map(() => table.openAnonymous('a'))
    assert.ok(tickets.every((t) => typeof t !== 'string'))
    assert.equal(table.openAnonymous('a'), 'address')
    const first = tickets[0]
    if (typeof first === 'string') throw new Error('unreachable')
    table.closeAnonymous(first)
    assert.notEqual(typeof table.openAnonymous('a'), 'string', 'a place given back is taken again')
    for (const c of ['b', 'c', 'd']) for (let i = 0; i < 2; i++) assert.notEqual(typeof table.openAnonymous(c), 'string')
    assert.notEqual(typeof table.openAnonymous('e'), 'string', 'the 10th')
    assert.equal(table.openAnonymous('f'), 'node', 'the node has its 10')
    // Held refusals have a cap of their own: they take no place an account needs to connect.
    for (let i = 0; i < 10; i++) assert.equal(table.openHeld(), true)
    assert.equal(table.openHeld(), false)
    table.closeHeld()
    assert.equal(table.openHeld(), true)
  })

  it('never takes a connection counted under a slot\'s earlier owner off its later one', () => {
    const table = new ClientTable(createSharedLimits(), { ...LIMITS, anonymousPerAddress: 2, anonymousMax: 1_000_000 })
    const t = T0
    const first = table.openAnonymous('returning', t)
    if (typeof first === 'string') throw new Error('refused')
    // The client's slot is evicted (it holds a connection, but so does every other candidate),
    // and the client comes back, possibly to the same slot.
    for (let i = 0; i < 100_000; i++) {
      const other = table.openAnonymous(`crowd-${i}`, t + 1 + i)
      if (typeof other === 'string') throw new Error('refused')
    }
    const again = [table.openAnonymous('returning', t + 200_000), table.openAnonymous('returning', t + 200_000)]
    assert.ok(again.every((ticket) => typeof ticket !== 'string'))
    table.closeAnonymous(first)
    assert.equal(table.openAnonymous('returning', t + 200_001), 'address', 'the old connection\'s release took nothing off the new count')
  })

  it('makes room for new clients when full, keeping the slots that hold a wait or a connection', () => {
    const table = new ClientTable(createSharedLimits(), { ...LIMITS, anonymousMax: 1_000_000 })
    const t = T0
    for (let i = 0; i < 3; i++) table.failed('guesser', t)
    const held = table.openAnonymous('holder', t)
    // Far more clients than slots pass by.
    for (let i = 0; i < 100_000; i++) table.failed(`passer-${i}`, t + 1)
    assert.equal(table.penaltyLeftMs('guesser', t + 1), 999, 'the wait survived the flood of new clients')
    if (typeof held === 'string') throw new Error('refused')
    table.closeAnonymous(held)
    assert.notEqual(typeof table.openAnonymous('holder', t + 2), 'string')
  })
})
