// Goal: the folder layout is the thread layout, and imports run one way only.
//   base      codec/ config/ store/ ring/ shared/ log.ts display.ts thread_name.ts   imports only base
//   shard/    code that runs on shard threads                     base and shard/
//   io/       code that runs on I/O threads (sockets, transports)  base and io/
//   control/  the main thread's control plane and supervision      anything below the top
//   main.ts, node.ts   the composition root                       anything but testing/
//   testing/  harnesses that drive a node from outside (a child     base and testing/; imported
//             process, a WebSocket client), for test/ and bench/  by nothing in src/
// The test reads every source file's imports (static ones, as TypeScript writes them) and fails
// on one that runs the wrong way, naming the file and the import. test/ and bench/ import src/,
// never each other (what both need lives in src/testing/). It also keeps the tree easy to
// walk: a path a comment names must exist (comments outlive moves), and no function of src/ runs
// past MAX_FUNCTION_LINES (a longer one is several steps that want names).

import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, it } from 'node:test'
import ts from 'typescript'

const ROOT = resolve(__dirname, '..', '..', '..')
const SRC = join(ROOT, 'src')
const MAX_FUNCTION_LINES = 70
const BASE = new Set(['codec', 'config', 'store', 'ring', 'shared', 'log.ts', 'display.ts', 'thread_name.ts'])
const ALLOWED: Record<string, (layer: string) => boolean> = {
  base: (to) => to === 'base',
  shard: (to) => to === 'base' || to === 'shard',
  io: (to) => to === 'base' || to === 'io',
  control: (to) => to !== 'root' && to !== 'testing',
  root: (to) => to !== 'testing',
  testing: (to) => to === 'base' || to === 'testing',
}

function layerOf(path: string): string {
  const parts = relative(SRC, path).split('/')
  // An import names a module without its extension; a file at the top is `<name>.ts`.
  const top = parts.length === 1 && !parts[0].endsWith('.ts') ? `${parts[0]}.ts` : parts[0]
  if (BASE.has(top)) return 'base'
  if (top === 'shard' || top === 'io' || top === 'control' || top === 'testing') return top
  if (top === 'main.ts' || top === 'node.ts') return 'root'
  return `unknown folder ${top}`
}

function sourceFiles(dir: string, ending = /\.ts$/): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (name === 'node_modules' || name === 'results' || name.startsWith('.')) return []
    return statSync(path).isDirectory() ? sourceFiles(path, ending) : ending.test(name) ? [path] : []
  })
}

/** The comment text of each line of a source file (line comments, block comments), by line number. */
function commentLines(text: string): [number, string][] {
  const found: [number, string][] = []
  let inBlock = false
  text.split('\n').forEach((line, i) => {
    const trimmed = line.trim()
    if (inBlock || trimmed.startsWith('/*')) {
      found.push([i + 1, line])
      inBlock = !line.includes('*/')
      return
    }
    // A line comment, not the `//` of a URL or inside a string before it.
    const at = line.search(/(?<![:'"`\w])\/\/(?!\S*['"`])/)
    if (at >= 0) found.push([i + 1, line.slice(at)])
  })
  return found
}

/** A path as comments write it: under the repository, under src/ or test/, beside the file, or in dist/ as built. */
function pathExists(named: string, file: string): boolean {
  if (/^(data|DATA_DIR)\//.test(named)) return true // the node's runtime files, not sources
  const candidates = [named, `src/${named}`, `test/${named}`, relative(ROOT, join(dirname(file), named))]
  if (named.startsWith('dist/')) {
    const built = named.slice('dist/'.length)
    candidates.push(built.replace(/\.js$/, '.ts'), `src/${built.replace(/\.node$/, '.c')}`, `src/${built.replace(/\.node$/, '.cc')}`)
  }
  return candidates.some((candidate) => existsSync(join(ROOT, candidate)))
}

/** Functions (declarations, methods, arrows, constructors) of a TypeScript file longer than `max` lines. */
function longFunctions(file: string, max: number): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
  const long: string[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body !== undefined) {
      const body = node.body as ts.Node
      const first = source.getLineAndCharacterOfPosition(body.getStart(source)).line
      const last = source.getLineAndCharacterOfPosition(body.getEnd()).line
      const name = 'name' in node && node.name !== undefined ? (node.name as ts.Node).getText(source) : '(anonymous)'
      if (last - first + 1 > max) long.push(`${relative(ROOT, file)}:${first + 1} ${name}: ${last - first + 1} lines`)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return long
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

  it('keeps test/ and bench/ apart: each imports src/, not the other', () => {
    const wrong: string[] = []
    for (const [dir, other] of [['test', 'bench'], ['bench', 'test']]) {
      for (const file of sourceFiles(join(ROOT, dir))) {
        for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^'"]*from '(\.{1,2}\/[^']+)'/gm)) {
          if (relative(ROOT, resolve(dirname(file), m[1])).split('/')[0] === other) wrong.push(`${relative(ROOT, file)} imports ${m[1]}`)
        }
      }
    }
    assert.deepEqual(wrong, [])
  })

  it('names in its comments only paths that exist', () => {
    const files = ['src', 'test', 'bench', 'scripts'].flatMap((dir) => sourceFiles(join(ROOT, dir), /\.(ts|mjs|js|c|cc)$/))
    const missing: string[] = []
    for (const file of files) {
      for (const [line, comment] of commentLines(readFileSync(file, 'utf8'))) {
        for (const m of comment.matchAll(/(?<![\w./@-])((?:[\w.-]+\/)+[\w.-]+\.(?:ts|mjs|js|c|cc|json|node))(?![\w/])/g)) {
          if (!pathExists(m[1], file)) missing.push(`${relative(ROOT, file)}:${line} names ${m[1]}`)
        }
      }
    }
    assert.deepEqual(missing, [])
  })

  it(`keeps every function of src/ within ${MAX_FUNCTION_LINES} lines`, () => {
    assert.deepEqual(sourceFiles(SRC).flatMap((file) => longFunctions(file, MAX_FUNCTION_LINES)), [])
  })

  it('catches what it is meant to catch', () => {
    const here = join(ROOT, 'test', 'layers.test.ts')
    assert.equal(pathExists('shard/settlement/settler.ts', here), true)
    assert.equal(pathExists('shard/no_such_file.ts', here), false)
    // Built from parts, so that this file's own comment check does not see the sample's paths.
    const ts_ = '.ts'
    assert.deepEqual(commentLines(`const a = 1 // see io/x${ts_}\nconst u = "http://h/p${ts_}"\n/**\n * shard/y${ts_}\n */`).map(([line]) => line), [1, 3, 4, 5])
  })
})
