// Two real `gatehouse serve` processes on one Postgres schema, as two replicas behind one load
// balancer: tokens issued by one work on the other, and a code or refresh token raced across both
// is still single-use. Postgres only (SQLite is one file on one machine, not a multi-process setup).

import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import pg from 'pg'
import { hashToken } from '../../src/auth/token.ts'
import { OWNER } from '../setup.ts'
import { withTimeout } from '../fixtures/cli-process.ts'
import { remote, signUpOwner } from '../fixtures/http.ts'
import { startTwoProcesses, type ServeProcess as Server, type TwoProcesses } from '../fixtures/two-processes.ts'
import { authorizeWithBearer, createPkce, REDIRECT_URI, registerClient, tokenRequest, type Pkce } from './helpers.ts'

/** The one address clients know both processes by (the load balancer); only a name here, never fetched. */
const PUBLIC_URL = 'http://gatehouse.localhost:8080'
const API_RESOURCE = `${PUBLIC_URL}/api`
const REQUEST_TIMEOUT_MS = 10_000
const RACE_ROUNDS = 10

type Tokens = { access_token: string; refresh_token: string; [name: string]: unknown }

async function call(server: Server, path: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(`${server.url}${path}`, {
    redirect: 'manual',
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    ...init,
  })
  const text = await response.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON; keep the text
  }
  return { status: response.status, body }
}

/** GET /api/v1/users/me with a bearer token; the status says whether the token is live there. */
async function me(server: Server, token: string): Promise<{ status: number; body: any }> {
  return call(server, '/api/v1/users/me', { headers: { authorization: `Bearer ${token}` } })
}

describe.skipIf(!process.env.TEST_DATABASE_URL)('two gatehouse processes on one Postgres database', () => {
  let servers: TwoProcesses | undefined
  let a: Server
  let b: Server
  let sessionToken: string
  let sql: pg.Client

  beforeAll(async () => {
    servers = await startTwoProcesses(() => PUBLIC_URL)
    a = servers.a
    b = servers.b
    sql = new pg.Client({ connectionString: servers.databaseUrl })
    await withTimeout(sql.connect(), REQUEST_TIMEOUT_MS, 'the test connection to Postgres')
    sessionToken = await signUpOwner(a.url, REQUEST_TIMEOUT_MS)
  }, 60_000)

  afterAll(async () => {
    await withTimeout(sql?.end() ?? Promise.resolve(), 5_000, 'the test connection to close').catch(() => {})
    await servers?.close()
  }, 30_000)

  /** A public client registered on `server`, with refresh tokens. */
  async function newClient(server: Server): Promise<string> {
    return (await registerClient(remote(server.url))).client_id
  }

  /** One authorization on `server` with the owner's session as bearer: a fresh code and its PKCE verifier. */
  async function authorize(
    server: Server,
    clientId: string,
    resource = API_RESOURCE,
  ): Promise<{ code: string; pkce: Pkce }> {
    const pkce = createPkce()
    const location = await authorizeWithBearer(remote(server.url), sessionToken, {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      state: 'multi-process',
      scope: 'api',
      resource,
    })
    const code = location.searchParams.get('code')
    if (!code) throw new Error(`no code in ${location}`)
    return { code, pkce }
  }

  function exchange(server: Server, clientId: string, grant: { code: string; pkce: Pkce }) {
    return tokenRequest(remote(server.url), {
      grant_type: 'authorization_code',
      code: grant.code,
      redirect_uri: REDIRECT_URI,
      code_verifier: grant.pkce.verifier,
      client_id: clientId,
    })
  }

  function refresh(server: Server, clientId: string, refreshToken: string) {
    return tokenRequest(remote(server.url), {
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: clientId,
    })
  }

  /** A fresh grant: authorized and exchanged on `server`. */
  async function obtain(server: Server, clientId: string, resource = API_RESOURCE): Promise<Tokens> {
    const exchanged = await exchange(server, clientId, await authorize(server, clientId, resource))
    if (exchanged.status !== 200) throw new Error(`token: ${exchanged.status} ${JSON.stringify(exchanged.body)}`)
    return exchanged.body as Tokens
  }

  /** The grant an access token belongs to, read straight from the database. */
  async function grantOf(accessToken: string): Promise<{ id: string; revoked_at: number | null } | undefined> {
    const { rows } = await sql.query(
      'SELECT g.id, g.revoked_at FROM oauth_grants g JOIN oauth_access_tokens t ON t.grant_id = g.id WHERE t.token_hash = $1',
      [hashToken(accessToken)],
    )
    return rows[0]
  }

  it('accepts a token issued by A on B, for the API resource with the api scope', async () => {
    const clientId = await newClient(a)
    const tokens = await obtain(a, clientId)
    expect(tokens.scope).toBe('api')

    const onB = await me(b, tokens.access_token)
    expect(onB.status).toBe(200)
    expect(onB.body).toMatchObject({ username: OWNER.username, email: OWNER.email, role: 'owner' })
    expect(await me(a, tokens.access_token)).toEqual(onB)

    // The audience is checked on B as well: a token for the default resource (the MCP endpoint) is not an API token.
    const mcpTokens = await obtain(a, clientId, `${PUBLIC_URL}/mcp`)
    const refused = await me(b, mcpTokens.access_token)
    expect(refused.status).toBe(401)
    expect(refused.body.message).toBe('This access token was issued for another resource')
  }, 30_000)

  it('lets one of two simultaneous redemptions of a code on A and B win, then revokes what it got', async () => {
    const clientId = await newClient(a)
    for (let round = 0; round < RACE_ROUNDS; round++) {
      const grant = await authorize(round % 2 ? b : a, clientId)
      const results = await Promise.all([exchange(a, clientId, grant), exchange(b, clientId, grant)])
      const statuses = results.map((result) => result.status).sort()
      expect(statuses, `round ${round}: ${JSON.stringify(results.map((r) => r.body))}`).toEqual([200, 400])
      const winner = results.find((result) => result.status === 200)!.body as Tokens
      const loser = results.find((result) => result.status === 400)!.body
      expect(loser.error).toBe('invalid_grant')

      // OAuth 2.1 §4.1.3: a second redemption, concurrent or not, revokes what the first issued.
      // The loser revokes before it answers, so by now the winner's tokens are dead on both processes.
      for (const server of [a, b]) {
        const used = await me(server, winner.access_token)
        expect(used.status, `round ${round}: the winner's access token on ${server.name}`).toBe(401)
        const refreshed = await refresh(server, clientId, winner.refresh_token)
        expect(refreshed.status, `round ${round}: the winner's refresh token on ${server.name}`).toBe(400)
        expect(refreshed.body.error).toBe('invalid_grant')
      }
    }
  }, 60_000)

  it('keeps exactly one refresh lineage alive when one refresh token is redeemed on A and B at once', async () => {
    const clientId = await newClient(a)
    for (let round = 0; round < RACE_ROUNDS; round++) {
      const tokens = await obtain(round % 2 ? b : a, clientId)
      const results = await Promise.all([
        refresh(a, clientId, tokens.refresh_token),
        refresh(b, clientId, tokens.refresh_token),
      ])
      // Within the grace window the second redemption is a retry: it gets a fresh pair too, and the
      // refresh token the first one got is superseded, so only one lineage goes on.
      for (const result of results)
        expect(result.status, `round ${round}: ${JSON.stringify(results.map((r) => r.body))}`).toBe(200)
      const [fromA, fromB] = results.map((result) => result.body as Tokens)
      expect(fromA.refresh_token).not.toBe(fromB.refresh_token)
      const { rows } = await sql.query(
        'SELECT token_hash FROM oauth_refresh_tokens WHERE token_hash = ANY($1) AND superseded_at IS NOT NULL',
        [[hashToken(fromA.refresh_token), hashToken(fromB.refresh_token)]],
      )
      expect(rows, `round ${round}: exactly one of the two is superseded`).toHaveLength(1)
      const [superseded, survivor] =
        rows[0].token_hash === hashToken(fromA.refresh_token) ? [fromA, fromB] : [fromB, fromA]

      // The pair the retry replaced is dropped whole: its access token is dead on both processes.
      for (const server of [a, b])
        expect(
          (await me(server, superseded.access_token)).status,
          `round ${round}: the replaced access token on ${server.name}`,
        ).toBe(401)

      // The survivor refreshes on either process; its new tokens work on both.
      const next = await refresh(round % 2 ? a : b, clientId, survivor.refresh_token)
      expect(next.status, `round ${round}: the survivor refreshes`).toBe(200)
      for (const server of [a, b]) expect((await me(server, next.body.access_token)).status).toBe(200)
      const grant = (await grantOf(next.body.access_token))!

      // The superseded token coming back, on the other process, is reuse: the grant ends everywhere.
      const reuse = await refresh(round % 2 ? b : a, clientId, superseded.refresh_token)
      expect(reuse.status).toBe(400)
      expect(reuse.body.error).toBe('invalid_grant')
      for (const server of [a, b])
        expect(
          (await me(server, next.body.access_token)).status,
          `round ${round}: the lineage's access token on ${server.name} after reuse`,
        ).toBe(401)
      const revoked = await sql.query('SELECT revoked_at FROM oauth_grants WHERE id = $1', [grant.id])
      expect(revoked.rows[0].revoked_at).not.toBeNull()
    }
  }, 90_000)

  it('revokes the grant on both processes when a refresh token comes back after the grace window', async () => {
    const clientId = await newClient(a)
    for (const [first, second] of [
      [a, b],
      [b, a],
    ]) {
      const tokens = await obtain(first, clientId)
      const rotated = await refresh(first, clientId, tokens.refresh_token)
      expect(rotated.status).toBe(200)
      const next = rotated.body as Tokens

      // The grace window (GATEHOUSE_REFRESH_GRACE, 10 s by default) is over: moved into the past, not slept through.
      const moved = await sql.query(
        'UPDATE oauth_refresh_tokens SET used_at = used_at - 3600 WHERE token_hash = $1 AND used_at IS NOT NULL',
        [hashToken(tokens.refresh_token)],
      )
      expect(moved.rowCount).toBe(1)

      const reused = await refresh(second, clientId, tokens.refresh_token)
      expect(reused.status).toBe(400)
      expect(reused.body).toEqual({
        error: 'invalid_grant',
        error_description: 'the refresh token was already used; the grant is revoked',
      })

      for (const server of [a, b]) {
        expect((await me(server, tokens.access_token)).status, `the first access token on ${server.name}`).toBe(401)
        expect((await me(server, next.access_token)).status, `the rotated access token on ${server.name}`).toBe(401)
        const refreshed = await refresh(server, clientId, next.refresh_token)
        expect(refreshed.status, `the rotated refresh token on ${server.name}`).toBe(400)
        expect(refreshed.body.error).toBe('invalid_grant')
      }
      const { rows } = await sql.query(
        `SELECT count(*)::int AS revoked FROM oauth_grants WHERE client_id = $1 AND revoked_at IS NOT NULL`,
        [clientId],
      )
      expect(rows[0].revoked).toBe(first === a ? 1 : 2)
    }
  }, 30_000)
})
