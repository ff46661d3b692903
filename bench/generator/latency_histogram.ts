// Latencies of one load run, counted in buckets 1 % wide on a log scale (1 µs to ~100 s), so
// that each generator process counts its own without keeping every sample and the bench adds
// their counts up. A percentile read back is within 1 % of the latency measured.

const RATIO = 1.01
const LOG_RATIO = Math.log(RATIO)
export const LATENCY_BUCKETS = Math.ceil(Math.log(1e8) / LOG_RATIO) + 1

export function newLatencyCounts(): Uint32Array {
  return new Uint32Array(LATENCY_BUCKETS)
}

/** Counts one latency of `us` microseconds. */
export function countLatency(counts: Uint32Array, us: number): void {
  const bucket = us <= 1 ? 0 : Math.min(LATENCY_BUCKETS - 1, Math.floor(Math.log(us) / LOG_RATIO))
  counts[bucket]++
}

/** Adds `more` into `counts`. */
export function addLatencyCounts(counts: Uint32Array, more: Uint32Array): void {
  for (let i = 0; i < counts.length; i++) counts[i] += more[i]
}

/** The latency (µs, the bucket's geometric middle) at or below which a share `p` of the counts lie. */
export function latencyPercentile(counts: Uint32Array, p: number): number {
  let total = 0
  for (const n of counts) total += n
  if (total === 0) return 0
  const rank = Math.min(total, Math.max(1, Math.ceil(total * p)))
  let seen = 0
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]
    if (seen >= rank) return RATIO ** (i + 0.5)
  }
  return RATIO ** counts.length
}
