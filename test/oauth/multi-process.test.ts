// Two real `gatehouse serve` processes on one Postgres schema, as two replicas behind one load
// balancer: tokens issued by one work on the other, and a code or refresh token raced across both
// is still single-use. Postgres only (SQLite is one file on one machine, not a multi-process setup).

import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import pg from 'pg'
import type { Subprocess } from 'bun'
import { hashToken } from '../../src/auth/token.ts'
import { createTestDatabase, OWNER, TEST_KEY, type TestContext } from '../setup.ts'
import {
  cliEnv,
  createTempDir,
  encodeKey,
  findFreePort,
  killChildren,
  spawnCli,
  waitUntilHealthy,
  withTimeout,
} from '../fixtures/cli-process.ts'
import { authorizeWithBearer, createPkce, REDIRECT_URI, registerClient, tokenRequest, type Pkce } from './helpers.ts'

/** The one address clients know both processes by (the load balancer); only a name here, never fetched. */
const PUBLIC_URL = 'http://gatehouse.localhost:8080'
const API_RESOURCE = `${PUBLIC_URL}/api`
const REQUEST_TIMEOUT_MS = 10_000
const STARTUP_TIMEOUT_MS = 25_000
const RACE_ROUNDS = 10

type Tokens = { access_token: string; refresh_token: string; [name: string]: unknown }

interface Server {
  name: string
  base: string
  child: Subprocess<'ignore', 'pipe', 'pipe'>
  /** Everything the process printed so far, for failure messages. */
  output: () => string
}

/** Reads a stream to the end in the background so the child never blocks on a full pipe. */
function collect(stream: ReadableStream<Uint8Array>): () => string {
  let text = ''
  void (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true })
  })().catch(() => {})
  return () => text
}

/**
 * The shape the helpers in ./helpers.ts drive (`app.handle(request)`), sent over HTTP to one
 * process instead: same paths, redirects not followed, every request bounded in time.
 */
function remote(server: Server): Pick<TestContext, 'app'> {
  const handle = async (request: Request): Promise<Response> => {
    const url = new URL(request.url)
    return fetch(`${server.base}${url.pathname}${url.search}`, {
      method: request.method,
      headers: request.headers,
      body: request.body ? await request.arrayBuffer() : undefined,
      redirect: 'manual',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    })
  }
  return { app: { handle } } as unknown as Pick<TestContext, 'app'>
}

async function call(server: Server, path: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(`${server.base}${path}`, { redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), ...init })
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
  let dataDir: ReturnType<typeof createTempDir> | undefined
  let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined
  let a: Server
  let b: Server
  let sessionToken: string
  let sql: pg.Client

  async function startServer(name: string, databaseUrl: string): Promise<Server> {
    const port = await findFreePort()
    const child = spawnCli(
      ['serve'],
      cliEnv({
        PORT: String(port),
        GATEHOUSE_HOST: '127.0.0.1',
        GATEHOUSE_PUBLIC_URL: PUBLIC_URL,
        DATABASE_URL: databaseUrl,
        GATEHOUSE_ENCRYPTION_KEYS: `${TEST_KEY.id}:${encodeKey(TEST_KEY.key)}`,
        GATEHOUSE_DATA_DIR: dataDir!.path, // unused on Postgres with keys given; set so nothing lands in ./data
        GATEHOUSE_LOG_LEVEL: 'warn',
      }),
    )
    const stdout = collect(child.stdout)
    const stderr = collect(child.stderr)
    const server = { name, base: `http://127.0.0.1:${port}`, child, output: () => stdout() + stderr() }
    try {
      await withTimeout(waitUntilHealthy(`${server.base}/healthz`, child, STARTUP_TIMEOUT_MS), STARTUP_TIMEOUT_MS + 1_000, `${name} to be healthy`)
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${name} printed:\n${server.output()}`)
    }
    return server
  }

  beforeAll(async () => {
    dataDir = createTempDir()
    database = await createTestDatabase()
    // Started together, as replicas are: both migrate the empty schema at once.
    const servers = await Promise.all([startServer('A', database.url), startServer('B', database.url)])
    a = servers[0]
    b = servers[1]
    sql = new pg.Client({ connectionString: database.url })
    await withTimeout(sql.connect(), REQUEST_TIMEOUT_MS, 'the test connection to Postgres')

    const created = await call(a, '/api/v1/users/first', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(OWNER),
    })
    if (created.status !== 201) throw new Error(`first user: ${created.status} ${JSON.stringify(created.body)}`)
    const login = await call(a, '/api/v1/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login: OWNER.username, password: OWNER.password }),
    })
    if (login.status !== 200) throw new Error(`login: ${login.status} ${JSON.stringify(login.body)}`)
    sessionToken = login.body.session_token
  }, 60_000)

  afterAll(async () => {
    const children = [a?.child, b?.child].filter((child) => child !== undefined)
    killChildren()
    await withTimeout(Promise.all(children.map((child) => child.exited)), 5_000, 'the servers to exit').catch(() => {})
    await withTimeout(sql?.end() ?? Promise.resolve(), 5_000, 'the test connection to close').catch(() => {})
    if (database) await withTimeout(database.drop(), 10_000, 'the test schema to be dropped')
    dataDir?.remove()
  }, 30_000)

  /** A public client registered on `server`, with refresh tokens. */
  async function newClient(server: Server): Promise<string> {
    return (await registerClient(remote(server))).client_id
  }

  /** One authorization on `server` with the owner's session as bearer: a fresh code and its PKCE verifier. */
  async function authorize(server: Server, clientId: string, resource = API_RESOURCE): Promise<{ code: string; pkce: Pkce }> {
    const pkce = createPkce()
    const location = await authorizeWithBearer(remote(server), sessionToken, {
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
    return tokenRequest(remote(server), {
      grant_type: 'authorization_code',
      code: grant.code,
      redirect_uri: REDIRECT_URI,
      code_verifier: grant.pkce.verifier,
      client_id: clientId,
    })
  }

  function refresh(server: Server, clientId: string, refreshToken: string) {
    return tokenRequest(remote(server), { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId })
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
      const results = await Promise.all([refresh(a, clientId, tokens.refresh_token), refresh(b, clientId, tokens.refresh_token)])
      // Within the grace window the second redemption is a retry: it gets a fresh pair too, and the
      // pair the first one got is dropped, so only one lineage goes on.
      for (const result of results)
        expect(result.status, `round ${round}: ${JSON.stringify(results.map((r) => r.body))}`).toBe(200)
      const [fromA, fromB] = results.map((result) => result.body as Tokens)
      expect(fromA.refresh_token).not.toBe(fromB.refresh_token)

      // Each returned refresh token is tried once, on the other process than the one that issued it.
      const tries = [await refresh(b, clientId, fromA.refresh_token), await refresh(a, clientId, fromB.refresh_token)]
      const succeeded = tries.filter((attempt) => attempt.status === 200)
      expect(succeeded.length, `round ${round}: ${JSON.stringify(tries.map((t) => [t.status, t.body.error]))}`).toBe(1)
      const failed = tries.find((attempt) => attempt.status !== 200)!
      expect(failed.status).toBe(400)
      expect(failed.body.error).toBe('invalid_grant')

      // The pair the retry replaced is dropped whole (refreshTokens' contract): its access token is dead too.
      const dropped = tries[0].status === 200 ? fromB : fromA
      for (const server of [a, b])
        expect((await me(server, dropped.access_token)).status, `round ${round}: the dropped access token on ${server.name}`).toBe(401)

      // Trying the dead one did not revoke the grant: the survivor's new tokens work on both processes.
      const survivor = succeeded[0].body as Tokens
      expect((await me(a, survivor.access_token)).status).toBe(200)
      expect((await me(b, survivor.access_token)).status).toBe(200)
      expect(await grantOf(survivor.access_token)).toMatchObject({ revoked_at: null })
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
