// The BTP links of one I/O thread, by account: the sessions that have authenticated as each
// account, the newest last, whichever side opened them. The server (clients that connect to us)
// and the dialer (peers we dial) register their sessions here; prepares and control requests for
// an account go out on its newest session. Every link is counted in the link table (which the
// shards route by, and the admin API shows); an account's first link on this thread coming up
// and its last going down are reported to the control plane.
//
// An account has at most limits.maxLinksPerAccount links over all I/O threads: the newest one
// beyond them is refused (its client gets an error and may try again once one of its links has
// gone). Refusing the newest, not closing the oldest, keeps a stolen token from cutting the
// rightful peer's link, and needs no thread to reach into another's sockets.

import type { LinkTable } from '../../shared/link_table'
import type { BtpSession } from './btp_session'

export class BtpLinks {
  private readonly byAccount: BtpSession[][]

  constructor(
    accounts: number,
    private readonly table: LinkTable,
    private readonly io: number,
    private readonly maxPerAccount: number,
    private readonly linkUp: (account: number) => void,
    private readonly linkDown: (account: number) => void,
  ) {
    this.byAccount = Array.from({ length: accounts }, () => [])
  }

  /** Takes one of `account`'s links for a session about to be added; false if it has all of them. */
  reserve(account: number): boolean {
    return this.table.tryLinkUp(account, this.io, this.maxPerAccount)
  }

  /** `session` speaks for `account` from now on; false (and nothing changed) if the account has all its links. */
  add(session: BtpSession, account: number, reserved = false): boolean {
    if (!reserved && !this.reserve(account)) return false
    session.account = account
    const list = this.byAccount[account]
    list.push(session)
    if (list.length === 1) this.linkUp(account)
    return true
  }

  /** `session` has closed; no-op for one that never authenticated. */
  remove(session: BtpSession): void {
    if (session.account < 0) return
    const list = this.byAccount[session.account]
    const at = list.indexOf(session)
    if (at < 0) return
    list.splice(at, 1)
    this.table.linkDown(session.account, this.io)
    if (list.length === 0) this.linkDown(session.account)
  }

  /** `account` changed or was deleted: its links here close (their clients may connect again). */
  closeAll(account: number, reason: string): void {
    for (const session of [...this.byAccount[account]]) session.socket?.end(1000, reason)
  }

  /** The session prepares for `account` go out on, or null if it has no open link here. */
  newest(account: number): BtpSession | null {
    const list = this.byAccount[account]
    const session = list.length > 0 ? list[list.length - 1] : null
    return session !== null && session.socket !== null ? session : null
  }

  sessions(): Iterable<BtpSession> {
    return this.byAccount.flat()
  }
}
