import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import { identityProviderAccessToken } from '../../src/auth/idp.service.ts'
import { loadConfig } from '../../src/config.ts'
import { nowSeconds } from '../../src/db/index.ts'
import type { McpServerRow } from '../../src/db/schema.ts'
import { createLogger } from '../../src/ops/logger.ts'
import { openValue, sealValue } from '../../src/secrets/sealed-column.ts'
import { upstreamHeaders } from '../../src/upstreams/credentials.ts'
import { findFreePort } from '../fixtures/cli-process.ts'
import { gatehouseLoginClient, signInThroughGatehouse } from '../fixtures/identity-providers.ts'
import { type OidcProviderServer, startOidcProvider } from '../fixtures/upstreams.ts'
import { closeClients, connectClient, pinRevision } from '../mcp/support-mcp-server.ts'
import { OWNER, startTestServer } from '../setup.ts'

/**
 * `user_oidc` upstreams get the user's own identity-provider access token (DESIGN.md, "Credentials
 * sent upstream"): from a real sign-in through Gatehouse at a real OpenID provider (oidc-provider,
 * 15-minute access tokens, rotating refresh tokens), renewed there when it is about to expire. The
 * token's age is set in the database, where Gatehouse reads it; the refreshes are counted at the
 * provider.
 */

const TIMEOUT_MS = 10_000
const CLIENT_ID = 'gatehouse-upstreams'
const CLIENT_SECRET = 'gatehouse-client-secret'
const ACCESS_TOKEN_TTL = 900
const MINUTE = 60

type Server = Awaited<ReturnType<typeof startTestServer>>

let idp: OidcProviderServer
let server: Server
let ownerToken: string
const logLines: string[] = []

beforeAll(async () => {
  const port = await findFreePort()
  const publicUrl = `http://127.0.0.1:${port}`
  idp = await startOidcProvider({
    accessTokenTtlSeconds: ACCESS_TOKEN_TTL,
    clients: [gatehouseLoginClient(publicUrl, CLIENT_ID, CLIENT_SECRET)],
  })
  const { oidc } = loadConfig({
    GATEHOUSE_OIDC_ISSUER: idp.issuer,
    GATEHOUSE_OIDC_CLIENT_ID: CLIENT_ID,
    GATEHOUSE_OIDC_CLIENT_SECRET: CLIENT_SECRET,
  })
  server = await startTestServer(
    { port, publicUrl, oidc },
    createLogger('info', (line) => void logLines.push(line)),
  )
  const created = await post('/api/v1/users/first', OWNER)
  if (created.status !== 201) throw new Error(`first user: ${created.status} ${await created.text()}`)
  ownerToken = (await (await post('/api/v1/auth/login', { login: OWNER.username, password: OWNER.password })).json())
    .session_token
})

afterEach(async () => {
  await closeClients()
})

afterAll(async () => {
  await server?.close()
  await idp?.close()
  // No log line carries a token the provider issued.
  for (const token of seenTokens) for (const line of logLines) expect(line).not.toContain(token)
})

/** Every token string a test saw, checked against the logs at the end. */
const seenTokens = new Set<string>()

function post(path: string, body: unknown, token?: string) {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  })
}

/** Signs `accountId` in through Gatehouse's `/login/oidc`; their user ID and session token. */
async function signIn(accountId: string): Promise<{ id: string; token: string }> {
  const result = await signInThroughGatehouse(server.url, 'oidc', (url) => idp.approve(url, { accountId }))
  if (result.status !== 303 || !result.sessionToken) throw new Error(`sign-in: ${result.status} ${result.text}`)
  const me = await fetch(`${server.url}/api/v1/users/me`, {
    headers: { authorization: `Bearer ${result.sessionToken}` },
    signal: AbortSignal.timeout(TIMEOUT_MS),
  })
  return { id: (await me.json()).id, token: result.sessionToken }
}

let accounts = 0
/** A new person at the provider, signed in to Gatehouse for the first time. */
const newUser = () => signIn(`person${++accounts}`)

/** An enabled `user_oidc` server (created through the API), as the row the resolver gets. */
async function createUserOidcServer(extra: Record<string, unknown> = {}): Promise<McpServerRow> {
  const created = await post(
    '/api/v1/mcp/servers',
    {
      display_name: 'Internal API',
      slug: `oidc-${crypto.randomUUID().slice(0, 8)}`,
      url: 'https://internal.example.com/mcp',
      auth_type: 'user_oidc',
      enabled: true,
      availability: 'default_on',
      ...extra,
    },
    ownerToken,
  )
  if (created.status !== 201) throw new Error(`create: ${created.status} ${await created.text()}`)
  const { id } = await created.json()
  return server.deps.db.selectFrom('mcp_servers').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
}

const findUser = (id: string) =>
  server.deps.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow()

const findLink = (userId: string) =>
  server.deps.db
    .selectFrom('user_links')
    .selectAll()
    .where('user_id', '=', userId)
    .where('provider', '=', 'oidc')
    .executeTakeFirstOrThrow()

/** The stored link's tokens, opened with the server's keyring. */
async function storedTokens(userId: string) {
  const link = await findLink(userId)
  const open = (column: 'access_token' | 'refresh_token') =>
    link[column] === null
      ? Promise.resolve(undefined)
      : openValue(server.deps.keyring, { table: 'user_links', column, rowKey: `${userId}/oidc` }, link[column]!)
  const tokens = { link, accessToken: await open('access_token'), refreshToken: await open('refresh_token') }
  for (const token of [tokens.accessToken, tokens.refreshToken]) if (token) seenTokens.add(token)
  return tokens
}

/** Ages the stored access token: issued `issuedAgo` seconds ago, expiring in `expiresIn`. */
async function ageToken(userId: string, { issuedAgo, expiresIn }: { issuedAgo: number; expiresIn: number }) {
  const now = nowSeconds()
  await server.deps.db
    .updateTable('user_links')
    .set({ issued_at: now - issuedAgo, expires_at: now + expiresIn })
    .where('user_id', '=', userId)
    .where('provider', '=', 'oidc')
    .execute()
}

async function headersFor(row: McpServerRow, userId: string) {
  const headers = await upstreamHeaders(server.deps, row, await findUser(userId))
  if (headers.authorization) seenTokens.add(headers.authorization.slice('Bearer '.length))
  return headers
}

describe('the user_oidc credential', () => {
  let row: McpServerRow
  beforeAll(async () => {
    row = await createUserOidcServer()
  })

  it('sends no Authorization header for a user who never signed in with the provider', async () => {
    const created = await post(
      '/api/v1/users',
      { email: 'pat@example.com', username: 'pat', password: 'pat-password-1' },
      ownerToken,
    )
    const pat = await created.json()
    expect(await headersFor(row, pat.id)).toEqual({})
    expect(await identityProviderAccessToken(server.deps, pat.id)).toBeUndefined()
  })

  it("sends a fresh token as it is, without asking the provider, and it is the provider's live token", async () => {
    const user = await newUser()
    const { accessToken, link } = await storedTokens(user.id)
    expect(link.expires_at! - link.issued_at).toBe(ACCESS_TOKEN_TTL)
    const refreshes = idp.refreshCount
    expect(await headersFor(row, user.id)).toEqual({ authorization: `Bearer ${accessToken}` })
    expect(idp.refreshCount).toBe(refreshes)
    expect(await idp.verifyAccessToken(accessToken!)).toMatchObject({ clientId: CLIENT_ID })
  })

  it('adds the identity headers beside the token when the server forwards them', async () => {
    const forwarding = await createUserOidcServer({ forward_identity_headers: true })
    const user = await newUser()
    const { accessToken } = await storedTokens(user.id)
    const me = await findUser(user.id)
    expect(await headersFor(forwarding, user.id)).toEqual({
      authorization: `Bearer ${accessToken}`,
      'x-gatehouse-user-id': user.id,
      'x-gatehouse-user-email': me.email,
      'x-gatehouse-username': me.username,
    })
  })

  it('refreshes a token with 9 minutes left and persists the rotated tokens', async () => {
    const user = await newUser()
    const before = await storedTokens(user.id)
    await ageToken(user.id, { issuedAgo: 50 * MINUTE, expiresIn: 9 * MINUTE })
    const refreshes = idp.refreshCount

    const headers = await headersFor(row, user.id)
    expect(idp.refreshCount).toBe(refreshes + 1)
    const after = await storedTokens(user.id)
    expect(headers).toEqual({ authorization: `Bearer ${after.accessToken}` })
    expect(after.accessToken).not.toBe(before.accessToken)
    expect(after.refreshToken).not.toBe(before.refreshToken)
    expect(await idp.verifyAccessToken(after.accessToken!)).toMatchObject({ clientId: CLIENT_ID })
    const now = nowSeconds()
    expect(after.link.issued_at).toBeWithin(now - 5, now + 1)
    expect(after.link.expires_at! - after.link.issued_at).toBe(ACCESS_TOKEN_TTL)
    expect(after.link.refresh_lease_id).toBeNull()

    // The stored refresh token is the rotated one: the next renewal works with it.
    await ageToken(user.id, { issuedAgo: 50 * MINUTE, expiresIn: 9 * MINUTE })
    const again = await headersFor(row, user.id)
    expect(idp.refreshCount).toBe(refreshes + 2)
    const third = await storedTokens(user.id)
    expect(again).toEqual({ authorization: `Bearer ${third.accessToken}` })
    expect(await idp.verifyAccessToken(third.accessToken!)).toMatchObject({ clientId: CLIENT_ID })
  })

  it('does not refresh a long-lived token with 11 minutes left', async () => {
    const user = await newUser()
    const { accessToken } = await storedTokens(user.id)
    await ageToken(user.id, { issuedAgo: 50 * MINUTE, expiresIn: 11 * MINUTE })
    const refreshes = idp.refreshCount
    expect(await headersFor(row, user.id)).toEqual({ authorization: `Bearer ${accessToken}` })
    expect(idp.refreshCount).toBe(refreshes)
  })

  it('refreshes a 15-minute token at half its lifetime, not before', async () => {
    const user = await newUser()
    const { accessToken } = await storedTokens(user.id)
    const refreshes = idp.refreshCount
    // 7 of 15 minutes gone: 8 left, more than half, although under the 10-minute margin.
    await ageToken(user.id, { issuedAgo: 7 * MINUTE, expiresIn: 8 * MINUTE })
    expect(await headersFor(row, user.id)).toEqual({ authorization: `Bearer ${accessToken}` })
    expect(idp.refreshCount).toBe(refreshes)

    // 8 of 15 gone: 7 left, under half.
    await ageToken(user.id, { issuedAgo: 8 * MINUTE, expiresIn: 7 * MINUTE })
    const headers = await headersFor(row, user.id)
    expect(idp.refreshCount).toBe(refreshes + 1)
    const after = await storedTokens(user.id)
    expect(after.accessToken).not.toBe(accessToken)
    expect(headers).toEqual({ authorization: `Bearer ${after.accessToken}` })
  })

  it('refreshes once at the provider for ten concurrent requests after expiry, all sent the new token', async () => {
    const user = await newUser()
    const { accessToken } = await storedTokens(user.id)
    await ageToken(user.id, { issuedAgo: 20 * MINUTE, expiresIn: -5 * MINUTE })
    const refreshes = idp.refreshCount
    const me = await findUser(user.id)

    const all = await Promise.all(Array.from({ length: 10 }, () => upstreamHeaders(server.deps, row, me)))
    expect(idp.refreshCount).toBe(refreshes + 1)
    const after = await storedTokens(user.id)
    expect(after.accessToken).not.toBe(accessToken)
    expect(all).toEqual(Array(10).fill({ authorization: `Bearer ${after.accessToken}` }))
  })

  it('waits for a refresh another replica holds the lease for and sends what it stored, without refreshing itself', async () => {
    const user = await newUser()
    await ageToken(user.id, { issuedAgo: 20 * MINUTE, expiresIn: -5 * MINUTE })
    const refreshes = idp.refreshCount
    // Another replica has claimed the refresh (the lease columns, as it writes them).
    await server.deps.db
      .updateTable('user_links')
      .set({ refresh_lease_id: crypto.randomUUID(), refresh_lease_until: nowSeconds() + 30 })
      .where('user_id', '=', user.id)
      .execute()

    const pending = identityProviderAccessToken(server.deps, user.id)
    await Bun.sleep(300)
    // ... and finishes: its renewed token lands in the row, the lease released.
    const renewed = `renewed-by-the-other-replica-${crypto.randomUUID()}`
    const binding = { table: 'user_links', column: 'access_token' as const, rowKey: `${user.id}/oidc` }
    const now = nowSeconds()
    await server.deps.db
      .updateTable('user_links')
      .set({
        access_token: await sealValue(server.deps.keyring, binding, renewed),
        issued_at: now,
        expires_at: now + ACCESS_TOKEN_TTL,
        refresh_lease_id: null,
        refresh_lease_until: null,
      })
      .where('user_id', '=', user.id)
      .execute()

    expect(await pending).toBe(renewed)
    expect(idp.refreshCount).toBe(refreshes)
  })

  it('sends the current token, without refreshing, when the provider gave no refresh token', async () => {
    const user = await newUser()
    const { accessToken } = await storedTokens(user.id)
    await server.deps.db.updateTable('user_links').set({ refresh_token: null }).where('user_id', '=', user.id).execute()
    await ageToken(user.id, { issuedAgo: 50 * MINUTE, expiresIn: 2 * MINUTE })
    const refreshes = idp.refreshCount
    expect(await headersFor(row, user.id)).toEqual({ authorization: `Bearer ${accessToken}` })
    expect(idp.refreshCount).toBe(refreshes)
  })

  it('sends no Authorization header, throws nothing and logs a warning when the provider refuses the refresh', async () => {
    const user = await newUser()
    const { refreshToken } = await storedTokens(user.id)
    await idp.revokeRefreshToken(refreshToken!)
    await ageToken(user.id, { issuedAgo: 20 * MINUTE, expiresIn: -1 * MINUTE })
    const lines = logLines.length

    expect(await headersFor(row, user.id)).toEqual({})
    const warnings = logLines
      .slice(lines)
      .map((line) => JSON.parse(line))
      .filter((line) => line.level === 'warn')
    expect(warnings).toEqual([
      expect.objectContaining({
        msg: 'could not refresh the identity-provider token for an upstream request',
        user_id: user.id,
      }),
    ])
    // The lease is released, so the next request tries again (and fails the same quiet way).
    expect((await findLink(user.id)).refresh_lease_id).toBeNull()
    expect(await identityProviderAccessToken(server.deps, user.id)).toBeUndefined()
    // Signing in again mends it.
    await signIn(`person${accounts}`)
    const mended = await storedTokens(user.id)
    expect(await headersFor(row, user.id)).toEqual({ authorization: `Bearer ${mended.accessToken}` })
  })
})

describe('a user_oidc server in the API and over MCP', () => {
  async function listServers(token: string) {
    const response = await fetch(`${server.url}/api/v1/mcp/servers`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    expect(response.status).toBe(200)
    return (await response.json()) as { id: string; auth_connected: boolean; connection: any }[]
  }

  it('is connected for a user with a live OIDC link and not_connected without one, auth_connected either way', async () => {
    const row = await createUserOidcServer()
    const linked = await newUser()
    const link = await findLink(linked.id)
    const mine = (await listServers(linked.token)).find((entry) => entry.id === row.id)!
    expect(mine.auth_connected).toBe(true)
    expect(mine.connection).toEqual({
      status: 'connected',
      expires_at: new Date(link.expires_at! * 1000).toISOString(),
      renews_automatically: true,
      scopes: [],
    })

    const theirs = (await listServers(ownerToken)).find((entry) => entry.id === row.id)!
    expect(theirs.auth_connected).toBe(true)
    expect(theirs.connection).toEqual({
      status: 'not_connected',
      expires_at: null,
      renews_automatically: false,
      scopes: [],
    })
  })

  it('is still connected after expiry while a refresh token can renew it, and not_connected when none can', async () => {
    const row = await createUserOidcServer()
    const user = await newUser()
    await ageToken(user.id, { issuedAgo: 20 * MINUTE, expiresIn: -1 * MINUTE })
    const status = async () => (await listServers(user.token)).find((entry) => entry.id === row.id)!.connection.status
    expect(await status()).toBe('connected')
    await server.deps.db.updateTable('user_links').set({ refresh_token: null }).where('user_id', '=', user.id).execute()
    expect(await status()).toBe('not_connected')
  })

  it('shows login_type oidc through get_authenticated_user to a real MCP client', async () => {
    const user = await newUser()
    const client = await connectClient(server.url, user.token, pinRevision('2025-06-18'))
    const result = await client.callTool({ name: 'get_authenticated_user', arguments: {} })
    expect(result.isError).toBeFalsy()
    expect(result.structuredContent).toMatchObject({ id: user.id, login_type: 'oidc' })
  })
})
