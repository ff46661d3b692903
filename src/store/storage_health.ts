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
// The reserve makes "as soon as it can" immediate on a full disk: limits.storageReserveBytes of
// disk kept for what the node owes, taken at start (the node refuses to start, exit 73, if it
// cannot be). Where the native addon and the filesystem allow, it is allocated past the end of
// the LMDB file (StorageReserve below): LMDB grows into it without asking the filesystem for room,
// and the main thread tops it up four times a second; the first top-up that finds the disk full
// makes the node fail closed while what is left of the reserve takes the commits it owes. (That
// also keeps LMDB's own failed page write, whose error path has been seen to corrupt its heap,
// out of the way.) Elsewhere it is a file, DATA_DIR/reserve: the first thread whose commit fails
// deletes it and tries again at once, so the commits of what is owed find room even on a disk
// that something else filled, and the main thread writes the file again once there is space. The
// node takes new work again only once its reserve is whole. A shard's commit that fails even so
// (an I/O error; a reserve too small) is tried again with a growing pause, its outputs held back
// meanwhile.
//
//   SAB (Int32): [FAULTS]              threads in a fault state now (0: the storage is healthy); the
//                                      one cell the packet path reads
//                [RESERVE_IN_USE]      1 while the reserve is not whole: in use for what the node owes
//                                      (past the data file), or given back (a file)
//                [SHARDS_DOWN]         1 while the shards are stopped (a restart, or its back-off)
//                [SHARD_ERRNO + s]     errno of shard s's last failed commit while it fails, else 0
// Each flag is set and cleared with an atomic exchange, and only the thread that turns it from clear
// to set (or back) moves FAULTS by one, so FAULTS counts flags and never drifts.

import { closeSync, fstatSync, fsyncSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { storeDataFile } from './balance_store'

const FAULTS = 0
const RESERVE_IN_USE = 1
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

  reserveInUse(): boolean {
    return this.raise(RESERVE_IN_USE, 1)
  }

  reserveWhole(): boolean {
    return this.clear(RESERVE_IN_USE)
  }

  get reserveIsWhole(): boolean {
    return Atomics.load(this.cells, RESERVE_IN_USE) === 0
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
    if (!this.reserveIsWhole) reasons.push('the storage reserve is in use (the disk was full); waiting for free space to take it again')
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

/** The native allocation (src/native/storage.c, built into dist/native/storage.node), or null. */
const native: { allocate(fd: number, offset: number, length: number): number } | null = (() => {
  try {
    // dist/src/store → dist/native
    return require(join(__dirname, '..', '..', 'native', 'storage.node')) as { allocate(fd: number, offset: number, length: number): number }
  } catch {
    return null
  }
})()

const ENOSPC = 28
const EOPNOTSUPP = 95

/**
 * The disk space kept for the commits the node owes (see the header), in one of two places:
 *   past the data file   allocated past the end of the LMDB file (fallocate, FALLOC_FL_KEEP_SIZE:
 *                        the blocks are the file's, its size unchanged): LMDB grows into it with
 *                        no call that can meet a full disk, and the main thread tops it up as
 *                        LMDB uses it; when a top-up fails for lack of space, the node fails
 *                        closed, with what is left of the reserve still there for what it owes
 *   a file               DATA_DIR/reserve, of zeros, where the first is not possible (no native
 *                        addon, a filesystem without fallocate): given back (deleted) when a
 *                        commit fails, so that the commit finds room, and written again later
 */
export class StorageReserve {
  readonly path: string
  private readonly dataFile: string
  /** True while the reserve lives past the data file (it falls back to a file if that fails). */
  private pastDataFile: boolean
  private fd = -1
  private lockAllocated = false

  constructor(dataDir: string, readonly bytes: number) {
    this.path = join(dataDir, 'reserve')
    this.dataFile = storeDataFile(dataDir)
    this.pastDataFile = native !== null && bytes > 0
  }

  /** Where the reserve is, for the logs. */
  get where(): string {
    return this.pastDataFile ? `allocated past the end of ${this.dataFile}` : this.path
  }

  /** True if the main thread must top the reserve up all the time (LMDB uses it as it grows). */
  get grows(): boolean {
    return this.pastDataFile
  }

  /**
   * Makes sure the whole reserve is there. Throws the error (ENOSPC when the disk is full) if it
   * cannot be, leaving what there was.
   */
  take(): void {
    this.allocateLockFile()
    if (this.bytes === 0) return
    if (this.pastDataFile && this.allocatePastDataFile()) return
    this.writeFile()
  }

  /**
   * LMDB's lock file is made at its size with ftruncate, so on tmpfs its pages past the first
   * are holes until a reader slot there is first used; a thread that takes such a slot while the
   * disk is full faults on the page (SIGBUS) and kills the process. fallocate(KEEP_SIZE) gives
   * the holes their blocks, content and size unchanged, safe while the environment is in use.
   * Once per run; without the native addon the lock file stays as LMDB made it.
   */
  private allocateLockFile(): void {
    if (this.lockAllocated || native === null) return
    const fd = openSync(`${this.dataFile}-lock`, 'r+')
    try {
      const errno = native.allocate(fd, 0, Math.max(1, fstatSync(fd).size))
      if (errno === ENOSPC) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC', errno, path: `${this.dataFile}-lock` })
      this.lockAllocated = true
    } finally {
      closeSync(fd)
    }
  }

  /** Deletes the reserve file, so that its space goes to the commits the node owes. True if it was there. */
  giveBack(): boolean {
    try {
      rmSync(this.path)
      return true
    } catch {
      return false
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd)
    this.fd = -1
  }

  /** True if allocated; false if this filesystem cannot (the reserve becomes a file from now on). */
  private allocatePastDataFile(): boolean {
    if (this.fd < 0) this.fd = openSync(this.dataFile, 'r+')
    const errno = native!.allocate(this.fd, fstatSync(this.fd).size, this.bytes)
    if (errno === 0) {
      // A reserve file of an earlier run (or of a filesystem that could not) is room to give back.
      this.giveBack()
      return true
    }
    if (errno !== EOPNOTSUPP) throw Object.assign(new Error(errno === ENOSPC ? 'ENOSPC: no space left on device' : `fallocate failed (errno ${errno})`), { code: errno === ENOSPC ? 'ENOSPC' : 'EIO', errno, path: this.dataFile })
    this.pastDataFile = false
    this.close()
    return false
  }

  /** The reserve as a file of zeros (so the blocks are really allocated), renamed into place when whole. */
  private writeFile(): void {
    if (this.held()) return
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

  private held(): boolean {
    try {
      return statSync(this.path).size >= this.bytes
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
