// This process's threads as the kernel counts them: /proc/self/task/<tid>/stat (name, user and
// system CPU) and status (voluntary context switches). Read by /metrics on the main thread and by
// the bench from outside (/proc/<pid>/task); the node names its threads (thread_name.ts).

import { readdirSync, readFileSync } from 'node:fs'

const CLOCK_TICKS_PER_SECOND = 100

/** A stat line's name and its utime + stime in µs. The name sits in parentheses and may itself
 * contain spaces and parentheses, so the fields are counted from the last ')'. */
export function parseStat(stat: string): { name: string; cpuMicros: number } {
  const close = stat.lastIndexOf(')')
  const fields = stat.slice(close + 2).split(' ')
  // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the name.
  const ticks = Number(fields[11]) + Number(fields[12])
  return { name: stat.slice(stat.indexOf('(') + 1, close), cpuMicros: (ticks / CLOCK_TICKS_PER_SECOND) * 1e6 }
}

/** Each named thread of this process (ilp-main, ilp-io-<n>, ilp-shard-<n>) and its CPU seconds so far. */
export function namedThreadCpuSeconds(): { thread: string; seconds: number }[] {
  const out: { thread: string; seconds: number }[] = []
  let tids: string[]
  try {
    tids = readdirSync('/proc/self/task')
  } catch {
    return out // not Linux
  }
  for (const tid of tids) {
    try {
      const { name, cpuMicros } = parseStat(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8'))
      if (name.startsWith('ilp-')) out.push({ thread: name, seconds: cpuMicros / 1e6 })
    } catch {
      // the thread ended while we read
    }
  }
  return out.sort((a, b) => (a.thread < b.thread ? -1 : 1))
}
