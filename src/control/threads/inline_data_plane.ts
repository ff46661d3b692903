// The data plane on the main thread: the one shard of SHARDS=0 (InlineDataPlane), and the
// sockets of IO_THREADS=1 (MainThreadIo). Nothing here crosses a thread: requests are calls.
//
// The inline shard runs the same loop as a shard thread (shard/shard_loop.ts), a turn at a time
// in setImmediate after the socket callbacks that fed it, so a burst of messages becomes one batch
// and one commit. It is never woken through a doorbell, and it has no thread of its own to lose:
// should it fail, the main thread failed, and the node stops (restart → fatal).

import { SlotsForNewThreads, type AccountChange } from '../../config/account_table'
import type { Config } from '../../config/schema'
import type { IoFront } from '../../io/io_front'
import type { ShardPort } from '../../io/shard_port'
import type { Logger } from '../../log'
import { WakeUps } from '../../ring/doorbell'
import { createWiring, type Wiring } from '../../ring/wiring'
import type { RateSnapshot } from '../../shard/exchange'
import { PendingTable } from '../../shard/pending_table'
import type { ShardLoop } from '../../shard/shard_loop'
import { createShardLoop } from '../../shard/shard_runtime'
import type { AdjustmentEntry, Store } from '../../store/balance_store'
import { inFlightOn, shardCounters, type DataPlane, type IoSide } from './data_plane'

export class InlineDataPlane implements DataPlane {
  private readonly wiring: Wiring
  private loop: ShardLoop | null = null
  private scheduled = false
  private ticker: NodeJS.Timeout | null = null
  private stopping = false
  private readonly slots: SlotsForNewThreads
  readonly restarts = 0

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly links: SharedArrayBuffer,
    /** The main thread's port to the shards (its IoFront's). */
    private readonly port: ShardPort,
    private readonly fatal: (reason: string) => void,
    private readonly log: Logger,
    wakeUps: 'native' | 'atomics',
    health: SharedArrayBuffer,
  ) {
    this.wiring = createWiring(config, new WakeUps(0, wakeUps === 'native'), shardCounters(config), health)
    this.slots = new SlotsForNewThreads({ accounts: config.accounts, live: config.accounts.map(() => true) })
  }

  currentWiring(): Wiring {
    return this.wiring
  }

  async start(routes: [string, number][], rates: RateSnapshot): Promise<void> {
    this.loop = createShardLoop(this.config, this.slots.snapshot(), this.wiring, this.links, 0, this.store, routes, rates, this.log, true)
    this.port.attach(this.wiring, () => this.schedule())
    this.ticker = setInterval(() => this.schedule(), PendingTable.TICK_MS)
    this.ticker.unref()
  }

  async restart(reason: string): Promise<void> {
    if (!this.stopping) this.fatal(reason)
  }

  inFlight(): number {
    return inFlightOn(this.wiring)
  }

  setRoutes(entries: [string, number][], replace: boolean): void {
    this.loop?.shard.setRoutes(entries, replace)
  }

  setRates(snapshot: RateSnapshot): void {
    this.loop?.shard.setRates(snapshot)
  }

  async applyAccounts(changes: readonly AccountChange[]): Promise<void> {
    this.slots.apply(changes)
    this.loop?.shard.applyAccounts(changes)
  }

  async adjust(_owner: number, account: number, amount: bigint, key: string, reason: string): Promise<{ entry: AdjustmentEntry; replayed: boolean }> {
    if (this.loop === null) throw new Error('the shards are restarting or stopped')
    return this.loop.shard.adjust(account, amount, key, reason, Date.now())
  }

  async terminateShard(index: number): Promise<void> {
    throw new Error(`no shard worker ${index}`)
  }

  private schedule(): void {
    if (this.scheduled || this.loop === null) return
    this.scheduled = true
    setImmediate(this.run)
  }

  private readonly run = (): void => {
    this.scheduled = false
    if (this.stopping || this.loop === null) return
    this.loop.turn(Date.now())
    this.port.drain()
    this.port.flushOverflow()
    if (this.loop.hasInput()) this.schedule()
  }

  async stop(): Promise<void> {
    this.stopping = true
    if (this.ticker !== null) clearInterval(this.ticker)
    if (this.loop === null) return
    this.loop.turn(Date.now())
    this.port.drain()
    this.loop = null
  }
}

/** The sockets on the main thread (IO_THREADS=1): its one IoFront, called directly. */
export class MainThreadIo implements IoSide {
  constructor(
    private readonly config: Config,
    readonly front: IoFront,
  ) {}

  detach(): void {
    this.front.shardsRestarting()
  }

  attach(wiring: Wiring): void {
    this.front.port.attach(wiring, null)
  }

  async listen(): Promise<number> {
    const port = await this.front.listen(this.config.port)
    this.front.start()
    return port
  }

  async applyAccounts(changes: readonly AccountChange[], relink: number[]): Promise<void> {
    this.front.applyAccounts(changes, relink)
  }

  sendControl(account: number, prepare: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return this.front.sendControl(account, prepare, timeoutMs)
  }

  drain(): void {
    this.front.drain()
  }

  crash(): void {
    throw new Error('IO_THREADS=1: the sockets run on the main thread')
  }

  stop(): Promise<void> {
    return this.front.close()
  }
}
