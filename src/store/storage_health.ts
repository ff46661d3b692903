// Whether the node can write its books, as every thread sees it, and the reserve of disk space
// that pays for what the node already owes when it cannot.
//
// Fail closed. A commit can fail: a full disk (LMDB reports it as EIO when the data file cannot
// grow), an I/O error, a map that cannot grow. Then the node takes nothing new that it would have
// to write (prepares and transfers get T00 "storage unavailable", settlements wait, the admin
// API's changes get 503), and /health answers 503 with the reason. What it already took, above
// all the fulfills of prepares it forwarded, it keeps in memory and commits as soon as it can; no
// fulfill goes back to its sender before its commit (shard/shard_loop.ts).
//
// The reserve makes "as soon as it can" immediate on a full disk: DATA_DIR/reserve is a file of
// limits.storageReserveBytes written at start (the node refuses to start, exit 73, if it cannot
// be). The first thread whose commit fails deletes it and tries again at once, so the commits of
// what is owed find room even on a disk that something else filled; the main thread writes the
// file again once there is space, and only then does the node take new work again. A shard's
// commit that fails even so (an I/O error; a reserve too small) is tried again with a growing
// pause, its outputs held back meanwhile.
//
//   SAB (Int32): [FAULTS]              threads in a fault state now (0: the storage is healthy); the
//                                      one cell the packet path reads
//                [RESERVE_GIVEN_BACK]  1 while the reserve file is deleted
//                [SHARDS_DOWN]         1 while the shards are stopped (a restart, or its back-off)
//                [SHARD_ERRNO + s]     errno of shard s's last failed commit while it fails, else 0
// Each flag is set and cleared with compareExchange by whoever changes it, and FAULTS moves by one
// with it, so FAULTS counts flags and never drifts.

import { closeSync, openSync, renameSync, rmSync, statSync, writeSync, fsyncSync } from 'node:fs'
import { join } from 'node:path'

const FAULTS = 0
const RESERVE_GIVEN_BACK = 1
const SHARDS_DOWN = 2
const SHARD_ERRNO = 3
const SHARDS_MAX = 64

export function createStorageHealth(): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * (SHARD_ERRNO + SHARDS_MAX))
}

/** The errno of a failed write, as lmdb and node:fs report it (EIO when unknown). */
export function errnoOf(err: unknown): number {
  const e = err as { code?: unknown; errno?: unknown; message?: unknown }
  // lmdb-js reports a page it could not write with the system's message, and a code of its own.
  if (e.code === 'ENOSPC' || (typeof e.message === 'string' && e.message.startsWith('No space left on device'))) return 28
  if (typeof e.code === 'number' && e.code > 0) return e.code
  if (typeof e.errno === 'number') return Math.abs(e.errno)
  return 5
}

const ERRNO_NAMES: Record<number, string> = { 5: 'I/O error', 12: 'out of memory', 22: 'invalid argument', 28: 'no space left on device', 30: 'read-only file system', 122: 'disk quota exceeded' }

export class StorageHealth {
  private readonly cells: Int32Array

  constructor(sab: SharedArrayBuffer) {
    this.cells = new Int32Array(sab)
  }

  /** True while every thread can write: the one check on the packet path. */
  get ok(): boolean {
    return Atomics.load(this.cells, FAULTS) === 0
  }

  commitFailed(shard: number, errno: number): boolean {
    return this.raise(SHARD_ERRNO + shard, errno > 0 ? errno : 5)
  }

  commitSucceeded(shard: number): boolean {
    return this.clear(SHARD_ERRNO + shard)
  }

  reserveGivenBack(): boolean {
    return this.raise(RESERVE_GIVEN_BACK, 1)
  }

  reserveTaken(): boolean {
    return this.clear(RESERVE_GIVEN_BACK)
  }

  get reserveHeld(): boolean {
    return Atomics.load(this.cells, RESERVE_GIVEN_BACK) === 0
  }

  shardsDown(): boolean {
    return this.raise(SHARDS_DOWN, 1)
  }

  shardsUp(): boolean {
    return this.clear(SHARDS_DOWN)
  }

  /** Why the node is not taking new work, for /health and the logs; null when it is. */
  reason(): string | null {
    if (this.ok) return null
    const reasons: string[] = []
    if (Atomics.load(this.cells, SHARDS_DOWN) !== 0) reasons.push('the shards are restarting')
    for (let s = 0; s < SHARDS_MAX; s++) {
      const errno = Atomics.load(this.cells, SHARD_ERRNO + s)
      if (errno !== 0) reasons.push(`shard ${s} cannot commit (${ERRNO_NAMES[errno] ?? `errno ${errno}`})`)
    }
    if (!this.reserveHeld) reasons.push('the storage reserve is in use (the disk was full); waiting for free space to take it again')
    return `storage unavailable: ${reasons.join('; ')}`
  }

  /** Sets a flag cell (to `value`, non-zero); true if it was clear. */
  private raise(cell: number, value: number): boolean {
    const was = Atomics.exchange(this.cells, cell, value)
    if (was !== 0) return false
    Atomics.add(this.cells, FAULTS, 1)
    return true
  }

  private clear(cell: number): boolean {
    const was = Atomics.exchange(this.cells, cell, 0)
    if (was === 0) return false
    Atomics.sub(this.cells, FAULTS, 1)
    return true
  }
}

/** DATA_DIR/reserve: the disk space kept for commits the node owes (see the header). */
export class StorageReserve {
  readonly path: string

  constructor(dataDir: string, readonly bytes: number) {
    this.path = join(dataDir, 'reserve')
  }

  /** True if the file is there at its full size. */
  held(): boolean {
    try {
      return statSync(this.path).size >= this.bytes
    } catch {
      return false
    }
  }

  /**
   * Writes the file (zeros, so the blocks are really allocated; to a temporary name, renamed
   * when whole). Throws the write's error, e.g. ENOSPC, leaving no partial file behind.
   */
  take(): void {
    if (this.bytes === 0 || this.held()) return
    const partial = `${this.path}.partial`
    const chunk = Buffer.alloc(Math.min(this.bytes, 1 << 20))
    const fd = openSync(partial, 'w')
    try {
      for (let written = 0; written < this.bytes;) written += writeSync(fd, chunk, 0, Math.min(chunk.length, this.bytes - written))
      fsyncSync(fd)
      closeSync(fd)
      renameSync(partial, this.path)
    } catch (err) {
      try {
        closeSync(fd)
      } catch {
        // closed already
      }
      rmSync(partial, { force: true })
      throw err
    }
  }

  /** Deletes the file, so that its space goes to the commits the node owes. True if it was there. */
  giveBack(): boolean {
    try {
      rmSync(this.path)
      return true
    } catch {
      return false
    }
  }
}

/** What a refused prepare or transfer says (T00) while the storage is unavailable. */
export const STORAGE_UNAVAILABLE = 'storage unavailable: the node cannot write its books now; try again later'

/** A change refused while the storage is unavailable (the admin API answers 503). */
export class StorageUnavailableError extends Error {
  readonly code = 'ILP_NODE_STORAGE_UNAVAILABLE'
}

/** An error as one bounded log value: its message's first line, without the stack. */
export function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  const line = message.split('\n')[0]
  return line.length > 200 ? `${line.slice(0, 200)}…` : line
}
