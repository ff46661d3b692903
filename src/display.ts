// Values from outside (a config file, an admin request's body or path, a peer, an uncaught
// error) as an error message or a log line shows them. Such a value may be of any type and any
// length, and may hold newlines, terminal escapes or a right-to-left override: shown as it is,
// it could forge log lines, hide or reverse the text around it, or fill the screen. So every one
// goes through here: on one line, the invisible and the line-breaking characters escaped, cut to
// a short length, and a value that is not text named by its type.

/** How much of a string an error message shows; a longer one is cut there, with `…` and its length. */
export const SHOWN_CHARS = 64

/**
 * What would break the line or hide text: control characters (C0, DEL, C1), format characters
 * (direction overrides, zero-width characters), line and paragraph separators, and the halves
 * of a broken surrogate pair; and, in a quoted string, the quote and the backslash.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu
const UNSAFE_QUOTED = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}"\\]/gu

/** JSON's short escapes where it has one, \uXXXX (per UTF-16 unit) otherwise. */
const SHORT_ESCAPES = new Map([['\n', '\\n'], ['\r', '\\r'], ['\t', '\\t'], ['\b', '\\b'], ['\f', '\\f'], ['"', '\\"'], ['\\', '\\\\']])

function escapeOne(char: string): string {
  const short = SHORT_ESCAPES.get(char)
  if (short !== undefined) return short
  let out = ''
  for (let i = 0; i < char.length; i++) out += `\\u${char.charCodeAt(i).toString(16).padStart(4, '0')}`
  return out
}

/** The first `maxChars` characters, without splitting a surrogate pair; and whether it was cut. */
function cut(text: string, maxChars: number): { head: string; cut: boolean } {
  if (text.length <= maxChars) return { head: text, cut: false }
  const head = text.slice(0, maxChars)
  return { head: /[\uD800-\uDBFF]$/.test(head) ? head.slice(0, -1) : head, cut: true }
}

/** Free text (an error's message) on one line: escaped, and cut after `maxChars` characters. */
export function showText(text: string, maxChars = SHOWN_CHARS): string {
  const { head, cut: wasCut } = cut(text, maxChars)
  const shown = head.replace(UNSAFE, escapeOne)
  return wasCut ? `${shown}… (${text.length} characters)` : shown
}

/**
 * Any value as an error message shows it: a string quoted as JSON would (escaped, cut after
 * SHOWN_CHARS characters), a number, boolean or null as JSON writes it, anything else by its
 * type (`an object`, `an array`), never its contents or source.
 */
export function showValue(value: unknown): string {
  if (typeof value === 'string') {
    const { head, cut: wasCut } = cut(value, SHOWN_CHARS)
    const shown = `"${head.replace(UNSAFE_QUOTED, escapeOne)}"`
    return wasCut ? `${shown}… (${value.length} characters)` : shown
  }
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value)
  if (value === null) return 'null'
  if (value === undefined) return 'nothing'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

const PLAIN_KEY = /^[A-Za-z0-9_~-]{1,64}$/

/**
 * A key from outside (an account id, a field name, an asset code) as part of a field's path:
 * as it is when it is a plain name (letters, digits, `_ ~ -`, as account ids are), else quoted
 * as showValue does (`accounts."a b"`), so a dot or a newline in it cannot pass for the path's own.
 */
export function showKey(key: string): string {
  return PLAIN_KEY.test(key) ? key : showValue(key)
}
