// Reads the configuration at start-up (and again on a reload): the JSON file named by CONFIG (or the embedded
// default), with environment variables on top. Only this module and main.ts read process.env.

import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { Config, ConfigError, EnvOverrides, parseConfig } from './schema'

/**
 * The node a fresh checkout starts with: two child accounts with development tokens, listening on
 * 127.0.0.1 only. Good for trying the node out; an operator supplies CONFIG for anything else.
 */
export const EMBEDDED_DEFAULT_CONFIG = {
  ilpAddress: 'test.ilpnode',
  accounts: { alice: developmentChild('alice-token'), bob: developmentChild('bob-token') },
  routes: [],
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
  return {
    ilpAddress: env.ILP_ADDRESS,
    host: env.HOST,
    port: env.PORT,
    shards: env.SHARDS,
    ioThreads: env.IO_THREADS,
    dataDir: env.DATA_DIR,
    logLevel: env.LOG_LEVEL,
    logFormat: env.LOG_FORMAT,
    durability: env.DURABILITY,
    drainMs: env.DRAIN_MS,
    adminHost: env.ADMIN_HOST,
    adminPort: env.ADMIN_PORT,
    nativeWake: env.ILP_NODE_NATIVE_WAKE,
  }
}

export interface LoadedConfig {
  config: Config
  source: string
}

export function loadConfig(env: NodeJS.ProcessEnv): LoadedConfig {
  const path = env.CONFIG ? env.CONFIG : null
  const raw = path === null ? EMBEDDED_DEFAULT_CONFIG : readConfigFile(path)
  const cores = availableParallelism()
  return { config: parseConfig(raw, envOverrides(env), { cores, ...defaultLayout(cores) }, path), source: path ?? 'embedded default' }
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
