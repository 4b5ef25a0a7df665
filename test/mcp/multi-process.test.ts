// Two real `gatehouse serve` processes on one Postgres schema, as two replicas behind a load
// balancer: an MCP client whose requests alternate between them keeps working on every revision,
// and a credential revoked on one stops working on the other once its principal cache entry
// expires. Postgres only (SQLite is one file on one machine, not a multi-process setup).

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import type { FetchLike } from '@modelcontextprotocol/client'
import { bootstrapOwner } from '../setup.ts'
import { obtainTokens } from '../oauth/helpers.ts'
import { remote } from '../fixtures/http.ts'
import { startTwoProcesses, type ServeProcess, type TwoProcesses } from '../fixtures/two-processes.ts'
import {
  callApi,
  closeClients,
  connectClient,
  createApiToken,
  pinRevision,
  postMcp,
  rpc,
  textJson,
  type Revision,
} from './support-mcp-server.ts'

/** The principal cache keeps an entry for 5 s; a revocation elsewhere must show within twice that. */
const PROPAGATION_LIMIT_MS = 10_000
const CALLS_PER_CLIENT = 10

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
  let servers: TwoProcesses | undefined
  let a: ServeProcess
  let b: ServeProcess
  let owner: { id: string; token: string }

  beforeAll(async () => {
    // The public URL names A: loopback, so the Host check accepts 127.0.0.1:<B> as well.
    servers = await startTwoProcesses((portOfA) => `http://127.0.0.1:${portOfA}`)
    a = servers.a
    b = servers.b
    owner = await bootstrapOwner(remote(a.url))
  }, 60_000)

  afterEach(async () => {
    await closeClients()
  })

  afterAll(async () => {
    await servers?.close()
  }, 30_000)

  for (const revision of ['2025-06-18', '2026-07-28'] as Revision[]) {
    it(`keeps a ${revision} client working while its requests alternate between the processes`, async () => {
      const route = alternating([a.port, b.port])
      const client = await connectClient(a.url, owner.token, pinRevision(revision), { fetch: route.fetch })
      expect(client.getNegotiatedProtocolVersion()).toBe(revision)

      for (let call = 0; call < CALLS_PER_CLIENT; call++) {
        const result = await client.callTool({
          name: call % 2 ? 'list_organizations' : 'get_authenticated_user',
          arguments: {},
        })
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
    const refusedOnB = await eventually(
      async () => (await postMcp(b.url, apiToken.token, rpc('tools/list'))).status === 401,
      PROPAGATION_LIMIT_MS,
    )
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
