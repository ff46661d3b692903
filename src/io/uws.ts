// Loads uWebSockets.js and refuses to run on its pure-JS fallback. The package we can load here
// (@trufflesuite/uws-js-unofficial, installed as `uWebSockets.js`) quietly falls back to a slow
// emulation when its native binary does not load; a connector on that path would be many times
// slower than it claims, so start-up fails instead, saying why.

import type * as Uws from 'uWebSockets.js'

export type UwsModule = typeof Uws

export class UwsFallbackError extends Error {
  readonly code = 'ILP_NODE_UWS_FALLBACK'
}

function isNativeUws(uws: UwsModule): boolean {
  return typeof uws.App === 'function' && Function.prototype.toString.call(uws.App).includes('[native code]')
}

export function loadUws(): UwsModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const uws = require('uWebSockets.js') as UwsModule
  if (!isNativeUws(uws)) {
    throw new UwsFallbackError(
      'uWebSockets.js loaded its pure-JS fallback, not its native binary (see the warning above; ' +
      `Node ${process.versions.node}, ABI ${process.versions.modules}, ${process.platform}-${process.arch}). ` +
      'Refusing to start: reinstall with `npm ci` on Node.js 20 on Linux x64 or arm64, and unset UWS_USE_FALLBACK.',
    )
  }
  return uws
}
