// An I/O thread as a piscina task: piscina starts one worker thread per I/O thread and runs
// `runIoThread` on it once; the task lasts as long as the thread serves. The thread runs an IoFront
// on its own uWebSockets.js app, listening on the node's port beside the other I/O threads.
//
// Control messages (link events, routing messages, CCP to peers, ring changes, stop) travel on a
// MessagePort: they are the control plane, a handful a second; packets never take this path.
//
// A thread that holds uWebSockets.js sockets must close them before it ends: a thread ended with
// sockets open takes the whole process down (uv_loop_close with open handles). So an uncaught
// error closes the app first and then ends the thread with an error, which the main thread sees
// as the thread's death; and the thread is never terminated from outside.

import type { MessagePort } from 'node:worker_threads'
import type { AccountSlots } from '../config/account_table'
import type { Config } from '../config/schema'
import { configureLog, errorFields, logger } from '../log'
import type { Wiring } from '../ring/wiring'
import { openStore } from '../store/balance_store'
import { nameThisThread } from '../thread_name'
import { loadUws } from './uws'
import { IoFront } from './io_front'
import type { AdminRequest, AdminResponse } from './admin_endpoint'

export interface IoTask {
  config: Config
  /** The accounts now (the config's, or as changed since start). */
  slots: AccountSlots
  index: number
  links: SharedArrayBuffer
  /** Whether each ILP-over-HTTP peer answers (ring/peer_reach.ts). */
  reach: SharedArrayBuffer
  /** The node-wide connection count and auth throttle (io/shared_limits.ts). */
  limits: SharedArrayBuffer
  /** The I/O threads' counts for /metrics; null with metrics off. */
  counters: SharedArrayBuffer | null
  wiring: Wiring
  /** The port every I/O thread listens on (already chosen by the main thread). */
  port: number
  control: MessagePort
}

/** Main thread → I/O thread. */
export type IoCommand =
  | { type: 'detach' }
  | { type: 'attach'; wiring: Wiring }
  | { type: 'sendControl'; id: number; account: number; prepare: Uint8Array; timeoutMs: number }
  | { type: 'controlAnswer'; id: number; answer: Uint8Array }
  | { type: 'metricsAnswer'; id: number; text: string | null }
  | { type: 'adminAnswer'; id: number; response: AdminResponse }
  | { type: 'accounts'; id: number; slots: AccountSlots; relink: number[] }
  | { type: 'drain' }
  | { type: 'stop' }
  | { type: 'crash'; reason: string }

/** I/O thread → main thread. */
export type IoEvent =
  | { type: 'listening' }
  | { type: 'linkUp'; account: number }
  | { type: 'linkDown'; account: number }
  | { type: 'control'; id: number; account: number; prepare: Uint8Array }
  | { type: 'metrics'; id: number }
  | { type: 'admin'; id: number; request: AdminRequest }
  | { type: 'sendControlDone'; id: number; answer: Uint8Array | null; error: string | null }
  | { type: 'accountsApplied'; id: number }

export function runIoThread({ config, slots, index, links, reach, limits, counters, wiring, port, control }: IoTask): Promise<string> {
  configureLog(config.logLevel, config.logFormat)
  nameThisThread(`ilp-io-${index}`)
  const log = logger(`io${index}`)
  const store = openStore(config.dataDir, config.durability)
  const post = (event: IoEvent) => control.postMessage(event)
  const answers = new Map<number, (answer: Uint8Array) => void>()
  const expositions = new Map<number, (text: string | null) => void>()
  const adminAnswers = new Map<number, (response: AdminResponse) => void>()
  let nextId = 0
  const front = new IoFront(config, index, links, reach, limits, counters, store, loadUws(), {
    linkUp: (account) => post({ type: 'linkUp', account }),
    linkDown: (account) => post({ type: 'linkDown', account }),
    control: (account, prepare) => new Promise((resolve) => {
      const id = ++nextId
      answers.set(id, resolve)
      post({ type: 'control', id, account, prepare })
    }),
    metrics: () => new Promise((resolve, reject) => {
      const id = ++nextId
      expositions.set(id, (text) => (text === null ? reject(new Error('the main thread could not make the exposition')) : resolve(text)))
      post({ type: 'metrics', id })
    }),
    admin: (request) => new Promise((resolve) => {
      const id = ++nextId
      adminAnswers.set(id, resolve)
      post({ type: 'admin', id, request })
    }),
  }, slots)

  return new Promise((resolve) => {
    const fail = (err: unknown) => {
      log.error('I/O thread failed; closing its sockets', errorFields(err))
      front.closeApp()
      process.exit(1) // ends this thread only; the main thread sees it die and restarts the data plane
    }
    process.on('uncaughtException', fail)
    control.on('message', (command: IoCommand) => {
      switch (command.type) {
        case 'detach':
          return front.shardsRestarting()
        case 'attach':
          return front.port.attach(command.wiring, null)
        case 'adminAnswer':
          adminAnswers.get(command.id)?.(command.response)
          adminAnswers.delete(command.id)
          return
        case 'metricsAnswer':
          expositions.get(command.id)?.(command.text)
          expositions.delete(command.id)
          return
        case 'controlAnswer':
          answers.get(command.id)?.(command.answer)
          answers.delete(command.id)
          return
        case 'sendControl':
          return void front.sendControl(command.account, command.prepare, command.timeoutMs).then(
            (answer) => post({ type: 'sendControlDone', id: command.id, answer, error: null }),
            (err: Error) => post({ type: 'sendControlDone', id: command.id, answer: null, error: err.message }),
          )
        case 'accounts':
          front.applyAccounts(command.slots, command.relink)
          return post({ type: 'accountsApplied', id: command.id })
        case 'drain':
          return front.drain()
        case 'crash':
          // Fault injection: fails as a bug in this thread would, outside any handler.
          return void setImmediate(() => { throw new Error(command.reason) })
        case 'stop':
          return void front.close().then(async () => {
            front.closeApp()
            void store.root.close()
            control.close()
            // A worker's stdout and stderr reach the process through the main thread: the lines
            // still on their way would be lost if the thread ended before they had gone out.
            await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((done) => stream.write('', () => done()))))
            resolve('stopped')
          }, fail)
      }
    })
    front.port.attach(wiring, null)
    front.listen(port).then(() => {
      front.start()
      post({ type: 'listening' })
    }, fail)
  })
}
