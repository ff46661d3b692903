// Goal: the folder layout is the thread layout, and imports run one way only.
//   base      codec/ config/ store/ ring/ log.ts display.ts thread_name.ts   imports only base
//   shard/    code that runs on shard threads                     base and shard/
//   io/       code that runs on I/O threads (sockets, transports)  base and io/
//   control/  the main thread's control plane and supervision      anything below the top
//   main.ts, node.ts   the composition root                       anything
// The test reads every source file's imports (static ones, as TypeScript writes them) and fails
// on one that runs the wrong way, naming the file and the import.

import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, it } from 'node:test'

const SRC = resolve(__dirname, '..', '..', 'src')
const BASE = new Set(['codec', 'config', 'store', 'ring', 'log.ts', 'display.ts', 'thread_name.ts'])
const ALLOWED: Record<string, (layer: string) => boolean> = {
  base: (to) => to === 'base',
  shard: (to) => to === 'base' || to === 'shard',
  io: (to) => to === 'base' || to === 'io',
  control: (to) => to !== 'root',
  root: () => true,
}

function layerOf(path: string): string {
  const parts = relative(SRC, path).split('/')
  // An import names a module without its extension; a file at the top is `<name>.ts`.
  const top = parts.length === 1 && !parts[0].endsWith('.ts') ? `${parts[0]}.ts` : parts[0]
  if (BASE.has(top)) return 'base'
  if (top === 'shard' || top === 'io' || top === 'control') return top
  if (top === 'main.ts' || top === 'node.ts') return 'root'
  return `unknown folder ${top}`
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? sourceFiles(path) : name.endsWith('.ts') ? [path] : []
  })
}

describe('source layout', () => {
  it('puts every file in a known layer, and imports run only downward', () => {
    const files = sourceFiles(SRC)
    assert.ok(files.length > 30, `found only ${files.length} source files under ${SRC}`)
    const wrong: string[] = []
    for (const file of files) {
      const from = layerOf(file)
      if (!(from in ALLOWED)) {
        wrong.push(`${relative(SRC, file)}: ${from}`)
        continue
      }
      for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^'"]*from '(\.{1,2}\/[^']+)'/gm)) {
        const to = layerOf(resolve(dirname(file), m[1]))
        if (!ALLOWED[from](to)) wrong.push(`${relative(SRC, file)} (${from}) imports ${m[1]} (${to})`)
      }
    }
    assert.deepEqual(wrong, [])
  })
})
