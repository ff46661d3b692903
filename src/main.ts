// Entry point: read the configuration, start the node, stop cleanly on SIGINT/SIGTERM.

import { loadConfig } from './config/load'
import { ConfigError } from './config/schema'
import { logger, setLogLevel } from './log'
import { startNode } from './node'
import { UwsFallbackError } from './transport/uws'

async function main(): Promise<void> {
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
  setLogLevel(config.logLevel)
  log.info('configuration loaded', { source })
  if (source === 'embedded default') {
    log.warn('running on the embedded default config: development tokens alice-token/bob-token; set CONFIG for real use')
    if (config.host !== '127.0.0.1' && config.host !== 'localhost' && config.host !== '::1') {
      log.warn('the embedded default config is listening beyond loopback; anyone who can reach it can use the development tokens', { host: config.host })
    }
  }
  const node = await startNode(config).catch((err: Error) => {
    log.error(err instanceof UwsFallbackError ? err.message : `start-up failed: ${err.stack}`)
    process.exit(err instanceof UwsFallbackError ? 69 : 1)
  })
  const shutdown = (signal: string) => {
    log.info('shutting down', { signal })
    node.stop().then(() => process.exit(0), (err: Error) => {
      log.error('shutdown failed', { error: err.stack })
      process.exit(1)
    })
  }
  process.once('SIGINT', () => shutdown('SIGINT'))
  process.once('SIGTERM', () => shutdown('SIGTERM'))
  void node.failed.then(() => process.exit(70))
}

void main()
