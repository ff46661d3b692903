// Goal: a change of one account (PUT or DELETE through the admin API, or a reload that changes
// one entry of the file) is checked against the other accounts by the rules between accounts,
// kept as indices (config/account_rules.ts), and refused with the very words a file with that
// change is refused with at start; a refused change leaves the node as it was; and a change
// reads (by the Account schema) only the entries it changes, not the other accounts.
// Method: a node in the suite's layout started from a CONFIG file in its data directory (so that
// reload reads it again), with children alice and bob, a parent pam, a payee carol who takes
// the accounts' one asset, a route to bob and room for one more account. Each refused change is
// also made to the file's JSON and parsed as at start (parseConfig): the problem must be the same.
// The count of accounts read (config/validate.ts) is compared before and after each change.

import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseConfig } from '../../src/config/parse'
import { ConfigError } from '../../src/config/names'
import { accountsRead } from '../../src/config/validate'
import { startNode, type RunningNode } from '../../src/node'
import { ADMIN_TOKEN, adminRequest, connectPlugin, layoutName, MACHINE, NODE_ADDRESS, removeDir, tempDir, testLayout } from '../support/helpers'

function child(token: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { relation: 'child', assetCode: 'USD', assetScale: 9, btp: { token }, ...extra }
}

function fileJson(dir: string, accounts: Record<string, unknown>, routes: unknown[]): Record<string, unknown> {
  return {
    port: 0, ...testLayout(0), ilpAddress: NODE_ADDRESS, adminToken: ADMIN_TOKEN, dataDir: join(dir, 'data'), logLevel: process.env.TEST_LOG_LEVEL ?? 'error',
    accounts, payees: { carol: {} }, routes, limits: { maxAccounts: 5 },
  }
}

const ACCOUNTS = {
  alice: child('alice-token', { http: { incomingToken: 'alice-http-token' } }),
  bob: child('bob-token'),
  pam: { relation: 'parent', assetCode: 'USD', assetScale: 9, btp: { token: 'pam-token' } },
}
const ROUTES = [{ targetPrefix: 'test.far', peerId: 'bob' }]

/** The problem a file with this change has at start, as parseConfig words it. */
function problemAtStart(dir: string, accounts: Record<string, unknown>, routes: unknown[] = ROUTES): ConfigError {
  try {
    parseConfig(fileJson(dir, accounts, routes), {}, MACHINE)
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('the file parses')
}

async function ids(port: number): Promise<string[]> {
  return ((await adminRequest(port, 'GET', '/admin/accounts')).body.accounts as { id: string }[]).map((a) => a.id)
}

describe(`rules between accounts, one change at a time (${layoutName(0)})`, () => {
  let dir: string
  let file: string
  let node: RunningNode
  let port: number

  before(async () => {
    dir = tempDir()
    file = join(dir, 'config.json')
    const raw = fileJson(dir, ACCOUNTS, ROUTES)
    writeFileSync(file, JSON.stringify(raw))
    node = await startNode(parseConfig(raw, {}, MACHINE, file))
    port = node.port
  })
  after(async () => {
    await node?.stop()
    removeDir(dir)
  })

  it('refuses a PUT that breaks a rule between accounts with the words of a file that has it, and changes nothing', async () => {
    const before = await ids(port)
    const cases: [string, Record<string, unknown>, string][] = [
      ['a BTP token of another account', child('alice-token'), 'btp.token'],
      ['another account\'s HTTP token as a BTP token', child('alice-http-token'), 'btp.token'],
      ['its own BTP token as its HTTP token', child('dan-token', { http: { incomingToken: 'dan-token' } }), 'http.incomingToken'],
      ['a second parent', { relation: 'parent', assetCode: 'USD', assetScale: 9, btp: { token: 'dan-token' } }, 'accounts'],
      ['a second asset, where payee carol takes the one all accounts share', child('dan-token', { assetCode: 'EUR' }), 'payees.carol.assetCode'],
    ]
    for (const [what, body, field] of cases) {
      const res = await adminRequest(port, 'PUT', '/admin/accounts/dan', { body })
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`)
      assert.equal(res.body.code, 'invalid_field', what)
      assert.equal(res.body.field, field, what)
      const atStart = problemAtStart(dir, { ...ACCOUNTS, dan: body })
      assert.equal(res.body.error, `${field}: ${atStart.problem}`, what)
      assert.deepEqual(await ids(port), before, `${what}: nothing of a refused change is applied`)
    }
    // A payee's name is the file's to give (as before these rules).
    const carol = await adminRequest(port, 'PUT', '/admin/accounts/carol', { body: child('carol-token') })
    assert.equal(carol.status, 409)
    assert.equal(carol.body.code, 'payee_from_config')
    // Refused changes left the indices as they were: dan takes a token of its own, and alice's is still hers.
    assert.equal((await adminRequest(port, 'PUT', '/admin/accounts/dan', { body: child('dan-token') })).status, 201)
    const dup = await adminRequest(port, 'PUT', '/admin/accounts/erin', { body: child('alice-token') })
    assert.equal(dup.body.field, 'btp.token')
    const client = await connectPlugin(port, 'alice', 'alice-token')
    await client.disconnect()
  })

  it('refuses an account beyond limits.maxAccounts and a route to no account, as a file would be', async () => {
    // alice, bob, pam, carol and dan: the file's limit of 5 is reached.
    const body = child('erin-token')
    const res = await adminRequest(port, 'PUT', '/admin/accounts/erin', { body })
    assert.equal(res.status, 400, JSON.stringify(res.body))
    assert.equal(res.body.field, 'limits.maxAccounts')
    assert.equal(res.body.error, `limits.maxAccounts: ${problemAtStart(dir, { ...ACCOUNTS, dan: child('dan-token'), erin: body }).problem}`)
    const route = await adminRequest(port, 'PUT', '/admin/routes/test.elsewhere', { body: { peerId: 'nobody' } })
    assert.equal(route.status, 400)
    assert.equal(route.body.field, 'peerId')
    const atStart = problemAtStart(dir, ACCOUNTS, [...ROUTES, { targetPrefix: 'test.elsewhere', peerId: 'nobody' }])
    assert.equal(route.body.error, `peerId: ${atStart.problem}`)
    // bob is the next hop of a configured route: not deleted while it is.
    const bob = await adminRequest(port, 'DELETE', '/admin/accounts/bob')
    assert.equal(bob.status, 409)
    assert.equal(bob.body.code, 'account_in_use')
    // A route to a payee is one to an account.
    assert.equal((await adminRequest(port, 'PUT', '/admin/routes/test.elsewhere', { body: { peerId: 'carol' } })).status, 201)
    assert.equal((await adminRequest(port, 'DELETE', '/admin/routes/test.elsewhere')).status, 200)
    assert.equal((await adminRequest(port, 'DELETE', '/admin/accounts/dan')).status, 200)
  })

  it('reads only the account a PUT changes, none for a DELETE, and only the changed entries on a reload', async () => {
    // dan, deleted above, keeps its index until a restart: it is the one there is room for.
    let read = accountsRead()
    assert.equal((await adminRequest(port, 'PUT', '/admin/accounts/dan', { body: child('dan-token') })).status, 201)
    assert.equal(accountsRead() - read, 1, 'a PUT reads its own body, not the other accounts')
    read = accountsRead()
    assert.equal((await adminRequest(port, 'PUT', '/admin/accounts/dan', { body: child('dan-token', { maxPacketAmount: '10' }) })).status, 200)
    assert.equal(accountsRead() - read, 1)
    read = accountsRead()
    assert.equal((await adminRequest(port, 'DELETE', '/admin/accounts/dan')).status, 200)
    assert.equal(accountsRead() - read, 0)
    read = accountsRead()
    writeFileSync(file, JSON.stringify(fileJson(dir, { ...ACCOUNTS, bob: child('bob-token', { maxPacketAmount: '7' }) }, ROUTES)))
    const reloaded = await node.reload()
    assert.equal(reloaded.status, 200, JSON.stringify(reloaded.body))
    assert.equal((reloaded.body as Record<string, unknown>).updated, 'bob')
    assert.equal(accountsRead() - read, 1, 'a reload reads only the entries that changed')
    assert.equal(node.config.accounts.find((a) => a.id === 'bob')?.maxPacketAmount, 7n)
  })

  it('refuses a reload that breaks a rule between accounts with the words of a start, and runs on as it was', async () => {
    const before = await ids(port)
    const cases: [string, Record<string, unknown>, unknown[]][] = [
      ['a shared token', { ...ACCOUNTS, dan: child('bob-token') }, ROUTES],
      ['a second parent', { ...ACCOUNTS, dan: { relation: 'parent', assetCode: 'USD', assetScale: 9, btp: { token: 'dan-token' } } }, ROUTES],
      ['an account named like a payee', { ...ACCOUNTS, carol: child('carol-token') }, ROUTES],
      ['a route to an account gone', { alice: ACCOUNTS.alice, pam: ACCOUNTS.pam }, ROUTES],
      ['a second asset under a payee that takes the shared one', { ...ACCOUNTS, dan: child('dan-token', { assetCode: 'EUR' }) }, ROUTES],
      ['more accounts than limits.maxAccounts', { ...ACCOUNTS, dan: child('dan-token'), erin: child('erin-token') }, ROUTES],
    ]
    for (const [what, accounts, routes] of cases) {
      writeFileSync(file, JSON.stringify(fileJson(dir, accounts, routes)))
      const res = await node.reload()
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`)
      const body = res.body as Record<string, unknown>
      assert.equal(body.code, 'reload_refused', what)
      const atStart = problemAtStart(dir, accounts, routes)
      // The admin API's overlay (dan's deletion) is noted after the problem.
      assert.ok(String(body.error).startsWith(atStart.message), `${what}: ${String(body.error)} / ${atStart.message}`)
      assert.equal(body.field, atStart.field, what)
      assert.deepEqual(await ids(port), before, `${what}: a refused reload changes nothing`)
    }
    // The indices are as they were: a change that breaks no rule passes.
    writeFileSync(file, JSON.stringify(fileJson(dir, { ...ACCOUNTS, dan: child('dan-token') }, ROUTES)))
    assert.equal((await node.reload()).status, 200)
    const dup = await adminRequest(port, 'PUT', '/admin/accounts/erin', { body: child('dan-token') })
    assert.equal(dup.body.field, 'btp.token')
  })
})
