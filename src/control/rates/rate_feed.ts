// The exchange rates the shards convert with (shard/exchange.ts), kept by the main thread: from
// the config (one-to-one, static), or fetched from the ECB's daily XML every rates.refreshMs.
// Each change goes to every shard as a snapshot, as the routing table does; traffic never waits
// for it. A failed fetch keeps the last rates, which carry their fetch time: the shards refuse
// cross-asset packets (T00) once the rates are older than rates.maxAgeMs, and the feed logs the
// outage once when it starts and once when it ends, so rates never go stale silently.

import { parseEcbDaily, ECB_MAX_BYTES } from '../../codec/ecb_xml'
import type { Config } from '../../config/schema'
import type { Logger } from '../../log'
import { configuredRates, type RateSnapshot } from '../../shard/exchange'

/** The body as text, refused past ECB_MAX_BYTES without reading the rest (a wrong or hostile URL). */
async function readBounded(response: Response): Promise<string> {
  const length = Number(response.headers.get('content-length') ?? 0)
  if (length > ECB_MAX_BYTES) throw new Error(`the document is ${length} bytes, more than ${ECB_MAX_BYTES}`)
  if (response.body === null) return ''
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.length
    if (total > ECB_MAX_BYTES) {
      await reader.cancel()
      throw new Error(`the document is more than ${ECB_MAX_BYTES} bytes`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** Longest wait for one fetch of the ECB document. */
const FETCH_TIMEOUT_MS = 10000

export class RateFeed {
  private snapshot: RateSnapshot
  private timer: NodeJS.Timeout | null = null
  private stopped = false
  private staleLogged = false
  private fetching: Promise<void> | null = null
  /** Bumped when the rates config changes: a fetch started before it does not count. */
  private generation = 0
  private fetchingGeneration = -1

  constructor(private config: Config, private readonly publish: (snapshot: RateSnapshot) => void, private readonly log: Logger) {
    this.snapshot = configuredRates(config, Date.now())
  }

  /** The rates the shards have now. */
  get current(): RateSnapshot {
    return this.snapshot
  }

  /** Starts fetching (ecb); resolves after the first attempt, so that traffic starts with rates. */
  async start(): Promise<void> {
    if (this.config.rates.backend !== 'ecb') return
    await this.fetchNow()
    this.schedule()
  }

  /**
   * A reload: a new rates config or spread, applied at once. The same ECB URL keeps the rates it
   * has (with their age) under the new refreshMs and maxAgeMs; another source starts afresh.
   */
  reconfigure(config: Config): void {
    const before = this.config.rates
    const after = config.rates
    this.config = config
    if (JSON.stringify(before) === JSON.stringify(after)) return this.set({ ...this.snapshot, spread: config.spread })
    this.log.info('exchange rates reconfigured', { backend: after.backend, spread: config.spread })
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    if (before.backend === 'ecb' && after.backend === 'ecb' && before.url === after.url) {
      this.set({ ...this.snapshot, maxAgeMs: after.maxAgeMs, spread: config.spread })
      return this.schedule()
    }
    this.generation++
    this.set(configuredRates(config, Date.now()))
    if (after.backend === 'ecb') void this.fetchNow().then(() => this.schedule())
  }

  stop(): void {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }

  private schedule(): void {
    if (this.stopped || this.config.rates.backend !== 'ecb' || this.timer !== null) return
    this.timer = setTimeout(() => {
      this.timer = null
      void this.fetchNow().then(() => this.schedule())
    }, this.config.rates.refreshMs)
    this.timer.unref()
  }

  private set(snapshot: RateSnapshot): void {
    this.snapshot = Object.freeze(snapshot)
    this.publish(this.snapshot)
  }

  private fetchNow(): Promise<void> {
    if (this.fetching !== null && this.fetchingGeneration === this.generation) return this.fetching
    const fetching = this.fetchEcb(this.generation).finally(() => { if (this.fetching === fetching) this.fetching = null })
    this.fetching = fetching
    this.fetchingGeneration = this.generation
    return fetching
  }

  private async fetchEcb(generation: number): Promise<void> {
    const url = this.config.rates.url!
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(Math.min(FETCH_TIMEOUT_MS, this.config.rates.refreshMs)) })
      if (!response.ok) throw new Error(`HTTP ${response.status} from the rate source`)
      const { day, rates } = parseEcbDaily(await readBounded(response))
      if (this.stopped || generation !== this.generation) return
      const changed = day !== this.snapshot.day || JSON.stringify(rates) !== JSON.stringify(this.snapshot.rates)
      if (changed) this.log.info('exchange rates loaded', { source: 'ecb', day, currencies: Object.keys(rates).length })
      if (this.staleLogged) this.log.info('exchange rates are fresh again', { source: 'ecb', day })
      this.staleLogged = false
      this.set({ ...this.snapshot, rates, day, fetchedAtMs: Date.now(), lastError: null })
    } catch (err) {
      if (this.stopped || generation !== this.generation) return
      const reason = (err as Error).name === 'TimeoutError' ? 'timed out' : ((err as Error & { cause?: Error }).cause?.message ?? (err as Error).message)
      const ageMs = this.snapshot.fetchedAtMs === 0 ? null : Date.now() - this.snapshot.fetchedAtMs
      this.log.warn('exchange rate fetch failed; keeping the last rates', { source: 'ecb', reason, ageMs })
      this.set({ ...this.snapshot, lastError: reason })
      if (!this.staleLogged && (ageMs === null || ageMs + this.config.rates.refreshMs > this.config.rates.maxAgeMs!)) {
        this.staleLogged = true
        this.log.error('exchange rates are stale or will be before the next fetch: packets between different assets get T00 until a fetch succeeds', {
          source: 'ecb', ageMs, maxAgeMs: this.config.rates.maxAgeMs,
        })
      }
    }
  }
}
