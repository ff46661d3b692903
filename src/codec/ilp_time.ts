// The Interledger timestamp (RFC 27): 17 ASCII digits `YYYYMMDDHHmmSSfff`, UTC, fixed width,
// no length prefix. Not GeneralizedTime. Both directions are digit loops over the wire bytes:
// the prepare path reads one and writes one per packet, so neither goes through Date or a string.

const DIGIT_0 = 0x30
export const ILP_TIMESTAMP_LENGTH = 17

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
}

function digits(buf: Uint8Array, pos: number, count: number): number {
  let value = 0
  for (let i = 0; i < count; i++) {
    const d = buf[pos + i] - DIGIT_0
    if (d < 0 || d > 9) return -1
    value = value * 10 + d
  }
  return value
}

// Days from 1970-01-01 to a civil date (H. Hinnant's days_from_civil), integer math only.
function daysFromCivil(year: number, month: number, day: number): number {
  year -= month <= 2 ? 1 : 0
  const era = Math.floor(year / 400)
  const yoe = year - era * 400
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

/** Reads a 17-byte ILP timestamp at `pos`; returns epoch milliseconds, or NaN if invalid. */
export function readIlpTimestamp(buf: Uint8Array, pos: number): number {
  if (pos + ILP_TIMESTAMP_LENGTH > buf.length) return NaN
  const year = digits(buf, pos, 4)
  const month = digits(buf, pos + 4, 2)
  const day = digits(buf, pos + 6, 2)
  const hour = digits(buf, pos + 8, 2)
  const minute = digits(buf, pos + 10, 2)
  const second = digits(buf, pos + 12, 2)
  const milli = digits(buf, pos + 14, 3)
  if ((year | month | day | hour | minute | second | milli) < 0) return NaN
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return NaN
  const monthDays = month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1]
  if (day > monthDays) return NaN
  const days = daysFromCivil(year, month, day)
  return ((days * 24 + hour) * 60 + minute) * 60000 + second * 1000 + milli
}

function writeDigits(buf: Uint8Array, pos: number, value: number, count: number): void {
  for (let i = count - 1; i >= 0; i--) {
    buf[pos + i] = DIGIT_0 + (value % 10)
    value = Math.floor(value / 10)
  }
}

/** Two digits of `value` (0..99) at `pos`. */
function writeTwoDigits(buf: Uint8Array, pos: number, value: number): void {
  const tens = (value / 10) | 0
  buf[pos] = DIGIT_0 + tens
  buf[pos + 1] = DIGIT_0 + value - tens * 10
}

// The date digits `YYYYMMDD` of the last day written. Every forwarded prepare gets a new expiry,
// nearly always on the same day as the one before: the calendar arithmetic runs once a day, not
// once a packet.
let cachedDay = NaN
const cachedDate = new Uint8Array(8)

/** Fills cachedDate with the civil date of `days` since 1970-01-01 (H. Hinnant's civil_from_days). */
function cacheDate(days: number): void {
  const z = days + 719468
  const era = Math.floor(z / 146097)
  const doe = z - era * 146097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1
  const month = mp < 10 ? mp + 3 : mp - 9
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0)
  writeDigits(cachedDate, 0, year, 4)
  writeDigits(cachedDate, 4, month, 2)
  writeDigits(cachedDate, 6, day, 2)
  cachedDay = days
}

/** Writes epoch milliseconds as a 17-byte ILP timestamp at `pos` (years 0..9999). */
export function writeIlpTimestamp(buf: Uint8Array, pos: number, epochMs: number): void {
  const days = Math.floor(epochMs / 86400000)
  if (days !== cachedDay) cacheDate(days)
  for (let i = 0; i < 8; i++) buf[pos + i] = cachedDate[i]
  // 0 <= ms < 86400000 (days is rounded down), so `| 0` truncates like Math.floor here.
  let ms = epochMs - days * 86400000
  const hour = (ms / 3600000) | 0
  ms -= hour * 3600000
  const minute = (ms / 60000) | 0
  ms -= minute * 60000
  const second = (ms / 1000) | 0
  ms -= second * 1000
  writeTwoDigits(buf, pos + 8, hour)
  writeTwoDigits(buf, pos + 10, minute)
  writeTwoDigits(buf, pos + 12, second)
  const hundreds = (ms / 100) | 0
  buf[pos + 14] = DIGIT_0 + hundreds
  writeTwoDigits(buf, pos + 15, ms - hundreds * 100)
}

/** GeneralizedTime `YYYYMMDDHHmmSS.fffZ` as BTP Error packets carry it (RFC 23). */
export function generalizedTime(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/[-:T]/g, '')
}
