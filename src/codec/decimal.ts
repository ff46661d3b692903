// Exact decimal numbers as fractions of bigints, for exchange rates and spreads: "0.002" is
// 2/1000, "1.0163" is 10163/10000. Rates come from configs and from the ECB's published XML as
// decimal text, and are never turned into binary floats, so a conversion is exact until its one
// rounding (shard/exchange.ts).

export interface Fraction {
  readonly num: bigint
  readonly den: bigint
}

const DECIMAL_TEXT = /^(0|[1-9][0-9]{0,29})(\.[0-9]{1,30})?$/

/**
 * A non-negative decimal ("12", "0.92", "1.0163"), or null when the text is not one. A JSON
 * number is read through its shortest decimal form (0.002 → "0.002"), which is what was written.
 */
export function parseDecimal(value: unknown): Fraction | null {
  const text = typeof value === 'number' && Number.isFinite(value) && value >= 0 ? numberText(value) : value
  if (typeof text !== 'string' || !DECIMAL_TEXT.test(text)) return null
  const dot = text.indexOf('.')
  if (dot < 0) return { num: BigInt(text), den: 1n }
  const decimals = text.length - dot - 1
  return reduce(BigInt(text.slice(0, dot) + text.slice(dot + 1)), 10n ** BigInt(decimals))
}

/** A number's shortest decimal text, without an exponent (1e-7 → "0.0000001"). */
function numberText(n: number): string {
  const text = String(n)
  const m = /^([0-9])(?:\.([0-9]+))?e([+-][0-9]+)$/.exec(text)
  if (m === null) return text
  const digits = m[1] + (m[2] ?? '')
  const point = 1 + Number(m[3]) // where the decimal point goes in `digits`
  if (point <= 0) return `0.${'0'.repeat(-point)}${digits}`
  return point >= digits.length ? digits + '0'.repeat(point - digits.length) : `${digits.slice(0, point)}.${digits.slice(point)}`
}

/** The decimal's canonical text ("0.0020" → "0.002"), for logs and the admin API. */
export function decimalText(value: unknown): string | null {
  const f = parseDecimal(value)
  if (f === null) return null
  const text = typeof value === 'number' ? numberText(value) : (value as string)
  return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b]
  return a
}

export function reduce(num: bigint, den: bigint): Fraction {
  const g = gcd(num, den)
  return g <= 1n ? { num, den } : { num: num / g, den: den / g }
}

export function multiply(a: Fraction, b: Fraction): Fraction {
  return reduce(a.num * b.num, a.den * b.den)
}

export function divide(a: Fraction, b: Fraction): Fraction {
  return reduce(a.num * b.den, a.den * b.num)
}
