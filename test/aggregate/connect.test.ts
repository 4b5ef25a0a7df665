import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import {
  type Account,
  type AggregateGatehouse,
  refusalOf,
  startAggregateGatehouse,
  startV2Upstream,
  textOf,
  upstreamToolNames,
  type V2Upstream,
} from '../fixtures/aggregate.ts'
import { type OAuthServer, startOAuthServer } from '../fixtures/upstreams.ts'

/**
 * An oauth2 server the user has not connected yet (DESIGN.md, "Serving upstreams"): its place in
 * the user's `/mcp` is one tool, `<slug>__connect`, whose result is the connect link; once the user
 * has connected, the next `tools/list` holds the server's real tools.
 */

let gatehouse: AggregateGatehouse
let as: OAuthServer
let upstream: V2Upstream
let alice: Account
let bob: Account

beforeAll(async () => {
  gatehouse = await startAggregateGatehouse()
  as = await startOAuthServer()
  upstream = await startV2Upstream({ protectedBy: as.protect() })
  ;[alice, bob] = await Promise.all([gatehouse.createUser('alice'), gatehouse.createUser('bob')])
})

const cleanups: (() => Promise<void>)[] = []

afterEach(async () => {
  await gatehouse.closeClients()
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()))
})

afterAll(async () => {
  await gatehouse?.close()
  await upstream?.close()
  await as?.close()
})

let servers = 0
/** A new oauth2 server on the protected upstream (registered through discovery), in everyone's /mcp. */
const registerOAuthServer = () =>
  gatehouse.register(`tracker-${++servers}`, {
    display_name: `Tracker ${servers}`,
    url: upstream.url,
    auth_type: 'oauth2',
    availability: 'default_on',
  })

describe('an oauth2 server the user has not connected', () => {
  it('is listed as one read-only <slug>__connect tool and none of its own', async () => {
    const server = await registerOAuthServer()
    const { tools } = await (await gatehouse.mcp(alice.token)).listTools()
    const mine = tools.filter((tool) => tool.name.startsWith(`${server.slug}__`))
    expect(mine.map((tool) => tool.name)).toEqual([`${server.slug}__connect`])
    expect(mine[0].annotations?.readOnlyHint).toBe(true)
    expect(mine[0].title).toContain(server.display_name)
  })

  it('answers the connect tool with the link to its connect page and a sentence saying to open it', async () => {
    const server = await registerOAuthServer()
    const calls = upstream.calls.length
    for (const era of ['legacy', 'modern'] as const) {
      const client = await gatehouse.mcp(alice.token, { era })
      const result = await client.callTool({ name: `${server.slug}__connect`, arguments: {} })
      expect(result.isError).toBeFalsy()
      const message = textOf(result)
      expect(message).toContain(`${gatehouse.publicUrl}/connections?connect=${server.id}`)
      expect(message).toMatch(/open/i)
    }
    expect(upstream.calls.length).toBe(calls)
  })

  it('answers a call of one of its tools, never listed, with the connect link instead of "not found"', async () => {
    const server = await registerOAuthServer()
    const client = await gatehouse.mcp(alice.token)
    const refusal = await refusalOf(client.callTool({ name: `${server.slug}__echo`, arguments: { text: 'unlisted' } }))
    expect(refusal).toContain(`${server.display_name} (${server.slug})`)
    expect(refusal).toContain(`${gatehouse.publicUrl}/connections?connect=${server.id}`)
  })

  it('shows its real tools at the next tools/list once the user has connected, and calls them', async () => {
    const server = await registerOAuthServer()
    const client = await gatehouse.mcp(alice.token)
    expect(await upstreamToolNames(client)).toContain(`${server.slug}__connect`)

    await gatehouse.connectOAuth(server.id, as, alice.token)
    const names = (await upstreamToolNames(client)).filter((name) => name.startsWith(`${server.slug}__`))
    expect(names).toEqual([`${server.slug}__echo`, `${server.slug}__whoami`])
    const result = await client.callTool({ name: `${server.slug}__echo`, arguments: { text: 'connected' } })
    expect(result.content).toEqual([{ type: 'text', text: 'connected' }])
  })

  it('stays a connect tool for the users who have not connected while another user has', async () => {
    const server = await registerOAuthServer()
    await gatehouse.connectOAuth(server.id, as, alice.token)
    expect(await upstreamToolNames(await gatehouse.mcp(alice.token))).toContain(`${server.slug}__echo`)
    const bobs = (await upstreamToolNames(await gatehouse.mcp(bob.token))).filter((name) =>
      name.startsWith(`${server.slug}__`),
    )
    expect(bobs).toEqual([`${server.slug}__connect`])
  })

  it('comes back as a connect tool once the user disconnects', async () => {
    const server = await registerOAuthServer()
    await gatehouse.connectOAuth(server.id, as, alice.token)
    const client = await gatehouse.mcp(alice.token)
    expect(await upstreamToolNames(client)).toContain(`${server.slug}__echo`)
    const disconnected = await gatehouse.api(
      'DELETE',
      `/api/v1/mcp/servers/${server.id}/oauth2/disconnect`,
      undefined,
      alice.token,
    )
    expect(disconnected.status).toBe(204)
    const names = (await upstreamToolNames(client)).filter((name) => name.startsWith(`${server.slug}__`))
    expect(names).toEqual([`${server.slug}__connect`])
  })

  /** A server on its own authorization server, connected by Alice, whose sign-in the AS then revokes. */
  async function revokedConnection(slug: string) {
    const revoking = await startOAuthServer()
    const protectedUpstream = await startV2Upstream({ protectedBy: revoking.protect() })
    cleanups.push(
      () => protectedUpstream.close(),
      () => revoking.close(),
    )
    const server = await gatehouse.register(slug, {
      display_name: 'Revoking Tracker',
      url: protectedUpstream.url,
      auth_type: 'oauth2',
      availability: 'default_on',
    })
    await gatehouse.connectOAuth(server.id, revoking, alice.token)
    const client = await gatehouse.mcp(alice.token, { era: 'modern' })
    expect(textOf(await client.callTool({ name: `${slug}__echo`, arguments: { text: 'before' } }))).toBe('before')
    revoking.revokeAll()
    return { server, client }
  }

  it('answers a call with the connect link once the upstream has revoked the user’s sign-in', async () => {
    const { server, client } = await revokedConnection('revoked-call')
    const result = await client.callTool({ name: 'revoked-call__echo', arguments: { text: 'after' } })
    expect(result.isError).toBe(true)
    expect(textOf(result)).toContain(`${gatehouse.publicUrl}/connections?connect=${server.id}`)
  })

  it('answers a 2025-11-25 client’s call with the URL-elicitation-required error carrying the link', async () => {
    const { server } = await revokedConnection('revoked-elicit')
    const link = `${gatehouse.publicUrl}/connections?connect=${server.id}`
    // The first call finds the sign-in revoked; the second is routed to a server the user must reconnect.
    for (const id of [1, 2]) {
      const response = await fetch(`${gatehouse.publicUrl}/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${alice.token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-11-25',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name: 'revoked-elicit__echo', arguments: { text: 'after' } },
        }),
        signal: AbortSignal.timeout(10_000),
      })
      expect(response.status).toBe(200)
      const text = await response.text()
      const message = JSON.parse(
        text
          .split('\n')
          .find((line) => line.startsWith('data:'))!
          .slice(5),
      )
      expect(message.id).toBe(id)
      expect(message.error.code).toBe(-32042)
      expect(message.error.data.elicitations[0]).toMatchObject({ mode: 'url', url: link })
    }
  })

  it('answers a 2025-11-25 client’s call of a tool never listed, after the sign-in lapsed, with URL elicitation', async () => {
    const { server, client } = await revokedConnection('revoked-unlisted')
    await client.callTool({ name: 'revoked-unlisted__echo', arguments: { text: 'after' } })
    const response = await fetch(`${gatehouse.publicUrl}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${alice.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'revoked-unlisted__never_listed', arguments: {} },
      }),
      signal: AbortSignal.timeout(10_000),
    })
    const line = (await response.text()).split('\n').find((candidate) => candidate.startsWith('data:'))!
    const message = JSON.parse(line.slice(5))
    expect(message.error.code).toBe(-32042)
    expect(message.error.data.elicitations[0].url).toBe(`${gatehouse.publicUrl}/connections?connect=${server.id}`)
  })

  it('lists the connect tool again at the next tools/list once a call found the sign-in revoked', async () => {
    const { server, client } = await revokedConnection('revoked-list')
    await client.callTool({ name: 'revoked-list__echo', arguments: { text: 'after' } })
    const seen = await gatehouse.api('GET', `/api/v1/mcp/servers/${server.id}`, undefined, alice.token)
    expect(seen.body.connection.status).toBe('needs_reauth')
    const names = (await upstreamToolNames(client)).filter((name) => name.startsWith('revoked-list__'))
    expect(names).toEqual(['revoked-list__connect'])
  })
})
