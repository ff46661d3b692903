// The main thread's side of failing closed (store/storage_health.ts): it keeps the reserve whole
// (past the data file, LMDB grows into it, so it is topped up four times a second; a reserve file
// is written again once a shard gave it back and the disk has room), and it says in one log line
// when the node stops taking new work for lack of storage and when it takes it again. Shards
// report their own failed commits; nothing here is on the packet path.

import type { Logger } from '../../log'
import { oneLine, StorageHealth, type StorageReserve } from '../../store/storage_health'

/** How often the reserve is topped up (past the data file) and the health looked at. */
const CHECK_MS = 250

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
    this.reserve.close()
  }

  /** Tops the reserve up (or takes it again); logs a change of state. */
  check(): void {
    if (this.reserve.grows || !this.health.reserveIsWhole) {
      try {
        this.reserve.take()
        if (this.health.reserveWhole()) this.log.warn('the storage reserve is whole again', { bytes: this.reserve.bytes, where: this.reserve.where })
      } catch (err) {
        // No room for it: what is left of it is for what the node owes; no new work meanwhile.
        if (this.health.reserveInUse()) {
          this.log.error('the disk is full: the storage reserve is in use for what the node owes; new prepares and transfers are refused until it is whole again', {
            bytes: this.reserve.bytes, where: this.reserve.where, error: oneLine(err),
          })
        }
      }
    }
    const reason = this.health.reason()
    if (reason === this.reported) return
    if (reason !== null) this.log.error('refusing new prepares and transfers (T00), /health 503', { reason })
    else this.log.warn('storage available again: taking new prepares and transfers')
    this.reported = reason
  }
}
