// Goal: the one request/response port every thread talks through (src/ring/request_port.ts)
// answers requests, carries failures with their message and code, settles everything pending by
// one rule when it closes (and refuses what comes after), and works for a thread that never
// yields to its event loop (poll). Method: real MessageChannels in this thread, then a real
// worker thread running a loop like a shard's (test/support/request_port_worker.ts).

import assert from 'node:assert/strict'
import { once } from 'node:events'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { MessageChannel, Worker } from 'node:worker_threads'
import { RequestFailed, RequestPort, ThreadGone } from '../../src/ring/request_port'
import type { FromLoop, ToLoop } from '../support/request_port_worker'

interface Asks {
  requests: { type: 'double'; n: number } | { type: 'later'; n: number } | { type: 'refuse'; code: unknown } | { type: 'reject' } | { type: 'never' }
  answers: { double: number; later: string; refuse: never; reject: never; never: never }
  notices: { type: 'note'; text: string }
}

interface Silent {
  requests: never
  answers: Record<string, never>
  notices: { type: 'note'; text: string }
}

/** An asking end and an answering end of one channel, in this thread. */
function pair(receive: 'events' | 'poll' = 'events') {
  const { port1, port2 } = new MessageChannel()
  const heard: string[] = []
  const asker = new RequestPort<Asks, Silent>(port1, { requests: {}, notices: { note: ({ text }) => heard.push(`asker: ${text}`) } }, 'events')
  const answerer = new RequestPort<Silent, Asks>(port2, {
    requests: {
      double: ({ n }) => 2 * n,
      later: async ({ n }) => {
        await new Promise((resolve) => setTimeout(resolve, 5))
        return `later ${n}`
      },
      refuse: ({ code }) => {
        throw Object.assign(new Error('refused'), { code })
      },
      reject: () => Promise.reject(Object.assign(new Error('rejected later'), { code: 'LATER' })),
      never: () => new Promise<never>(() => {}),
    },
    notices: { note: ({ text }) => heard.push(`answerer: ${text}`) },
  }, receive)
  return { asker, answerer, heard }
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

describe('RequestPort', () => {
  it('answers requests with values and promises, and delivers notices in order', async () => {
    const { asker, answerer, heard } = pair()
    assert.deepEqual(await Promise.all([asker.request({ type: 'double', n: 21 }), asker.request({ type: 'later', n: 1 }), asker.request({ type: 'double', n: 0 })]), [42, 'later 1', 0])
    asker.notify({ type: 'note', text: 'one' })
    asker.notify({ type: 'note', text: 'two' })
    answerer.notify({ type: 'note', text: 'back' })
    await tick()
    // In order each way (the two ways are not ordered with each other).
    assert.deepEqual(heard.filter((h) => h.startsWith('answerer')), ['answerer: one', 'answerer: two'])
    assert.deepEqual(heard.filter((h) => h.startsWith('asker')), ['asker: back'])
    asker.close('done')
    answerer.close('done')
  })

  it('rejects with the message and the string code of a handler that threw or rejected', async () => {
    const { asker, answerer } = pair()
    const thrown = await asker.request({ type: 'refuse', code: 'ILP_NODE_ADJUSTMENT_OUT_OF_RANGE' }).catch((err: unknown) => err)
    assert.ok(thrown instanceof RequestFailed)
    assert.equal(thrown.message, 'refused')
    assert.equal(thrown.code, 'ILP_NODE_ADJUSTMENT_OUT_OF_RANGE')
    const rejected = await asker.request({ type: 'reject' }).catch((err: unknown) => err)
    assert.ok(rejected instanceof RequestFailed)
    assert.equal(rejected.message, 'rejected later')
    assert.equal(rejected.code, 'LATER')
    // A code that is not a string (an errno) does not cross.
    const numeric = await asker.request({ type: 'refuse', code: 28 }).catch((err: unknown) => err)
    assert.ok(numeric instanceof RequestFailed)
    assert.equal(numeric.code, null)
    // The port still answers after failures.
    assert.equal(await asker.request({ type: 'double', n: 2 }), 4)
    asker.close('done')
    answerer.close('done')
  })

  it('close() rejects every pending request with one ThreadGone, and every later one; notices after it are dropped', async () => {
    const { asker, answerer, heard } = pair()
    const pending = [asker.request({ type: 'never' }), asker.request({ type: 'never' }), asker.request({ type: 'later', n: 2 })]
    const settled = Promise.allSettled(pending)
    await tick()
    asker.close('the thread died')
    assert.ok(asker.closed)
    const outcomes = await settled
    assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'rejected', 'rejected'])
    const reasons = outcomes.map((o) => (o as PromiseRejectedResult).reason as unknown)
    for (const reason of reasons) {
      assert.ok(reason instanceof ThreadGone)
      assert.equal(reason.message, 'the thread died')
    }
    assert.equal(reasons[0], reasons[2], 'one error for all: a caller applies its rule to its type')
    const after = await asker.request({ type: 'double', n: 1 }).catch((err: unknown) => err)
    assert.ok(after instanceof ThreadGone)
    asker.close('a second close changes nothing')
    assert.equal((await asker.request({ type: 'double', n: 1 }).catch((err: unknown) => err) as Error).message, 'the thread died')
    asker.notify({ type: 'note', text: 'into the void' })
    // The later answer (5 ms) arrives at a closed port: nothing is settled twice, nothing throws.
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.deepEqual(heard, [])
    answerer.close('done')
  })

  it('a caller applies its own rule to ThreadGone: applied for some requests, failed for others', async () => {
    const { asker, answerer } = pair()
    const applied = asker.request({ type: 'never' }).then(() => 'applied', (err: unknown) => {
      if (err instanceof ThreadGone) return 'applied' // e.g. new accounts: the next thread starts with them
      throw err
    })
    const unknown = asker.request({ type: 'never' })
    await tick()
    asker.close('restarting')
    assert.equal(await applied, 'applied')
    await assert.rejects(unknown, ThreadGone)
    answerer.close('done')
  })

  it("a 'poll' port handles nothing until poll(), then everything waiting, in order", async () => {
    const { asker, answerer, heard } = pair('poll')
    let answered = false
    const answer = asker.request({ type: 'double', n: 5 }).then((n) => {
      answered = true
      return n
    })
    asker.notify({ type: 'note', text: 'first' })
    await tick()
    await tick()
    assert.equal(answered, false)
    assert.deepEqual(heard, [])
    assert.equal(answerer.poll(), 2)
    assert.deepEqual(heard, ['answerer: first'])
    assert.equal(await answer, 10)
    assert.equal(answerer.poll(), 0)
    answerer.close('done')
    assert.equal(answerer.poll(), 0, 'a closed port receives nothing')
    asker.close('done')
  })

  it('talks with a worker thread whose loop never yields, and settles what it left when it is terminated', async () => {
    const { port1, port2 } = new MessageChannel()
    const bell = new SharedArrayBuffer(4)
    const word = new Int32Array(bell)
    const ring = () => {
      Atomics.add(word, 0, 1)
      Atomics.notify(word, 0)
    }
    let readyResolve: () => void = () => {}
    const ready = new Promise<void>((resolve) => { readyResolve = resolve })
    const turns: number[] = []
    const port = new RequestPort<ToLoop, FromLoop>(port1, { requests: {}, notices: { ready: () => readyResolve(), polled: ({ turns: n }) => { turns.push(n) } } }, 'events')
    const worker = new Worker(join(__dirname, '..', 'support', 'request_port_worker.js'), { workerData: { port: port2, bell }, transferList: [port2] })
    // The owner learns of the thread's end and closes the port, in one place.
    worker.on('exit', (code) => port.close(`worker exited (${code})`))
    await ready
    const sums = [port.request({ type: 'add', a: 1, b: 2 }), port.request({ type: 'add', a: 40, b: 2 })]
    ring()
    assert.deepEqual(await Promise.all(sums), [3, 42])
    const refused = port.request({ type: 'refuse', code: 'ILP_NODE_STORAGE_UNAVAILABLE' }).catch((err: unknown) => err)
    ring()
    const err = await refused
    assert.ok(err instanceof RequestFailed)
    assert.equal(err.code, 'ILP_NODE_STORAGE_UNAVAILABLE')
    // A request the thread never answers, then its death: the pending request settles as ThreadGone.
    const hung = port.request({ type: 'hang' }).catch((e: unknown) => e)
    ring()
    await new Promise((resolve) => setTimeout(resolve, 50))
    const afterIt = port.request({ type: 'add', a: 1, b: 1 }).catch((e: unknown) => e)
    ring()
    await worker.terminate()
    const gone = await hung
    assert.ok(gone instanceof ThreadGone && /worker exited/.test(gone.message))
    assert.ok(await afterIt instanceof ThreadGone, 'asked after the thread hung: never answered, settled by the close')
    await assert.rejects(port.request({ type: 'add', a: 0, b: 0 }), ThreadGone)
    assert.ok(turns.length >= 1, 'the loop polled between its turns')
  })

  it('a worker that is told to stop ends its loop; the port closes without anything pending', async () => {
    const { port1, port2 } = new MessageChannel()
    const bell = new SharedArrayBuffer(4)
    const word = new Int32Array(bell)
    let readyResolve: () => void = () => {}
    const ready = new Promise<void>((resolve) => { readyResolve = resolve })
    const port = new RequestPort<ToLoop, FromLoop>(port1, { requests: {}, notices: { ready: () => readyResolve(), polled: () => {} } }, 'events')
    const worker = new Worker(join(__dirname, '..', 'support', 'request_port_worker.js'), { workerData: { port: port2, bell }, transferList: [port2] })
    const exited = once(worker, 'exit')
    await ready
    assert.equal(await (async () => {
      const sum = port.request({ type: 'add', a: 2, b: 3 })
      port.notify({ type: 'stop' })
      Atomics.add(word, 0, 1)
      Atomics.notify(word, 0)
      return sum
    })(), 5, 'a request before the stop is answered in the same poll')
    assert.deepEqual(await exited, [0])
    port.close('stopped')
  })
})
