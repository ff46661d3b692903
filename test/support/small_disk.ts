// A real, small disk for the storage-fault tests: a tmpfs of a few MB mounted on a temporary
// directory (the tests run as root, as CI does; see the README), that the test fills to the last
// byte with a filler file and frees again. What the node sees is a real ENOSPC from the kernel.

import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, rmdirSync, statfsSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface SmallDisk {
  /** The mount point. */
  readonly dir: string
  /** Writes zeros into a filler file until the disk is full; returns the bytes written. */
  fill(): number
  /** Deletes the filler: the disk has room again. */
  free(): void
  /** Bytes an unprivileged writer can still get on the disk now (statfs). */
  available(): number
  unmount(): void
}

export function mountSmallDisk(bytes: number): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), 'ilp-node-disk-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' })
  } catch (err) {
    rmdirSync(dir)
    const why = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? (err as Error).message
    throw new Error(`the storage-fault tests mount a ${bytes}-byte tmpfs and need root (CAP_SYS_ADMIN) for it: ${why}`)
  }
  const filler = join(dir, 'filler')
  return {
    dir,
    fill() {
      const fd = openSync(filler, 'a')
      let written = 0
      try {
        // Big chunks first, then smaller ones, down to one page: the disk ends up full to the page.
        for (let chunk = 1 << 20; chunk >= 4096; chunk >>= 1) {
          const zeros = Buffer.alloc(chunk)
          for (;;) {
            try {
              written += writeSync(fd, zeros)
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
              break
            }
          }
        }
      } finally {
        closeSync(fd)
      }
      return written
    },
    free() {
      rmSync(filler, { force: true })
    },
    available() {
      const s = statfsSync(dir)
      return s.bavail * s.bsize
    },
    unmount() {
      try {
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' })
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  }
}
