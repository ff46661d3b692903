// Goal: GET /metrics is valid Prometheus text, guarded by its bearer token, and its counters are
// exactly what went through the node. Method: a node with alice and bob (ilp-plugin-btp); alice
// sends fulfilled, unroutable (F02) and bob-rejected (F99) prepares of known amounts; the scrape
// is parsed with the text format's rules (comment lines, declared types, counter names ending in
// _total, label syntax and escaping, one value per series, histogram buckets cumulative up to
// +Inf) and its samples compared with what was sent, and with the configured balance limits.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  layoutName, testConfigJson, testLayout, withNode,
} from '../support/helpers'
import { sendKnownTraffic } from '../support/traffic'

const TOKEN = 'a-metrics-bearer-token'

interface Series {
  name: string
  labels: Record<string, string>
  value: number
}

/** Parses the text exposition format (version 0.0.4) strictly; throws on any line it does not allow. */
function parseExposition(text: string): { types: Map<string, string>; series: Series[] } {
  const types = new Map<string, string>()
  const series: Series[] = []
  const seen = new Set<string>()
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
  const familyOf = (name: string): string | undefined => {
    if (types.has(name)) return name
    for (const suffix of ['_bucket', '_sum', '_count']) {
      const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : null
      if (base !== null && types.get(base) === 'histogram') return base
    }
    return undefined
  }
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline')
  for (const line of text.split('\n')) {
    if (line === '') continue
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([^ ]+) (.*)$/.exec(line)
      assert.ok(m !== null, `bad comment line: ${line}`)
      assert.match(m[2], NAME, `bad metric name: ${line}`)
      if (m[1] === 'TYPE') {
        assert.match(m[3], /^(counter|gauge|histogram|summary|untyped)$/, `bad type: ${line}`)
        assert.ok(!types.has(m[2]), `type declared twice: ${m[2]}`)
        types.set(m[2], m[3])
      }
      continue
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line)
    assert.ok(m !== null, `bad sample line: ${line}`)
    const labels: Record<string, string> = {}
    if (m[3] !== undefined && m[3] !== '') {
      const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y
      let pos = 0
      while (pos < m[3].length) {
        LABEL.lastIndex = pos
        const l = LABEL.exec(m[3])
        assert.ok(l !== null, `bad labels: ${line}`)
        labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
        pos = LABEL.lastIndex
      }
    }
    const family = familyOf(m[1])
    assert.ok(family !== undefined, `sample of an undeclared family: ${line}`)
    if (types.get(family) === 'counter') assert.match(m[1], /_total$/, `counter without _total: ${m[1]}`)
    const key = `${m[1]}${JSON.stringify(Object.entries(labels).sort())}`
    assert.ok(!seen.has(key), `series twice: ${line}`)
    seen.add(key)
    const value = Number(m[4])
    assert.ok(!Number.isNaN(value) || m[4] === 'NaN', `bad value: ${line}`)
    series.push({ name: m[1], labels, value })
  }
  return { types, series }
}

function value(series: Series[], name: string, labels: Record<string, string>): number | undefined {
  return series.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
}

async function scrape(port: number, token: string | null): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } })
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() }
}

describe(`metrics (${layoutName(0)})`, () => {
  // carl settles: its balance limits are the settle lines alone (it has no minimum or maximum).
  const json = testConfigJson()
  const accounts = json.accounts as Record<string, Record<string, unknown>>
  accounts.carl = { ...accounts.carl, settlement: { engine: 'btp-transfer' }, balance: { settleThreshold: '-500', settleTo: '100' } }
  const fixture = withNode(0, { ...json, metrics: { token: TOKEN } }, ['alice', 'bob'])

  it('refuses a scrape without the bearer token or with a wrong one (401)', async () => {
    assert.equal((await scrape(fixture.node.port, null)).status, 401)
    assert.equal((await scrape(fixture.node.port, 'not-the-metrics-token')).status, 401)
  })

  it('declares its families before traffic, with a zero fulfill series per account and direction', async () => {
    const res = await scrape(fixture.node.port, TOKEN)
    assert.equal(res.status, 200)
    for (const account of ['alice', 'bob']) {
      for (const direction of ['incoming', 'outgoing']) {
        for (const name of ['ilp_node_packets_total', 'ilp_node_packet_amount_total']) {
          assert.ok(res.text.includes(`${name}{account="${account}",direction="${direction}",result="fulfill"} 0\n`), `${name} ${account} ${direction}`)
        }
      }
    }
    const { types } = parseExposition(res.text)
    for (const [name, type] of [
      ['ilp_node_packets_total', 'counter'], ['ilp_node_packet_amount_total', 'counter'], ['ilp_node_account_balance', 'gauge'],
      ['ilp_node_prepares_in_flight', 'gauge'], ['ilp_node_connections', 'gauge'], ['ilp_node_thread_cpu_seconds_total', 'counter'],
      ['ilp_node_shard_packets_total', 'counter'], ['ilp_node_io_records_total', 'counter'], ['ilp_node_answers_dropped_total', 'counter'],
      ['ilp_node_ring_used_bytes', 'gauge'], ['ilp_node_ring_size_bytes', 'gauge'], ['ilp_node_lmdb_commit_seconds', 'histogram'],
      ['ilp_node_account_balance_limit', 'gauge'], ['ilp_node_settlement_log_entries', 'gauge'],
    ]) {
      assert.equal(types.get(name), type, name)
      assert.match(res.text, new RegExp(`^# HELP ${name} `, 'm'), name)
    }
  })

  it('counts exactly what was sent: fulfilled, rejected by the node, rejected by the next hop', async () => {
    const { alice, bob } = fixture.clients
    await sendKnownTraffic(alice, bob, { fulfilled: 25, unroutable: 4, rejected: 2 }, { fulfilled: '3', unroutable: '5', rejected: '11' })

    const res = await scrape(fixture.node.port, TOKEN)
    assert.equal(res.status, 200)
    assert.match(res.type ?? '', /^text\/plain; version=0\.0\.4/)
    const { types, series } = parseExposition(res.text)
    assert.equal(types.get('ilp_node_packets_total'), 'counter')
    assert.equal(types.get('ilp_node_lmdb_commit_seconds'), 'histogram')
    const packets = (account: string, direction: string, result: string) => value(series, 'ilp_node_packets_total', { account, direction, result })
    const amount = (account: string, direction: string, result: string) => value(series, 'ilp_node_packet_amount_total', { account, direction, result })
    assert.equal(packets('alice', 'incoming', 'fulfill'), 25)
    assert.equal(amount('alice', 'incoming', 'fulfill'), 75)
    assert.equal(packets('bob', 'outgoing', 'fulfill'), 25)
    assert.equal(amount('bob', 'outgoing', 'fulfill'), 75)
    assert.equal(packets('alice', 'incoming', 'F02'), 4)
    assert.equal(amount('alice', 'incoming', 'F02'), 20)
    assert.equal(packets('alice', 'incoming', 'F99'), 2)
    assert.equal(packets('bob', 'outgoing', 'F99'), 2)
    assert.equal(amount('bob', 'outgoing', 'F99'), 22)
    assert.equal(packets('bob', 'incoming', 'fulfill'), 0, 'bob sent no prepares')
    assert.equal(packets('bob', 'incoming', 'F02'), undefined, 'reject codes appear when they occur')
    assert.equal(value(series, 'ilp_node_account_balance', { account: 'alice' }), 75)
    assert.equal(value(series, 'ilp_node_account_balance', { account: 'bob' }), -75)
    assert.equal(value(series, 'ilp_node_connections', { transport: 'btp' }), 2)
    // Limits from the config, in base units; an unbounded side has no series.
    const limits = (account: string) => Object.fromEntries(series.filter((s) => s.name === 'ilp_node_account_balance_limit' && s.labels.account === account).map((s) => [s.labels.limit, s.value]))
    assert.deepEqual(limits('alice'), { minimum: -1000000000, maximum: 1000000000 })
    assert.deepEqual(limits('bob'), {})
    assert.deepEqual(limits('carl'), { settle_threshold: -500, settle_to: 100 })
    for (const log of ['sent', 'received', 'sending']) assert.equal(value(series, 'ilp_node_settlement_log_entries', { log }), 0, `settlement log ${log}`)
    const inFlight = series.filter((s) => s.name === 'ilp_node_prepares_in_flight')
    assert.ok(inFlight.length >= 1 && inFlight.every((s) => s.value === 0))
    // Threads are named by the threads themselves (the test process's main thread is not ilp-main).
    assert.equal(types.get('ilp_node_thread_cpu_seconds_total'), 'counter')
    if (testLayout(0).shards > 0) assert.ok(series.some((s) => s.name === 'ilp_node_thread_cpu_seconds_total' && s.labels.thread === 'ilp-shard-0'))
    assert.ok(series.some((s) => s.name === 'process_resident_memory_bytes'), 'prom-client default metrics')
    assert.ok(series.some((s) => s.name === 'nodejs_eventloop_lag_seconds'))
    // The commit histogram: cumulative buckets up to +Inf, equal to its count.
    const count = series.filter((s) => s.name === 'ilp_node_lmdb_commit_seconds_count').reduce((a, s) => a + s.value, 0)
    assert.ok(count >= 1)
    for (const shard of new Set(series.filter((s) => s.name === 'ilp_node_lmdb_commit_seconds_bucket').map((s) => s.labels.shard))) {
      const buckets = series.filter((s) => s.name === 'ilp_node_lmdb_commit_seconds_bucket' && s.labels.shard === shard)
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value)
      assert.equal(buckets[buckets.length - 1].labels.le, '+Inf')
      assert.equal(buckets[buckets.length - 1].value, value(series, 'ilp_node_lmdb_commit_seconds_count', { shard }))
    }
  })
})

describe('metrics off', () => {
  const fixture = withNode(0, { ...testConfigJson(), metrics: { enabled: false } })

  it('answers 404 on /metrics', async () => {
    assert.equal((await scrape(fixture.node.port, null)).status, 404)
  })
})
