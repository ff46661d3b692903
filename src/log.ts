// A small leveled logger: one line per event, `time level scope message key=value…`. Off the
// packet path except for failures. Tokens and secrets are never passed to it.

import type { LogLevel } from './config/schema'

const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 }
let threshold = LEVELS.info

export function setLogLevel(level: LogLevel): void {
  threshold = LEVELS[level]
}

export type LogFields = Record<string, string | number | bigint | boolean | null | undefined>

function write(level: LogLevel, scope: string, message: string, fields?: LogFields): void {
  if (LEVELS[level] > threshold) return
  let line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${scope}: ${message}`
  if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${String(v)}`
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
