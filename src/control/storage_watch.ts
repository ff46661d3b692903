// The main thread's side of failing closed (store/storage_health.ts): it takes the reserve again
// once the disk has room, and it says in one log line when the node stops taking new work for
// lack of storage and when it takes it again. Shards report their own failed commits; nothing
// here is on the packet path.

import type { Logger } from '../log'
import { oneLine, StorageHealth, type StorageReserve } from '../store/storage_health'

/** How often the reserve is tried again while it is given back, and the health looked at. */
const CHECK_MS = 1000

export class StorageWatch {
  private readonly health: StorageHealth
  private timer: NodeJS.Timeout | null = null
  private reported: string | null = null

  constructor(
    health: SharedArrayBuffer,
    private readonly reserve: StorageReserve,
    private readonly log: Logger,
  ) {
    this.health = new StorageHealth(health)
  }

  start(): void {
    this.timer = setInterval(() => this.check(), CHECK_MS)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  /** Takes the reserve again if it was given back and there is room; logs a change of state. */
  check(): void {
    if (!this.health.reserveHeld) {
      try {
        this.reserve.take()
        this.health.reserveTaken()
        this.log.warn('took the storage reserve again', { bytes: this.reserve.bytes })
      } catch (err) {
        // Still no room: the node keeps refusing new work (its reason says so); tried again later.
        if (this.reported === null) this.log.debug('the storage reserve cannot be taken again yet', { error: oneLine(err) })
      }
    }
    const reason = this.health.reason()
    if (reason === this.reported) return
    if (reason !== null) this.log.error('refusing new prepares and transfers (T00), /health 503', { reason })
    else this.log.warn('storage available again: taking new prepares and transfers')
    this.reported = reason
  }
}
