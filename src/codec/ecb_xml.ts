// The European Central Bank's daily reference rates in the XML it publishes
// (eurofxref-daily.xml): a gesmes:Envelope whose Cube holds one Cube per day (attribute time,
// YYYY-MM-DD) and in it one Cube per currency, with attributes currency (ISO 4217) and rate
// (units of that currency per euro, decimal text). Only those elements are read; anything else
// in the envelope is ignored. A document without the envelope, a day, or one rate is refused,
// as is a rate that is not a positive decimal: a rate source must fail loudly, not half-load.

import { parseDecimal } from './decimal'

export interface EcbRates {
  /** The day the rates are for, as published (e.g. 2022-07-08). */
  readonly day: string
  /** Units of each currency per euro, as published (EUR itself is "1"). */
  readonly rates: Readonly<Record<string, string>>
}

/** Longest document read: the real one is under 2 KiB; this bounds a hostile or wrong URL. */
export const ECB_MAX_BYTES = 256 * 1024

const ENVELOPE = /<(?:[A-Za-z0-9_-]+:)?Envelope[\s>]/
const DAY = /<Cube\s+time\s*=\s*(['"])([0-9]{4}-[0-9]{2}-[0-9]{2})\1\s*>/g
const RATE = /<Cube\s+currency\s*=\s*(['"])([^'"]*)\1\s+rate\s*=\s*(['"])([^'"]*)\3\s*\/>/g
const CURRENCY = /^[A-Z]{3}$/

export class EcbFormatError extends Error {}

export function parseEcbDaily(text: string): EcbRates {
  if (text.length > ECB_MAX_BYTES) throw new EcbFormatError(`document larger than ${ECB_MAX_BYTES} bytes`)
  if (!ENVELOPE.test(text)) throw new EcbFormatError('not the ECB reference-rate envelope (no gesmes:Envelope)')
  const days = [...text.matchAll(DAY)]
  if (days.length === 0) throw new EcbFormatError('no <Cube time="YYYY-MM-DD"> day in the document')
  // The daily file has one day; a history file has many, newest first: the first day's rates
  // are the ones that end before the second day begins.
  const start = days[0].index! + days[0][0].length
  const end = days.length > 1 ? days[1].index! : text.length
  const rates: Record<string, string> = { EUR: '1' }
  let count = 0
  for (const m of text.slice(start, end).matchAll(RATE)) {
    const [, , currency, , rate] = m
    if (!CURRENCY.test(currency)) throw new EcbFormatError(`currency "${currency.slice(0, 16)}" is not a three-letter code`)
    const f = parseDecimal(rate)
    if (f === null || f.num === 0n) throw new EcbFormatError(`rate "${rate.slice(0, 32)}" of ${currency} is not a positive decimal`)
    if (currency in rates) throw new EcbFormatError(`${currency} is listed twice`)
    rates[currency] = rate
    count++
  }
  if (count === 0) throw new EcbFormatError(`no <Cube currency=".." rate=".."/> rates for ${days[0][2]}`)
  return { day: days[0][2], rates }
}
