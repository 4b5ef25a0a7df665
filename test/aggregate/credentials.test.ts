import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import {
  type Account,
  type AggregateGatehouse,
  seenHeaders,
  startAggregateGatehouse,
  startV1Upstream,
  startV2Upstream,
  type UpstreamFixtureOptions,
} from '../fixtures/aggregate.ts'
import { findFreePort } from '../fixtures/cli-process.ts'
import { gatehouseLoginClient, signInThroughGatehouse } from '../fixtures/identity-providers.ts'
import { type OidcProviderServer, startOAuthServer, startOidcProvider } from '../fixtures/upstreams.ts'

/**
 * Calls through `/mcp` reach the right upstream with the calling user's own credential (DESIGN.md,
 * "Credentials sent upstream"), for a 2026-era (SDK v2) and a 2025-era session-based (SDK v1)
 * upstream alike. Each upstream's `whoami` tool answers with the credential headers it received.
 */

const CLIENT_ID = 'gatehouse-login'
const CLIENT_SECRET = 'gatehouse-login-secret'

const KINDS = [
  ['v2', startV2Upstream],
  ['v1', startV1Upstream],
] as const

let gatehouse: AggregateGatehouse
let idp: OidcProviderServer
let alice: Account
const started: { close: () => Promise<void> }[] = []
let servers = 0

/** Starts an upstream of a kind and registers it (default_on); its slug, and the upstream. */
async function registered<Kind extends (typeof KINDS)[number]>(
  kind: Kind,
  fields: Record<string, unknown>,
  options: UpstreamFixtureOptions = {},
) {
  const upstream = (await kind[1](options)) as Awaited<ReturnType<Kind[1]>>
  started.push(upstream)
  const slug = `${kind[0]}-${++servers}`
  const server = await gatehouse.register(slug, { url: upstream.url, availability: 'default_on', ...fields })
  return { slug, server, upstream }
}

/**
 * What the upstream behind `slug` saw when `account` called its `whoami` through `/mcp`. With
 * `progress`, the call asks for progress, which takes Gatehouse's SDK path instead of the plain one.
 */
async function whoami(account: Account, slug: string, { progress = false } = {}) {
  const client = await gatehouse.mcp(account.token)
  const result = await client.callTool(
    { name: `${slug}__whoami`, arguments: {} },
    progress ? { onprogress: () => {} } : undefined,
  )
  expect(result.isError).toBeFalsy()
  return seenHeaders(result)
}

/** Signs a person in through Gatehouse's `/login/oidc` at the provider; their account. */
async function signInWithProvider(accountId: string): Promise<Account> {
  const result = await signInThroughGatehouse(gatehouse.url, 'oidc', (url) => idp.approve(url, { accountId }))
  if (result.status !== 303 || !result.sessionToken) throw new Error(`sign-in: ${result.status} ${result.text}`)
  const me = await gatehouse.api('GET', '/api/v1/users/me', undefined, result.sessionToken)
  return { id: me.body.id, token: result.sessionToken }
}

beforeAll(async () => {
  const port = await findFreePort()
  const publicUrl = `http://127.0.0.1:${port}`
  idp = await startOidcProvider({ clients: [gatehouseLoginClient(publicUrl, CLIENT_ID, CLIENT_SECRET)] })
  const { oidc } = loadConfig({
    GATEHOUSE_OIDC_ISSUER: idp.issuer,
    GATEHOUSE_OIDC_CLIENT_ID: CLIENT_ID,
    GATEHOUSE_OIDC_CLIENT_SECRET: CLIENT_SECRET,
  })
  gatehouse = await startAggregateGatehouse({ port, publicUrl, oidc })
  alice = await gatehouse.createUser('alice')
})

afterEach(async () => {
  await gatehouse.closeClients()
  await Promise.all(started.splice(0).map((upstream) => upstream.close()))
})

afterAll(async () => {
  await gatehouse?.close()
  await idp?.close()
})

describe.each(KINDS)('a %s upstream', (...kind) => {
  it('gets each user’s own upstream OAuth token for oauth2, never a Gatehouse token', async () => {
    const as = await startOAuthServer()
    started.push(as)
    const { slug, server, upstream } = await registered(kind, { auth_type: 'oauth2' }, { protectedBy: as.protect() })
    await gatehouse.connectOAuth(server.id, as, gatehouse.owner.token)
    await gatehouse.connectOAuth(server.id, as, alice.token)

    const owners = (await whoami(gatehouse.owner, slug)).authorization
    const alices = (await whoami(alice, slug)).authorization
    expect(owners).toStartWith('Bearer ')
    expect(alices).toStartWith('Bearer ')
    expect(alices).not.toBe(owners)
    expect((await whoami(alice, slug, { progress: true })).authorization).toBe(alices)
    for (const seen of [owners, alices]) expect(await as.verifyAccessToken(seen!.slice('Bearer '.length))).toBeDefined()
    // Every request the upstream's tools served carried one of the two, never what the client sent Gatehouse.
    const gatehouseTokens = [gatehouse.owner.token, alice.token]
    for (const call of upstream.calls) {
      expect([owners, alices]).toContain(call.headers.get('authorization'))
      for (const token of gatehouseTokens) expect(call.headers.get('authorization')).not.toContain(token)
    }
  })

  it('gets the api_key header and no Authorization header', async () => {
    const { slug } = await registered(kind, {
      auth_type: 'api_key',
      api_key_header: 'X-Api-Key',
      api_key_value: 'key-for-everyone',
    })
    for (const account of [gatehouse.owner, alice])
      for (const progress of [false, true]) {
        const seen = await whoami(account, slug, { progress })
        expect(seen['x-api-key']).toBe('key-for-everyone')
        expect(seen.authorization).toBeNull()
      }
  })

  it('gets every custom header, and the Authorization among them when one is set', async () => {
    const { slug } = await registered(kind, {
      auth_type: 'custom_headers',
      custom_headers: { 'X-Team': 'blue', 'X-Region': 'eu-west', Authorization: 'Bearer static-upstream-secret' },
    })
    const seen = await whoami(alice, slug, { progress: true })
    expect(await whoami(alice, slug)).toEqual(seen)
    expect(seen['x-team']).toBe('blue')
    expect(seen['x-region']).toBe('eu-west')
    expect(seen.authorization).toBe('Bearer static-upstream-secret')
  })

  it('gets no credential at all for auth_type none', async () => {
    const { slug } = await registered(kind, { auth_type: 'none' })
    const seen = await whoami(alice, slug)
    for (const value of Object.values(seen)) expect(value).toBeNull()
  })

  it('gets the identity headers of whoever calls when the server forwards them', async () => {
    const { slug } = await registered(kind, { auth_type: 'none', forward_identity_headers: true })
    const seenByAlice = await whoami(alice, slug)
    expect(seenByAlice['x-gatehouse-user-id']).toBe(alice.id)
    expect(seenByAlice['x-gatehouse-username']).toBe('alice')
    expect(seenByAlice['x-gatehouse-user-email']).toBe('alice@example.com')
    expect((await whoami(gatehouse.owner, slug))['x-gatehouse-user-id']).toBe(gatehouse.owner.id)
    expect((await whoami(alice, slug, { progress: true }))['x-gatehouse-user-id']).toBe(alice.id)
  })

  it('gets, for user_oidc, the identity-provider access token of the user who signed in with it', async () => {
    const { slug } = await registered(kind, { auth_type: 'user_oidc' })
    const [pat, sam] = [await signInWithProvider(`pat-${kind[0]}`), await signInWithProvider(`sam-${kind[0]}`)]
    const pats = (await whoami(pat, slug)).authorization
    const sams = (await whoami(sam, slug)).authorization
    expect(pats).toStartWith('Bearer ')
    expect(sams).toStartWith('Bearer ')
    expect(pats).not.toBe(sams)
    for (const seen of [pats, sams])
      expect(await idp.verifyAccessToken(seen!.slice('Bearer '.length))).toMatchObject({ clientId: CLIENT_ID })
    expect(pats).not.toContain(pat.token)
    expect((await whoami(pat, slug, { progress: true })).authorization).toBe(pats)
    // Signed in with a password: no provider token, so no Authorization header (and no error).
    expect((await whoami(alice, slug)).authorization).toBeNull()
  })
})

describe('a 2025-era session-based upstream', () => {
  it('keeps one upstream session per user across calls, never sharing one between users', async () => {
    const { slug, upstream } = await registered(KINDS[1], {
      auth_type: 'api_key',
      api_key_header: 'X-Api-Key',
      api_key_value: 'shared',
    })
    for (const account of [gatehouse.owner, alice, gatehouse.owner, alice]) await whoami(account, slug)
    expect(upstream.calls.length).toBe(4)
    const sessions = upstream.calls.map((call) => call.headers.get('mcp-session-id'))
    expect(sessions[0]).toBeString()
    expect(sessions[2]).toBe(sessions[0])
    expect(sessions[3]).toBe(sessions[1])
    expect(sessions[1]).not.toBe(sessions[0])
    expect(upstream.sessionCount).toBe(2)
  })
})
