// Goal: the short fuzz pass in `npm test` (2,000 inputs per target; `npm run fuzz` runs 100,000):
// no parser throws anything but its declared error on mutated and random inputs (test/fuzz/).

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { fuzz, targets } from './targets'
import { prng } from '../support/helpers'

describe('fuzz, short pass', () => {
  for (const target of targets) {
    it(`${target.name}: 2,000 mutated inputs, no finding`, () => {
      const r = fuzz(target, 2000, prng(42))
      assert.deepEqual(r.findings, [])
    })
  }
})
