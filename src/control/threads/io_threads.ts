// The I/O worker threads (IO_THREADS > 1), seen from the main thread: piscina runs one long task
// per thread (io/io_worker.ts); this class starts them, answers what they ask of the control plane
// over each one's RequestPort (ring/request_port.ts), and replaces a thread that died.
//
// When an I/O thread ends, what was asked of it settles where its port closes (onEnd):
//   1. new accounts  count as applied: its replacement starts with them
//   2. a CCP prepare sent over one of its links rejects ('peer disconnected'; 'node stopping' at stop)
//   3. its links are down: the shards stop sending to it, and the routes through them go down
//   4. the shards restart from LMDB (its prepares and holds died with it), then a new thread
//      takes its place on the new rings

import { join } from 'node:path'
import { MessageChannel } from 'node:worker_threads'
import type Piscina from 'piscina'
import { threadPerTaskPool } from './thread_pool'
import { configForThreads, SlotsForNewThreads, type AccountChange } from '../../config/account_table'
import type { Config } from '../../config/schema'
import { refusalText } from '../../io/ops/admin_errors'
import type { ControlPlane } from '../../io/io_front'
import type { FromIoThread, IoTask, ToIoThread } from '../../io/io_worker'
import { claimFreePort } from '../../io/listen'
import { errorLine, type Logger } from '../../log'
import { LinkTable } from '../../shared/link_table'
import { RequestPort, ThreadGone } from '../../ring/request_port'
import type { Wiring } from '../../ring/wiring'
import type { IoSide } from './data_plane'

interface IoThread {
  port: RequestPort<ToIoThread, FromIoThread>
  done: Promise<unknown>
  /** Accounts whose links are up on this thread (to be reported down if it dies). */
  linked: Set<number>
}

export class IoThreads implements IoSide {
  /** Made at listen: its threads start with it. */
  private pool: Piscina | null = null
  private readonly threads: (IoThread | null)[]
  private readonly links: LinkTable
  private stopping = false
  /** The accounts the threads run with; a replaced thread starts with them. */
  private readonly slots: SlotsForNewThreads
  /** The node's port, every thread's (chosen at listen). */
  private port = 0

  constructor(
    private readonly config: Config,
    private readonly linksSab: SharedArrayBuffer,
    private readonly reachSab: SharedArrayBuffer,
    private readonly limitsSab: SharedArrayBuffer,
    private readonly countersSab: SharedArrayBuffer | null,
    private readonly plane: ControlPlane,
    /** Restarts the shards after a thread died; resolves with the rings of the new ones. */
    private readonly restartShards: (reason: string) => Promise<Wiring>,
    private readonly fatal: (reason: string) => void,
    private readonly log: Logger,
  ) {
    const n = config.ioThreads
    this.threads = Array.from({ length: n }, () => null)
    this.links = new LinkTable(linksSab, config.maxAccounts, n)
    this.slots = new SlotsForNewThreads({ accounts: config.accounts, live: config.accounts.map(() => true) })
  }

  /**
   * Every I/O thread takes the new accounts and closes the links of those in `relink`; resolves
   * when all have (a thread that dies first counts: rule 1).
   */
  async applyAccounts(changes: readonly AccountChange[], relink: number[]): Promise<void> {
    this.slots.apply(changes)
    await Promise.all(this.threads.map((thread) => thread?.port.request({ type: 'accounts', changes, relink }).catch((err: unknown) => {
      if (!(err instanceof ThreadGone)) throw err
    })))
  }

  /** Every thread binds the node's port (with PORT=0 it is chosen first); resolves when all listen. */
  async listen(wiring: Wiring): Promise<number> {
    this.port = this.config.port !== 0 ? this.config.port : await claimFreePort(this.config.host, 0)
    this.pool = threadPerTaskPool(join(__dirname, '..', '..', 'io', 'io_worker.js'), 'runIoThread', this.threads.length)
    await Promise.all(this.threads.map((_, index) => this.startThread(index, wiring)))
    return this.port
  }

  /** Starts (or replaces) I/O thread `index`; resolves when it listens. */
  private startThread(index: number, wiring: Wiring): Promise<void> {
    const { port1, port2 } = new MessageChannel()
    const task: IoTask = { config: configForThreads(this.config), slots: this.slots.snapshot(), index, links: this.linksSab, reach: this.reachSab, limits: this.limitsSab, counters: this.countersSab, wiring, port: this.port, control: port2 }
    const done = this.pool!.run(task, { transferList: [port2] })
    let listening: () => void = () => {}
    const linked = new Set<number>()
    const port: IoThread['port'] = new RequestPort(port1, {
      requests: {
        control: ({ account, prepare }) => this.plane.control(account, prepare),
        admin: ({ request }) => this.plane.admin(request).catch((err: Error) => {
          this.log.error('admin request failed', { error: err.message })
          return refusalText('internal', 'internal error')
        }),
        metrics: () => this.plane.metrics().catch((err: Error) => {
          this.log.error('metrics exposition failed', { error: err.message })
          throw new Error('the main thread could not make the exposition')
        }),
      },
      notices: {
        listening: () => listening(),
        linkUp: ({ account }) => {
          linked.add(account)
          this.plane.linkUp(account)
        },
        linkDown: ({ account }) => {
          linked.delete(account)
          this.plane.linkDown(account)
        },
      },
    }, 'events')
    const thread: IoThread = { port, done, linked }
    this.threads[index] = thread
    const listened = new Promise<void>((resolve, reject) => {
      listening = resolve
      done.then(() => reject(new Error(`I/O thread ${index} ended during start-up`)), reject)
    })
    done.then(
      () => this.onEnd(index, thread, `I/O thread ${index} ended unexpectedly`),
      (err: unknown) => this.onEnd(index, thread, `I/O thread ${index} failed: ${errorLine(err)}`),
    )
    return listened
  }

  private onEnd(index: number, thread: IoThread, reason: string): void {
    thread.port.close(this.stopping ? 'node stopping' : 'peer disconnected') // rules 1 and 2
    if (this.stopping || this.threads[index] !== thread) return
    this.threads[index] = null
    this.log.error('I/O thread died', { thread: index, reason })
    // Rule 3.
    this.links.clearThread(index)
    for (const account of thread.linked) this.plane.linkDown(account)
    // Rule 4.
    void this.restartShards(reason).then((wiring) => this.startThread(index, wiring)).then(
      () => this.log.info('I/O thread replaced', { thread: index }),
      (err: unknown) => this.fatal(`I/O thread ${index} could not be replaced: ${errorLine(err)}`),
    )
  }

  private post(notice: ToIoThread['notices']): void {
    for (const thread of this.threads) thread?.port.notify(notice)
  }

  detach(): void {
    this.post({ type: 'detach' })
  }

  attach(wiring: Wiring): void {
    this.post({ type: 'attach', wiring })
  }

  /** Sends a control-plane prepare (CCP) over `account`'s link, from the thread that holds it. */
  sendControl(account: number, prepare: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const thread = this.threads[this.links.threadOf(account)]
    if (thread === null) return Promise.reject(new Error('not connected'))
    return thread.port.request({ type: 'sendControl', account, prepare, timeoutMs })
  }

  /** Fault injection for tests: makes I/O thread `index` fail as a bug in it would. */
  crash(index: number): void {
    this.threads[index]?.port.notify({ type: 'crash', reason: `fault injected into I/O thread ${index}` })
  }

  /** Every thread stops taking connections and prepares (IoFront.drain). */
  drain(): void {
    this.post({ type: 'drain' })
  }

  /** Closes every thread's sockets and ends the threads. */
  async stop(): Promise<void> {
    this.stopping = true
    const running = this.threads.filter((t): t is IoThread => t !== null)
    this.post({ type: 'stop' })
    await Promise.allSettled(running.map((t) => t.done))
    for (const t of running) t.port.close('node stopping')
    await this.pool?.destroy()
  }
}
