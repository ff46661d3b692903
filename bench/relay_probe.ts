// Quick probe: the generator against the bare relay only (`node dist/bench/relay_probe.js`).
import { join } from 'node:path'
import { runLoad } from './btp_load'
import { startNodeProcess } from './node_process'

async function main(): Promise<void> {
  const relay = await startNodeProcess({}, join(__dirname, 'uws_relay.js'))
  for (const window of [1, 10, 100, 1000]) {
    let a = 0
    let b = 0
    const r = await runLoad({ port: relay.port, destination: 'test.ilpnode.bob', window, durationMs: 1500, maxPackets: 2e6, warmupMs: 300,
      onMeasureStart: () => { a = relay.cpuMicros() }, onMeasureEnd: () => { b = relay.cpuMicros() } })
    console.log(`relay W=${window}: ${Math.round(r.packetsPerSecond)} packets/s p50 ${r.p50Us.toFixed(0)} µs, relay CPU ${((b - a) / r.packets).toFixed(1)} µs/packet, gen ${r.generatorCpuUsPerPacket.toFixed(1)}`)
  }
  await relay.stop()
}
void main()
