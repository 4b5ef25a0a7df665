// Per-user upstream connections across two real `gatehouse serve` processes on one Postgres
// schema, as two replicas behind a load balancer: an authorization started on one finishes on
// the other, and both refreshing one expired token at once make one refresh at the upstream's
// authorization server. Postgres only (SQLite is one file on one machine).

import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { nowSeconds, openDatabase, type Store } from '../../src/db/index.ts'
import { Keyring } from '../../src/secrets/keyring.ts'
import { openValue } from '../../src/secrets/sealed-column.ts'
import { tokenBinding } from '../../src/upstreams/upstream-tokens.ts'
import { remote } from '../fixtures/http.ts'
import { startTwoProcesses, type ServeProcess, type TwoProcesses } from '../fixtures/two-processes.ts'
import { type OAuthServer, startOAuthServer, startV2McpServer, type UpstreamServer } from '../fixtures/upstreams.ts'
import { bootstrapOwner, TEST_KEY } from '../setup.ts'

/** A request to one process as the owner, JSON both ways, bounded in time. */
async function call(server: ServeProcess, token: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      accept: 'application/json',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    redirect: 'manual',
    signal: AbortSignal.timeout(15_000),
  })
  const text = await response.text()
  return { status: response.status, text, body: text ? JSON.parse(text) : undefined }
}

describe.skipIf(!process.env.TEST_DATABASE_URL)('upstream connections across two gatehouse processes', () => {
  let servers: TwoProcesses | undefined
  let a: ServeProcess
  let b: ServeProcess
  let owner: { id: string; token: string }
  let as: OAuthServer
  let upstream: UpstreamServer
  let store: Store
  let serverId: string

  beforeAll(async () => {
    as = await startOAuthServer()
    upstream = await startV2McpServer({ protectedBy: as.protect() })
    // The public URL names A; the upstream's authorization server sends the browser back there.
    servers = await startTwoProcesses((portOfA) => `http://127.0.0.1:${portOfA}`, {
      GATEHOUSE_OUTBOUND_ALLOW_PRIVATE: 'true',
    })
    a = servers.a
    b = servers.b
    owner = await bootstrapOwner(remote(a.url))
    store = await openDatabase(servers.databaseUrl)
    const created = await call(a, owner.token, 'POST', '/api/v1/mcp/servers', {
      display_name: 'Upstream',
      slug: 'upstream',
      url: upstream.url,
      auth_type: 'oauth2',
      enabled: true,
    })
    if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`)
    serverId = created.body.id
  }, 60_000)

  afterAll(async () => {
    await store?.db.destroy()
    await servers?.close()
    await upstream?.close()
    await as?.close()
  }, 30_000)

  const path = (suffix = '') => `/api/v1/mcp/servers/${serverId}${suffix}`
  const tokenRow = () =>
    store.db
      .selectFrom('mcp_server_user_tokens')
      .selectAll()
      .where('server_id', '=', serverId)
      .where('user_id', '=', owner.id)
      .executeTakeFirstOrThrow()

  it('finishes on B an authorization started on A', async () => {
    const started = await call(a, owner.token, 'GET', path('/oauth2/connect'))
    expect(started.status).toBe(200)
    const back = await as.approve(started.body.authorization_url)
    expect(back.origin).toBe(a.url)

    const finished = await call(b, owner.token, 'GET', `${back.pathname}${back.search}`)
    expect(finished.status).toBe(200)
    expect(finished.body).toEqual({ connected: true })
    expect(as.tokenRequestsOf('authorization_code')).toMatchObject([{ status: 200 }])

    for (const process of [a, b])
      expect((await call(process, owner.token, 'GET', path())).body).toMatchObject({
        auth_connected: true,
        connection: { status: 'connected' },
      })
    // The state was used up on B: the same callback on A is refused.
    const replayed = await call(a, owner.token, 'GET', `${back.pathname}${back.search}`)
    expect(replayed.status).toBe(400)
    expect(as.tokenRequestsOf('authorization_code')).toHaveLength(1)
  }, 30_000)

  it('refreshes an expired token once when both processes need it at the same time', async () => {
    const keyring = await Keyring.create([TEST_KEY])
    as.tokenEndpoint.delayMs = 500
    try {
      for (let round = 1; round <= 3; round++) {
        await store.db
          .updateTable('mcp_server_user_tokens')
          .set({ expires_at: nowSeconds() - 5 })
          .where('server_id', '=', serverId)
          .execute()

        const [onA, onB] = await Promise.all(
          [a, b].map((process) => call(process, owner.token, 'GET', '/api/v1/mcp/servers')),
        )

        expect(as.tokenRequestsOf('refresh_token').map(({ status }) => status)).toEqual(Array(round).fill(200))
        const shown = [onA, onB].map(({ body }) => body.find((entry: { id: string }) => entry.id === serverId))
        for (const entry of shown) {
          expect(entry.connection.status).toBe('connected')
          expect(Date.parse(entry.connection.expires_at) / 1000).toBeGreaterThan(nowSeconds() + 3000)
        }
        const row = await tokenRow()
        expect(row.refresh_lease_id).toBeNull()
        // What is stored is what the authorization server issued last, and the upstream takes it.
        const access = await openValue(keyring, tokenBinding(row, 'access_token'), row.access_token)
        expect(await as.verifyAccessToken(access)).toMatchObject({ resource: upstream.resource })
      }
    } finally {
      as.tokenEndpoint.delayMs = undefined
    }
  }, 30_000)
})
