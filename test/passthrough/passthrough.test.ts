import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { findFreePort } from '../fixtures/cli-process.ts'
import { remote } from '../fixtures/http.ts'
import { startOAuthServer, startV1SessionMcpServer, startV2McpServer } from '../fixtures/upstreams.ts'
import { bootstrapOwner, createUserAndLogin, startTestServer } from '../setup.ts'

/**
 * `/mcp/servers/{slug}` against real upstreams on loopback (the outbound guard opened for
 * loopback, as an operator would with ALLOW_PRIVATE), driven by the official SDK client.
 */
describe('one upstream through /mcp/servers/{slug}', () => {
  let gatehouse: Awaited<ReturnType<typeof startTestServer>>
  let owner: { id: string; token: string }
  const started: { close: () => Promise<void> }[] = []
  const clients: Client[] = []
  const track = async <T extends { close: () => Promise<void> }>(server: Promise<T>) => {
    const value = await server
    started.push(value)
    return value
  }

  beforeAll(async () => {
    const port = await findFreePort()
    gatehouse = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}`, outboundAllowPrivate: true })
    owner = await bootstrapOwner(remote(gatehouse.url))
  })
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close().catch(() => {})))
    await Promise.all(started.splice(0).map((server) => server.close()))
  })
  afterAll(() => gatehouse.close())

  async function api(method: string, path: string, body?: unknown, token = owner.token) {
    const response = await fetch(`${gatehouse.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await response.text()
    return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers }
  }

  async function register(slug: string, fields: Record<string, unknown>) {
    const created = await api('POST', '/api/v1/mcp/servers', { display_name: slug, slug, enabled: true, ...fields })
    if (created.status !== 201) throw new Error(`create ${slug}: ${created.status} ${JSON.stringify(created.body)}`)
    return created.body
  }

  async function connect(slug: string, token = owner.token) {
    const client = new Client({ name: 'passthrough-test', version: '1.0.0' })
    const transport = new StreamableHTTPClientTransport(new URL(`${gatehouse.url}/mcp/servers/${slug}`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    })
    await client.connect(transport)
    clients.push(client)
    return client
  }

  it('serves a 2026-era upstream with custom headers, sending them and never the client’s token', async () => {
    const upstream = await track(startV2McpServer())
    await register('plain', {
      url: upstream.url,
      auth_type: 'custom_headers',
      custom_headers: { Authorization: 'Bearer static-upstream-credential' },
    })
    const client = await connect('plain')
    expect((await client.listTools()).tools.map((tool) => tool.name)).toEqual(['echo', 'add'])
    const result = await client.callTool({ name: 'echo', arguments: { text: 'through' } })
    expect(result.content).toEqual([{ type: 'text', text: 'through' }])
    expect(upstream.authorizations.length).toBeGreaterThan(0)
    for (const seen of upstream.authorizations) expect(seen).toBe('Bearer static-upstream-credential')
  })

  it('carries a 2025-era session: the upstream’s Mcp-Session-Id reaches the client and comes back', async () => {
    const upstream = await track(startV1SessionMcpServer())
    await register('sessions', { url: upstream.url })
    const client = await connect('sessions')
    const transport = (client as unknown as { transport?: { sessionId?: string } }).transport
    expect(transport?.sessionId).toBeString()
    expect((await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })).content).toEqual([
      { type: 'text', text: '5' },
    ])
    const sessions = new Set(upstream.requests.map((request) => request.sessionId).filter(Boolean))
    expect(sessions.size).toBe(1)
  })

  it('sends the user’s own upstream OAuth token, and asks to connect first when there is none', async () => {
    const as = await track(startOAuthServer())
    const upstream = await track(startV2McpServer({ protectedBy: as.protect() }))
    const server = await register('linear', { url: upstream.url, auth_type: 'oauth2' })

    const before = await fetch(`${gatehouse.url}/mcp/servers/linear`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${owner.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }),
    })
    expect(before.status).toBe(403)
    const refusal = await before.json()
    expect(refusal.id).toBe(7)
    expect(refusal.error.data.connect_url).toBe(`${gatehouse.url}/connections?connect=${server.id}`)
    expect(refusal.error.message).toContain('/connections?connect=')

    const started = await api('GET', `/api/v1/mcp/servers/${server.id}/oauth2/connect`)
    const back = await as.approve(started.body.authorization_url)
    const callback = await api('GET', back.pathname + back.search)
    expect(callback.body).toEqual({ connected: true })

    const client = await connect('linear')
    expect((await client.callTool({ name: 'echo', arguments: { text: 'mine' } })).content).toEqual([
      { type: 'text', text: 'mine' },
    ])
    const sent = upstream.authorizations.filter(Boolean)
    expect(sent.length).toBeGreaterThan(0)
    for (const value of sent) {
      expect(value).not.toBe(`Bearer ${owner.token}`)
      expect(await as.verifyAccessToken(value!.replace('Bearer ', ''))).toBeDefined()
    }
  })

  it('answers a 2025-11-25 client that must connect with the URL-elicitation-required error', async () => {
    const as = await track(startOAuthServer())
    const upstream = await track(startV2McpServer({ protectedBy: as.protect() }))
    await register('elicit', { url: upstream.url, auth_type: 'oauth2' })
    const response = await fetch(`${gatehouse.url}/mcp/servers/elicit`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${owner.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    })
    expect(response.status).toBe(403)
    const body = await response.json()
    expect(body.error.code).toBe(-32042)
    expect(body.error.data.elicitations[0]).toMatchObject({ mode: 'url' })
    expect(body.error.data.elicitations[0].url).toContain('/connections?connect=')
  })

  it('challenges a request without a token with this resource’s metadata, which names it', async () => {
    const upstream = await track(startV2McpServer())
    await register('docs', { url: upstream.url })
    const response = await fetch(`${gatehouse.url}/mcp/servers/docs`, { method: 'POST' })
    expect(response.status).toBe(401)
    const challenge = response.headers.get('www-authenticate')!
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge)![1]
    expect(metadataUrl).toBe(`${gatehouse.url}/.well-known/oauth-protected-resource/mcp/servers/docs`)
    const metadata = await (await fetch(metadataUrl)).json()
    expect(metadata.resource).toBe(`${gatehouse.url}/mcp/servers/docs`)
  })

  it('answers 404 for a server that does not exist, is disabled, or is of another organization', async () => {
    const upstream = await track(startV2McpServer())
    const off = await register('off', { url: upstream.url })
    await api('PATCH', `/api/v1/mcp/servers/${off.id}`, { enabled: false })
    for (const slug of ['nothing-here', 'off']) {
      const response = await fetch(`${gatehouse.url}/mcp/servers/${slug}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
        body: '{}',
      })
      expect(response.status).toBe(404)
    }
    const member = await createUserAndLogin(remote(gatehouse.url), owner.token, 'member1')
    const acme = await api('POST', '/api/v1/organizations', { name: 'acme' })
    await register('acme-only', { url: upstream.url, organization_id: acme.body.id })
    const response = await fetch(`${gatehouse.url}/mcp/servers/acme-only`, {
      method: 'POST',
      headers: { authorization: `Bearer ${member.token}`, 'content-type': 'application/json' },
      body: '{}',
    })
    expect(response.status).toBe(404)
  })

  it('names the server in a JSON-RPC error when the upstream is down, never a 500', async () => {
    const upstream = await track(startV2McpServer())
    await register('gone', { url: upstream.url })
    await upstream.close()
    started.splice(started.indexOf(upstream), 1)
    const response = await fetch(`${gatehouse.url}/mcp/servers/gone`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${owner.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
    })
    expect(response.status).toBe(502)
    const body = await response.json()
    expect(body).toMatchObject({ jsonrpc: '2.0', id: 3 })
    expect(body.error.message).toStartWith('gone is unavailable:')
  })
})
