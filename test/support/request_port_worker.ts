// A thread for test/unit/request_port.test.ts that behaves as a shard does: a loop that never yields
// to its event loop, polling its RequestPort between "turns" and sleeping on a shared word
// (Atomics.wait) that the test wakes after each message, as the main thread rings a doorbell.

import { workerData, type MessagePort } from 'node:worker_threads'
import { RequestPort } from '../../src/ring/request_port'

export interface ToLoop {
  requests: { type: 'add'; a: number; b: number } | { type: 'refuse'; code: string } | { type: 'hang' }
  answers: { add: number; refuse: never; hang: never }
  notices: { type: 'stop' }
}

export interface FromLoop {
  requests: never
  answers: Record<string, never>
  notices: { type: 'ready' } | { type: 'polled'; turns: number }
}

const { port: control, bell } = workerData as { port: MessagePort; bell: SharedArrayBuffer }
const word = new Int32Array(bell)
let stop = false
let hanging = false
const port = new RequestPort<FromLoop, ToLoop>(control, {
  requests: {
    add: ({ a, b }) => a + b,
    refuse: ({ code }) => {
      throw Object.assign(new Error(`refused with ${code}`), { code })
    },
    // Never answers: the thread stays busy until it is terminated.
    hang: () => {
      hanging = true
      return new Promise<never>(() => {})
    },
  },
  notices: { stop: () => { stop = true } },
}, 'poll')
port.notify({ type: 'ready' })
let turns = 0
while (!stop) {
  const seen = Atomics.load(word, 0)
  const received = port.poll()
  if (received > 0) port.notify({ type: 'polled', turns: ++turns })
  if (hanging) for (;;) Atomics.wait(word, 0, Atomics.load(word, 0), 1000)
  if (received === 0) Atomics.wait(word, 0, seen, 1000)
}
port.close('stopped')
