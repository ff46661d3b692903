// The processes a test started, found from /proc (npm, a launcher and the node each have their
// own PID, and a node in a process group of its own is not the test's child), and what is left of
// them: a port that still answers.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { connect } from 'node:net'
import { waitUntil } from './helpers'

/** PIDs of the processes `belongs` says are the test's (it reads /proc/<pid>/…; gone ones are skipped). */
export function processesWhere(belongs: (pid: string) => boolean): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (belongs(entry)) found.push(Number(entry))
    } catch {
      // gone, or not ours to read
    }
  }
  return found
}

/** PIDs of the processes started with `name=value` in their environment. */
export const processesWithEnv = (name: string, value: string): number[] =>
  processesWhere((pid) => readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`${name}=${value}`))

/** PIDs of the processes whose working directory is `dir`. */
export const processesIn = (dir: string): number[] => processesWhere((pid) => readlinkSync(`/proc/${pid}/cwd`) === dir)

/** Whether nothing listens on 127.0.0.1:`port` any more. */
export function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', () => resolve(true))
  })
}

/** Waits until `check` holds, or throws naming `what` with the processes' output so far. */
export function waitFor(what: string, check: () => boolean, output: () => string, ms = 15_000): Promise<void> {
  return waitUntil(check, ms, () => `${what} not seen:\n${output()}`)
}
