// Starts the node as a child process (the same entry point as `npm start`) on a temporary data
// directory, for the tests that need it as a process (signals, logs, drain, reload, crashes).

import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface NodeProcess {
  proc: ChildProcess
  port: number
  dataDir: string
  /** What the node has printed so far (stdout and stderr; the last 100 KB at most). */
  output(): string
  stop(): Promise<void>
}

export async function startNodeProcess(
  env: Record<string, string>,
  entry = join(__dirname, '..', '..', 'src', 'main.js'),
  nodeArgs: string[] = [],
): Promise<NodeProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ilp-node-bench-'))
  const proc = spawn(process.execPath, [...nodeArgs, entry], {
    env: { ...process.env, DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`server did not start within 15 s:\n${output}`))
    }, 15_000)
    proc.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      // The text format (`… listening … port=N`) or LOG_FORMAT=json (`…"msg":"ilp-node listening",…"port":N`).
      const m = / listening .* port=(\d+)|"msg":"ilp-node listening".*?"port":(\d+)/.exec(output)
      if (m) {
        clearTimeout(timer)
        resolve(Number(m[1] ?? m[2]))
      }
      if (output.length > 100_000) output = output.slice(-10_000)
    })
    proc.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
    void exited.then((code) => reject(new Error(`server exited with code ${code}:\n${output}`)))
  }).catch(async (err: Error) => {
    // The node exited or was killed above: its data directory goes with it.
    await exited
    rmSync(dataDir, { recursive: true, force: true })
    throw err
  })
  return {
    proc,
    port,
    dataDir,
    output() {
      return output
    },
    async stop() {
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
