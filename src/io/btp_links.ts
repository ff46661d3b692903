// The BTP links of one I/O thread, by account: the sessions that have authenticated as each
// account, the newest last, whichever side opened them. The server (clients that connect to us)
// and the dialer (peers we dial) register their sessions here; prepares and control requests for
// an account go out on its newest session; an account's first link coming up and its last going
// down are reported to the link table and the control plane.

import type { BtpSession } from './btp_session'

export class BtpLinks {
  private readonly byAccount: BtpSession[][]

  constructor(
    accounts: number,
    private readonly linkUp: (account: number) => void,
    private readonly linkDown: (account: number) => void,
  ) {
    this.byAccount = Array.from({ length: accounts }, () => [])
  }

  /** `session` speaks for `account` from now on. */
  add(session: BtpSession, account: number): void {
    session.account = account
    const list = this.byAccount[account]
    list.push(session)
    if (list.length === 1) this.linkUp(account)
  }

  /** `session` has closed; no-op for one that never authenticated. */
  remove(session: BtpSession): void {
    if (session.account < 0) return
    const list = this.byAccount[session.account]
    const at = list.indexOf(session)
    if (at < 0) return
    list.splice(at, 1)
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
