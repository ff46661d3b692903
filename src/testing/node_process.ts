// Starts a server as a child process on a temporary data directory, for the tests that need the
// node as a process (signals, logs, drain, reload, crashes) and for the bench (the node, the
// reference connector, the bare relays): by default the node itself, the same entry point as
// `npm start`. The port is the one its "listening … port=N" line names (PORT=0 picks a free one).

import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface NodeProcess {
  proc: ChildProcess
  port: number
  dataDir: string
  /** What the process has printed so far (stdout and stderr; the last 100 KB at most). */
  output(): string
  /** SIGTERM, SIGKILL if it has not exited 10 s later; the data directory goes with it. */
  stop(): Promise<void>
}

/** How long a server may take to print its listening line. */
const START_TIMEOUT_MS = 15_000

export async function startNodeProcess(env: Record<string, string>, entry = join(__dirname, '..', 'main.js'), nodeArgs: string[] = []): Promise<NodeProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ilp-node-process-'))
  const proc = spawn(process.execPath, [...nodeArgs, entry], {
    env: { ...process.env, DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`server did not start within ${START_TIMEOUT_MS / 1000} s:\n${output}`))
    }, START_TIMEOUT_MS)
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
    // The process exited or was killed above: its data directory goes with it.
    await exited
    rmSync(dataDir, { recursive: true, force: true })
    throw err
  })
  return {
    proc,
    port,
    dataDir,
    output: () => output,
    async stop() {
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
