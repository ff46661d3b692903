// A small leveled logger: one line per event, `time level scope message key=value…`, or with
// LOG_FORMAT=json one JSON object per line (`{"time","level","scope","msg",…fields}`, amounts as
// decimal strings), which is what log shippers read. Off the packet path except for failures.
// Tokens and secrets are never passed to it. Lines go to process.stdout (info, debug) or
// process.stderr (error, warn), unless the thread has a sink of its own (setLogSink): a shard
// thread, which never returns to its event loop, hands them to the main thread instead.
//
// Bounded, whatever a call site passes or a peer sends. Messages and field keys are ours; field
// values (paths, headers, addresses, account ids, peers' messages) come from outside.
//   Size: a message is cut after LOG_MESSAGE_MAX_CHARS characters, a string value after
//     LOG_VALUE_MAX_CHARS (LOG_ERROR_VALUE_MAX_CHARS on error lines, so that a stack trace keeps
//     its first frames), each with `…(+N chars)` saying how much was cut. A whole line is at most
//     LOG_LINE_MAX_BYTES: fields that would go beyond it are left out, and `fieldsLeftOut=N` says
//     how many.
//   Shape: in the text format, control characters (C0, DEL, C1), the line and paragraph
//     separators, the bidi embeddings, overrides and isolates, and the backslash are escaped
//     (`\n`, `\u202e`, `\\`), and a value that is not plain printable ASCII without a space, `=`
//     or `"` is written in double quotes, so that one event is one line and a value cannot pass
//     for another field or line (messages, ours, are escaped and not quoted). JSON.stringify
//     escapes the controls of the JSON format; the rest of those characters are escaped there as
//     \uXXXX too.
//   Rate: each thread (main, I/O worker, shard) may write a burst of LOG_BURST_LINES lines,
//     refilled at LOG_LINES_PER_SECOND; error lines then draw on a reserve of their own
//     (LOG_ERROR_RESERVE_LINES, refilled at LOG_ERROR_RESERVE_PER_SECOND), so that a flood of
//     info lines cannot hide a fatal error. Lines over the budget are dropped and counted, and the
//     count goes out, as a warning in that line's scope, with the thread's next line that is
//     written, at most once per LOG_DROPPED_REPORT_INTERVAL_MS.
//
// The bound: in any T seconds a thread writes at most maxLogLines(1, T) =
//   (LOG_BURST_LINES + LOG_ERROR_RESERVE_LINES + 1) + (LOG_LINES_PER_SECOND + LOG_ERROR_RESERVE_PER_SECOND + 1) × T
// lines, i.e. 1,051 + 106 × T, of at most LOG_LINE_MAX_BYTES + 1 bytes (4,097 with the newline):
// about 4.3 MB at once, then 434 kB/s. The node has 1 + IO_THREADS (when above 1) + SHARDS
// threads, and writes at most maxLogBytes(threads, T) = threads × maxLogLines(1, T) × 4,097 bytes
// in T seconds. A shard thread that replaces one that died may start with a full budget (restarts
// are spaced by the supervisor's back-off). The main thread's own notes on a shard's ring
// (control/threads/shard_logs.ts) stand in for lines that the shard's budget has counted already.

import type { LogFormat, LogLevel } from './config/schema'
import { showValue } from './display'

/** Characters of a message kept, before escaping (an escaped character takes up to 6). */
export const LOG_MESSAGE_MAX_CHARS = 512
/** Characters of a string field value kept, before escaping. */
export const LOG_VALUE_MAX_CHARS = 256
/** The same on error lines: a stack trace is worth its frames, and error lines are few. */
export const LOG_ERROR_VALUE_MAX_CHARS = 2048
/** Bytes of a line in UTF-8, without its newline. A message and its head always fit (see SCOPE_MAX_CHARS). */
export const LOG_LINE_MAX_BYTES = 4096
/** Lines a thread may write at once. */
export const LOG_BURST_LINES = 1000
/** Lines a thread may write per second once its burst is spent. */
export const LOG_LINES_PER_SECOND = 100
/** Error lines a thread may still write once its budget is spent. */
export const LOG_ERROR_RESERVE_LINES = 50
export const LOG_ERROR_RESERVE_PER_SECOND = 5
/** How often at most a thread says how many lines it dropped. */
export const LOG_DROPPED_REPORT_INTERVAL_MS = 1000

/** The most lines `threads` threads can write in any `seconds` seconds (dropped-line counts included). */
export function maxLogLines(threads: number, seconds: number): number {
  const burst = LOG_BURST_LINES + LOG_ERROR_RESERVE_LINES + 1
  const perSecond = LOG_LINES_PER_SECOND + LOG_ERROR_RESERVE_PER_SECOND + 1000 / LOG_DROPPED_REPORT_INTERVAL_MS
  return threads * (burst + perSecond * seconds)
}

/** The most bytes (newlines included) `threads` threads can write in any `seconds` seconds. */
export function maxLogBytes(threads: number, seconds: number): number {
  return maxLogLines(threads, seconds) * (LOG_LINE_MAX_BYTES + 1)
}

/**
 * Scopes are ours and short; the cut only keeps the line cap's arithmetic true: time (24) + level
 * + scope (64 × 6 escaped) + message (512 × 6 escaped + the cut marker) + the left-out count stay
 * well under LOG_LINE_MAX_BYTES in either format.
 */
const SCOPE_MAX_CHARS = 64
/** Room kept at the end of a line for `fieldsLeftOut=N` and the JSON format's closing brace. */
const LEFT_OUT_ROOM_BYTES = 32

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

export type LogFields = Record<string, string | number | bigint | boolean | null | undefined>
type FieldValue = Exclude<LogFields[string], undefined>

// What breaks a line or disguises what follows it: C0, DEL and C1 controls, U+2028 and U+2029,
// the bidi embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069). The text format
// escapes the backslash too, so that every backslash in a line starts an escape, and in values the
// quote; JSON.stringify already escapes C0, the quote and the backslash.
const TEXT_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]/g
const VALUE_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\\"]/g
const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
/** A value outside printable ASCII, or with a space, `"` or `=`, is quoted (an empty one too). */
const NEEDS_QUOTES = /[^\x21\x23-\x3c\x3e-\x7e]|^$/

const SHORT_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\', '"': '\\"' }

function unicodeEscape(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
}

function textEscape(c: string): string {
  return SHORT_ESCAPES[c] ?? unicodeEscape(c)
}

/** `text` cut after `max` characters (never between the halves of a surrogate pair), saying how many went. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text
  const code = text.charCodeAt(max - 1)
  const end = code >= 0xd800 && code <= 0xdbff ? max - 1 : max
  return `${text.slice(0, end)}…(+${text.length - end} chars)`
}

function textValue(value: FieldValue, max: number): string {
  if (typeof value !== 'string') return String(value)
  const escaped = cut(value, max).replace(VALUE_UNSAFE, textEscape)
  return NEEDS_QUOTES.test(escaped) ? `"${escaped}"` : escaped
}

function jsonValue(value: FieldValue, max: number): string {
  if (typeof value === 'bigint') return `"${value}"`
  if (typeof value !== 'string') return JSON.stringify(value)
  return JSON.stringify(cut(value, max)).replace(JSON_UNSAFE, unicodeEscape)
}

/** How one format writes a line: its head (time, level, scope, message), each field, its end. */
interface LineFormat {
  head(level: LogLevel, scope: string, message: string): string
  field(key: string, value: FieldValue, max: number): string
  /** Field keys the head has taken already. */
  headKeys: ReadonlySet<string>
  end: string
}

const TEXT_FORMAT: LineFormat = {
  head: (level, scope, message) => {
    const text = (s: string, max: number) => cut(s, max).replace(TEXT_UNSAFE, textEscape)
    return `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${text(scope, SCOPE_MAX_CHARS)}: ${text(message, LOG_MESSAGE_MAX_CHARS)}`
  },
  field: (key, value, max) => ` ${key}=${textValue(value, max)}`,
  headKeys: new Set(),
  end: '',
}

const JSON_FORMAT: LineFormat = {
  head: (level, scope, message) =>
    `{"time":"${new Date().toISOString()}","level":"${level}","scope":${jsonValue(scope, SCOPE_MAX_CHARS)},"msg":${jsonValue(message, LOG_MESSAGE_MAX_CHARS)}`,
  field: (key, value, max) => `,${JSON.stringify(key)}:${jsonValue(value, max)}`,
  headKeys: new Set(['time', 'level', 'scope', 'msg']),
  end: '}',
}

/** One line in this thread's format, without its newline, whatever the level threshold or the budget. */
export function formatLogLine(level: LogLevel, scope: string, message: string, fields?: LogFields): string {
  const format = json ? JSON_FORMAT : TEXT_FORMAT
  let line = format.head(level, scope, message)
  if (fields === undefined) return line + format.end
  const max = level === 'error' ? LOG_ERROR_VALUE_MAX_CHARS : LOG_VALUE_MAX_CHARS
  let bytes = Buffer.byteLength(line)
  let leftOut = 0
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || format.headKeys.has(key)) continue
    const field = format.field(key, value, max)
    const fieldBytes = Buffer.byteLength(field)
    // A later, shorter field may still fit.
    if (bytes + fieldBytes > LOG_LINE_MAX_BYTES - LEFT_OUT_ROOM_BYTES) {
      leftOut++
      continue
    }
    line += field
    bytes += fieldBytes
  }
  if (leftOut > 0) line += format.field('fieldsLeftOut', leftOut, max)
  return line + format.end
}

/** Lines that may be written now: `burst` at most, `perSecond` more every second. */
class LineBucket {
  private lines: number
  private atMs: number

  constructor(private readonly burst: number, private readonly perSecond: number, nowMs: number) {
    this.lines = burst
    this.atMs = nowMs
  }

  take(nowMs: number): boolean {
    if (nowMs > this.atMs) {
      this.lines = Math.min(this.burst, this.lines + ((nowMs - this.atMs) * this.perSecond) / 1000)
      this.atMs = nowMs
    }
    if (this.lines < 1) return false
    this.lines--
    return true
  }
}

/** This thread's budget of lines, and the lines it dropped that it has not yet said. */
class LineBudget {
  private readonly lines: LineBucket
  private readonly errorReserve: LineBucket
  private dropped = 0
  private reportedAtMs = -Infinity
  private nowMs: number

  constructor(private readonly clock: () => number) {
    this.nowMs = clock()
    this.lines = new LineBucket(LOG_BURST_LINES, LOG_LINES_PER_SECOND, this.nowMs)
    this.errorReserve = new LineBucket(LOG_ERROR_RESERVE_LINES, LOG_ERROR_RESERVE_PER_SECOND, this.nowMs)
  }

  /** Whether a line at `level` may be written now; one that may not is counted as dropped. */
  admit(level: LogLevel): boolean {
    this.nowMs = this.clock()
    if (this.lines.take(this.nowMs) || (level === 'error' && this.errorReserve.take(this.nowMs))) return true
    this.dropped++
    return false
  }

  /** The lines dropped, if it is time to say how many (then they are said), else 0. */
  droppedToReport(): number {
    if (this.dropped === 0 || this.nowMs - this.reportedAtMs < LOG_DROPPED_REPORT_INTERVAL_MS) return 0
    const dropped = this.dropped
    this.dropped = 0
    this.reportedAtMs = this.nowMs
    return dropped
  }
}

const monotonicMs = () => performance.now()
let budget = new LineBudget(monotonicMs)

/** A full budget for this thread, on `clock` (milliseconds): tests move time themselves. */
export function resetLogBudget(clock: () => number = monotonicMs): void {
  budget = new LineBudget(clock)
}

const DROPPED_MESSAGE = `log lines dropped over this thread's rate limit (${LOG_LINES_PER_SECOND} lines/s, burst ${LOG_BURST_LINES})`

function write(level: LogLevel, scope: string, message: string, fields?: LogFields): void {
  if (LEVELS[level] > threshold || !budget.admit(level)) return
  const dropped = budget.droppedToReport()
  if (dropped > 0) sink(formatLogLine('warn', scope, DROPPED_MESSAGE, { dropped }), true)
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
  const text = err instanceof Error ? `${err.name}: ${err.message}` : showValue(err)
  return text.length <= ERROR_MESSAGE_CHARS ? text : `${text.slice(0, ERROR_MESSAGE_CHARS)}… (${text.length} characters)`
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
 * grow the table) until keys whose interval has passed are forgotten to make room.
 */
export class LogOncePer {
  private readonly last = new Map<string, { atMs: number; suppressed: number }>()
  /** Lines held back under keys forgotten to make room, told with the next line written. */
  private forgotten = 0
  /** No key can be forgotten before then (the earliest interval's end, as of the last look). */
  private nextForgetMs = 0

  constructor(
    private readonly log: Logger,
    private readonly level: LogLevel,
    private readonly intervalMs: number,
    private readonly keysMax = 1024,
  ) {}

  event(key: string, message: string, fields: LogFields, nowMs: number): void {
    if (!this.log.enabled(this.level)) return
    if (!this.last.has(key) && this.last.size >= this.keysMax) {
      // Forget the keys whose interval has passed (what they held back is told with the next
      // line), so that new ones get lines of their own again; if none has, share a line.
      if (nowMs >= this.nextForgetMs) this.forget(nowMs)
      if (this.last.size >= this.keysMax) key = '(other)'
    }
    const seen = this.last.get(key)
    if (seen !== undefined && nowMs - seen.atMs < this.intervalMs) {
      seen.suppressed++
      return
    }
    const suppressed = seen?.suppressed ?? 0
    this.last.set(key, { atMs: nowMs, suppressed: 0 })
    const forgotten = this.forgotten
    this.forgotten = 0
    const counted = suppressed > 0 ? { ...fields, suppressed, perMs: this.intervalMs } : fields
    this.log[this.level](message, forgotten > 0 ? { ...counted, suppressedForOthers: forgotten } : counted)
  }

  private forget(nowMs: number): void {
    let earliest = Number.POSITIVE_INFINITY
    for (const [k, v] of this.last) {
      if (nowMs - v.atMs >= this.intervalMs) {
        this.forgotten += v.suppressed
        this.last.delete(k)
      } else if (v.atMs < earliest) {
        earliest = v.atMs
      }
    }
    this.nextForgetMs = earliest === Number.POSITIVE_INFINITY ? 0 : earliest + this.intervalMs
  }
}
