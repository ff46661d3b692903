// Entry point: read the configuration, start the node, reload it on SIGHUP, stop cleanly on SIGINT/SIGTERM.

import { loadConfig, type LoadedConfig } from './config/load'
import { ConfigError, type Config } from './config/schema'
import { configureLog, errorFields, logger, type Logger } from './log'
import { startNode, type RunningNode } from './node'
import { nameThisThread } from './thread_name'
import { UwsFallbackError } from './io/uws'
import { PortInUseError } from './io/listen'
import { DataDirInUseError, DataDirUnusableError } from './store/data_dir_lock'

/**
 * Exit codes (sysexits.h): 78 bad configuration, 69 a required part is missing (uWebSockets.js
 * without its native binary), 73 the data directory cannot be created or written, 75 the data
 * directory or the port is in use by another process (try again once it is free), 70 an internal
 * error: the node stopped itself on a fatal error, an error no code caught (an uncaught exception
 * or unhandled rejection on the main thread), or a start-up failure of no known cause; 1 a stop
 * asked for by a signal that failed, or Node.js failing before this file runs. Each is one log line.
 */
const INTERNAL_ERROR = 70

function startupExitCode(err: Error): number {
  if (err instanceof ConfigError) return 78
  if (err instanceof UwsFallbackError) return 69
  if (err instanceof DataDirUnusableError) return 73
  if (err instanceof DataDirInUseError || err instanceof PortInUseError) return 75
  return INTERNAL_ERROR
}

/** How long a node that failed may take to stop before the process exits regardless. */
const FATAL_STOP_MS = 5000

/** The node once start-up began (null if it failed): what a fatal error stops before the process exits. */
let starting: Promise<RunningNode | null> = Promise.resolve(null)
let exiting = false
/** IO_THREADS=1 (and before the config is read): the sockets are this thread's, no thread holds any. */
let socketsOnThisThread = true

/**
 * Exits with `code` once the node has stopped: its I/O threads close first (a thread that holds
 * sockets when the process exits takes it down with an abort). A node still starting is let
 * finish and then stopped. If that hangs, the process exits anyway after FATAL_STOP_MS.
 */
function stopAndExit(code: number, log: Logger): void {
  if (exiting) return
  exiting = true
  process.exitCode = code
  setTimeout(() => process.exit(code), FATAL_STOP_MS).unref()
  void starting
    .then((node) => node?.stop())
    .catch((err: unknown) => log.error('the node did not stop cleanly', errorFields(err)))
    .finally(() => process.exit(code))
}

/**
 * An error no code caught, on this thread: the state it left cannot be trusted, so the node
 * stops, with one line naming the error. Any error after it (from the stop itself) only shows
 * at LOG_LEVEL=debug. With the sockets on this thread the process exits at once, as after a
 * kill (the store loses nothing): the error may come from a uWebSockets.js request handler,
 * which aborts the process when it is returned to without an answer; and no thread holds
 * sockets to close first.
 */
function failOnUncaught(log: Logger): (err: unknown) => void {
  return (err) => {
    if (exiting) return log.debug('error while stopping on a fatal error', errorFields(err))
    log.error('uncaught error: stopping the node', { exitCode: INTERNAL_ERROR, ...errorFields(err) })
    if (socketsOnThisThread) process.exit(INTERNAL_ERROR)
    stopAndExit(INTERNAL_ERROR, log)
  }
}

/** The config, or the process exits with the documented code of what stopped it (78, 73). */
function loadOrExit(log: Logger): LoadedConfig {
  try {
    return loadConfig(process.env)
  } catch (err) {
    const code = startupExitCode(err as Error)
    if (code === INTERNAL_ERROR) throw err
    log.error((err as Error).message)
    process.exit(code)
  }
}

/** The running node, or the process exits with the code of what stopped its start. */
async function startOrExit(config: Config, log: Logger): Promise<RunningNode | null> {
  const startup = startNode(config)
  starting = startup.catch(() => null)
  try {
    return await startup
  } catch (err) {
    if (exiting) return null // an uncaught error is stopping the process already
    const code = startupExitCode(err as Error)
    // A known cause names itself; anything else is a bug: its stack shows at LOG_LEVEL=debug.
    if (code === INTERNAL_ERROR) log.error('start-up failed', { exitCode: code, ...errorFields(err) })
    else log.error((err as Error).message)
    process.exit(code)
  }
}

const HANDLED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

/**
 * SIGTERM or SIGINT: drain (no new connections or prepares, the ones in flight answered), then
 * stop; a second signal stops at once. SIGHUP: read the config file again; the reload logs what
 * it applied, or why it refused the file.
 */
function handleSignals(node: RunningNode, config: Config, path: string, log: Logger): void {
  let stopping = false
  const stop = () => node.stop().then(() => process.exit(0), (err: unknown) => {
    log.error('shutdown failed', errorFields(err))
    process.exit(1)
  })
  const shutdown = (signal: string) => {
    if (exiting) return // a fatal error is stopping the node already, and names the exit
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
  process.on('SIGHUP', () => {
    if (stopping) return
    log.info('SIGHUP: reloading the config', { file: path })
    node.reload().catch((err: unknown) => log.error('reload failed', errorFields(err)))
  })
}

async function main(): Promise<void> {
  nameThisThread('ilp-main')
  // Before the config is read, so that its own errors come out in the format asked for.
  if (process.env.LOG_FORMAT === 'json') configureLog('info', 'json')
  const log = logger('main')
  const fail = failOnUncaught(log)
  process.on('uncaughtException', fail)
  process.on('unhandledRejection', fail)
  const loaded = loadOrExit(log)
  const { config, path } = loaded
  socketsOnThisThread = config.ioThreads === 1
  configureLog(config.logLevel, config.logFormat)
  if (loaded.wroteDevelopmentConfig) log.info('CONFIG is not set: wrote the development config (README: "A five-minute tour"); edit it and send SIGHUP to reload it', { file: path })
  log.info('configuration loaded', { file: path })
  // The node logs its listening line just before it is handed back here. A signal caught until
  // then ends the process at once, as with no handler (the start cannot be drained); being caught
  // rather than left to the default, one that comes right after that line is handled after the
  // handlers below are in place, so a Ctrl-C at the listening line drains.
  const whileStarting = (signal: NodeJS.Signals) => {
    for (const s of HANDLED_SIGNALS) process.off(s, whileStarting)
    process.kill(process.pid, signal)
  }
  for (const signal of HANDLED_SIGNALS) process.on(signal, whileStarting)
  const node = await startOrExit(config, log)
  if (node === null) return
  handleSignals(node, config, path, log)
  for (const signal of HANDLED_SIGNALS) process.off(signal, whileStarting)
  // A node that stops itself still closes its I/O threads first (a thread that holds sockets when
  // the process exits takes it down with an abort); if that hangs, exit anyway.
  void node.failed.then(() => stopAndExit(INTERNAL_ERROR, log))
}

void main()
