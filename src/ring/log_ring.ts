// A shard thread's log lines on their way to the main thread, which writes them out
// (control/threads/shard_logs.ts). A shard thread never goes back to its event loop (shard/shard_worker.ts),
// so a line it gave process.stdout would wait there until the thread ended, and be lost if the
// thread was terminated; it puts its lines in this ring instead, and the main thread drains it on
// a timer. One writer (the shard thread of the moment: a restarted shard writes on where the dead
// one stopped) and one reader (the main thread).
//
//   Records (ring/ring.ts):
//     LINE     a = 1 for stderr (error, warn), 0 for stdout; payload the formatted line in UTF-8,
//              without its newline
//     DROPPED  a = lines dropped just before this record because the ring was full
//
//   dropped: an Int32 in its own SAB, the lines dropped since the last DROPPED record. The writer
//   keeps it there rather than in a variable so that the count of a shard that dies, or stops,
//   before another line gets through is still read, by the main thread, once the thread has ended.
//
// Never blocking the shard is worth more than a line: a line that finds the ring full is dropped
// and counted, and the count goes out with the next line that fits.

import type { LogSink } from '../log'
import { RingReader, RingWriter, createRing } from './ring'

const KIND_LINE = 1
const KIND_DROPPED = 2
const TO_STDERR = 1
/** A DROPPED record: a record header (ring.ts), no payload. hasRoomFor counts the padding. */
const DROPPED_RECORD_BYTES = 24

export interface LogRing {
  lines: SharedArrayBuffer
  dropped: SharedArrayBuffer
}

export function createLogRing(capacity: number): LogRing {
  return { lines: createRing(capacity), dropped: new SharedArrayBuffer(4) }
}

/** What both ends see: the ring, its payload bytes as text written and read in place, the dropped count. */
abstract class LogRingEnd<R extends RingWriter | RingReader> {
  protected readonly text: Buffer
  protected readonly dropped: Int32Array

  constructor(protected readonly ring: R, log: LogRing) {
    this.text = Buffer.from(ring.data.buffer, ring.data.byteOffset, ring.data.byteLength)
    this.dropped = new Int32Array(log.dropped)
  }
}

export class LogRingWriter extends LogRingEnd<RingWriter> {
  constructor(log: LogRing) {
    super(new RingWriter(log.lines), log)
  }

  /** A LogSink: the line is in the ring when this returns, or counted as dropped. */
  readonly write: LogSink = (line, toStderr) => {
    const ring = this.ring
    const dropped = Atomics.load(this.dropped, 0)
    const bytes = Buffer.byteLength(line)
    // A count goes out only together with the line after it, so that counts never fill a full ring.
    if (bytes > ring.maxPayload() || (dropped > 0 && !ring.hasRoomFor(bytes + DROPPED_RECORD_BYTES))) {
      Atomics.store(this.dropped, 0, dropped + 1)
      return
    }
    if (dropped > 0) ring.tryWrite(KIND_DROPPED, dropped, 0, 0, 0, null)
    const at = ring.reserve(KIND_LINE, bytes, toStderr ? TO_STDERR : 0, 0, 0, 0)
    if (at >= 0) {
      this.text.write(line, at, bytes, 'utf8')
      ring.commit()
    }
    ring.flush()
    // Only after the flush: a thread terminated in between reports its drops twice, never not at all.
    Atomics.store(this.dropped, 0, at >= 0 ? 0 : 1)
  }
}

/** What a reader hands on, in the order the shard wrote it. */
export interface LogRingOutput {
  line(line: string, toStderr: boolean): void
  dropped(lines: number): void
}

export class LogRingReader extends LogRingEnd<RingReader> {
  constructor(log: LogRing) {
    super(new RingReader(log.lines), log)
  }

  /** Hands on every record published so far, and frees their room for the writer. */
  drain(out: LogRingOutput): void {
    const ring = this.ring
    if (!ring.hasData()) return
    ring.beginBatch()
    while (ring.next()) {
      if (ring.kind === KIND_DROPPED) out.dropped(ring.a)
      else out.line(this.text.toString('utf8', ring.payloadOffset, ring.payloadOffset + ring.payloadLength), ring.a === TO_STDERR)
    }
    ring.endBatch()
  }

  /**
   * The lines dropped that no DROPPED record carries (none got through after them). Only once the
   * writer thread has ended: while it runs, the count is its own.
   */
  takeDropped(): number {
    return Atomics.exchange(this.dropped, 0, 0)
  }
}
