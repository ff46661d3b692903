// A node:test reporter that prints one line per test file, and a file's details only when
// something in it failed. The nodes that tests start log a great deal (errors provoked on purpose
// included), and node's spec reporter prints all of it among the results, so a clean run used to
// look alarming and a real failure was hard to find. Here each file's output (its stdout and
// stderr, which carry the logs of nodes started in-process or as children, and its diagnostics)
// is held until the file ends: dropped if every test passed; if one failed, printed in the order
// it came, between the file's results, with each failure's error and stack. The run ends with the
// runner's own summary (tests, pass, fail, …), as the spec reporter ends. TEST_OUTPUT=all shows
// every file's output and results, passed or not (diagnostics with measurements included).
//
// Events (node 20): a file runs in a child process; its tests' events, its stdout and its stderr
// lines reach the reporter in arrival order, each with `file`. A test's test:pass or test:fail
// comes after the output written while it ran, so output between two results belongs, as far as
// the pipes keep order (stdout exactly, stderr nearly), to the second. The file itself ends with a
// test:complete named after the file, and, if the child exited badly after its tests passed, with
// a test:fail of that name.
import { relative, resolve } from 'node:path'
import { inspect } from 'node:util'

/** Lines of output shown before one result in a failing file: the first few and the last many. */
const SHOWN_HEAD_LINES = 40
const SHOWN_TAIL_LINES = 400
const SHOW_ALL = process.env.TEST_OUTPUT === 'all'

/** The runner's closing counts, as its diagnostics without a file give them. */
const SUMMARY_KEY = /^(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) \S+$/

/** A test file as the tiers show it: its tier, then its name. */
const shown = (file) => relative(resolve('dist', 'test'), resolve(file))

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`

function indented(text, prefix) {
  return text.replace(/\n$/, '').split(/\r?\n/).map((line) => prefix + line).join('\n') + '\n'
}

/** The error as node's spec reporter shows it: a test's own error rather than the runner's wrapper. */
function showError(error) {
  if (error === undefined) return ''
  const err = error.code === 'ERR_TEST_FAILURE' && error.cause !== undefined ? error.cause : error
  return inspect(err, { colors: false, breakLength: Infinity })
}

/** Output held for one result, the middle left out when it is long. */
function showOutput(chunks, prefix) {
  const lines = chunks.join('').replace(/\n$/, '').split(/\r?\n/)
  if (lines.length === 1 && lines[0] === '') return ''
  const shown = lines.length <= SHOWN_HEAD_LINES + SHOWN_TAIL_LINES
    ? lines
    : [...lines.slice(0, SHOWN_HEAD_LINES), `… ${lines.length - SHOWN_HEAD_LINES - SHOWN_TAIL_LINES} lines left out …`, ...lines.slice(-SHOWN_TAIL_LINES)]
  return shown.map((line) => prefix + line).join('\n') + '\n'
}

class FileReport {
  constructor(file) {
    this.file = file
    this.passed = 0
    this.failed = 0
    this.skipped = 0
    this.todo = 0
    /** Names of the tests started, by nesting, for a failure's full name. */
    this.path = []
    /** Output since the last result. */
    this.pending = []
    /** The file's output and its results, in the order they came. */
    this.replay = ''
    /** Each failure's full name, and what to show of it. */
    this.failures = []
  }

  output(message) {
    this.pending.push(message)
  }

  flushOutput() {
    this.replay += showOutput(this.pending, '    │ ')
    this.pending = []
  }

  result(type, data) {
    const suite = data.details?.type === 'suite'
    const name = [...this.path.slice(0, data.nesting), data.name].join(' › ')
    const failed = type === 'test:fail' && data.todo === undefined
    if (!suite) {
      if (data.skip !== undefined) this.skipped++
      else if (data.todo !== undefined) this.todo++
      else if (failed) this.failed++
      else this.passed++
    }
    this.flushOutput()
    // A suite fails with its tests; only a failure of its own (a hook's) is worth a line.
    if (failed && data.details?.error?.failureType !== 'subtestsFailed') {
      this.failures.push({ name, text: `  ✖ ${name}  (${seconds(data.details?.duration_ms ?? 0)})\n${indented(showError(data.details?.error), '      ')}` })
    }
    if (!suite) this.replay += `    ${failed ? '✖' : '✔'} ${name}${data.skip !== undefined ? ' # skipped' : data.todo !== undefined ? ' # todo' : ''}\n`
  }

  /** The file's line, and if anything failed its failures and its output; then forgotten. */
  end(data) {
    const error = data.details?.error
    // The file's own failure: its process exited badly (at load, or after its tests), or timed out.
    if (error !== undefined && error.failureType !== 'subtestsFailed') {
      const how = error.exitCode !== undefined || error.signal ? `, exit code ${error.exitCode ?? 'none'}${error.signal ? `, signal ${error.signal}` : ''}` : ''
      const shown = showError(error)
      const text = shown.includes('\n') ? `\n${indented(shown, '      ')}` : `: ${shown.replace(/^'(.*)'$/, '$1')}\n`
      this.failures.push({ name: '(the file)', text: `  ✖ the file itself${how}${text}` })
    }
    this.flushOutput()
    const bad = error !== undefined || this.failures.length > 0
    const counts = [`${this.passed} passed`]
    if (this.failed > 0) counts.push(`${this.failed} failed`)
    if (this.skipped > 0) counts.push(`${this.skipped} skipped`)
    if (this.todo > 0) counts.push(`${this.todo} todo`)
    let text = `${bad ? '✖' : '✔'} ${shown(this.file)}  ${counts.join(', ')}  ${seconds(data.details?.duration_ms ?? 0)}\n`
    if (bad || SHOW_ALL) {
      text += this.failures.map((f) => f.text).join('')
      text += `  its output (│) and results, in the order they came (a result may come after output of the tests that follow it):\n${this.replay}`
    }
    this.replay = ''
    return text
  }
}

export default async function* quietReporter(source) {
  const files = new Map()
  /** Files that have ended, and whether they failed. */
  const ended = new Map()
  const summary = []
  /** The runner's other notes, e.g. on an error a file raised after its tests ended. */
  const notes = []
  const failures = []
  const fileOf = (file) => {
    const key = resolve(file)
    let report = files.get(key)
    if (report === undefined) files.set(key, (report = new FileReport(key)))
    return report
  }
  for await (const { type, data } of source) {
    const fileLevel = data.file !== undefined && data.nesting === 0 && resolve(data.name ?? '') === resolve(data.file)
    switch (type) {
      case 'test:start':
        if (!fileLevel && data.file !== undefined && !ended.has(resolve(data.file))) fileOf(data.file).path[data.nesting] = data.name
        break
      case 'test:stdout':
      case 'test:stderr':
        // Output from outside any file (the runner's own) is not held.
        if (data.file === undefined) yield data.message
        else if (!ended.has(resolve(data.file))) fileOf(data.file).output(data.message)
        // Late output of a file that has ended is shown only if the file failed.
        else if (ended.get(resolve(data.file))) yield indented(data.message, '    │ ')
        break
      case 'test:diagnostic':
        if (data.file === undefined) (SUMMARY_KEY.test(data.message) ? summary : notes).push(data.message)
        else if (!ended.has(resolve(data.file))) fileOf(data.file).output(`# ${data.message}\n`)
        break
      case 'test:pass':
      case 'test:fail':
        if (data.file === undefined) {
          // Not expected from node 20's runner; shown rather than lost.
          yield `${type === 'test:fail' ? '✖' : '✔'} ${data.name}\n${type === 'test:fail' ? indented(showError(data.details?.error), '    ') : ''}`
          if (type === 'test:fail') failures.push(data.name)
          break
        }
        // The file's own result repeats its test:complete (below).
        if (!fileLevel && !ended.has(resolve(data.file))) fileOf(data.file).result(type, data)
        break
      case 'test:complete':
        if (fileLevel) {
          const report = fileOf(data.file)
          yield report.end(data)
          failures.push(...report.failures.map((f) => `${shown(report.file)} › ${f.name}`))
          files.delete(report.file)
          ended.set(report.file, report.failures.length > 0 || data.details?.error !== undefined)
        }
        break
    }
  }
  // A file whose end never came (the runner was stopped) is reported as it stands.
  for (const report of files.values()) {
    if (report.path.length === 0 && report.pending.length === 0) continue // enqueued only
    yield report.end({ details: { error: new Error('the file did not end') } })
    failures.push(`${shown(report.file)} › (did not end)`)
  }
  if (failures.length > 0) yield `\nfailed:\n${failures.map((f) => `  ✖ ${f}\n`).join('')}`
  if (notes.length > 0) yield `\n${notes.map((n) => indented(n, '# ')).join('')}`
  yield `\n${summary.join(', ')}\n`
}
