// A doorbell wakes one consumer that reads several rings. Producers ring it after publishing, but
// only when the consumer said it is going to sleep, so a busy consumer costs no system calls.
//
//   SAB: [0] Int32 sequence (bumped by producers)   [16] Int32 sleeping flag (set by the consumer)
//
// No lost wake-up: the consumer reads `sequence`, sets `sleeping`, re-checks its rings, and only
// then waits. A producer publishes, then swaps `sleeping` from 1 to 0; with sequentially
// consistent atomics either the consumer's re-check sees the record or the producer's swap
// succeeds and it wakes the consumer. Only the producer whose swap succeeds pays for the
// wake-up: the others (the same producer's next batches, other producers) find 0 while the
// consumer is waking, and it will see their records, since it re-reads every ring after it wakes.
//
// How the consumer waits, and so how a producer wakes it:
//   - a shard worker blocks: on a futex on `sequence` (native/wake.c), which the producer bumps
//     and wakes; the wait ends early if `sequence` moved after the consumer read it.
//   - an I/O thread has an event loop and must never block: it watches the read end of a pipe
//     (DoorbellWatch), and the producer writes a byte to the write end. A byte stays in the pipe
//     until read, so a ring that lands before the loop polls again is not lost either.
//   - without the native addon: Atomics.wait and Atomics.waitAsync / Atomics.notify, the same
//     protocol through V8's emulation (one process-wide lock, a task per async wake-up).
//
// A pipe's descriptors live as long as the node (the supervisor owns them): a shard may still
// write to one while the I/O thread that read it is being replaced, and a descriptor number that
// was closed and reused in the meantime would put that byte into somebody else's file or socket.
// Each I/O thread reads through its own duplicate, which dies with it.

import { Socket } from 'node:net'
import { requireNativeWake } from './native_wake'

const SEQUENCE = 0
const SLEEPING = 16

export function createDoorbell(): SharedArrayBuffer {
  return new SharedArrayBuffer(128)
}

/** How a doorbell's consumer is woken: by futex or pipe (native), or by Atomics. */
export interface DoorbellWiring {
  sab: SharedArrayBuffer
  native: boolean
  /** The pipe an event-loop consumer watches: [readFd, writeFd]; null for a consumer that blocks. */
  pipe: [number, number] | null
}

export class Doorbell {
  readonly cells: Int32Array
  private readonly futexWake: ((cells: Int32Array, index: number) => number) | null
  private readonly futexWait: ((cells: Int32Array, index: number, expected: number, timeoutMs: number) => number) | null
  private readonly signal: ((fd: number) => boolean) | null
  private readonly pipeWriteFd: number

  constructor(readonly wiring: DoorbellWiring) {
    this.cells = new Int32Array(wiring.sab)
    const native = wiring.native ? requireNativeWake() : null
    this.futexWake = native?.futexWake ?? null
    this.futexWait = native?.futexWait ?? null
    this.signal = wiring.pipe !== null ? native?.signal ?? null : null
    this.pipeWriteFd = wiring.pipe?.[1] ?? -1
  }

  /** Producer side: call after publishing a batch of records. */
  ring(): void {
    if (Atomics.load(this.cells, SLEEPING) !== 0 && Atomics.compareExchange(this.cells, SLEEPING, 1, 0) === 1) this.notify()
  }

  /** Wakes the consumer whether or not it announced a sleep (shutdown, control messages). */
  wake(): void {
    this.notify()
  }

  private notify(): void {
    Atomics.add(this.cells, SEQUENCE, 1)
    if (this.signal !== null) this.signal(this.pipeWriteFd)
    else if (this.futexWake !== null) this.futexWake(this.cells, SEQUENCE)
    else Atomics.notify(this.cells, SEQUENCE)
  }

  /** Consumer side, step 1: returns the sequence to wait on and announces the sleep. */
  prepareToSleep(): number {
    const seen = Atomics.load(this.cells, SEQUENCE)
    Atomics.store(this.cells, SLEEPING, 1)
    return seen
  }

  /** Consumer side: abandons a prepared sleep because work turned up (or the consumer is busy). */
  cancelSleep(): void {
    Atomics.store(this.cells, SLEEPING, 0)
  }

  /** Consumer side, step 2, for a consumer that may block (a shard worker). */
  sleep(seen: number, timeoutMs: number): void {
    if (this.futexWait !== null) this.futexWait(this.cells, SEQUENCE, seen, timeoutMs)
    else Atomics.wait(this.cells, SEQUENCE, seen, timeoutMs)
    Atomics.store(this.cells, SLEEPING, 0)
  }
}

/**
 * An event-loop consumer's side of its doorbell: calls `onRing` (from the loop, never inside a
 * producer's call) each time a producer rang. The consumer keeps the protocol itself: it calls
 * `prepareToSleep` at the end of each turn and re-checks its rings before it returns to the loop.
 */
export class DoorbellWatch {
  private socket: Socket | null = null
  private closed = false

  constructor(private readonly doorbell: Doorbell, private readonly onRing: () => void, onError: (err: Error) => void) {
    const { pipe, native } = doorbell.wiring
    if (pipe !== null && native) {
      this.socket = new Socket({ fd: requireNativeWake().dup(pipe[0]), readable: true, writable: false })
      this.socket.on('data', () => this.onRing())
      this.socket.on('error', onError)
      this.socket.unref()
    } else {
      this.arm()
    }
  }

  // The Atomics fallback: one waitAsync pending at a time, armed again as soon as it fires. A
  // ring between the wake-up and the re-arm is not lost: its producer found the consumer asleep
  // after its last turn, and onRing has just scheduled the turn that will see its records.
  private arm(): void {
    const cells = this.doorbell.cells
    const wait = Atomics.waitAsync(cells, SEQUENCE, Atomics.load(cells, SEQUENCE))
    const fired = () => {
      if (this.closed) return
      this.onRing()
      this.arm()
    }
    if (wait.async) void wait.value.then(fired)
    else queueMicrotask(fired)
  }

  close(): void {
    this.closed = true
    this.socket?.destroy()
    this.socket = null
    if (!this.doorbell.wiring.native) this.doorbell.wake() // ends the pending waitAsync
  }
}

/**
 * The run's wake-ups: native or not (decided once, on the main thread), and the I/O threads'
 * pipes, one per I/O thread for the life of the node (see the top of this file). Owned by the
 * shard supervisor, which closes them after every thread that could write to them has ended.
 */
export class WakeUps {
  readonly native: boolean
  private readonly ioPipes: ([number, number] | null)[]

  constructor(ioCount: number, native: boolean) {
    this.native = native
    this.ioPipes = Array.from({ length: ioCount }, () => (native ? requireNativeWake().pipe() : null))
  }

  /** A new doorbell for a consumer that blocks (a shard). */
  shardDoorbell(): DoorbellWiring {
    return { sab: createDoorbell(), native: this.native, pipe: null }
  }

  /** A new doorbell for I/O thread `io`, on its pipe. */
  ioDoorbell(io: number): DoorbellWiring {
    return { sab: createDoorbell(), native: this.native, pipe: this.ioPipes[io] }
  }

  close(): void {
    const native = this.native ? requireNativeWake() : null
    for (const pipe of this.ioPipes) if (pipe !== null) for (const fd of pipe) native!.close(fd)
    this.ioPipes.fill(null)
  }
}
