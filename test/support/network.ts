// A fixture for suites that run several nodes linked to each other: the suite describes the nodes
// (each a config as withNode takes it), the links between them (one node's account dials another
// node's account) and the clients each node gets; the fixture fills in the links' transport
// settings, starts the nodes in an order that lets each dialler know its listener's port, waits
// until every link is really up, connects the clients, and tears it all down after the suite,
// however far the start got. It does for several nodes what withNode (test/support/helpers.ts)
// does for one, so a suite's before hook keeps only what is its own.
// Other parties a suite runs itself (an ilp-connector, an ilp-plugin-btp listener) can join: the
// suite gives their start and stop, the fixture fits them into the start order, waits for a
// node's link to one as for any link, and stops them before the nodes.

import { after, before } from 'node:test'
import type { RunningNode } from '../../src/node'
import { BtpPlugin, connectPlugin, freePort, removeDir, startTestNode, tempDir, waitUntil } from './helpers'

/**
 * A node's config, as startTestNode takes it; the links fill in their accounts' `btp` / `http`.
 * A function is called when the node is about to start (for ports picked in a before hook, or by
 * a party as it started).
 */
export type NetworkNodeJson = Record<string, unknown> | (() => Record<string, unknown>)

/** Something on the network the suite runs itself: an ilp-connector, a plugin listener. */
export interface NetworkPartySpec {
  /**
   * Starts it, its listeners up; called in the start order, and must not wait for a node that
   * starts later (a listening ilp-plugin-btp's connect() waits until its dialler is in, so such a
   * listener stays with the suite, as in test/node/peer_loss.test.ts).
   */
  start(): Promise<void>
  /** Stops it, its clients included; called before any node stops, even after a failed start. */
  stop(): Promise<void>
  /** Nodes or parties to start before this one. */
  after?: string[]
}

export interface NetworkLinkSpec {
  /** The dialling side, `<node>.<account>`: that account of that node dials the other node. */
  from: string
  /**
   * The answering side, `<node>.<account>`: the account the dialler is known by there. Or the
   * name of a party: then the suite writes the dialler's URL in its config, and over BTP the
   * fixture starts the party first and waits for the dialler's end of the link.
   */
  to: string
  /**
   * 'btp' (the default): `from` dials `to`'s node over BTP, authenticating as `to`'s account.
   * 'http': ILP over HTTP both ways, each POSTing to the other's /ilp; there is no connection,
   * so such a link is up once both nodes listen, and `from` / `to` only name the two ends. To a
   * party it changes nothing: the suite orders the two with `after`.
   */
  transport?: 'btp' | 'http'
  /** The secret `from` sends; default `<from node>-to-<to node>` (over HTTP the other way: reversed). */
  token?: string
}

export interface NetworkSpec {
  /** The nodes, by name. */
  nodes: Record<string, NetworkNodeJson>
  /** Shards of each node when the run names no layout (see testLayout); 0 unless given. */
  shards?: number
  links?: NetworkLinkSpec[]
  /**
   * BTP clients to connect once the links are up, each `<node>.<account>`; a client's token is
   * `<account>-token`. They are in `clients[node][account]`.
   */
  clients?: string[]
  /** Parties by name; the names are shared with the nodes'. */
  parties?: Record<string, NetworkPartySpec>
  /** How long to wait for each link to come up before the start fails; 10 s unless given. */
  linkTimeoutMs?: number
}

export interface Network {
  /** The running nodes, by name. */
  nodes: Record<string, RunningNode>
  /** The connected clients, by node, then account. */
  clients: Record<string, Record<string, BtpPlugin>>
  /** Each node's data directory, by name. */
  dirs: Record<string, string>
  /**
   * Disconnects the clients, stops the parties, then the nodes (each time the last started first),
   * and removes the nodes' directories; a second call does nothing.
   */
  stop(): Promise<void>
}

/** One end of a link: a node's account, or a party (account null). */
interface End { node: string; account: string | null }

interface Link { from: End; to: End; transport: 'btp' | 'http'; token: string; name: string }

/** `<node>.<account>` (or a party's name, where `party`), checked against the spec. */
function endOf(spec: NetworkSpec, name: string, what: string, party = false): End {
  if (party && spec.parties?.[name] !== undefined) return { node: name, account: null }
  const dot = name.indexOf('.')
  if (dot < 1 || spec.nodes[name.slice(0, dot)] === undefined) {
    throw new Error(`withNetwork: ${what} "${name}" names no node's account (<node>.<account>)${party ? ' nor a party' : ''}`)
  }
  return { node: name.slice(0, dot), account: name.slice(dot + 1) }
}

function linksOf(spec: NetworkSpec): Link[] {
  return (spec.links ?? []).map((l) => {
    const from = endOf(spec, l.from, 'link end')
    const to = endOf(spec, l.to, 'link end', true)
    return { from, to, transport: l.transport ?? 'btp', token: l.token ?? `${from.node}-to-${to.node}`, name: `${l.from} → ${l.to}` }
  })
}

/**
 * The order to start nodes and parties in: a BTP listener before its dialler, so the dialler's URL
 * can name the port the listener got, and each after what its `after` names. Nodes whose port must
 * be known before they start (an end of an HTTP link between nodes, which both ends dial; a node in
 * a cycle of BTP links) get a free port picked first, and their diallers need not wait for them.
 */
function startOrder(spec: NetworkSpec, links: Link[]): { order: string[]; pickPort: Set<string> } {
  const parties = spec.parties ?? {}
  const names = [...Object.keys(spec.nodes), ...Object.keys(parties)]
  const both = Object.keys(parties).filter((n) => spec.nodes[n] !== undefined)
  if (both.length > 0) throw new Error(`withNetwork: ${both.join(', ')} named both a node and a party`)
  const pickPort = new Set(links.filter((l) => l.transport === 'http' && l.to.account !== null).flatMap((l) => [l.from.node, l.to.node]))
  // `before`: must have started; `port`: a node whose port must be known (started, or picked).
  const needs = new Map(names.map((n) => [n, { before: new Set(parties[n]?.after ?? []), port: new Set<string>() }]))
  for (const l of links) {
    if (l.transport !== 'btp' || l.from.node === l.to.node) continue
    needs.get(l.from.node)![l.to.account === null ? 'before' : 'port'].add(l.to.node)
  }
  for (const [name, { before }] of needs) {
    for (const n of before) if (!names.includes(n)) throw new Error(`withNetwork: ${name} starts after ${n}, which is neither a node nor a party`)
  }
  const order: string[] = []
  const ready = (n: string) => {
    const { before, port } = needs.get(n)!
    return [...before].every((m) => order.includes(m)) && [...port].every((m) => order.includes(m) || pickPort.has(m))
  }
  while (order.length < names.length) {
    const left = names.filter((n) => !order.includes(n))
    const next = left.find(ready)
    if (next !== undefined) {
      order.push(next)
      continue
    }
    // A cycle of BTP links: its nodes' ports are picked up front, which frees them to start.
    const stuck = left.filter((n) => spec.nodes[n] !== undefined && !pickPort.has(n))
    if (stuck.length === 0) throw new Error(`withNetwork: no order starts ${left.join(', ')} each after what it needs`)
    for (const n of stuck) pickPort.add(n)
  }
  return { order, pickPort }
}

/** A copy of the node's config with each link's transport set on its accounts, given the ports. */
function configOf(spec: NetworkSpec, name: string, links: Link[], ports: Map<string, number>): Record<string, unknown> {
  const given = spec.nodes[name]
  const json = typeof given === 'function' ? given() : given
  const accounts = { ...(json.accounts as Record<string, Record<string, unknown>> | undefined) }
  const set = (link: Link, account: string, field: 'btp' | 'http', value: Record<string, unknown>) => {
    if (accounts[account] === undefined) throw new Error(`withNetwork: node ${name} has no account ${account} (link ${link.name})`)
    accounts[account] = { ...accounts[account], [field]: { ...(accounts[account][field] as Record<string, unknown> | undefined), ...value } }
  }
  for (const l of links) {
    // A link to a party: the suite wrote the dialler's transport itself.
    if (l.to.account === null) continue
    if (l.transport === 'btp') {
      if (l.from.node === name) set(l, l.from.account!, 'btp', { url: `btp+ws://${l.to.account}:${l.token}@127.0.0.1:${ports.get(l.to.node)}` })
      if (l.to.node === name) set(l, l.to.account, 'btp', { token: l.token })
    } else {
      const back = `${l.token}-reversed`
      if (l.from.node === name) set(l, l.from.account!, 'http', { url: `http://127.0.0.1:${ports.get(l.to.node)}/ilp`, outgoingToken: l.token, incomingToken: back })
      if (l.to.node === name) set(l, l.to.account, 'http', { url: `http://127.0.0.1:${ports.get(l.from.node)}/ilp`, outgoingToken: back, incomingToken: l.token })
    }
  }
  return { ...json, ...(ports.has(name) && json.port === undefined ? { port: ports.get(name) } : {}), accounts }
}

/**
 * Starts the network the spec describes; see withNetwork. If a step fails, what had started is
 * stopped before the error is thrown on.
 */
export async function startNetwork(spec: NetworkSpec): Promise<Network> {
  const links = linksOf(spec)
  const clients = (spec.clients ?? []).map((c) => endOf(spec, c, 'client'))
  const { order, pickPort } = startOrder(spec, links)
  const parties = spec.parties ?? {}
  const started: string[] = []
  let stopped = false
  const net: Network = {
    nodes: {},
    clients: {},
    dirs: {},
    async stop() {
      if (stopped) return
      stopped = true
      const errors: unknown[] = []
      const attempt = async (step: () => Promise<void> | void) => {
        try {
          await step()
        } catch (err) {
          errors.push(err)
        }
      }
      await Promise.all(Object.values(net.clients).flatMap((byAccount) => Object.values(byAccount)).map((c) => attempt(() => c.disconnect())))
      // Parties first: an ilp-connector's BTP listeners stay open after its shutdown() if the
      // peer had closed its link cleanly first, which would keep the test process alive.
      const last = [...started].reverse()
      for (const name of last.filter((n) => parties[n] !== undefined)) await attempt(() => parties[name].stop())
      for (const name of last.filter((n) => parties[n] === undefined)) await attempt(() => net.nodes[name].stop())
      for (const dir of Object.values(net.dirs)) await attempt(() => removeDir(dir))
      if (errors.length > 0) throw errors[0]
    },
  }
  try {
    const ports = new Map<string, number>()
    for (const name of pickPort) {
      const json = spec.nodes[name]
      ports.set(name, (typeof json === 'function' ? undefined : json.port as number | undefined) ?? await freePort())
    }
    for (const name of order) {
      if (parties[name] !== undefined) {
        // Counted as started first: a start that fails half-way may have listeners to close.
        started.push(name)
        await parties[name].start()
        continue
      }
      net.dirs[name] = tempDir()
      net.nodes[name] = await startTestNode(spec.shards ?? 0, net.dirs[name], configOf(spec, name, links, ports))
      started.push(name)
      ports.set(name, net.nodes[name].port)
    }
    const timeoutMs = spec.linkTimeoutMs ?? 10_000
    for (const l of links.filter((k) => k.transport === 'btp')) {
      // Up on both ends: the dialler has its link, and the listener has taken it for the account
      // (a party's end is the suite's to know; the dialler's is enough there).
      const up = (end: End) => end.account === null || net.nodes[end.node].ioThreads.linkOf(end.account) >= 0
      const side = (end: End) => `${end.node}'s account ${end.account} ${up(end) ? 'linked' : 'has no link'}`
      const state = () => l.to.account === null ? side(l.from) : `${side(l.from)}, ${side(l.to)}`
      await waitUntil(() => up(l.from) && up(l.to), timeoutMs, () => `withNetwork: BTP link ${l.name} never came up: ${state()}`)
    }
    for (const name of Object.keys(spec.nodes)) net.clients[name] = {}
    for (const { node, account } of clients) net.clients[node][account!] = await connectPlugin(net.nodes[node].port, account!, `${account}-token`)
  } catch (err) {
    await net.stop().catch(() => undefined)
    throw err
  }
  return net
}

/**
 * Registers the before and after hooks of a suite that runs several linked nodes: before, the
 * network `spec` describes is started (startNetwork); after, it is stopped, even if a test or the
 * start failed. The fixture's fields are set once the before hook has run.
 *
 *   const net = withNetwork({
 *     nodes: {
 *       a: { ilpAddress: 'test.a', accounts: { b: PEER, carol: CHILD } },
 *       b: { ilpAddress: 'test.b', accounts: { a: PEER, dave: CHILD } },
 *     },
 *     links: [{ from: 'b.a', to: 'a.b' }], // b's account a dials a, which knows it as its account b
 *     clients: ['a.carol', 'b.dave'],
 *   })
 *   it('…', async () => { const { carol } = net.clients.a; … net.nodes.b.balance('a') … })
 */
export function withNetwork(spec: NetworkSpec): Network {
  const fixture: Network = { nodes: {}, clients: {}, dirs: {}, stop: async () => undefined }
  let running: Network | null = null
  before(async () => {
    running = await startNetwork(spec)
    Object.assign(fixture, { nodes: running.nodes, clients: running.clients, dirs: running.dirs })
  })
  after(async () => {
    await running?.stop()
  })
  fixture.stop = async () => {
    await running?.stop()
    running = null
  }
  return fixture
}

// ilp-connector@23 ships no types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { createApp } = require('ilp-connector') as { createApp(opts: unknown): { listen(): Promise<void>; shutdown(): Promise<void> } }

/** An ilp-connector@23 config as the tests run it: one-to-one rates, no fee, in memory, quick to give up on a link. */
export function connectorConfig(ilpAddress: string, accounts: Record<string, unknown>, more: Record<string, unknown> = {}): Record<string, unknown> {
  return { ilpAddress, backend: 'one-to-one', spread: 0, store: 'memory', initialConnectTimeout: 500, ...more, accounts }
}

/**
 * A party: ilp-connector@23, in this process, with the config `config(zoePort)` gives when the
 * party starts, and zoe, a BTP client of its account `zoe`, which the config makes listen on
 * `zoePort` (a free port the party picks) with the secret `zoe-secret`: who pays and is paid on
 * the connector's side.
 */
export class ConnectorParty implements NetworkPartySpec {
  zoe!: BtpPlugin
  private connector: { listen(): Promise<void>; shutdown(): Promise<void> } | null = null

  constructor(private readonly config: (zoePort: number) => Record<string, unknown>, readonly after: string[] = []) {}

  async start(): Promise<void> {
    const zoePort = await freePort()
    this.connector = createApp(this.config(zoePort))
    await this.connector.listen()
    this.zoe = new BtpPlugin({ server: `btp+ws://zoe:zoe-secret@127.0.0.1:${zoePort}` })
    await this.zoe.connect()
  }

  async stop(): Promise<void> {
    await this.zoe?.disconnect()
    await this.connector?.shutdown()
  }
}
