// IP addresses as text (RFC 4291 §2.2 for IPv6, dotted quads for IPv4) and CIDR blocks
// (RFC 4632 §3.1): parsed to 16 bytes, so that one comparison serves both families.
//
// An IPv6 client is known by its /64: one host is routinely handed a whole /64 (RFC 4291 §2.5.4,
// RFC 6177), so counting its addresses one by one would give it 2^64 fresh allowances.

import { isIPv4, isIPv6 } from 'node:net'

/** An address as 16 bytes (IPv4 as IPv4-mapped IPv6, RFC 4291 §2.5.5.2), or null if it is none. */
export function addressBytes(text: string): Uint8Array | null {
  if (isIPv4(text)) return mappedIPv4(text)
  if (!isIPv6(text)) return null
  const bytes = new Uint8Array(16)
  let head = text
  let tail = ''
  const gap = text.indexOf('::')
  if (gap >= 0) {
    head = text.slice(0, gap)
    tail = text.slice(gap + 2)
  }
  const groups = (part: string): number[] => {
    if (part === '') return []
    const out: number[] = []
    for (const group of part.split(':')) {
      // A trailing dotted quad (::ffff:1.2.3.4) stands for the last two groups.
      if (group.includes('.')) {
        const v4 = mappedIPv4(group)
        out.push((v4[12] << 8) | v4[13], (v4[14] << 8) | v4[15])
      } else {
        out.push(parseInt(group, 16))
      }
    }
    return out
  }
  const front = groups(head)
  const back = groups(tail)
  front.forEach((g, i) => { bytes[2 * i] = g >> 8; bytes[2 * i + 1] = g & 0xff })
  back.forEach((g, i) => {
    const at = 16 - 2 * (back.length - i)
    bytes[at] = g >> 8
    bytes[at + 1] = g & 0xff
  })
  return bytes
}

function mappedIPv4(text: string): Uint8Array {
  const bytes = new Uint8Array(16)
  bytes[10] = 0xff
  bytes[11] = 0xff
  text.split('.').forEach((part, i) => { bytes[12 + i] = Number(part) })
  return bytes
}

function isMappedIPv4(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false
  return bytes[10] === 0xff && bytes[11] === 0xff
}

/**
 * The name a client's limits are kept under: its IPv4 address, or its IPv6 /64 ("2001:db8:1:2::/64").
 * Text that is no address (a Unix socket, a proxy's odd header) is kept as it is, cut short.
 */
export function clientKey(text: string): string {
  const bytes = addressBytes(text)
  if (bytes === null) return text.slice(0, 64)
  if (isMappedIPv4(bytes)) return `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`
  const groups: string[] = []
  for (let i = 0; i < 8; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16))
  return `${groups.join(':')}::/64`
}

/** An address or a CIDR block ("10.0.0.0/8", "fd00::/8") of trusted proxies. */
export interface Block {
  bytes: Uint8Array
  bits: number
}

/** Parses limits.trustedProxies' entries; null for one that is no address or block. */
export function parseBlock(text: string): Block | null {
  const slash = text.indexOf('/')
  const bytes = addressBytes(slash < 0 ? text : text.slice(0, slash))
  if (bytes === null) return null
  const v4 = isIPv4(slash < 0 ? text : text.slice(0, slash))
  const max = v4 ? 32 : 128
  const bits = slash < 0 ? max : Number(text.slice(slash + 1))
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (slash >= 0 && !/^[0-9]{1,3}$/.test(text.slice(slash + 1)))) return null
  return { bytes, bits: v4 ? bits + 96 : bits }
}

export function inBlock(bytes: Uint8Array, block: Block): boolean {
  let bits = block.bits
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff
    if ((bytes[i] & mask) !== (block.bytes[i] & mask)) return false
  }
  return true
}
