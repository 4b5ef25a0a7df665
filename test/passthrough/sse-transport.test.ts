import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { createServer } from 'node:http'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js'
import { MAX_JSON_DEPTH } from '../../src/http/json-depth.ts'
import { findFreePort } from '../fixtures/cli-process.ts'
import { remote } from '../fixtures/http.ts'
import { buildV1Server, DEFAULT_TOOLS } from '../fixtures/upstreams.ts'
import { eventually } from '../fixtures/aggregate.ts'
import { bootstrapOwner, createUserAndLogin, startTestServer } from '../setup.ts'

/**
 * An upstream on the deprecated HTTP+SSE transport (the v1 SDK's SSEServerTransport: a GET event
 * stream and POSTs to the endpoint it names), reached by a Streamable HTTP client through
 * /mcp/servers/{slug}, which bridges it with the SDK's SSE client.
 */
async function startSseUpstream() {
  const transports = new Map<string, SSEServerTransport>()
  const authorizations: (string | undefined)[] = []
  const calls: string[] = []
  const tools = DEFAULT_TOOLS.map((tool) => ({
    ...tool,
    run: (args: Record<string, unknown>) => {
      calls.push(tool.name)
      return tool.run(args)
    },
  }))
  const http = createServer(async (req, res) => {
    authorizations.push(req.headers.authorization)
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    if (req.method === 'GET' && url.pathname === '/sse') {
      const transport = new SSEServerTransport('/messages', res)
      transports.set(transport.sessionId, transport)
      res.on('close', () => transports.delete(transport.sessionId))
      await buildV1Server(tools).connect(transport)
      return
    }
    const transport = transports.get(url.searchParams.get('sessionId') ?? '')
    if (req.method === 'POST' && url.pathname === '/messages' && transport) return transport.handlePostMessage(req, res)
    res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const port = (http.address() as { port: number }).port
  return {
    url: `http://127.0.0.1:${port}/sse`,
    authorizations,
    /** Upstream SSE connections open now. */
    open: () => transports.size,
    /** Sends `count` notifications on every open session's stream, as a noisy server would. */
    async flood(count: number) {
      for (const transport of transports.values())
        for (let i = 0; i < count; i++)
          await transport.send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: i } })
    },
    /** The tools that ran, in order. */
    calls,
    close: () => new Promise<void>((resolve) => http.close(() => resolve())),
  }
}

describe('an HTTP+SSE upstream through /mcp/servers/{slug}', () => {
  let gatehouse: Awaited<ReturnType<typeof startTestServer>>
  let upstream: Awaited<ReturnType<typeof startSseUpstream>>
  let owner: { id: string; token: string }

  beforeAll(async () => {
    upstream = await startSseUpstream()
    const port = await findFreePort()
    gatehouse = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}`, outboundAllowPrivate: true })
    owner = await bootstrapOwner(remote(gatehouse.url))
    const created = await fetch(`${gatehouse.url}/api/v1/mcp/servers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        display_name: 'Legacy',
        slug: 'legacy',
        url: upstream.url,
        transport: 'sse',
        enabled: true,
        auth_type: 'custom_headers',
        custom_headers: { Authorization: 'Bearer legacy-credential' },
      }),
    })
    if (created.status !== 201) throw new Error(`create: ${created.status} ${await created.text()}`)
    const listed = await fetch(`${gatehouse.url}/api/v1/mcp/servers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        display_name: 'Legacy listed',
        slug: 'legacy-listed',
        url: upstream.url,
        transport: 'sse',
        enabled: true,
        tool_deny_list: ['add'],
      }),
    })
    if (listed.status !== 201) throw new Error(`create: ${listed.status} ${await listed.text()}`)
  })
  afterAll(async () => {
    await gatehouse?.close()
    await upstream?.close()
  })

  it('lists and calls its tools for a Streamable HTTP client, with the server’s credential', async () => {
    const client = new Client({ name: 'sse-bridge-test', version: '1.0.0' })
    const transport = new StreamableHTTPClientTransport(new URL(`${gatehouse.url}/mcp/servers/legacy`), {
      requestInit: { headers: { authorization: `Bearer ${owner.token}` } },
    })
    await client.connect(transport)
    try {
      expect(transport.sessionId).toBeString()
      expect((await client.listTools()).tools.map((tool) => tool.name)).toEqual(['echo', 'add'])
      expect((await client.callTool({ name: 'echo', arguments: { text: 'bridged' } })).content).toEqual([
        { type: 'text', text: 'bridged' },
      ])
      expect(upstream.authorizations.length).toBeGreaterThan(0)
      for (const seen of upstream.authorizations) expect(seen).toBe('Bearer legacy-credential')
    } finally {
      await transport.terminateSession().catch(() => {})
      await client.close()
    }
  })

  it('refuses a call of a tool its deny list names before it reaches the upstream', async () => {
    const client = new Client({ name: 'sse-bridge-test', version: '1.0.0' })
    const transport = new StreamableHTTPClientTransport(new URL(`${gatehouse.url}/mcp/servers/legacy-listed`), {
      requestInit: { headers: { authorization: `Bearer ${owner.token}` } },
    })
    await client.connect(transport)
    try {
      const ran = upstream.calls.length
      await expect(client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).rejects.toThrow(
        `Legacy listed's policy does not allow the tool "add"`,
      )
      expect((await client.callTool({ name: 'echo', arguments: { text: 'allowed' } })).content).toEqual([
        { type: 'text', text: 'allowed' },
      ])
      expect(upstream.calls.slice(ran)).toEqual(['echo'])
    } finally {
      await transport.terminateSession().catch(() => {})
      await client.close()
    }
  })

  it('answers a request of an unknown session with 404, so the client starts a new one', async () => {
    const response = await fetch(`${gatehouse.url}/mcp/servers/legacy`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${owner.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': 'no-such-session',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    })
    expect(response.status).toBe(404)
  })

  describe('sessions', () => {
    let alice: { id: string; token: string }
    let bob: { id: string; token: string }
    let otherId: string

    async function rpc(slug: string, token: string, message: unknown, sessionId?: string) {
      return fetch(`${gatehouse.url}/mcp/servers/${slug}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...(sessionId ? { 'mcp-session-id': sessionId } : {}),
        },
        body: JSON.stringify(message),
      })
    }

    async function openSession(slug: string, token: string): Promise<string> {
      const response = await rpc(slug, token, {
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
      })
      expect(response.status).toBe(200)
      await response.body?.cancel()
      return response.headers.get('mcp-session-id')!
    }

    const listTools = { jsonrpc: '2.0', id: 1, method: 'tools/list' }

    beforeAll(async () => {
      alice = await createUserAndLogin(remote(gatehouse.url), owner.token, 'alice')
      bob = await createUserAndLogin(remote(gatehouse.url), owner.token, 'bob')
      const created = await fetch(`${gatehouse.url}/api/v1/mcp/servers`, {
        method: 'POST',
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          display_name: 'Legacy too',
          slug: 'legacy-too',
          url: upstream.url,
          transport: 'sse',
          enabled: true,
          forward_identity_headers: true,
        }),
      })
      otherId = (await created.json()).id
    })

    it('serves a session only to the user who opened it, on the server it was opened for', async () => {
      const session = await openSession('legacy-too', alice.token)
      expect((await rpc('legacy-too', bob.token, listTools, session)).status).toBe(404)
      expect((await rpc('legacy', alice.token, listTools, session)).status).toBe(404)
      const own = await rpc('legacy-too', alice.token, listTools, session)
      expect(own.status).toBe(200)
      expect((await own.json()).result.tools.map((tool: { name: string }) => tool.name)).toEqual(['echo', 'add'])
    })

    it('ends a server’s sessions when the server is changed, at the upstream too', async () => {
      const session = await openSession('legacy-too', alice.token)
      const openBefore = upstream.open()
      const patched = await fetch(`${gatehouse.url}/api/v1/mcp/servers/${otherId}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ enabled: false }),
      })
      expect(patched.status).toBe(200)
      await eventually(async () => (upstream.open() < openBefore ? true : undefined), 'the upstream session to close')
      await fetch(`${gatehouse.url}/api/v1/mcp/servers/${otherId}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ enabled: true }),
      })
      expect((await rpc('legacy-too', alice.token, listTools, session)).status).toBe(404)
    })

    it('ends a session whose upstream floods it while the client has no stream open', async () => {
      const session = await openSession('legacy-too', bob.token)
      await upstream.flood(1500)
      await eventually(
        async () => ((await rpc('legacy-too', bob.token, listTools, session)).status === 404 ? true : undefined),
        'the flooded session to end',
      )
    })
  })

  it('refuses an initialize nested deeper than the limit with a JSON-RPC error naming it, not a 500', async () => {
    const deep = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`
    const response = await fetch(`${gatehouse.url}/mcp/servers/legacy`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${owner.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"deep","version":"1"},"_meta":${deep}}}`,
    })
    expect(response.status).toBe(400)
    const body = await response.json()
    expect(body).toMatchObject({ jsonrpc: '2.0', error: { code: -32600 }, id: null })
    expect(body.error.message).toContain(`${MAX_JSON_DEPTH} levels`)
    expect(response.headers.get('mcp-session-id')).toBeNull()
  })
})
