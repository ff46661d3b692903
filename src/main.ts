// Entry point: read the configuration, start the node, reload it on SIGHUP, stop cleanly on SIGINT/SIGTERM.

import { loadConfig } from './config/load'
import { ConfigError } from './config/schema'
import { configureLog, logger } from './log'
import { startNode } from './node'
import { nameThisThread } from './thread_name'
import { UwsFallbackError } from './io/uws'
import { PortInUseError } from './io/listen'
import { DataDirInUseError, DataDirUnusableError } from './store/data_dir_lock'

/**
 * Exit codes (sysexits.h): 78 bad configuration, 69 a required part is missing (uWebSockets.js
 * without its native binary), 73 the data directory cannot be created or written, 75 the data
 * directory or the port is in use by another process (try again once it is free), 70 the node
 * stopped itself on a fatal error, 1 anything else.
 */
function startupExitCode(err: Error): number | null {
  if (err instanceof UwsFallbackError) return 69
  if (err instanceof DataDirUnusableError) return 73
  if (err instanceof DataDirInUseError || err instanceof PortInUseError) return 75
  return null
}

/** How long a node that failed may take to stop before the process exits regardless. */
const FATAL_STOP_MS = 5000

async function main(): Promise<void> {
  nameThisThread('ilp-main')
  // Before the config is read, so that its own errors come out in the format asked for.
  if (process.env.LOG_FORMAT === 'json') configureLog('info', 'json')
  const log = logger('main')
  let loaded
  try {
    loaded = loadConfig(process.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      log.error(err.message)
      process.exit(78)
    }
    throw err
  }
  const { config, source } = loaded
  configureLog(config.logLevel, config.logFormat)
  log.info('configuration loaded', { source })
  if (source === 'embedded default') {
    log.warn('running on the embedded default config, whose development tokens are in the README; set CONFIG for real use')
    if (config.host !== '127.0.0.1' && config.host !== 'localhost' && config.host !== '::1') {
      log.warn('the embedded default config is listening beyond loopback; anyone who can reach it can use the development tokens', { host: config.host })
    }
  }
  const node = await startNode(config).catch((err: Error) => {
    const code = startupExitCode(err)
    // A known cause is one line naming it; anything else keeps its stack for the bug report (in a
    // field: an error line keeps more of a value than of a message).
    if (code === null) log.error('start-up failed', { error: err.stack })
    else log.error(err.message)
    process.exit(code ?? 1)
  })
  // SIGTERM or SIGINT: drain (no new connections or prepares, the ones in flight answered), then
  // stop. A second signal stops at once.
  let stopping = false
  const stop = () => node.stop().then(() => process.exit(0), (err: Error) => {
    log.error('shutdown failed', { error: err.stack })
    process.exit(1)
  })
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn('second signal: stopping without waiting for the prepares in flight', { signal })
      return void stop()
    }
    stopping = true
    log.info('shutting down: draining', { signal, drainMs: config.drainMs })
    const started = Date.now()
    void node.drain(config.drainMs).then((left) => {
      if (left === 0) log.info('drained', { ms: Date.now() - started })
      else log.warn('drain timed out; stopping with prepares still in flight (their holds are released at the next start)', { drainMs: config.drainMs })
      return stop()
    })
  }
  process.on('SIGINT', () => shutdown('SIGINT'))
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  // SIGHUP: read CONFIG again; the reload logs what it applied, or why it refused the file.
  process.on('SIGHUP', () => {
    if (stopping) return
    log.info('SIGHUP: reloading the config', { file: process.env.CONFIG ?? '(embedded default: nothing to reload)' })
    node.reload().catch((err: Error) => log.error('reload failed', { error: err.stack }))
  })
  // A node that stops itself still closes its I/O threads first (a thread that holds sockets when
  // the process exits takes it down with an abort); if that hangs, exit anyway.
  void node.failed.then(() => {
    setTimeout(() => process.exit(70), FATAL_STOP_MS).unref()
    node.stop().finally(() => process.exit(70))
  })
}

void main()
