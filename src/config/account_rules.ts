// The rules between accounts, kept as indices over the accounts of a config, so that a change of
// one account is checked against the rest in O(1) instead of reading them all again: each token
// (BTP and HTTP, in one namespace) is held by one account, one account at most is the parent
// (and there is one, able to answer IL-DCP, when the address comes from it), a child's address
// is valid, no account has the name of a payee or of the shop's own payee, payees that leave
// their asset out find one shared by every account, routes name accounts that exist, and the
// accounts fit limits.maxAccounts.
//
// parse.ts fills it account by account as it reads a file (start, reload), and the admin API's
// changes (control/ops/reconfigure.ts) ask it about one account at a time: both refuse with the
// same ConfigError, so an operator reads the same words whichever way the account came.

import { isValidAddress } from '../codec/ilp_packet'
import { showValue } from '../display'
import { assetKeyOf } from './asset'
import { ADDRESS_FROM_PARENT, ConfigError, SHOP_ACCOUNT } from './names'
import { assetCodeProblem, type AccountConfig } from './schema'

/** Payees and the shop, as far as the rules between accounts need them. */
export interface PayeeNames {
  /** Payee names (and the shop's own account), which accounts may not take. */
  readonly names: ReadonlySet<string>
  /** The field of the first payee (or `shop.payee`) that takes the asset every account shares; null if none does. */
  readonly sharedAssetNeededBy: string | null
  readonly shop: boolean
}

export class AccountRules {
  /** Every token in use → the account holding it. */
  private readonly tokens = new Map<string, string>()
  /** Accounts with relation "parent", in the order they came. */
  private readonly parents = new Set<string>()
  /** Asset key → how many accounts (not payees) have it. */
  private readonly assets = new Map<string, number>()
  /** The accounts (not payees): the ones the rules hold over. */
  private readonly accounts = new Map<string, AccountConfig>()
  /** Configured routes per account they name. */
  private readonly routesByPeer = new Map<string, number>()

  constructor(
    /** The file's own address (or ADDRESS_FROM_PARENT): a child's address is checked under it, as at start. */
    private readonly ilpAddress: string,
    /** limits.maxAccounts as set in the file; undefined: the default, which grows with the accounts. */
    private readonly maxAccounts: number | undefined,
    private payees: PayeeNames = { names: new Set(), sharedAssetNeededBy: null, shop: false },
  ) {}

  get size(): number {
    return this.accounts.size
  }

  /** The account (not a payee) of this id, or undefined. */
  get(id: string): AccountConfig | undefined {
    return this.accounts.get(id)
  }

  /** Whether `id` names an account or a payee: what a route may go to. */
  names(id: string): boolean {
    return this.accounts.has(id) || this.payees.names.has(id)
  }

  isPayee(id: string): boolean {
    return this.payees.names.has(id)
  }

  /** Configured routes that go to `id`. */
  routesTo(id: string): number {
    return this.routesByPeer.get(id) ?? 0
  }

  /** The one asset every account has, or null (none, or several). */
  sharedAsset(): { assetCode: string; assetScale: number } | null {
    if (this.assets.size !== 1) return null
    for (const a of this.accounts.values()) return { assetCode: a.assetCode, assetScale: a.assetScale }
    return null
  }

  /**
   * Adds an account as a file is read, in the file's order: its tokens are its own, and a
   * child's address is valid. The rules over all accounts (`checkAll`) follow the last one.
   */
  add(id: string, account: AccountConfig): void {
    this.checkOwn(id, account)
    this.put(id, account)
  }

  /** The rules over all the accounts, once the file's are in (parse.ts checks the payees' against them next). */
  checkAll(): void {
    this.checkParents()
  }

  /** The payees and the shop of the file, once parse.ts has read them. */
  setPayees(payees: PayeeNames): void {
    this.payees = payees
  }

  /**
   * Whether account `id` may become `next` (null: be deleted) with every other account as it
   * is: the ConfigError a file with that change would be refused with, as the file's own
   * checks word it (parse.ts). Changes nothing; `set` makes the change.
   */
  check(id: string, next: AccountConfig | null, routes: readonly { targetPrefix: string; peerId: string }[]): void {
    const was = this.accounts.get(id)
    if (was !== undefined) this.remove(id, was)
    try {
      if (next !== null) this.checkOwn(id, next)
      if (next !== null) this.put(id, next)
      try {
        this.checkParents()
        if (this.payees.names.has(id) && next !== null) throw new ConfigError(`payees.${id}`, 'has the name of an account; payees and accounts share the addresses under the node')
        if (this.payees.shop && id === SHOP_ACCOUNT && next !== null) throw new ConfigError(`accounts.${SHOP_ACCOUNT}`, 'is the name of the shop\'s own payee')
        this.checkSharedAsset()
        if (next === null && this.routesTo(id) > 0) {
          const i = routes.findIndex((r) => r.peerId === id)
          throw new ConfigError(`routes[${i}].peerId`, `names no account (${showValue(id)})`)
        }
        this.checkRoom()
      } finally {
        if (next !== null) this.remove(id, next)
      }
    } finally {
      if (was !== undefined) this.put(id, was)
    }
  }

  /** Makes the change `check` allowed. */
  set(id: string, next: AccountConfig | null): void {
    const was = this.accounts.get(id)
    if (was !== undefined) this.remove(id, was)
    if (next !== null) this.put(id, next)
  }

  /** Counts the configured routes (the whole list, as a file or a change of routes has it). */
  setRoutes(routes: readonly { peerId: string }[]): void {
    this.routesByPeer.clear()
    for (const r of routes) this.routesByPeer.set(r.peerId, this.routesTo(r.peerId) + 1)
  }

  /** A payee's asset: the shared one, or a refusal naming the first payee that needs it. */
  checkSharedAsset(): void {
    if (this.payees.sharedAssetNeededBy !== null && this.sharedAsset() === null) {
      throw new ConfigError(`${this.payees.sharedAssetNeededBy}.assetCode`, assetCodeProblem(undefined))
    }
  }

  /** limits.maxAccounts, if the file sets it, has room for every account, payees and the shop among them. */
  checkRoom(): void {
    const count = this.accounts.size + this.payees.names.size
    if (this.maxAccounts !== undefined && this.maxAccounts < count) {
      throw new ConfigError('limits.maxAccounts', `is less than the ${count} accounts configured (payees and the shop count too)`)
    }
  }

  /** The account's tokens are held by no other account (nor twice by it); a child's address is valid. */
  private checkOwn(id: string, account: AccountConfig): void {
    const btp = account.btpToken
    if (btp !== null && this.tokens.has(btp)) throw new ConfigError(`accounts.${id}.btp.token`, 'is used by another account')
    const http = account.httpIncomingToken
    if (http !== null && (this.tokens.has(http) || http === btp)) throw new ConfigError(`accounts.${id}.http.incomingToken`, 'is used by another account')
    if (account.relation === 'child' && !isValidAddress(`${this.ilpAddress}.${id}`)) throw new ConfigError(`accounts.${id}`, 'gives the child an invalid ILP address')
  }

  /** At most one parent; and one that can answer IL-DCP when the node's address comes from it. */
  private checkParents(): void {
    if (this.parents.size > 1) throw new ConfigError('accounts', `at most one account may be the parent (${[...this.parents].join(', ')})`)
    if (this.ilpAddress !== ADDRESS_FROM_PARENT) return
    if (this.parents.size === 0) throw new ConfigError('ilpAddress (ILP_ADDRESS)', 'is required unless an account has relation "parent"')
    const parent = this.accounts.get([...this.parents][0])!
    if (parent.btpUrl === null && parent.httpUrl === null) {
      throw new ConfigError(`accounts.${parent.id}`, 'the parent needs btp.url or http.url for the node to ask it for an address')
    }
  }

  private put(id: string, a: AccountConfig): void {
    this.accounts.set(id, a)
    if (a.btpToken !== null) this.tokens.set(a.btpToken, id)
    if (a.httpIncomingToken !== null) this.tokens.set(a.httpIncomingToken, id)
    if (a.relation === 'parent') this.parents.add(id)
    const key = assetKeyOf(a)
    this.assets.set(key, (this.assets.get(key) ?? 0) + 1)
  }

  private remove(id: string, a: AccountConfig): void {
    this.accounts.delete(id)
    if (a.btpToken !== null && this.tokens.get(a.btpToken) === id) this.tokens.delete(a.btpToken)
    if (a.httpIncomingToken !== null && this.tokens.get(a.httpIncomingToken) === id) this.tokens.delete(a.httpIncomingToken)
    this.parents.delete(id)
    const key = assetKeyOf(a)
    const left = (this.assets.get(key) ?? 1) - 1
    if (left === 0) this.assets.delete(key)
    else this.assets.set(key, left)
  }
}
