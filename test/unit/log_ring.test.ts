// Goal: a shard's log ring never makes the shard wait: when it is full, lines are dropped and
// counted, and the next line that fits says how many; the main thread writes the lines out in
// order, with the drops reported in the shard's scope. Method: the ring filled in this process,
// without draining, then drained.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ShardLogs } from '../../src/control/threads/shard_logs'
import { LogRingReader, LogRingWriter, createLogRing } from '../../src/ring/log_ring'

describe('a shard\'s log ring', () => {
  const line = (i: number) => `line ${i} ${'x'.repeat(90)}`

  it('drops lines when full without waiting, and the next line that fits says how many', () => {
    const ring = createLogRing(1024)
    const writer = new LogRingWriter(ring)
    const reader = new LogRingReader(ring)
    const out: string[] = []
    const sink = { line: (l: string, toStderr: boolean) => out.push(`${toStderr ? 'err' : 'out'} ${l}`), dropped: (n: number) => out.push(`dropped ${n}`) }
    for (let i = 0; i < 20; i++) writer.write(line(i), i % 2 === 1)
    reader.drain(sink)
    const fitted = out.length
    assert.ok(fitted > 2 && fitted < 20, `${fitted} of 20 lines fitted in 1 KiB`)
    assert.deepEqual(out, Array.from({ length: fitted }, (_, i) => `${i % 2 === 1 ? 'err' : 'out'} ${line(i)}`))
    out.length = 0
    writer.write(line(20), false)
    reader.drain(sink)
    assert.deepEqual(out, [`dropped ${20 - fitted}`, `out ${line(20)}`])
    // Dropped with nothing after them: the count waits in shared memory for the reader.
    out.length = 0
    for (let i = 0; i < 20; i++) writer.write(line(i), false)
    reader.drain(sink)
    assert.equal(out.length + reader.takeDropped(), 20)
    assert.equal(reader.takeDropped(), 0)
    // A line longer than the ring can hold is dropped too, not cut.
    writer.write('y'.repeat(600), false)
    writer.write('after', false)
    out.length = 0
    reader.drain(sink)
    assert.deepEqual(out, ['dropped 1', 'out after'])
  })

  it('is written out in order by the main thread, with the drops reported in the shard\'s scope', () => {
    const out: { text: string; toStderr: boolean }[] = []
    const logs = new ShardLogs(2, (text, toStderr) => out.push({ text, toStderr }))
    try {
      const shard0 = new LogRingWriter(logs.rings[0])
      const shard1 = new LogRingWriter(logs.rings[1])
      shard1.write('from shard 1', true)
      const lines = 3000 // more than 256 KiB
      for (let i = 0; i < lines; i++) shard0.write(line(i), false)
      logs.relay()
      shard0.write('the next line', false)
      for (let i = 0; i < 5; i++) shard0.write(line(i), false)
      logs.relay()
      for (let i = 0; i < lines; i++) shard0.write(line(i), false)
      logs.close() // the shard thread has ended
      const written = out.flatMap(({ text, toStderr }) => text.split('\n').map((l) => ({ l, toStderr })))
      const drops = written.filter(({ l }) => / WARN  shard 0: log lines dropped: .* dropped=\d+$/.test(l))
      assert.equal(drops.length, 2, JSON.stringify(drops))
      assert.ok(drops.every(({ toStderr }) => toStderr))
      const passed = written.filter(({ l }) => l.startsWith('line ')).length
      const dropped = drops.reduce((sum, { l }) => sum + Number(/dropped=(\d+)$/.exec(l)![1]), 0)
      assert.equal(passed + dropped, 2 * lines + 5)
      const next = written.findIndex(({ l }) => l === 'the next line')
      assert.equal(written[next - 1], drops[0], 'the first drop reported just before the line that got through')
      assert.deepEqual(written.filter(({ l }) => l === 'from shard 1'), [{ l: 'from shard 1', toStderr: true }])
    } finally {
      logs.close()
    }
  })
})
