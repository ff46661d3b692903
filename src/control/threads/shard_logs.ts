// The shard threads' log lines, written out by the main thread: each shard thread logs into a ring
// of its own (ring/log_ring.ts), which the main thread drains every RELAY_INTERVAL_MS and once
// more after the shard threads have ended (a restart, a stop), so that the lines of a shard that
// died or stopped are all written. The rings outlive the shards, as their counters do: a
// restarted shard writes on in the ring of the one it replaces.
//
// Each shard's lines come out in the order it wrote them; the lines of different shards are
// interleaved a drain at a time, not by their timestamps.

import { formatLogLine, logger, writeToProcess, type Logger, type LogSink } from '../../log'
import { LogRingReader, createLogRing, type LogRing, type LogRingOutput } from '../../ring/log_ring'

/**
 * Room for a burst of lines between two drains: some 1,000 lines of 200 bytes. A shard logs per
 * packet only at debug level (LogOncePer holds back the repeated warnings), so the ring fills only
 * under a flood logged at debug, and then it is better to drop lines than to slow the shard down.
 */
const LOG_RING_BYTES = 256 * 1024
/** Well within a second from a shard's line to the node's output, at the cost of a few loads. */
const RELAY_INTERVAL_MS = 100

export class ShardLogs {
  readonly rings: LogRing[]
  private readonly shards: { reader: LogRingReader; out: LogRingOutput }[]
  private readonly timer: NodeJS.Timeout
  /** Consecutive lines for one stream, written together (one write, not one per line). */
  private chunk = ''
  private chunkToStderr = false

  /** `write` takes one or more lines joined by newlines, without the last newline. */
  constructor(shardCount: number, private readonly write: LogSink = writeToProcess) {
    this.rings = Array.from({ length: shardCount }, () => createLogRing(LOG_RING_BYTES))
    this.shards = this.rings.map((ring, index) => {
      const scope = `shard ${index}`
      const log = logger(scope)
      const out: LogRingOutput = {
        line: (line, toStderr) => this.add(line, toStderr),
        dropped: (lines) => this.reportDropped(log, scope, lines),
      }
      return { reader: new LogRingReader(ring), out }
    })
    this.timer = setInterval(() => this.relay(), RELAY_INTERVAL_MS)
    this.timer.unref()
  }

  /** Writes out every line the shards have logged so far. */
  relay(): void {
    for (const { reader, out } of this.shards) reader.drain(out)
    this.flushChunk()
  }

  /**
   * The shard threads have ended (the ones that died, and the rest, ended by a restart or a
   * stop): writes what they left in their rings, and reports the lines they dropped after the last
   * line that got through.
   */
  relayLeftovers(): void {
    this.relay()
    for (const { reader, out } of this.shards) {
      const dropped = reader.takeDropped()
      if (dropped > 0) out.dropped(dropped)
    }
    this.flushChunk()
  }

  /** The node stops: the last lines, and no more drains. */
  close(): void {
    clearInterval(this.timer)
    this.relayLeftovers()
  }

  private add(line: string, toStderr: boolean): void {
    if (this.chunk !== '' && toStderr !== this.chunkToStderr) this.flushChunk()
    this.chunk = this.chunk === '' ? line : `${this.chunk}\n${line}`
    this.chunkToStderr = toStderr
  }

  private flushChunk(): void {
    if (this.chunk === '') return
    this.write(this.chunk, this.chunkToStderr)
    this.chunk = ''
  }

  // In the shard's scope and at its place among the shard's lines, formatted by the main thread
  // (whose format is the shards').
  private reportDropped(log: Logger, scope: string, lines: number): void {
    if (!log.enabled('warn')) return
    this.add(formatLogLine('warn', scope, 'log lines dropped: the shard logged faster than the main thread wrote them out', { dropped: lines }), true)
  }
}
