// A fixture for suites that run several nodes linked to each other: the suite describes the nodes
// (each a config as withNode takes it), the links between them (one node's account dials another
// node's account) and the clients each node gets; the fixture fills in the links' transport
// settings, starts the nodes in an order that lets each dialler know its listener's port, waits
// until every link is really up, connects the clients, and tears it all down after the suite,
// however far the start got. It does the same for one node as withNode (test/support/helpers.ts),
// so a suite's before hook keeps only what is its own.

import { after, before } from 'node:test'
import type { RunningNode } from '../../src/node'
import { BtpPlugin, connectPlugin, freePort, removeDir, sleep, startTestNode, tempDir } from './helpers'

export interface NetworkNodeSpec {
  /** The node's config, as startTestNode takes it; the links fill in their accounts' `btp` / `http`. */
  json: Record<string, unknown>
  /** Shards when the run names no layout (see testLayout); 0 unless given. */
  shards?: number
  /** Accounts of this node to connect a BTP client to; each client's token is `<account>-token`. */
  clients?: string[]
}

export interface NetworkLinkSpec {
  /** The dialling side, `<node>.<account>`: that account of that node dials the other node. */
  from: string
  /** The answering side, `<node>.<account>`: the account the dialler is known by there. */
  to: string
  /**
   * 'btp' (the default): `from` dials `to`'s node over BTP, authenticating as `to`'s account.
   * 'http': ILP over HTTP both ways, each POSTing to the other's /ilp; there is no connection,
   * so such a link is up once both nodes listen, and `from` / `to` only name the two ends.
   */
  transport?: 'btp' | 'http'
  /** The secret `from` sends; default `<from node>-to-<to node>` (over HTTP the other way: reversed). */
  token?: string
}

export interface NetworkSpec {
  nodes: Record<string, NetworkNodeSpec>
  links?: NetworkLinkSpec[]
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
  /** Disconnects the clients, stops the nodes (the last started first) and removes their directories. */
  stop(): Promise<void>
}

interface End { node: string; account: string }

function endOf(spec: NetworkSpec, name: string): End {
  const dot = name.indexOf('.')
  const end = { node: name.slice(0, dot), account: name.slice(dot + 1) }
  const node = spec.nodes[end.node]
  if (dot < 1 || node === undefined) throw new Error(`withNetwork: link end "${name}" names no node (<node>.<account>)`)
  const accounts = (node.json.accounts ?? {}) as Record<string, unknown>
  if (accounts[end.account] === undefined) throw new Error(`withNetwork: node ${end.node} has no account ${end.account} (link end "${name}")`)
  return end
}

/**
 * The order to start the nodes in: a BTP listener before its dialler, so the dialler's URL can
 * name the port the listener got. Nodes whose port must be known before they start (an end of an
 * HTTP link, which both ends dial; a node in a cycle of BTP links) get a free port picked first.
 */
function startOrder(spec: NetworkSpec, links: { from: End; to: End; transport: 'btp' | 'http' }[]): { order: string[]; pickPort: Set<string> } {
  const names = Object.keys(spec.nodes)
  const pickPort = new Set(links.filter((l) => l.transport === 'http').flatMap((l) => [l.from.node, l.to.node]))
  const waitsFor = new Map(names.map((n) => [n, new Set<string>()]))
  for (const l of links) if (l.transport === 'btp' && l.from.node !== l.to.node) waitsFor.get(l.from.node)!.add(l.to.node)
  const order: string[] = []
  while (order.length < names.length) {
    const next = names.find((n) => !order.includes(n) && [...waitsFor.get(n)!].every((m) => order.includes(m) || pickPort.has(m)))
    if (next !== undefined) {
      order.push(next)
      continue
    }
    // A cycle: its nodes' ports are picked up front, which frees the rest to start.
    for (const n of names) if (!order.includes(n)) pickPort.add(n)
  }
  return { order, pickPort }
}

/** A copy of the node's config with each link's transport set on its accounts, given the ports. */
function configOf(
  spec: NetworkSpec, name: string, links: { from: End; to: End; transport: 'btp' | 'http'; token: string }[], ports: Map<string, number>,
): Record<string, unknown> {
  const json = spec.nodes[name].json
  const accounts = { ...(json.accounts as Record<string, Record<string, unknown>>) }
  const set = (account: string, field: 'btp' | 'http', value: Record<string, unknown>) => {
    accounts[account] = { ...accounts[account], [field]: { ...(accounts[account][field] as Record<string, unknown> | undefined), ...value } }
  }
  for (const l of links) {
    if (l.transport === 'btp') {
      if (l.from.node === name) set(l.from.account, 'btp', { url: `btp+ws://${l.to.account}:${l.token}@127.0.0.1:${ports.get(l.to.node)}` })
      if (l.to.node === name) set(l.to.account, 'btp', { token: l.token })
    } else {
      const back = `${l.token}-reversed`
      if (l.from.node === name) set(l.from.account, 'http', { url: `http://127.0.0.1:${ports.get(l.to.node)}/ilp`, outgoingToken: l.token, incomingToken: back })
      if (l.to.node === name) set(l.to.account, 'http', { url: `http://127.0.0.1:${ports.get(l.from.node)}/ilp`, outgoingToken: back, incomingToken: l.token })
    }
  }
  return { ...json, ...(ports.has(name) && json.port === undefined ? { port: ports.get(name) } : {}), accounts }
}

/**
 * Waits until `check` holds, asking every 20 ms, or fails after `timeoutMs` with the message
 * `failure` gives then (so it can say what the state was at the end).
 */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, failure: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${failure()} (waited ${timeoutMs} ms)`)
    await sleep(20)
  }
}

/**
 * Starts the network the spec describes; see withNetwork. If a step fails, what had started is
 * stopped before the error is thrown on.
 */
export async function startNetwork(spec: NetworkSpec): Promise<Network> {
  const links = (spec.links ?? []).map((l) => {
    const from = endOf(spec, l.from)
    const to = endOf(spec, l.to)
    return { from, to, transport: l.transport ?? 'btp', token: l.token ?? `${from.node}-to-${to.node}`, name: `${l.from} → ${l.to}` }
  })
  const { order, pickPort } = startOrder(spec, links)
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
      for (const name of [...started].reverse()) await attempt(() => net.nodes[name].stop())
      for (const dir of Object.values(net.dirs)) await attempt(() => removeDir(dir))
      if (errors.length > 0) throw errors[0]
    },
  }
  try {
    const ports = new Map<string, number>()
    for (const name of pickPort) ports.set(name, (spec.nodes[name].json.port as number | undefined) ?? await freePort())
    for (const name of order) {
      net.dirs[name] = tempDir()
      net.nodes[name] = await startTestNode(spec.nodes[name].shards ?? 0, net.dirs[name], configOf(spec, name, links, ports))
      started.push(name)
      ports.set(name, net.nodes[name].port)
    }
    const timeoutMs = spec.linkTimeoutMs ?? 10_000
    for (const l of links.filter((k) => k.transport === 'btp')) {
      // Up on both ends: the dialler has its link, and the listener has taken it for the account.
      const up = (end: End) => net.nodes[end.node].ioThreads.linkOf(end.account) >= 0
      const side = (end: End) => `${end.node}'s account ${end.account} ${up(end) ? 'linked' : 'has no link'}`
      await waitUntil(() => up(l.from) && up(l.to), timeoutMs, () => `withNetwork: BTP link ${l.name} never came up: ${side(l.from)}, ${side(l.to)}`)
    }
    for (const name of order) {
      net.clients[name] = {}
      for (const account of spec.nodes[name].clients ?? []) net.clients[name][account] = await connectPlugin(net.nodes[name].port, account, `${account}-token`)
    }
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
 *       a: { json: { ilpAddress: 'test.a', accounts: { b: PEER, carol: CHILD } }, clients: ['carol'] },
 *       b: { json: { ilpAddress: 'test.b', accounts: { a: PEER, dave: CHILD } }, clients: ['dave'] },
 *     },
 *     links: [{ from: 'b.a', to: 'a.b' }], // b's account a dials a, which knows it as its account b
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
