// A doorbell wakes one consumer that reads several rings. Producers ring it after publishing, but
// only when the consumer said it is going to sleep, so a busy consumer costs no syscalls.
//
//   SAB: [0] Int32 sequence (bumped by producers)   [16] Int32 sleeping flag (set by the consumer)
//
// No lost wake-up: the consumer reads `sequence`, sets `sleeping`, re-checks its rings, and waits
// only while `sequence` still holds the value it read. A producer publishes, then swaps
// `sleeping` from 1 to 0; with sequentially consistent atomics either the consumer's re-check
// sees the record or the producer's swap succeeds and it bumps `sequence`, which ends or prevents
// the wait. Only the producer whose swap succeeds pays for the futex wake: the others (the same
// producer's next batches, other producers) find 0 while the consumer is waking, and it will see
// their records, since it re-reads every ring after it wakes.

const SEQUENCE = 0
const SLEEPING = 16

export function createDoorbell(): SharedArrayBuffer {
  return new SharedArrayBuffer(128)
}

export class Doorbell {
  private readonly cells: Int32Array

  constructor(sab: SharedArrayBuffer) {
    this.cells = new Int32Array(sab)
  }

  /** Producer side: call after publishing a batch of records. */
  ring(): void {
    if (Atomics.load(this.cells, SLEEPING) !== 0 && Atomics.compareExchange(this.cells, SLEEPING, 1, 0) === 1) {
      Atomics.add(this.cells, SEQUENCE, 1)
      Atomics.notify(this.cells, SEQUENCE)
    }
  }

  /** Consumer side, step 1: returns the sequence to wait on and announces the sleep. */
  prepareToSleep(): number {
    const seen = Atomics.load(this.cells, SEQUENCE)
    Atomics.store(this.cells, SLEEPING, 1)
    return seen
  }

  /** Consumer side, step 2 (blocking; worker threads only). */
  sleep(seen: number, timeoutMs: number): void {
    Atomics.wait(this.cells, SEQUENCE, seen, timeoutMs)
    Atomics.store(this.cells, SLEEPING, 0)
  }

  /** Consumer side, step 2 for a thread with an event loop (an I/O thread), which must never block. */
  sleepAsync(seen: number, timeoutMs: number): Promise<unknown> | null {
    const result = Atomics.waitAsync(this.cells, SEQUENCE, seen, timeoutMs)
    if (!result.async) {
      Atomics.store(this.cells, SLEEPING, 0)
      return null
    }
    return result.value.then(() => Atomics.store(this.cells, SLEEPING, 0))
  }

  /** Consumer side: abandons a prepared sleep because work turned up. */
  cancelSleep(): void {
    Atomics.store(this.cells, SLEEPING, 0)
  }

  /** Wakes the consumer whether or not it announced a sleep (shutdown, control messages). */
  wake(): void {
    Atomics.add(this.cells, SEQUENCE, 1)
    Atomics.notify(this.cells, SEQUENCE)
  }
}
