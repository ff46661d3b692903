// The native wake-ups (src/native/wake.c, built into dist/native/wake.node by `npm run build`):
// futex waits and wakes on doorbell cells, and pipes that wake an event loop. Loaded once per
// thread; null where the addon was not built. The main thread decides for the whole run (from
// this and the config's nativeWake, which ILP_NODE_NATIVE_WAKE=0 turns off to run the Atomics
// fallback) and hands the choice to every thread in the wiring, so a producer and its consumer
// always agree on how a wake-up travels.

import { join } from 'node:path'

export interface NativeWake {
  /** 0 woken, 1 the cell no longer held `expected`, 2 timed out. */
  futexWait(cells: Int32Array, index: number, expected: number, timeoutMs: number): number
  futexWake(cells: Int32Array, index: number): number
  /** [readFd, writeFd], both non-blocking. */
  pipe(): [number, number]
  /** Writes one byte; false only if the descriptor is unusable. */
  signal(fd: number): boolean
  dup(fd: number): number
  close(fd: number): void
  /** sched_yield(): lets another runnable thread on this CPU run first. */
  yield(): void
}

function load(): { wake: NativeWake | null; reason: string | null } {
  try {
    // dist/src/ring → dist/native
    return { wake: require(join(__dirname, '..', '..', 'native', 'wake.node')) as NativeWake, reason: null }
  } catch (err) {
    return { wake: null, reason: `not loaded: ${(err as Error).message.split('\n')[0]}` }
  }
}

const loaded = load()

/** The addon in this thread, or null. */
export const nativeWake: NativeWake | null = loaded.wake

/** Why there is no addon (for the start-up warning), or null. */
export const nativeWakeUnavailable: string | null = loaded.reason

/** The addon, in a thread that the main thread started with native wake-ups on. */
export function requireNativeWake(): NativeWake {
  if (nativeWake === null) throw new Error(`native wake-ups are on for this run but ${nativeWakeUnavailable} in this thread`)
  return nativeWake
}
