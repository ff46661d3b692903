// A small leveled logger: one line per event, `time level scope message key=value…`, or with
// LOG_FORMAT=json one JSON object per line (`{"time","level","scope","msg",…fields}`, amounts as
// decimal strings), which is what log shippers read. Off the packet path except for failures.
// Tokens and secrets are never passed to it.

import type { LogFormat, LogLevel } from './config/schema'

const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 }
let threshold = LEVELS.info
let json = false

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

function write(level: LogLevel, scope: string, message: string, fields?: LogFields): void {
  if (LEVELS[level] > threshold) return
  let line: string
  if (json) {
    line = jsonLine(level, scope, message, fields)
  } else {
    line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${scope}: ${message}`
    if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${String(v)}`
  }
  if (level === 'error' || level === 'warn') process.stderr.write(line + '\n')
  else process.stdout.write(line + '\n')
}

export interface Logger {
  error(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  info(message: string, fields?: LogFields): void
  debug(message: string, fields?: LogFields): void
  enabled(level: LogLevel): boolean
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
