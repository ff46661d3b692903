// Goal: the README lists exactly the admin API's error codes, each with the status the node
// answers it with (io/admin_errors.ts is where both come from). Method: read the README's list
// and compare it with the table, both ways.
//
// The README's list is a sentence: "The codes: 400 `invalid_body` (not JSON, ...) and
// `invalid_field` (...); 401 `unauthorized`; 404 ...". A status number applies to the codes
// after it, up to the next status; what is in parentheses explains a code and is left out
// (it names fields in backticks too). If the README's list takes another form, only
// documentedCodes() needs to change.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ADMIN_ERRORS } from '../src/io/admin_errors'

/** The codes the README's sentence "The codes: ..." lists, each with its status. */
function documentedCodes(readme: string): Map<string, number> {
  let text = readme.replace(/\s+/g, ' ')
  // Innermost parentheses first, until none are left.
  for (let before = ''; before !== text;) {
    before = text
    text = text.replace(/\([^()]*\)/g, '')
  }
  const start = text.indexOf('The codes: ')
  assert.ok(start >= 0, 'the README has a sentence starting "The codes: "')
  const sentence = text.slice(start, text.indexOf('. ', start) < 0 ? undefined : text.indexOf('. ', start))
  const codes = new Map<string, number>()
  let status = 0
  for (const [, number, code] of sentence.matchAll(/\b([1-5][0-9]{2})\b|`([a-z_]+)`/g)) {
    if (number !== undefined) status = Number(number)
    else {
      assert.ok(!codes.has(code), `${code} is listed once`)
      codes.set(code, status)
    }
  }
  return codes
}

/**
 * Codes the node answers that the README (being rewritten) does not list yet. The test expects
 * them missing, so that it fails, naming them, once the README has them: then empty this list.
 */
const NOT_YET_IN_README = ['too_many_failures', 'internal']

describe('admin API error codes in the README', () => {
  it('lists every code of io/admin_errors.ts with its status, and no other', () => {
    const documented = documentedCodes(readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8'))
    for (const code of NOT_YET_IN_README) assert.ok(!documented.has(code), `the README lists ${code} now: remove it from NOT_YET_IN_README`)
    const table = Object.entries(ADMIN_ERRORS).filter(([code]) => !NOT_YET_IN_README.includes(code)).map(([code, { status }]) => [code, status as number])
    assert.deepEqual(Object.fromEntries([...documented].sort()), Object.fromEntries(table.sort()))
  })

  it('reads the README\'s sentence as it is meant', () => {
    const sample = 'An error is JSON. The codes: 400 `invalid_body` (not JSON, or a bad `amount`) and `invalid_field`; 401 `unauthorized`; ' +
      '409 `no_room` (see "Room for accounts"), `no_config_file`. A path with a malformed escape is 400 `invalid_field`, field `path`.'
    assert.deepEqual(Object.fromEntries(documentedCodes(sample)), { invalid_body: 400, invalid_field: 400, unauthorized: 401, no_room: 409, no_config_file: 409 })
  })
})
