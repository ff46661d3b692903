// Per-thread CPU of the node, from /proc/<pid>/task/<tid>/stat, by the names the node gives its
// threads (src/thread_name.ts): ilp-main, ilp-io-<n>, ilp-shard-<n>. Every other thread (V8's
// platform workers, the libuv pool, GC helpers) is "other". From two snapshots around a load run
// come each thread's share of a core, its CPU per packet and how often it slept (its voluntary
// context switches in /proc/<pid>/task/<tid>/status: each one a wake-up it then needed), and
// from those a projection of the packets/s the same layout would reach with more cores.

import { readdirSync, readFileSync } from 'node:fs'
import { parseStat } from '../src/control/threads/thread_stats'

export interface ThreadSample {
  tid: number
  name: string
  cpuMicros: number
  /** Voluntary context switches so far: the times the thread blocked and had to be woken. */
  sleeps: number
}

export interface ThreadSnapshot {
  /** performance.now() when it was taken, in ms. */
  atMs: number
  threads: ThreadSample[]
}

export interface ThreadUsage {
  /** main, io-<n>, shard-<n>, or other (all unnamed threads together). */
  role: string
  threads: number
  /** CPU time over wall time, in % of one core (above 100 for "other" when several are busy). */
  busyPercent: number
  cpuUsPerPacket: number
  /** Times the threads of this role blocked (and were woken again), per packet. */
  sleepsPerPacket: number
}

export interface Projection {
  cores: number
  /** Named threads that need a core of their own: the busy ones (IDLE_BUSY_PERCENT). */
  threads: number
  /** null when the layout has more busy named threads than `cores`. */
  packetsPerSecond: number | null
  /** What caps the projection: a thread's role, or "cores" for the whole node's CPU. */
  limitedBy: string | null
}

/** voluntary_ctxt_switches of a status file (0 if the kernel does not report it). */
export function parseSleeps(status: string): number {
  const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)
  return m === null ? 0 : Number(m[1])
}

/** Every thread of process `pid` now; a thread that exits while they are read is left out. */
export function snapshotThreads(pid: number): ThreadSnapshot {
  const threads: ThreadSample[] = []
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string
    let status: string
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
    } catch {
      continue
    }
    threads.push({ tid: Number(tid), ...parseStat(stat), sleeps: parseSleeps(status) })
  }
  return { atMs: performance.now(), threads }
}

function roleOf(name: string): string {
  const m = /^ilp-(main|io-\d+|shard-\d+)$/.exec(name)
  return m === null ? 'other' : m[1]
}

/** main first, then io-<n> and shard-<n> by n, other last. */
function roleOrder(role: string): number {
  if (role === 'main') return 0
  if (role === 'other') return 1e6
  const [kind, n] = role.split('-')
  return (kind === 'io' ? 1 : 1000) + Number(n)
}

/**
 * Each named thread's usage between two snapshots, and the unnamed ones summed as "other". A
 * thread born after `start` counts from zero; one gone by `end` is in no row, only in `vanished`.
 */
export function threadUsage(start: ThreadSnapshot, end: ThreadSnapshot, packets: number): { usage: ThreadUsage[]; vanished: number } {
  const before = new Map(start.threads.map((t) => [t.tid, t]))
  const wallMicros = (end.atMs - start.atMs) * 1000
  const rows = new Map<string, { threads: number; cpuMicros: number; sleeps: number }>()
  const add = (role: string, cpuMicros: number, sleeps: number) => {
    const row = rows.get(role) ?? { threads: 0, cpuMicros: 0, sleeps: 0 }
    row.threads++
    row.cpuMicros += cpuMicros
    row.sleeps += sleeps
    rows.set(role, row)
  }
  for (const t of end.threads) add(roleOf(t.name), t.cpuMicros - (before.get(t.tid)?.cpuMicros ?? 0), t.sleeps - (before.get(t.tid)?.sleeps ?? 0))
  const alive = new Set(end.threads.map((t) => t.tid))
  const usage = [...rows].sort(([a], [b]) => roleOrder(a) - roleOrder(b)).map(([role, r]) => ({
    role,
    threads: r.threads,
    busyPercent: (100 * r.cpuMicros) / wallMicros,
    cpuUsPerPacket: r.cpuMicros / packets,
    sleepsPerPacket: r.sleeps / packets,
  }))
  return { usage, vanished: start.threads.filter((t) => !alive.has(t.tid)).length }
}

export function namedThreads(usage: ThreadUsage[]): ThreadUsage[] {
  return usage.filter((u) => u.role !== 'other')
}

/** Below this share of one core a named thread counts as idle: e.g. the main thread with
 * IO_THREADS > 1, which then runs only the control plane. */
export const IDLE_BUSY_PERCENT = 5

/** The named threads under IDLE_BUSY_PERCENT busy. */
export function idleThreads(usage: ThreadUsage[]): ThreadUsage[] {
  return namedThreads(usage).filter((u) => u.busyPercent < IDLE_BUSY_PERCENT)
}

/** The named thread with the most CPU per packet (and so the most busy). */
export function busiestThread(usage: ThreadUsage[]): ThreadUsage {
  const named = namedThreads(usage)
  // Without names (an old node, or /proc not writable) there is nothing to attribute.
  if (named.length === 0) throw new Error('no thread of the node is named ilp-main, ilp-io-<n> or ilp-shard-<n>')
  return named.reduce((a, b) => (b.cpuUsPerPacket > a.cpuUsPerPacket ? b : a))
}

/**
 * Packets/s on `cores` cores if each busy named thread had a core of its own and kept its CPU per
 * packet: the lowest of their ceilings (1e6 / µs per packet), and no more than the cores can give
 * the whole node (all threads, the unnamed and the idle too). An idle named thread (under
 * IDLE_BUSY_PERCENT) needs no core of its own: it shares one, and its CPU is in the whole node's.
 */
export function project(usage: ThreadUsage[], nodeUsPerPacket: number, cores: number): Projection {
  const busy = busyThreads(usage)
  if (busy.length > cores) return { cores, threads: busy.length, packetsPerSecond: null, limitedBy: null }
  return { cores, threads: busy.length, ...ceiling(busy, nodeUsPerPacket, cores) }
}

/**
 * Packets/s on `cores` cores (a fraction too) that the threads may have to share: the same
 * ceilings as project(), without asking for a core per thread. What a run on this machine could
 * have reached had the node used every cycle the cores left it; the measured figure against it
 * shows how much of them the layout turned into packets.
 */
export function projectSharing(usage: ThreadUsage[], nodeUsPerPacket: number, cores: number): Projection {
  const busy = busyThreads(usage)
  return { cores, threads: busy.length, ...ceiling(busy, nodeUsPerPacket, cores) }
}

/** The named threads at IDLE_BUSY_PERCENT or more. */
function busyThreads(usage: ThreadUsage[]): ThreadUsage[] {
  const idle = new Set(idleThreads(usage))
  return namedThreads(usage).filter((u) => !idle.has(u))
}

/** The lowest of the busy threads' ceilings and the cores' (C × 1e6 / the whole node's µs per packet), and which it was. */
function ceiling(busy: ThreadUsage[], nodeUsPerPacket: number, cores: number): { packetsPerSecond: number; limitedBy: string } {
  let best = { packetsPerSecond: (cores * 1e6) / nodeUsPerPacket, limitedBy: 'cores' }
  for (const t of busy) {
    const threadCeiling = 1e6 / t.cpuUsPerPacket
    if (threadCeiling < best.packetsPerSecond) best = { packetsPerSecond: threadCeiling, limitedBy: t.role }
  }
  return best
}

/** The busiest thread between two snapshots of one process, in % of one core (named or not:
 * the load generator's threads have no names). */
export function busiestThreadPercent(start: ThreadSnapshot, end: ThreadSnapshot): number {
  const before = new Map(start.threads.map((t) => [t.tid, t.cpuMicros]))
  const wallMicros = (end.atMs - start.atMs) * 1000
  let most = 0
  for (const t of end.threads) most = Math.max(most, t.cpuMicros - (before.get(t.tid) ?? 0))
  return wallMicros > 0 ? (100 * most) / wallMicros : 0
}
