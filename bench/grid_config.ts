// The accounts of the layout grid (section 2) and of `bench/profile.ts`: N senders (GRID_ACCOUNTS
// unless --senders says), each paying its own receiver, so that the kernel spreads the connections
// over the I/O threads.

import { writeFileSync } from 'node:fs'
import type { BtpAccount } from './generator/load'

export const GRID_ACCOUNTS = 8

/** Writes a config of `pairs` senders and as many receivers; sender i pays receiver i
 * (routed by its child address, `test.ilpnode.receiver<i>`). */
export function writeGridConfig(path: string, pairs = GRID_ACCOUNTS): { senders: (BtpAccount & { destination: string })[]; receivers: BtpAccount[] } {
  const limits = { balance: { minimum: '-1000000000000', maximum: '1000000000000' } }
  const accounts: Record<string, unknown> = {}
  const account = (user: string): BtpAccount => {
    accounts[user] = { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token: `${user}-token` }, ...limits }
    return { user, token: `${user}-token` }
  }
  const senders = []
  const receivers = []
  for (let i = 0; i < pairs; i++) {
    senders.push({ ...account(`sender${i}`), destination: `test.ilpnode.receiver${i}` })
    receivers.push(account(`receiver${i}`))
  }
  writeFileSync(path, JSON.stringify({ ilpAddress: 'test.ilpnode', accounts }))
  return { senders, receivers }
}
