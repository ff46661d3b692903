// Names the calling thread in /proc (`top -H`, `ps -L`, and the bench's per-thread accounting
// read it): ilp-main, ilp-io-<n>, ilp-shard-<n>. Linux keeps at most 15 bytes of a name. Where
// /proc/thread-self is not writable (another OS, a locked-down container) the name stays as it was.

import { writeFileSync } from 'node:fs'

export function nameThisThread(name: string): void {
  try {
    writeFileSync('/proc/thread-self/comm', name.slice(0, 15))
  } catch {
    // naming is for observers only
  }
}
