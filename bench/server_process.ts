// A server under load as a child process (src/testing/node_process.ts: the node, or the reference
// connector or a bare relay), with its CPU time read from /proc so a run can report CPU per
// forwarded packet, in all and per thread.

import { readFileSync } from 'node:fs'
import { parseStat } from '../src/control/threads/thread_stats'
import { startNodeProcess, type NodeProcess } from '../src/testing/node_process'
import { snapshotThreads, type ThreadSnapshot } from './threads'

export interface ServerProcess extends NodeProcess {
  /** Total user + system CPU of the process (all threads), in microseconds. */
  cpuMicros(): number
  /** Every thread's name and CPU time now (threads.ts). */
  threads(): ThreadSnapshot
}

/**
 * BENCH_NODE: the main.js of another build of the node (e.g. a worktree's dist/src/main.js), run in
 * this one's place under the same generator, to compare two builds' packet paths.
 */
export async function startServerProcess(env: Record<string, string>, entry = process.env.BENCH_NODE || undefined, nodeArgs: string[] = []): Promise<ServerProcess> {
  const server = await startNodeProcess(env, entry, nodeArgs)
  const pid = server.proc.pid!
  return {
    ...server,
    // The process's stat also counts its threads that have exited, unlike the sum of its tasks.
    cpuMicros: () => parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).cpuMicros,
    threads: () => snapshotThreads(pid),
  }
}
