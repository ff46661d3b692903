// One node per data directory. Two nodes on one LMDB environment would each fold, hold and commit
// against their own in-memory view of the same balances: limits could be passed and the books
// corrupted. So a node takes DATA_DIR/node.lock before it opens the store, and gives it up when it
// stops.
//
//   node.lock   "<pid> <start time of that process in clock ticks since boot>\n"
//
// The start time tells a live holder from a stale lock whose process died (kill -9 leaves the
// file behind) and whose pid the kernel has since given to an unrelated process. The file is
// created with O_EXCL, so of two nodes starting at once only one can take a free lock; a stale
// one is removed and the exclusive create tried again.

import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { join, resolve } from 'node:path'

export class DataDirInUseError extends Error {
  readonly code = 'ILP_NODE_DATA_DIR_IN_USE'
}

/**
 * DATA_DIR cannot be created or written (a file in the way, no permission, a full disk); `step`
 * says what the node was doing, when that is not plain from the error.
 */
export class DataDirUnusableError extends Error {
  readonly code = 'ILP_NODE_DATA_DIR_UNUSABLE'
  constructor(dataDir: string, err: Error, step?: string) {
    const e = err as NodeJS.ErrnoException
    const code = typeof e.code === 'string' ? e.code : 'error'
    const cause = `${code}${e.path !== undefined ? ` on ${e.path}` : ''} (${e.message.split('\n')[0].split(',')[0].replace(/^[A-Z]+: /, '')})`
    super(`DATA_DIR ${resolve(dataDir)} is not usable: ${step === undefined ? '' : `${step}: `}${cause}`)
  }
}

export interface DataDirLock {
  readonly path: string
  release(): void
}

/** Start time of a process (field 22 of /proc/<pid>/stat), or null if there is no such process. */
function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null
  } catch {
    return null
  }
}

function processCommand(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s) => s !== '').join(' ')
  } catch {
    return ''
  }
}

/** The live process holding the lock file, or null if the file is absent, unreadable or stale. */
function liveHolder(path: string): { pid: number; command: string } | null {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    return null
  }
  const [pidText, startTime] = text.trim().split(' ')
  const pid = Number(pidText)
  if (!Number.isSafeInteger(pid) || pid <= 0) return null
  const actual = processStartTime(pid)
  if (actual === null || actual !== startTime) return null
  return { pid, command: processCommand(pid) }
}

/** Takes the data directory's lock, or throws DataDirInUseError naming the directory and its holder. */
export function lockDataDir(dataDir: string): DataDirLock {
  try {
    mkdirSync(dataDir, { recursive: true })
  } catch (err) {
    throw new DataDirUnusableError(dataDir, err as Error)
  }
  const path = join(dataDir, 'node.lock')
  const content = `${process.pid} ${processStartTime(process.pid) ?? ''}\n`
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number
    try {
      fd = openSync(path, 'wx', 0o644)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new DataDirUnusableError(dataDir, err as Error)
      const holder = liveHolder(path)
      if (holder !== null) {
        const who = holder.pid === process.pid ? 'this process' : `process ${holder.pid}${holder.command === '' ? '' : ` (${holder.command})`}`
        throw new DataDirInUseError(`DATA_DIR ${resolve(dataDir)} is in use by another node: ${who} holds ${path}`)
      }
      try {
        unlinkSync(path) // stale: its process is gone
      } catch (unlinkErr) {
        if ((unlinkErr as NodeJS.ErrnoException).code !== 'ENOENT') throw unlinkErr
      }
      continue
    }
    try {
      writeSync(fd, content)
    } catch (err) {
      closeSync(fd)
      throw new DataDirUnusableError(dataDir, err as Error)
    }
    closeSync(fd)
    let released = false
    return {
      path,
      release() {
        if (released) return
        released = true
        // Only our own lock is removed (never one a later node took after ours went stale).
        if (liveHolder(path)?.pid === process.pid) unlinkSync(path)
      },
    }
  }
  throw new DataDirInUseError(`DATA_DIR ${resolve(dataDir)}: could not take ${path} (another node is starting on it)`)
}
