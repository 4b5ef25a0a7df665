// Two real `gatehouse serve` processes on one Postgres schema, as two replicas behind a load
// balancer: an MCP client whose requests alternate between them keeps working on every revision,
// and a credential revoked on one stops working on the other once its principal cache entry
// expires. Postgres only (SQLite is one file on one machine, not a multi-process setup).

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import type { FetchLike } from '@modelcontextprotocol/client'
import type { Subprocess } from 'bun'
import { bootstrapOwner, createTestDatabase, TEST_KEY } from '../setup.ts'
import { obtainTokens } from '../oauth/helpers.ts'
import { cliEnv, createTempDir, encodeKey, findFreePort, killChildren, spawnCli, waitUntilHealthy, withTimeout } from '../fixtures/cli-process.ts'
import {
  callApi,
  closeClients,
  connectClient,
  createApiToken,
  pinRevision,
  postMcp,
  remote,
  rpc,
  textJson,
  type Revision,
} from './support-mcp-server.ts'

const STARTUP_TIMEOUT_MS = 25_000
/** The principal cache keeps an entry for 5 s; a revocation elsewhere must show within twice that. */
const PROPAGATION_LIMIT_MS = 10_000
const CALLS_PER_CLIENT = 10

interface Server {
  name: string
  port: number
  url: string
  child: Subprocess<'ignore', 'pipe', 'pipe'>
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

/** A fetch that sends each request to the next of `ports` in turn, whatever port its URL names. */
function alternating(ports: number[]): { fetch: FetchLike; sentTo: number[] } {
  const sentTo: number[] = []
  const fetchNext: FetchLike = (input, init) => {
    const url = new URL(input)
    url.port = String(ports[sentTo.length % ports.length])
    sentTo.push(Number(url.port))
    return fetch(url, init)
  }
  return { fetch: fetchNext, sentTo }
}

/** Polls until `check` is true or `limitMs` passes; true when it became true. */
async function eventually(check: () => Promise<boolean>, limitMs: number): Promise<boolean> {
  const deadline = Date.now() + limitMs
  while (Date.now() < deadline) {
    if (await check()) return true
    await Bun.sleep(200)
  }
  return check()
}

describe.skipIf(!process.env.TEST_DATABASE_URL)('MCP across two gatehouse processes on one Postgres database', () => {
  let dataDir: ReturnType<typeof createTempDir> | undefined
  let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined
  let a: Server
  let b: Server
  let publicUrl: string
  let owner: { id: string; token: string }

  async function startServer(name: string, port: number, databaseUrl: string): Promise<Server> {
    const child = spawnCli(
      ['serve'],
      cliEnv({
        PORT: String(port),
        GATEHOUSE_HOST: '127.0.0.1',
        GATEHOUSE_PUBLIC_URL: publicUrl,
        DATABASE_URL: databaseUrl,
        GATEHOUSE_ENCRYPTION_KEYS: `${TEST_KEY.id}:${encodeKey(TEST_KEY.key)}`,
        GATEHOUSE_DATA_DIR: dataDir!.path,
        GATEHOUSE_LOG_LEVEL: 'warn',
      }),
    )
    const stdout = collect(child.stdout)
    const stderr = collect(child.stderr)
    const server = { name, port, url: `http://127.0.0.1:${port}`, child, output: () => stdout() + stderr() }
    try {
      await withTimeout(waitUntilHealthy(`${server.url}/healthz`, child, STARTUP_TIMEOUT_MS), STARTUP_TIMEOUT_MS + 1_000, `${name} to be healthy`)
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${name} printed:\n${server.output()}`)
    }
    return server
  }

  beforeAll(async () => {
    dataDir = createTempDir()
    database = await createTestDatabase()
    const [portA, portB] = [await findFreePort(), await findFreePort()]
    // The public URL names A: loopback, so the Host check accepts 127.0.0.1:<B> as well.
    publicUrl = `http://127.0.0.1:${portA}`
    const servers = await Promise.all([startServer('A', portA, database.url), startServer('B', portB, database.url)])
    a = servers[0]
    b = servers[1]
    owner = await bootstrapOwner(remote(a.url))
  }, 60_000)

  afterEach(async () => {
    await closeClients()
  })

  afterAll(async () => {
    const children = [a?.child, b?.child].filter((child) => child !== undefined)
    killChildren()
    await withTimeout(Promise.all(children.map((child) => child.exited)), 5_000, 'the servers to exit').catch(() => {})
    if (database) await withTimeout(database.drop(), 10_000, 'the test schema to be dropped')
    dataDir?.remove()
  }, 30_000)

  for (const revision of ['2025-06-18', '2026-07-28'] as Revision[]) {
    it(`keeps a ${revision} client working while its requests alternate between the processes`, async () => {
      const route = alternating([a.port, b.port])
      const client = await connectClient(a.url, owner.token, pinRevision(revision), { fetch: route.fetch })
      expect(client.getNegotiatedProtocolVersion()).toBe(revision)

      for (let call = 0; call < CALLS_PER_CLIENT; call++) {
        const result = await client.callTool({ name: call % 2 ? 'list_organizations' : 'get_authenticated_user', arguments: {} })
        expect(result.isError, `call ${call}`).toBeFalsy()
        if (call % 2 === 0) expect(textJson(result)).toMatchObject({ id: owner.id, username: 'owner' })
        else expect(textJson(result).organizations).toHaveLength(1)
      }
      expect((await client.listTools()).tools.map((tool) => tool.name)).toContain('list_users')
      expect(new Set(route.sentTo)).toEqual(new Set([a.port, b.port]))
    }, 30_000)
  }

  it('refuses on B an API token deleted on A, within the principal cache lifetime', async () => {
    const apiToken = await createApiToken(a, owner.token)
    expect((await postMcp(b.url, apiToken.token, rpc('tools/list'))).status).toBe(200)
    expect((await callApi(a, owner.token, 'DELETE', `/api/v1/tokens/${apiToken.id}`)).status).toBe(204)

    expect((await postMcp(a.url, apiToken.token, rpc('tools/list'))).status).toBe(401)
    const refusedOnB = await eventually(async () => (await postMcp(b.url, apiToken.token, rpc('tools/list'))).status === 401, PROPAGATION_LIMIT_MS)
    expect(refusedOnB).toBe(true)
  }, 30_000)

  it('refuses on B the token of an app revoked through MCP on A, within the principal cache lifetime', async () => {
    const { client, tokens } = await obtainTokens(remote(a.url), owner.token)
    expect((await postMcp(b.url, tokens.access_token, rpc('tools/list'))).status).toBe(200)

    const onA = await connectClient(a.url, owner.token, pinRevision('2025-06-18'))
    const revoked = await onA.callTool({ name: 'revoke_authorized_app', arguments: { client_id: client.client_id } })
    expect(revoked.isError).toBeFalsy()

    expect((await postMcp(a.url, tokens.access_token, rpc('tools/list'))).status).toBe(401)
    const refusedOnB = await eventually(
      async () => (await postMcp(b.url, tokens.access_token, rpc('tools/list'))).status === 401,
      PROPAGATION_LIMIT_MS,
    )
    expect(refusedOnB).toBe(true)
  }, 30_000)
})
