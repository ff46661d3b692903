// Reads the configuration at start-up (and again on a reload): the JSON file named by CONFIG, or
// without CONFIG the development config in DATA_DIR (written there from the embedded default at the
// first start), with environment variables on top. Only this module and main.ts read process.env.

import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import { DataDirUnusableError } from '../store/data_dir_lock'
import { parseConfig } from './parse'
import { Config, ConfigError, ENV_NAMES, EnvOverrides } from './schema'

/** The admin token of the development config (the schema asks 16 characters of an admin token). */
export const DEVELOPMENT_ADMIN_TOKEN = 'development-admin-token'

/**
 * The node a fresh checkout starts with (README: "A five-minute tour"): two child accounts and a
 * payee, the admin API and /metrics behind a token, no fee, listening on 127.0.0.1 only. Every
 * token is in the README, so the node warns while any of them is in use.
 */
export const EMBEDDED_DEFAULT_CONFIG = {
  ilpAddress: 'test.ilpnode',
  adminToken: DEVELOPMENT_ADMIN_TOKEN,
  spread: '0',
  accounts: { alice: developmentChild('alice-token'), bob: developmentChild('bob-token') },
  payees: { carol: {} },
  routes: [],
}

/** Tokens anyone who read the README knows. */
export const DEVELOPMENT_TOKENS: ReadonlySet<string> = new Set(['alice-token', 'bob-token', DEVELOPMENT_ADMIN_TOKEN])

/** Where a config uses a development token: account ids and `adminToken` / `metrics.token`. */
export function developmentTokensIn(config: Config): string[] {
  const found = config.accounts
    .filter((a) => [a.btpToken, a.httpIncomingToken].some((token) => token !== null && DEVELOPMENT_TOKENS.has(token)))
    .map((a) => a.id)
  if (config.adminToken !== null && DEVELOPMENT_TOKENS.has(config.adminToken)) found.push('adminToken')
  if (config.metrics.token !== null && DEVELOPMENT_TOKENS.has(config.metrics.token)) found.push('metrics.token')
  return found
}

function developmentChild(token: string): Record<string, unknown> {
  return {
    relation: 'child',
    assetCode: 'USD',
    assetScale: 9,
    btp: { token },
    balance: { minimum: '-1000000000000', maximum: '1000000000000' },
    maxPacketAmount: '1000000000',
  }
}

/**
 * The thread layout when IO_THREADS and SHARDS are not set. On two cores or fewer the inline
 * layout (sockets and the shard on the main thread, 1×0) is the fastest measured at every load
 * (README, "Choosing a layout"): the threads of any other layout share the cores with each other
 * and pay for every hop between them. With more cores, half of them take sockets and the rest
 * shards, which is where the bench's per-thread projection puts the busiest threads level.
 */
export function defaultLayout(cores = availableParallelism()): { ioThreads: number; shards: number } {
  if (cores <= 2) return { ioThreads: 1, shards: 0 }
  const ioThreads = Math.floor(cores / 2)
  return { ioThreads, shards: cores - ioThreads }
}

export function envOverrides(env: NodeJS.ProcessEnv): EnvOverrides {
  return { ...Object.fromEntries(Object.entries(ENV_NAMES).map(([field, name]) => [field, env[name]])), nativeWake: env.ILP_NODE_NATIVE_WAKE }
}

export interface LoadedConfig {
  config: Config
  /** The file read: CONFIG, or the development config in DATA_DIR. */
  path: string
  /** Set when this start wrote the development config (there was no file to read). */
  wroteDevelopmentConfig: boolean
}

export function loadConfig(env: NodeJS.ProcessEnv): LoadedConfig {
  let path = env.CONFIG ? env.CONFIG : null
  let wroteDevelopmentConfig = false
  if (path === null) {
    path = developmentConfigPath(env)
    wroteDevelopmentConfig = writeDevelopmentConfig(path)
  }
  const cores = availableParallelism()
  return { config: parseConfig(readConfigFile(path), envOverrides(env), { cores, ...defaultLayout(cores) }, path), path, wroteDevelopmentConfig }
}

/** DATA_DIR/config.json: the config of a node started without CONFIG. */
export function developmentConfigPath(env: NodeJS.ProcessEnv): string {
  return join(env.DATA_DIR ? env.DATA_DIR : './data', 'config.json')
}

/**
 * Writes the embedded default to `path` unless a file is there: a node started without CONFIG
 * reads its config from a file, so that a newcomer can edit it and reload it with SIGHUP like any
 * other. The file holds tokens, so only its owner may read it. It appears whole or not at all (a
 * temporary file linked into place, which fails if another start got there first). Returns true
 * when it wrote the file; a DataDirUnusableError when the directory cannot be made or written.
 */
export function writeDevelopmentConfig(path: string): boolean {
  if (existsSync(path)) return false
  const temporary = `${path}.${process.pid}.tmp`
  try {
    mkdirSync(dirname(path), { recursive: true })
    writeFileSync(temporary, `${JSON.stringify(EMBEDDED_DEFAULT_CONFIG, null, 2)}\n`, { mode: 0o600 })
    linkSync(temporary, path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    // The data directory cannot be made or written: the same exit as when LMDB finds it so.
    throw new DataDirUnusableError(dirname(path), err as Error)
  } finally {
    try { unlinkSync(temporary) } catch { /* never written */ }
  }
}

/** The JSON of a config file; a ConfigError (field CONFIG) if it cannot be read or parsed. */
export function readConfigFile(path: string): unknown {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError('CONFIG', `cannot read ${path}: ${(err as Error).message}`)
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ConfigError('CONFIG', `${path} is not valid JSON: ${(err as Error).message}`)
  }
}
