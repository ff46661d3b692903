// Goal: the README lists exactly the admin API's error codes, each with the status the node
// answers it with (io/ops/admin_errors.ts is where both come from). Method: read the README's list
// and compare it with the table, both ways.
//
// The README's list is a table after "The codes:", a row per status:
//   | 409 | `balance_not_zero`, `account_in_use` (a static route names it), ... |
// What is in parentheses explains a code and is left out (it names fields in backticks too).
// If the README's list takes another form, only documentedCodes() needs to change.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ADMIN_ERRORS } from '../../src/io/ops/admin_errors'

/** The codes of the table that follows "The codes:" in the README, each with its status. */
function documentedCodes(readme: string): Map<string, number> {
  const start = readme.indexOf('The codes:')
  assert.ok(start >= 0, 'the README has "The codes:" before the table of error codes')
  const lines = readme.slice(start).split('\n').slice(1)
  const first = lines.findIndex((l) => l.startsWith('|'))
  assert.ok(first >= 0, 'a table follows "The codes:"')
  const after = lines.findIndex((l, i) => i > first && !l.startsWith('|'))
  const codes = new Map<string, number>()
  for (const line of lines.slice(first, after < 0 ? undefined : after)) {
    const row = /^\|\s*([1-5][0-9]{2})\s*\|(.*)\|\s*$/.exec(line)
    if (row === null) continue // the header and its |---| line
    let cell = row[2]
    // Innermost parentheses first, until none are left.
    for (let before = ''; before !== cell;) {
      before = cell
      cell = cell.replace(/\([^()]*\)/g, '')
    }
    for (const [, code] of cell.matchAll(/`([a-z_]+)`/g)) {
      assert.ok(!codes.has(code), `${code} is listed once`)
      codes.set(code, Number(row[1]))
    }
  }
  return codes
}

describe('admin API error codes in the README', () => {
  it('lists every code of io/ops/admin_errors.ts with its status, and no other', () => {
    const documented = documentedCodes(readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8'))
    const table = Object.entries(ADMIN_ERRORS).map(([code, { status }]) => [code, status as number])
    assert.deepEqual(Object.fromEntries([...documented].sort()), Object.fromEntries(table.sort()))
  })

  it('reads the README\'s table as it is meant', () => {
    const sample = [
      'An error is JSON. The codes:', '', '| status | codes |', '|---:|---|',
      '| 400 | `invalid_body` (not JSON, or a bad `amount` (field `amount`)); `invalid_field` |',
      '| 409 | `no_room` ([room](#room-for-accounts)), `no_config_file` |', '', '| 500 | `not_this` |',
    ].join('\n')
    assert.deepEqual(Object.fromEntries(documentedCodes(sample)), { invalid_body: 400, invalid_field: 400, no_room: 409, no_config_file: 409 })
  })
})
