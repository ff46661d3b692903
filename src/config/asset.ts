// An account's asset: the code of what its amounts count, and the scale of their base unit
// (an amount of 1 is 10^-scale of the asset), as IL-DCP gives them to a child (RFC 31).
// Where an asset has to be one string (a Map key, the `asset` of a settlement or adjustment
// kept in LMDB) it is its key, "<code> <scale>": "USD 9". An asset code has no spaces
// (config/schema.ts), so the key splits back at its last one.

export interface Asset {
  readonly code: string
  readonly scale: number
}

/** "USD 9": an account's (or a payee's) asset in the form LMDB's entries keep, so it must not change. */
export function assetKeyOf(a: { readonly assetCode: string; readonly assetScale: number }): string {
  return `${a.assetCode} ${a.assetScale}`
}

/** A key back to its asset; null if it is not one (a record of a version that kept something else). */
export function parseAssetKey(key: string): Asset | null {
  const space = key.lastIndexOf(' ')
  const scaleText = key.slice(space + 1)
  if (space <= 0 || !/^[0-9]{1,3}$/.test(scaleText)) return null
  return { code: key.slice(0, space), scale: Number(scaleText) }
}
