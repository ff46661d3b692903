// A small leveled logger: one line per event, `time level scope message key=value…`, or with
// LOG_FORMAT=json one JSON object per line (`{"time","level","scope","msg",…fields}`, amounts as
// decimal strings), which is what log shippers read. Off the packet path except for failures.
// Tokens and secrets are never passed to it. Lines go to process.stdout (info, debug) or
// process.stderr (error, warn), unless the thread has a sink of its own (setLogSink): a shard
// thread, which never returns to its event loop, hands them to the main thread instead.

import type { LogFormat, LogLevel } from './config/schema'
import { showText, showValue } from './display'

const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 }
let threshold = LEVELS.info
let json = false

/** Where a thread's lines go: one formatted line, without its newline, and its stream. */
export type LogSink = (line: string, toStderr: boolean) => void

/** The process's stdout and stderr: `line` may be several lines joined by newlines. */
export const writeToProcess: LogSink = (line, toStderr) => {
  if (toStderr) process.stderr.write(line + '\n')
  else process.stdout.write(line + '\n')
}
let sink = writeToProcess

/** Where this thread's lines go from now on; null for the process's own stdout and stderr. */
export function setLogSink(s: LogSink | null): void {
  sink = s ?? writeToProcess
}

export function setLogLevel(level: LogLevel): void {
  threshold = LEVELS[level]
}

/** Level and format for this thread (each worker thread sets its own from the config). */
export function configureLog(level: LogLevel, format: LogFormat): void {
  setLogLevel(level)
  json = format === 'json'
}

function jsonLine(level: LogLevel, scope: string, message: string, fields?: LogFields): string {
  const record: Record<string, string | number | boolean | null> = { time: new Date().toISOString(), level, scope, msg: message }
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined || k in record) continue
      record[k] = typeof v === 'bigint' ? v.toString() : v
    }
  }
  return JSON.stringify(record)
}

export type LogFields = Record<string, string | number | bigint | boolean | null | undefined>

/** One line in this thread's format, without its newline, whatever the level threshold. */
export function formatLogLine(level: LogLevel, scope: string, message: string, fields?: LogFields): string {
  if (json) return jsonLine(level, scope, message, fields)
  let line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${scope}: ${message}`
  if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${String(v)}`
  return line
}

function write(level: LogLevel, scope: string, message: string, fields?: LogFields): void {
  if (LEVELS[level] > threshold) return
  sink(formatLogLine(level, scope, message, fields), level === 'error' || level === 'warn')
}

export interface Logger {
  error(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  info(message: string, fields?: LogFields): void
  debug(message: string, fields?: LogFields): void
  enabled(level: LogLevel): boolean
}

/** How much of an error's message its log line keeps. */
export const ERROR_MESSAGE_CHARS = 200

/**
 * An error's name and message on one line (escaped, cut after ERROR_MESSAGE_CHARS characters),
 * for a log line or a reason given on; a thrown value that is no Error is shown by its type.
 */
export function errorLine(err: unknown): string {
  return err instanceof Error ? showText(`${err.name}: ${err.message}`, ERROR_MESSAGE_CHARS) : showValue(err)
}

/** An error as one log line's fields: `error` (errorLine), and at LOG_LEVEL=debug its `stack` too, as it is. */
export function errorFields(err: unknown): LogFields {
  const stack = err instanceof Error && LEVELS.debug <= threshold ? err.stack : undefined
  return stack === undefined ? { error: errorLine(err) } : { error: errorLine(err), stack }
}

export function logger(scope: string): Logger {
  return {
    error: (m, f) => write('error', scope, m, f),
    warn: (m, f) => write('warn', scope, m, f),
    info: (m, f) => write('info', scope, m, f),
    debug: (m, f) => write('debug', scope, m, f),
    enabled: (level) => LEVELS[level] <= threshold,
  }
}

/**
 * Logs a kind of event at most once per interval per key (a peer, an address): the first one at
 * once, the rest of the interval only counted, and the count given with the next line logged, so
 * that a peer repeating itself costs one line per interval however fast it goes. The counters in
 * /metrics have the exact figures. Keys beyond `keysMax` share one line (a flood of new keys cannot
 * grow the table).
 */
export class LogOncePer {
  private readonly last = new Map<string, { atMs: number; suppressed: number }>()

  constructor(
    private readonly log: Logger,
    private readonly level: LogLevel,
    private readonly intervalMs: number,
    private readonly keysMax = 1024,
  ) {}

  event(key: string, message: string, fields: LogFields, nowMs: number): void {
    if (!this.log.enabled(this.level)) return
    if (!this.last.has(key) && this.last.size >= this.keysMax) {
      // Forget the keys whose interval has passed with nothing held back; if none, share a line.
      for (const [k, v] of this.last) if (nowMs - v.atMs >= this.intervalMs && v.suppressed === 0) this.last.delete(k)
      if (this.last.size >= this.keysMax) key = '(other)'
    }
    const seen = this.last.get(key)
    if (seen !== undefined && nowMs - seen.atMs < this.intervalMs) {
      seen.suppressed++
      return
    }
    const suppressed = seen?.suppressed ?? 0
    this.last.set(key, { atMs: nowMs, suppressed: 0 })
    this.log[this.level](message, suppressed > 0 ? { ...fields, suppressed, perMs: this.intervalMs } : fields)
  }
}
