// The I/O worker threads (IO_THREADS > 1), seen from the main thread: piscina runs one long task
// per thread (io/io_worker.ts); this class starts them, relays the control plane's messages to and
// from them, and reports a thread's death so that the data plane can be restarted around it.

import { join } from 'node:path'
import { MessageChannel, type MessagePort } from 'node:worker_threads'
import type Piscina from 'piscina'
import { threadPerTaskPool } from './thread_pool'
import type { AccountSlots } from '../config/account_table'
import type { Config } from '../config/schema'
import { refusalText } from '../io/admin_errors'
import type { ControlPlane } from '../io/io_front'
import type { IoCommand, IoEvent, IoTask } from '../io/io_worker'
import { errorLine, type Logger } from '../log'
import { LinkTable } from '../ring/link_table'
import type { Wiring } from '../ring/wiring'
import type { IoSide } from './shard_supervisor'

interface IoThread {
  control: MessagePort
  done: Promise<unknown>
  /** Accounts whose links are up on this thread (to be reported down if it dies). */
  linked: Set<number>
}

export class IoThreads implements IoSide {
  private readonly pool: Piscina
  private readonly threads: (IoThread | null)[]
  private readonly links: LinkTable
  private readonly controlReplies = new Map<number, { thread: IoThread; resolve: (a: Uint8Array) => void; reject: (e: Error) => void }>()
  private nextControlId = 0
  private stopping = false
  /** The accounts the threads run with; a replaced thread starts with them. */
  private slots: AccountSlots
  private readonly applied = new Map<number, { thread: IoThread; resolve: () => void }>()

  constructor(
    private readonly config: Config,
    private readonly linksSab: SharedArrayBuffer,
    private readonly reachSab: SharedArrayBuffer,
    private readonly limitsSab: SharedArrayBuffer,
    private readonly countersSab: SharedArrayBuffer | null,
    private readonly plane: ControlPlane,
    /** An I/O thread died (after it closed its sockets). */
    private readonly died: (index: number, reason: string) => void,
    private readonly log: Logger,
  ) {
    const n = config.ioThreads
    this.pool = threadPerTaskPool(join(__dirname, '..', 'io', 'io_worker.js'), 'runIoThread', n)
    this.threads = Array.from({ length: n }, () => null)
    this.links = new LinkTable(linksSab, config.maxAccounts, n)
    this.slots = { accounts: config.accounts, live: config.accounts.map(() => true) }
  }

  /**
   * Every I/O thread takes the new accounts and closes the links of those in `relink`; resolves
   * when all have (a thread that dies first counts: its replacement starts with them).
   */
  async applyAccounts(slots: AccountSlots, relink: number[]): Promise<void> {
    this.slots = slots
    await Promise.all(this.threads.map((thread) => {
      if (thread === null) return Promise.resolve()
      const id = ++this.nextControlId
      return new Promise<void>((resolve) => {
        this.applied.set(id, { thread, resolve })
        thread.control.postMessage({ type: 'accounts', id, slots, relink } satisfies IoCommand)
      })
    }))
  }

  /** Starts every I/O thread on `wiring`; resolves when all listen on `port`. */
  async start(wiring: Wiring, port: number): Promise<void> {
    await Promise.all(this.threads.map((_, index) => this.startThread(index, wiring, port)))
  }

  /** Starts (or replaces) I/O thread `index`; resolves when it listens. */
  startThread(index: number, wiring: Wiring, port: number): Promise<void> {
    const { port1, port2 } = new MessageChannel()
    const task: IoTask = { config: this.config, slots: this.slots, index, links: this.linksSab, reach: this.reachSab, limits: this.limitsSab, counters: this.countersSab, wiring, port, control: port2 }
    const done = this.pool.run(task, { transferList: [port2] })
    const thread: IoThread = { control: port1, done, linked: new Set() }
    this.threads[index] = thread
    const listening = new Promise<void>((resolve, reject) => {
      port1.on('message', (event: IoEvent) => {
        if (event.type === 'listening') resolve()
        else this.onEvent(thread, event)
      })
      done.then(() => reject(new Error(`I/O thread ${index} ended during start-up`)), reject)
    })
    done.then(
      () => this.onEnd(index, thread, `I/O thread ${index} ended unexpectedly`),
      (err: unknown) => this.onEnd(index, thread, `I/O thread ${index} failed: ${errorLine(err)}`),
    )
    return listening
  }

  private onEvent(thread: IoThread, event: IoEvent): void {
    switch (event.type) {
      case 'linkUp':
        thread.linked.add(event.account)
        return this.plane.linkUp(event.account)
      case 'linkDown':
        thread.linked.delete(event.account)
        return this.plane.linkDown(event.account)
      case 'control':
        return void this.plane.control(event.account, event.prepare).then((answer) => {
          thread.control.postMessage({ type: 'controlAnswer', id: event.id, answer } satisfies IoCommand)
        })
      case 'admin':
        return void this.plane.admin(event.request).then((response) => {
          thread.control.postMessage({ type: 'adminAnswer', id: event.id, response } satisfies IoCommand)
        }, (err: Error) => {
          this.log.error('admin request failed', { error: err.message })
          thread.control.postMessage({ type: 'adminAnswer', id: event.id, response: refusalText('internal', 'internal error') } satisfies IoCommand)
        })
      case 'metrics':
        return void this.plane.metrics().then((text) => {
          thread.control.postMessage({ type: 'metricsAnswer', id: event.id, text } satisfies IoCommand)
        }, (err: Error) => {
          this.log.error('metrics exposition failed', { error: err.message })
          thread.control.postMessage({ type: 'metricsAnswer', id: event.id, text: null } satisfies IoCommand)
        })
      case 'accountsApplied':
        this.applied.get(event.id)?.resolve()
        this.applied.delete(event.id)
        return
      case 'sendControlDone': {
        const waiting = this.controlReplies.get(event.id)
        this.controlReplies.delete(event.id)
        if (event.answer !== null) waiting?.resolve(event.answer)
        else waiting?.reject(new Error(event.error ?? 'failed'))
      }
    }
  }

  private onEnd(index: number, thread: IoThread, reason: string): void {
    thread.control.close()
    if (this.stopping || this.threads[index] !== thread) return
    this.threads[index] = null
    this.log.error('I/O thread died', { thread: index, reason })
    // Its links went with it: the shards must not send it prepares, and the routes through them
    // are down until the peers reconnect.
    this.links.clearThread(index)
    for (const account of thread.linked) this.plane.linkDown(account)
    for (const [id, waiting] of this.applied) {
      if (waiting.thread !== thread) continue
      this.applied.delete(id)
      waiting.resolve()
    }
    for (const [id, waiting] of this.controlReplies) {
      if (waiting.thread !== thread) continue
      this.controlReplies.delete(id)
      waiting.reject(new Error('peer disconnected'))
    }
    this.died(index, reason)
  }

  private post(command: IoCommand): void {
    for (const thread of this.threads) thread?.control.postMessage(command)
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
    const id = ++this.nextControlId
    return new Promise((resolve, reject) => {
      this.controlReplies.set(id, { thread, resolve, reject })
      thread.control.postMessage({ type: 'sendControl', id, account, prepare, timeoutMs } satisfies IoCommand)
    })
  }

  /** Fault injection for tests: makes I/O thread `index` fail as a bug in it would. */
  crash(index: number): void {
    this.threads[index]?.control.postMessage({ type: 'crash', reason: `fault injected into I/O thread ${index}` } satisfies IoCommand)
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
    for (const [, waiting] of this.controlReplies) waiting.reject(new Error('node stopping'))
    for (const waiting of this.applied.values()) waiting.resolve()
    this.applied.clear()
    await this.pool.destroy()
  }
}
