// Goal: the Grafana dashboard (scripts/grafana-dashboard.json) queries only metrics the node
// exports, imports as a Grafana dashboard, and the Prometheus example (scripts/prometheus.yml)
// scrapes the node the way /metrics asks. Method: every PromQL expression of the dashboard (panel
// targets and template variables) is reduced to the metric names it selects (strings, label
// matchers, ranges, grouping clauses, numbers, keywords and function calls taken out); a node with
// alice and bob gets fulfilled, rejected and settled traffic, /metrics is scraped with the bearer
// token, and each name must be a family the scrape declares (# TYPE), a histogram's _bucket, _sum
// and _count counting as their family. The checker is shown to report a misspelt name and a
// histogram suffix on a gauge. The dashboard's shape is checked against what Grafana's import
// needs (a datasource input, unique panel ids, grid positions, targets); the Prometheus file is
// read with a parser for the block-YAML subset it is written in (no YAML library is a dependency).

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { parseConfig } from '../../src/config/parse'
import {
  BtpPlugin, layoutName, MACHINE, sleep, testConfigJson, testLayout, withNode,
} from '../support/helpers'
import { sendKnownTraffic } from '../support/traffic'

const SCRIPTS = join(__dirname, '..', '..', '..', 'scripts')
const TOKEN = 'a-metrics-bearer-token'

// ---- PromQL: which metric names an expression selects ----

/** Words of PromQL that are not metric names where they stand without a parenthesis after them. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan'])
/** Functions and aggregations the dashboard may call (a misspelt one would query nothing). */
const FUNCTIONS = new Set([
  'sum', 'avg', 'min', 'max', 'count', 'topk', 'bottomk', 'quantile', 'stddev', 'stdvar', 'count_values', 'group',
  'rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'changes', 'resets', 'abs', 'clamp', 'clamp_min', 'clamp_max',
  'histogram_quantile', 'label_replace', 'label_join', 'vector', 'scalar', 'time', 'timestamp', 'absent', 'sort', 'sort_desc',
  'avg_over_time', 'max_over_time', 'min_over_time', 'sum_over_time', 'last_over_time', 'round', 'ceil', 'floor',
  // Grafana's template-variable queries
  'label_values', 'label_names', 'metrics', 'query_result',
])

interface Parsed {
  metrics: string[]
  functions: string[]
  variables: string[]
}

/** The metric names, functions and Grafana variables of one PromQL expression. */
function parsePromql(expr: string): Parsed {
  const variables = [...expr.matchAll(/\$\{?(\w+)\}?/g)].map((m) => m[1])
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ') // label values, regexes
    .replace(/\{[^}]*\}/g, ' ') // label matchers (their names are labels, not metrics)
    .replace(/\[[^\]]*\]/g, ' ') // range and subquery durations
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\$\{?\w+\}?/g, ' ') // Grafana variables left outside those
    // Grafana's label_values(metric, label) and label_values(label): the label is no metric.
    .replace(/\blabel_values\s*\(([^()]*)\)/g, (_, args: string) => `label_values(${args.includes(',') ? args.slice(0, args.lastIndexOf(',')) : ' '})`)
  assert.ok(!/[{}[\]"'`]/.test(bare), `unbalanced quotes or brackets in ${expr}`)
  const metrics: string[] = []
  const functions: string[] = []
  // A number (1e3, 0.99, 0x1f) is one token, so its letters are not read as a name.
  for (const m of bare.matchAll(/(\d[\w.]*)|([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] === undefined) continue
    if (m[3] !== undefined) functions.push(m[2])
    else if (!KEYWORDS.has(m[2].toLowerCase())) metrics.push(m[2])
  }
  return { metrics, functions, variables }
}

/** The family a sample name belongs to in a scrape, or undefined if none declares it. */
function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue
    const base = name.slice(0, -suffix.length)
    const type = types.get(base)
    if (type === 'histogram' || (type === 'summary' && suffix !== '_bucket')) return base
  }
  return undefined
}

/** The names a scrape does not declare: what the checks below must find empty. */
function missingNames(names: Iterable<string>, types: Map<string, string>): string[] {
  return [...new Set(names)].filter((name) => familyOf(name, types) === undefined).sort()
}

/** `# TYPE` lines of an exposition, and the names its samples carry. */
function declared(text: string): { types: Map<string, string>; sampled: Set<string> } {
  const types = new Map<string, string>()
  const sampled = new Set<string>()
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (t !== null) types.set(t[1], t[2])
    else if (line !== '' && !line.startsWith('#')) sampled.add(/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0])
  }
  return { types, sampled }
}

// ---- the dashboard ----

interface Target { refId?: unknown; expr?: unknown; datasource?: { type?: unknown; uid?: unknown } }
interface Panel {
  id?: unknown; type?: unknown; title?: unknown; datasource?: { type?: unknown; uid?: unknown }
  gridPos?: { h?: unknown; w?: unknown; x?: unknown; y?: unknown }; targets?: Target[]; panels?: Panel[]
}
interface Dashboard {
  __inputs?: { name: string; type: string; pluginId: string }[]
  __requires?: { type: string; id: string }[]
  title?: unknown; uid?: unknown; schemaVersion?: unknown
  panels?: Panel[]
  templating?: { list?: { name: string; type: string; query?: string | { query?: string }; datasource?: { uid?: unknown } }[] }
}

const DASHBOARD_TEXT = readFileSync(join(SCRIPTS, 'grafana-dashboard.json'), 'utf8')
const dashboard = JSON.parse(DASHBOARD_TEXT) as Dashboard

function allPanels(d: Dashboard): Panel[] {
  return (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])])
}

/** Every PromQL expression of the dashboard, named by where it is. */
function expressions(d: Dashboard): [string, string][] {
  const out: [string, string][] = []
  for (const p of allPanels(d)) for (const t of p.targets ?? []) out.push([`panel ${String(p.title)} ${String(t.refId)}`, String(t.expr)])
  for (const v of d.templating?.list ?? []) {
    if (v.type === 'query') out.push([`variable ${v.name}`, typeof v.query === 'string' ? v.query : String(v.query?.query)])
  }
  return out
}

function dashboardMetrics(d: Dashboard): string[] {
  return [...new Set(expressions(d).flatMap(([, e]) => parsePromql(e).metrics))].sort()
}

/** The families this dashboard draws: kept here so that a panel added or dropped is seen. */
const QUERIED = [
  'ilp_node_account_balance', 'ilp_node_account_balance_limit', 'ilp_node_answers_dropped_total', 'ilp_node_connections',
  'ilp_node_io_records_total', 'ilp_node_lmdb_commit_seconds_bucket', 'ilp_node_lmdb_commit_seconds_count',
  'ilp_node_lmdb_commit_seconds_sum', 'ilp_node_packet_amount_total', 'ilp_node_packets_total', 'ilp_node_prepares_in_flight',
  'ilp_node_ring_size_bytes', 'ilp_node_ring_used_bytes', 'ilp_node_settlement_log_entries', 'ilp_node_shard_packets_total',
  'ilp_node_thread_cpu_seconds_total', 'nodejs_eventloop_lag_seconds',
]

describe('the PromQL reading of the dashboard test', () => {
  it('finds the metric names of an expression and nothing else', () => {
    const p = parsePromql('histogram_quantile(0.99, sum by (le, shard) (rate(ilp_node_lmdb_commit_seconds_bucket{instance=~"$instance",le!="+Inf"}[$__rate_interval])))')
    assert.deepEqual(p.metrics, ['ilp_node_lmdb_commit_seconds_bucket'])
    assert.deepEqual(p.functions, ['histogram_quantile', 'sum', 'rate'])
    assert.deepEqual(p.variables, ['instance', '__rate_interval'])
    assert.deepEqual(parsePromql('a_used / on (instance, ring) group_left () b_size offset 5m > bool 1e3 and ignoring(x) c').metrics, ['a_used', 'b_size', 'c'])
    assert.deepEqual(parsePromql('sum(rate(x_total[5m:30s])) without (le) unless absent(y{z="sum(w)"})').metrics, ['x_total', 'y'])
    assert.deepEqual(parsePromql('label_values(ilp_node_packets_total{instance=~"$instance"}, account)').metrics, ['ilp_node_packets_total'])
    assert.deepEqual(parsePromql('label_values(account)').metrics, [])
  })

  it('reports a misspelt name and a histogram suffix on a family that is no histogram', () => {
    const types = new Map([['ilp_node_packets_total', 'counter'], ['ilp_node_account_balance', 'gauge'], ['ilp_node_lmdb_commit_seconds', 'histogram']])
    assert.deepEqual(missingNames(['ilp_node_packets_total', 'ilp_node_lmdb_commit_seconds_bucket', 'ilp_node_lmdb_commit_seconds_sum'], types), [])
    assert.deepEqual(missingNames(['ilp_node_packets_totl', 'ilp_node_account_balance_bucket', 'ilp_node_lmdb_commit_seconds'], types), ['ilp_node_account_balance_bucket', 'ilp_node_packets_totl'])
    // The same check over the dashboard's own names, with one panel's name misspelt.
    const broken = JSON.parse(DASHBOARD_TEXT.replace('rate(ilp_node_shard_packets_total', 'rate(ilp_node_shard_packet_total')) as Dashboard
    const everyType = new Map(QUERIED.map((n) => [n.replace(/_(bucket|sum|count)$/, ''), n.includes('lmdb_commit') ? 'histogram' : 'gauge']))
    assert.deepEqual(missingNames(dashboardMetrics(dashboard), everyType), [])
    assert.deepEqual(missingNames(dashboardMetrics(broken), everyType), ['ilp_node_shard_packet_total'])
  })
})

describe('scripts/grafana-dashboard.json', () => {
  it('queries the families the test knows, with functions PromQL has and variables the dashboard defines', () => {
    assert.deepEqual(dashboardMetrics(dashboard), QUERIED)
    const defined = new Set((dashboard.templating?.list ?? []).map((v) => v.name))
    for (const [where, expr] of expressions(dashboard)) {
      const p = parsePromql(expr)
      assert.ok(p.metrics.length > 0 || where.startsWith('variable'), `${where} selects no metric: ${expr}`)
      for (const f of p.functions) assert.ok(FUNCTIONS.has(f), `${where}: unknown function ${f}`)
      for (const v of p.variables) assert.ok(v.startsWith('__') || defined.has(v), `${where}: undefined variable $${v}`)
    }
  })

  it('imports as a Grafana dashboard: a Prometheus datasource input, unique panel ids, grid positions, targets', () => {
    assert.equal(typeof dashboard.title, 'string')
    assert.equal(typeof dashboard.uid, 'string')
    assert.ok(Number.isInteger(dashboard.schemaVersion))
    const inputs = dashboard.__inputs ?? []
    assert.deepEqual(inputs.map((i) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']])
    // Every ${DS_…} the file refers to is an input that import asks for.
    for (const m of DASHBOARD_TEXT.matchAll(/\$\{(DS_\w+)\}/g)) assert.ok(inputs.some((i) => i.name === m[1]), m[1])
    const ds = { type: 'prometheus', uid: '${DS_PROMETHEUS}' }
    const required = new Set((dashboard.__requires ?? []).filter((r) => r.type === 'panel').map((r) => r.id))
    const ids = new Set<unknown>()
    const cells = new Set<string>()
    for (const p of allPanels(dashboard)) {
      assert.ok(Number.isInteger(p.id) && !ids.has(p.id), `panel id ${String(p.id)} is an integer used once`)
      ids.add(p.id)
      assert.ok(typeof p.title === 'string' && p.title !== '', `panel ${String(p.id)} has a title`)
      const g = p.gridPos ?? {}
      for (const k of ['h', 'w', 'x', 'y'] as const) assert.ok(Number.isInteger(g[k]) && (g[k] as number) >= 0, `panel ${String(p.title)} gridPos.${k}`)
      const { h, w, x, y } = g as { h: number; w: number; x: number; y: number }
      assert.ok(w >= 1 && h >= 1 && x + w <= 24, `panel ${String(p.title)} fits the 24-column grid`)
      // No two panels share a grid cell.
      for (let r = y; r < y + h; r++) for (let c = x; c < x + w; c++) {
        assert.ok(!cells.has(`${r},${c}`), `panel ${String(p.title)} overlaps another at row ${r}, column ${c}`)
        cells.add(`${r},${c}`)
      }
      if (p.type === 'row') continue
      assert.ok(required.has(String(p.type)), `panel type ${String(p.type)} is in __requires`)
      assert.deepEqual(p.datasource, ds, `panel ${String(p.title)} datasource`)
      const targets = p.targets ?? []
      assert.ok(targets.length >= 1, `panel ${String(p.title)} has targets`)
      assert.equal(new Set(targets.map((t) => t.refId)).size, targets.length, `panel ${String(p.title)}: refIds are unique`)
      for (const t of targets) {
        assert.ok(typeof t.refId === 'string' && typeof t.expr === 'string' && t.expr !== '', `panel ${String(p.title)} target`)
        assert.deepEqual(t.datasource, ds)
      }
    }
    for (const v of dashboard.templating?.list ?? []) assert.deepEqual(v.datasource, ds, `variable ${v.name} datasource`)
  })
})

// ---- the Prometheus example ----

/**
 * Block YAML as the example is written: mappings of `key: value` and sequences of `- item`,
 * indented with spaces, plain scalars, `#` comments. Anything else (flow style, anchors, multi-line
 * scalars, tabs) is refused, so the file stays within what this reads.
 */
function parseBlockYaml(text: string): unknown {
  const lines: { n: number; indent: number; text: string }[] = []
  text.split('\n').forEach((raw, i) => {
    assert.ok(!raw.includes('\t'), `line ${i + 1}: a tab`)
    const body = raw.replace(/(^|\s)#.*$/, '').trimEnd()
    if (body.trim() !== '') lines.push({ n: i + 1, indent: body.length - body.trimStart().length, text: body.trimStart() })
  })
  let i = 0
  const scalar = (s: string, n: number): string => {
    assert.ok(!/^[[{&*!|>%@`]/.test(s), `line ${n}: only plain or quoted scalars here`)
    const q = /^"((?:[^"\\]|\\.)*)"$|^'([^']*)'$/.exec(s)
    return q === null ? s : (q[1] ?? q[2])
  }
  const block = (indent: number): unknown => (lines[i].text.startsWith('-') ? sequence(indent) : mapping(indent))
  const sequence = (indent: number): unknown[] => {
    const out: unknown[] = []
    while (i < lines.length && lines[i].indent === indent && /^-( |$)/.test(lines[i].text)) {
      const rest = lines[i].text.slice(1).trimStart()
      if (rest === '') {
        i++
        assert.ok(i < lines.length && lines[i].indent > indent, `line ${lines[i - 1].n}: an empty item`)
        out.push(block(lines[i].indent))
      } else if (/^[\w-]+:( |$)/.test(rest)) {
        // `- key: value` opens a mapping whose keys are indented as far as `key`.
        lines[i] = { ...lines[i], indent: indent + lines[i].text.length - rest.length, text: rest }
        out.push(mapping(lines[i].indent))
      } else {
        out.push(scalar(rest, lines[i].n))
        i++
      }
    }
    return out
  }
  const mapping = (indent: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {}
    while (i < lines.length && lines[i].indent === indent && !lines[i].text.startsWith('-')) {
      const m = /^([\w-]+):(?: (.*))?$/.exec(lines[i].text)
      assert.ok(m !== null, `line ${lines[i].n}: not a key: value`)
      assert.ok(!(m[1] in out), `line ${lines[i].n}: ${m[1]} twice`)
      const n = lines[i++].n
      if (m[2] !== undefined && m[2] !== '') out[m[1]] = scalar(m[2], n)
      else {
        assert.ok(i < lines.length && lines[i].indent > indent, `line ${n}: ${m[1]} has no value`)
        out[m[1]] = block(lines[i].indent)
      }
    }
    return out
  }
  const doc = block(0)
  assert.equal(i, lines.length, `line ${lines[i]?.n}: indented unlike the lines before it`)
  return doc
}

describe('scripts/prometheus.yml', () => {
  it('scrapes the node\'s default port at /metrics with a bearer token, in keys Prometheus knows', () => {
    const doc = parseBlockYaml(readFileSync(join(SCRIPTS, 'prometheus.yml'), 'utf8')) as Record<string, unknown>
    assert.deepEqual(Object.keys(doc).sort(), ['global', 'scrape_configs'])
    const jobs = doc.scrape_configs as Record<string, unknown>[]
    assert.ok(Array.isArray(jobs) && jobs.length === 1)
    const job = jobs[0]
    const SCRAPE_KEYS = ['job_name', 'metrics_path', 'scheme', 'scrape_interval', 'scrape_timeout', 'authorization', 'static_configs', 'honor_labels', 'tls_config']
    for (const key of Object.keys(job)) assert.ok(SCRAPE_KEYS.includes(key), `scrape_config key ${key}`)
    assert.equal(job.job_name, 'ilp-node')
    assert.equal(job.metrics_path, '/metrics')
    assert.equal(job.scheme, 'http')
    const auth = job.authorization as Record<string, string>
    assert.equal(auth.type, 'Bearer')
    assert.deepEqual(Object.keys(auth).sort(), ['credentials', 'type'], 'the token inline (credentials_file is the alternative the comment names)')
    assert.ok(auth.credentials.length > 0)
    const port = parseConfig({ ...testConfigJson(), dataDir: '/nonexistent' }, {}, MACHINE).port
    assert.deepEqual(job.static_configs, [{ targets: [`127.0.0.1:${port}`] }])
    assert.equal(port, 7768)
  })
})

// ---- the dashboard against a running node ----

/** bob settles (so its balance has settle lines) and may send the node BTP transfers. */
function nodeConfig(): Record<string, unknown> {
  const json = testConfigJson()
  const accounts = json.accounts as Record<string, Record<string, unknown>>
  accounts.bob = { ...accounts.bob, settlement: { engine: 'btp-transfer', retryMs: 200 }, balance: { settleThreshold: '-1000000', settleTo: '0' } }
  return { ...json, metrics: { token: TOKEN } }
}

/** A BTP Transfer from an ilp-plugin-btp client, as its sendMoney would send one with a transfer_id. */
function transferFrom(plugin: BtpPlugin, amount: string, id: Buffer): Promise<unknown> {
  return (plugin as unknown as { _call(to: null, packet: unknown): Promise<unknown> })._call(null, {
    type: 7, requestId: Math.floor(Math.random() * 2 ** 31), data: { amount, protocolData: [{ protocolName: 'transfer_id', contentType: 0, data: id }] },
  })
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
  assert.equal(res.status, 200)
  return res.text()
}

describe(`the dashboard's metrics on a node (${layoutName(0)})`, () => {
  const fixture = withNode(0, nodeConfig(), ['alice', 'bob'])

  it('declares every family the dashboard queries, with samples once traffic has gone through', async () => {
    const { alice, bob } = fixture.clients
    await sendKnownTraffic(alice, bob, { fulfilled: 10, unroutable: 1, rejected: 1 })
    await transferFrom(bob, '100', Buffer.alloc(16, 0x5a))

    // The counters are read from the threads' shared blocks; give a shard a moment to publish.
    let text = await scrape(fixture.node.port)
    for (let tries = 0; tries < 50 && !/^ilp_node_settlement_log_entries\{log="received"\} 1$/m.test(text); tries++) {
      await sleep(20)
      text = await scrape(fixture.node.port)
    }
    const { types, sampled } = declared(text)
    assert.deepEqual(missingNames(dashboardMetrics(dashboard), types), [], 'every name the dashboard queries is declared by /metrics')

    // Samples: each queried family has some, except those that exist only in some layouts or
    // only after events this traffic does not cause.
    const shards = testLayout(0).shards
    const withoutSamples = new Set<string>(['ilp_node_answers_dropped_total']) // only after a late or stray answer
    // Thread CPU is read from the threads named ilp-*; in this test process only the node's
    // workers are (the test's own main thread is not ilp-main), and with SHARDS=0 there are none.
    if (shards === 0 && testLayout(0).ioThreads === 1) withoutSamples.add('ilp_node_thread_cpu_seconds_total')
    const unsampled = dashboardMetrics(dashboard).filter((n) => !sampled.has(n) && !withoutSamples.has(n))
    assert.deepEqual(unsampled, [], 'families the dashboard draws with no sample after traffic')

    assert.match(text, /^ilp_node_packets_total\{account="alice",direction="incoming",result="F02"\} 1$/m)
    assert.match(text, /^ilp_node_account_balance_limit\{account="alice",limit="minimum"\} -1000000000$/m)
    assert.match(text, /^ilp_node_account_balance_limit\{account="bob",limit="settle_threshold"\} -1000000$/m)
    assert.match(text, /^ilp_node_settlement_log_entries\{log="received"\} 1$/m)
    assert.match(text, /^ilp_node_ring_size_bytes\{ring="io0_to_shard0"\} [1-9]\d*$/m)
  })
})
