// The change feed across replicas: two real `gatehouse serve` processes on one Postgres schema.
// What one changes (a revoked token, an edited server) reaches the other's caches within a second,
// where their time to live alone would take five; and a replica whose listening connection is
// cut reconnects and hears again. Postgres only: SQLite is one process.

import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import pg from 'pg'
import { LISTENER_APPLICATION_NAME } from '../../src/events/pg-event-bus.ts'
import { startV2Upstream, type V2Upstream } from '../fixtures/aggregate.ts'
import { withTimeout } from '../fixtures/cli-process.ts'
import { signUpOwner } from '../fixtures/http.ts'
import { type ServeProcess, startTwoProcesses, type TwoProcesses } from '../fixtures/two-processes.ts'

const REQUEST_TIMEOUT_MS = 10_000
/** How soon a change made on one replica must be seen on the other. */
const WITHIN_MS = 1000

async function call(server: ServeProcess, path: string, token: string, init: RequestInit = {}) {
  const response = await fetch(`${server.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers },
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  const text = await response.text()
  return { status: response.status, body: text ? JSON.parse(text) : undefined }
}

/** Polls `check` until it holds; fails when it has not within `ms` of the start. */
async function within(ms: number, what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`)
    await Bun.sleep(25)
  }
}

/** A stateless `tools/list` on `/mcp`, which resolves the token through the principal cache. */
async function mcpStatus(server: ServeProcess, token: string): Promise<number> {
  const response = await fetch(`${server.url}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-06-18',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  await response.body?.cancel()
  return response.status
}

async function mcpToolNames(server: ServeProcess, token: string): Promise<string[]> {
  const client = new Client({ name: 'change-feed-test', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  })
  await client.connect(transport)
  try {
    return (await client.listTools()).tools.map((tool) => tool.name)
  } finally {
    await client.close()
  }
}

describe.skipIf(!process.env.TEST_DATABASE_URL)('the change feed across two replicas', () => {
  let servers: TwoProcesses | undefined
  let a: ServeProcess
  let b: ServeProcess
  let owner: string
  let upstream: V2Upstream
  let admin: pg.Client

  beforeAll(async () => {
    upstream = await startV2Upstream()
    servers = await startTwoProcesses((port) => `http://127.0.0.1:${port}`, {
      GATEHOUSE_OUTBOUND_ALLOW_PRIVATE: 'true',
    })
    ;({ a, b } = servers)
    owner = await signUpOwner(a.url, REQUEST_TIMEOUT_MS)
    admin = new pg.Client({ connectionString: servers.databaseUrl })
    await withTimeout(admin.connect(), REQUEST_TIMEOUT_MS, 'the test connection to Postgres')
  }, 60_000)

  afterAll(async () => {
    await admin?.end().catch(() => {})
    await servers?.close()
    await upstream?.close()
  })

  /** A new API token, already resolved (and cached) by B's `/mcp`. */
  async function tokenKnownToB(): Promise<{ id: string; token: string }> {
    const created = await call(a, '/api/v1/tokens', owner, { method: 'POST', body: JSON.stringify({ name: 'feed' }) })
    expect(created.status).toBe(201)
    const { id, token } = created.body
    expect(await mcpStatus(b, token)).toBe(200)
    return { id, token }
  }

  it('refuses on B, within a second, a token revoked on A', async () => {
    const { id, token } = await tokenKnownToB()
    expect((await call(a, `/api/v1/tokens/${id}`, owner, { method: 'DELETE' })).status).toBe(204)
    await within(WITHIN_MS, 'B refusing the revoked token', async () => {
      return (await mcpStatus(b, token)) === 401
    })
  })

  it('changes B’s /mcp list, within a second, when a server is edited on A', async () => {
    const created = await call(a, '/api/v1/mcp/servers', owner, {
      method: 'POST',
      body: JSON.stringify({
        display_name: 'Feed',
        slug: 'feed',
        url: upstream.url,
        enabled: true,
        availability: 'force_on',
      }),
    })
    expect(created.status).toBe(201)
    await within(REQUEST_TIMEOUT_MS, 'B listing the new server', async () =>
      (await mcpToolNames(b, owner)).includes('feed__echo'),
    )
    const patched = await call(a, `/api/v1/mcp/servers/${created.body.id}`, owner, {
      method: 'PATCH',
      body: JSON.stringify({ tool_deny_list: ['echo'] }),
    })
    expect(patched.status).toBe(200)
    await within(
      WITHIN_MS,
      'B dropping the denied tool',
      async () => !(await mcpToolNames(b, owner)).includes('feed__echo'),
    )
  })

  it('reconnects when B’s listening connection is cut, and hears A again', async () => {
    const cut = await admin.query(
      'select pg_terminate_backend(pid) as cut from pg_stat_activity where application_name = $1',
      [`${LISTENER_APPLICATION_NAME} ${b.child.pid}`],
    )
    expect(cut.rows).toHaveLength(1)
    await within(REQUEST_TIMEOUT_MS, 'B to reconnect', async () => {
      const metrics = await (await fetch(`${b.url}/metrics`)).text()
      return (
        /^gatehouse_change_feed_reconnects_total [1-9]/m.test(metrics) &&
        /^gatehouse_change_feed_connected 1$/m.test(metrics)
      )
    })
    const { id, token } = await tokenKnownToB()
    expect((await call(a, `/api/v1/tokens/${id}`, owner, { method: 'DELETE' })).status).toBe(204)
    await within(WITHIN_MS, 'B refusing the revoked token after reconnecting', async () => {
      return (await mcpStatus(b, token)) === 401
    })
  })
})
