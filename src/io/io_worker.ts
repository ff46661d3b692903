// An I/O thread as a piscina task: piscina starts one worker thread per I/O thread and runs
// `runIoThread` on it once; the task lasts as long as the thread serves. The thread runs an IoFront
// on its own uWebSockets.js app, listening on the node's port beside the other I/O threads.
//
// Control messages (link events, routing messages, CCP to peers, ring changes, stop) travel on a
// RequestPort (ring/request_port.ts): they are the control plane, a handful a second; packets
// never take this path.
//
// A thread that holds uWebSockets.js sockets must close them before it ends: a thread ended with
// sockets open takes the whole process down (uv_loop_close with open handles). So an uncaught
// error closes the app first and then ends the thread with an error, which the main thread sees
// as the thread's death; and the thread is never terminated from outside.

import type { MessagePort } from 'node:worker_threads'
import type { AccountChange, AccountSlots } from '../config/account_table'
import type { Config } from '../config/schema'
import { T00_INTERNAL_ERROR } from '../codec/ilp_errors'
import { encodeReject } from '../codec/ilp_packet'
import { configureLog, errorFields, logger } from '../log'
import { RequestPort } from '../ring/request_port'
import type { Wiring } from '../ring/wiring'
import { openStore } from '../store/balance_store'
import { nameThisThread } from '../thread_name'
import { loadUws } from './uws'
import { IoFront } from './io_front'
import type { AdminRequest, AdminResponse } from './ops/admin_endpoint'

export interface IoTask {
  config: Config
  /** The accounts now (the config's, or as changed since start). */
  slots: AccountSlots
  index: number
  links: SharedArrayBuffer
  /** Whether each ILP-over-HTTP peer answers (shared/peer_reach.ts). */
  reach: SharedArrayBuffer
  /** The node-wide connection count and auth throttle (shared/client_table.ts). */
  limits: SharedArrayBuffer
  /** The I/O threads' counts for /metrics; null with metrics off. */
  counters: SharedArrayBuffer | null
  wiring: Wiring
  /** The port every I/O thread listens on (already chosen by the main thread). */
  port: number
  control: MessagePort
}

/** Main thread → I/O thread: CCP to send, new accounts; ring changes, drain, stop. */
export interface ToIoThread {
  requests:
    | { type: 'sendControl'; account: number; prepare: Uint8Array; timeoutMs: number }
    | { type: 'accounts'; changes: readonly AccountChange[]; relink: number[] }
  answers: { sendControl: Uint8Array; accounts: void }
  notices:
    | { type: 'detach' }
    | { type: 'attach'; wiring: Wiring }
    | { type: 'drain' }
    | { type: 'stop' }
    | { type: 'crash'; reason: string }
}

/** I/O thread → main thread: what it asks of the control plane (ControlPlane), and link events. */
export interface FromIoThread {
  requests:
    | { type: 'control'; account: number; prepare: Uint8Array }
    | { type: 'metrics' }
    | { type: 'admin'; request: AdminRequest }
  answers: { control: Uint8Array; metrics: string; admin: AdminResponse }
  notices:
    | { type: 'listening' }
    | { type: 'linkUp'; account: number }
    | { type: 'linkDown'; account: number }
}

export function runIoThread({ config, slots, index, links, reach, limits, counters, wiring, port: listenPort, control }: IoTask): Promise<string> {
  configureLog(config.logLevel, config.logFormat)
  nameThisThread(`ilp-io-${index}`)
  const log = logger(`io${index}`)
  const store = openStore(config.dataDir, config.durability)
  // ControlPlane.control never rejects: without an answer (the port closed at stop), a T00.
  const unavailable = encodeReject(T00_INTERNAL_ERROR, config.ilpAddress, 'control plane unavailable')
  const front = new IoFront(config, index, links, reach, limits, counters, store, loadUws(), {
    linkUp: (account) => port.notify({ type: 'linkUp', account }),
    linkDown: (account) => port.notify({ type: 'linkDown', account }),
    control: (account, prepare) => port.request({ type: 'control', account, prepare }).catch(() => unavailable),
    metrics: () => port.request({ type: 'metrics' }),
    admin: (request) => port.request({ type: 'admin', request }),
  }, slots)
  const fail = (err: unknown) => {
    log.error('I/O thread failed; closing its sockets', errorFields(err))
    front.closeApp()
    process.exit(1) // ends this thread only; the main thread sees it die and restarts the data plane
  }
  process.on('uncaughtException', fail)

  let stopped: (how: string) => void = () => {}
  const ended = new Promise<string>((resolve) => { stopped = resolve })
  const stop = () => void front.close().then(async () => {
    front.closeApp()
    void store.root.close()
    port.close('the I/O thread stopped')
    // A worker's stdout and stderr reach the process through the main thread: the lines
    // still on their way would be lost if the thread ended before they had gone out.
    await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((done) => stream.write('', () => done()))))
    stopped('stopped')
  }, fail)
  const port: RequestPort<FromIoThread, ToIoThread> = new RequestPort(control, {
    requests: {
      sendControl: ({ account, prepare, timeoutMs }) => front.sendControl(account, prepare, timeoutMs),
      accounts: ({ changes, relink }) => {
        // Accounts this thread cannot take leave it broken: it fails as a bug in it would.
        try {
          front.applyAccounts(changes, relink)
        } catch (err) {
          fail(err)
        }
      },
    },
    notices: {
      detach: () => front.shardsRestarting(),
      attach: ({ wiring }) => front.port.attach(wiring, null),
      drain: () => front.drain(),
      // Fault injection: fails as a bug in this thread would, outside any handler.
      crash: ({ reason }) => void setImmediate(() => { throw new Error(reason) }),
      stop,
    },
  }, 'events')
  front.port.attach(wiring, null)
  front.listen(listenPort).then(() => {
    front.start()
    port.notify({ type: 'listening' })
  }, fail)
  return ended
}
