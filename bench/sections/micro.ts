// Section 6, micro-benchmarks: codecs (ours and the libraries'), routing, hashing, the ring, PSK2,
// wake-ups between threads (the benchmarks themselves are in ../micro.ts), and the node's outgoing
// HTTP/1.1 client against undici (../http_client.ts).

import { benchHttpClients, type HttpClientRow } from '../http_client'
import { runCodecBenchmarks, runRingBenchmark, runWakeBenchmark, type MicroResult, type RingResult, type WakeResult } from '../micro'
import { fmt, markdownTable } from '../report'
import { log } from '../runner'

export interface MicroResults {
  codecs: MicroResult[]
  ring: RingResult
  wake: WakeResult[]
  httpClients: HttpClientRow[]
}

export async function micro(quick: boolean): Promise<MicroResults> {
  log('\n6. Micro-benchmarks (benchmark.js)\n')
  const codecs = runCodecBenchmarks(quick ? 0.25 : 1)
  log('  ring between two threads (100-byte records) … ')
  const ring = await runRingBenchmark(quick ? 200_000 : 1_000_000)
  log(`${fmt(ring.oneWayRecordsPerSecond)} records/s; round trip p50 ${ring.roundTrip.map((r) => `${r.batch}: ${r.p50Us.toFixed(1)} µs`).join(', ')}\n`)
  log('  wake-ups between two sleeping threads … ')
  const wake = await runWakeBenchmark(quick ? 5_000 : 20_000)
  log(`${wake.map(describeWake).join('; ')}\n`)
  log('  ILP-over-HTTP client, ours against undici, 100 requests outstanding … ')
  const httpClients = await benchHttpClients({ secondsPerRun: quick ? 1 : 2, concurrency: 100, rounds: 2 })
  log(`${httpClientLines(httpClients).join('; ')}\n`)
  return { codecs, ring, wake, httpClients }
}

export function describeWake(w: WakeResult): string {
  return `${w.how}, ${w.placement}: ${w.wallUs.toFixed(1)} µs and ${w.cpuUs.toFixed(1)} µs of CPU per round trip (two wake-ups)`
}

export function microMarkdown(m: MicroResults): string[] {
  return [
    '## Micro-benchmarks', '',
    markdownTable(['case', 'ops/s', '±%'], m.codecs.map((c) => [c.name, fmt(c.opsPerSecond), c.rme.toFixed(1)])), '',
    `Ring between two threads, 100-byte records: ${fmt(m.ring.oneWayRecordsPerSecond)} records/s one way (with echo); ` +
      `round trip p50/p99: ${m.ring.roundTrip.map((r) => `batch ${r.batch}: ${r.p50Us.toFixed(1)}/${r.p99Us.toFixed(1)} µs`).join('; ')}.`, '',
    'Wake-ups between two threads that sleep on their doorbells between turns (no records; the CPU of both threads per round trip, ' +
      'so the price of two sleeps and two wake-ups): ' + m.wake.map(describeWake).join('; ') + '. ' +
      'A layout\'s sleeps per packet (section 2) times half this CPU is roughly what its wake-ups cost per packet.', '',
    'The outgoing ILP-over-HTTP client (src/io/http/http1_pool.ts) against undici\'s Pool, the same RFC 35 POSTs to a server in ' +
      'another process, 100 outstanding, runs alternating (means of two); CPU is the client process\'s per request:', '',
    markdownTable(['server', 'pipelining', 'ours requests/s', 'undici requests/s', 'ours CPU µs/request', 'undici CPU µs/request'],
      httpClientPairs(m.httpClients).map(([key, ours, undici]) => [...key.split('|'), fmt(ours.requestsPerSecond), fmt(undici.requestsPerSecond),
        ours.cpuUsPerRequest.toFixed(1), undici.cpuUsPerRequest.toFixed(1)])), '',
  ]
}

/** Each setting's mean run of each client: [server|pipelining, ours, undici]. */
function httpClientPairs(rows: HttpClientRow[]): [string, HttpClientRow, HttpClientRow][] {
  const keys = [...new Set(rows.map((r) => `${r.server}|${r.pipelining}`))]
  const mean = (key: string, client: HttpClientRow['client']): HttpClientRow => {
    const runs = rows.filter((r) => `${r.server}|${r.pipelining}` === key && r.client === client)
    const avg = (f: (r: HttpClientRow) => number) => runs.reduce((a, r) => a + f(r), 0) / runs.length
    return { ...runs[0], requestsPerSecond: avg((r) => r.requestsPerSecond), cpuUsPerRequest: avg((r) => r.cpuUsPerRequest) }
  }
  return keys.map((key) => [key, mean(key, 'node'), mean(key, 'undici')])
}

function httpClientLines(rows: HttpClientRow[]): string[] {
  return httpClientPairs(rows).map(([key, ours, undici]) => `${key.replace('|', ', pipelining ')}: ours ${ours.cpuUsPerRequest.toFixed(1)} µs, undici ${undici.cpuUsPerRequest.toFixed(1)} µs per request`)
}

/** The console summary: the ring and the wake-ups (the codecs' table is in the Markdown). */
export function microSummary(m: MicroResults): string[] {
  return ['### Micro-benchmarks', '', `The ring: ${fmt(m.ring.oneWayRecordsPerSecond)} 100-byte records/s one way. Wake-ups: ${m.wake.map(describeWake).join('; ')}. ` +
    `The ILP-over-HTTP client: ${httpClientLines(m.httpClients).join('; ')}.`, '']
}
