// One way for two threads to talk about control: requests that are answered, and notices that are
// not, over a MessagePort. The main thread, the I/O threads and the shards all use it; packets
// never do (they go over the rings beside this file). It lives here, with the rings and the
// doorbells, because it is one of the few things every kind of thread shares.
//
// Each side numbers its own requests; an answer or a failure names the request it settles. What
// is pending settles by one rule:
//   1. answered   the other side's handler returned (or its promise resolved): the answer
//   2. failed     it threw (or its promise rejected): a RequestFailed with its message, and its
//                 `code` when that was a string (so a caller can rebuild the error class it means)
//   3. gone       close(reason) on this side, because the other thread died or the node stops:
//                 every pending request rejects with one ThreadGone(reason), and so does every
//                 later one. Whether a ThreadGone means "not done" or "done anyway" is the
//                 caller's rule (new accounts count as applied: the next thread starts with them)
// The port itself cannot tell that a thread died: its owner learns that from the thread's end
// (piscina's task) and closes the port, once, in that one place.
//
// Receiving: on a thread with an event loop the port listens ('events'). A shard never yields to
// its event loop, so its port is read with poll() between turns ('poll'), through
// receiveMessageOnPort; its handlers must answer synchronously (a promise would settle only once
// the loop ends).

import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads'

/** What one side sends: its requests (a union on `type`), each one's answer by type, and its notices. */
export interface Protocol {
  requests: { type: string }
  answers: { [type: string]: unknown }
  notices: { type: string }
}

/** The answers to the other side's requests, one function per type (a value, a promise, or a throw). */
export type RequestHandlers<P extends Protocol> = {
  [T in P['requests']['type']]: (request: Extract<P['requests'], { type: T }>) => P['answers'][T] | Promise<P['answers'][T]>
}

/** What is done with the other side's notices, one function per type. */
export type NoticeHandlers<P extends Protocol> = {
  [T in P['notices']['type']]: (notice: Extract<P['notices'], { type: T }>) => void
}

/** The thread at the other end went away (or this end was closed) before it answered. */
export class ThreadGone extends Error {
  override readonly name = 'ThreadGone'
}

/** The other side's handler threw: its message, and its `code` when that was a string. */
export class RequestFailed extends Error {
  override readonly name = 'RequestFailed'

  constructor(message: string, readonly code: string | null) {
    super(message)
  }
}

type Envelope =
  | { kind: 'request'; id: number; body: { type: string } }
  | { kind: 'answer'; id: number; body: unknown }
  | { kind: 'failure'; id: number; message: string; code: string | null }
  | { kind: 'notice'; body: { type: string } }

interface Pending {
  resolve(answer: unknown): void
  reject(err: Error): void
}

/**
 * One end of a conversation: `Mine` is what this side sends, `Theirs` what the other side does.
 */
export class RequestPort<Mine extends Protocol, Theirs extends Protocol> {
  private nextId = 0
  private readonly pending = new Map<number, Pending>()
  private gone: ThreadGone | null = null

  constructor(
    private readonly port: MessagePort,
    private readonly handlers: { requests: RequestHandlers<Theirs>; notices: NoticeHandlers<Theirs> },
    receive: 'events' | 'poll',
  ) {
    if (receive === 'events') port.on('message', (envelope: Envelope) => this.receive(envelope))
  }

  /** Asks the other side; settles by the rule above. */
  request<R extends Mine['requests']>(body: R): Promise<Mine['answers'][R['type']]> {
    if (this.gone !== null) return Promise.reject(this.gone)
    const id = ++this.nextId
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (answer: unknown) => void, reject })
      this.port.postMessage({ kind: 'request', id, body } satisfies Envelope)
    })
  }

  /** Tells the other side something that needs no answer (dropped once the port is closed). */
  notify(body: Mine['notices']): void {
    if (this.gone === null) this.port.postMessage({ kind: 'notice', body } satisfies Envelope)
  }

  /** Receives, in order, everything that has arrived ('poll' ports); returns how many. */
  poll(): number {
    let n = 0
    while (this.gone === null) {
      const m = receiveMessageOnPort(this.port)
      if (m === undefined) break
      this.receive(m.message as Envelope)
      n++
    }
    return n
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.gone !== null
  }

  /**
   * The other thread is gone, or this side is done with it: every pending request and every
   * later one rejects with ThreadGone(reason), and the MessagePort closes. Only the first call counts.
   */
  close(reason: string): void {
    if (this.gone !== null) return
    this.gone = new ThreadGone(reason)
    const pending = [...this.pending.values()]
    this.pending.clear()
    for (const p of pending) p.reject(this.gone)
    this.port.close()
  }

  private receive(envelope: Envelope): void {
    switch (envelope.kind) {
      case 'request':
        return this.answer(envelope.id, envelope.body)
      case 'notice': {
        const handle = (this.handlers.notices as Record<string, (notice: unknown) => void>)[envelope.body.type]
        return handle(envelope.body)
      }
      case 'answer':
      case 'failure': {
        const p = this.pending.get(envelope.id)
        if (p === undefined) return // nothing of ours waits for it
        this.pending.delete(envelope.id)
        if (envelope.kind === 'answer') p.resolve(envelope.body)
        else p.reject(new RequestFailed(envelope.message, envelope.code))
      }
    }
  }

  private answer(id: number, body: { type: string }): void {
    const handle = (this.handlers.requests as Record<string, (request: unknown) => unknown>)[body.type]
    let answer: unknown
    try {
      answer = handle(body)
    } catch (err) {
      return this.fail(id, err)
    }
    if (answer instanceof Promise) {
      answer.then((value: unknown) => this.reply({ kind: 'answer', id, body: value }), (err: unknown) => this.fail(id, err))
    } else {
      this.reply({ kind: 'answer', id, body: answer })
    }
  }

  private fail(id: number, err: unknown): void {
    const code = (err as { code?: unknown } | null)?.code
    this.reply({ kind: 'failure', id, message: err instanceof Error ? err.message : String(err), code: typeof code === 'string' ? code : null })
  }

  /** An answer to a thread that is gone is dropped: nothing waits for it any more. */
  private reply(envelope: Envelope): void {
    if (this.gone === null) this.port.postMessage(envelope)
  }
}
