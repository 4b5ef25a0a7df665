import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { findFreePort } from '../fixtures/cli-process.ts'
import { remote } from '../fixtures/http.ts'
import { startOAuthServer, startV1SessionMcpServer, startV2McpServer } from '../fixtures/upstreams.ts'
import { sealValue } from '../../src/secrets/sealed-column.ts'
import { tokenBinding } from '../../src/upstreams/upstream-tokens.ts'
import { bootstrapOwner, createUserAndLogin, OWNER, startTestServer } from '../setup.ts'

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
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: {} } }),
    })
    // A JSON-RPC error, not an HTTP one, so a 2025 client shows the message that carries the link.
    expect(before.status).toBe(200)
    const refusal = await before.json()
    expect(refusal.id).toBe(7)
    expect(refusal.error.data.connect_url).toBe(`${gatehouse.url}/connections?connect=${server.id}`)
    expect(refusal.error.message).toContain(`${gatehouse.url}/connections?connect=${server.id}`)

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

  it('lets a client that must connect first finish its handshake and shows it a connect tool with the link', async () => {
    const as = await track(startOAuthServer())
    const upstream = await track(startV2McpServer({ protectedBy: as.protect() }))
    const server = await register('standin', {
      display_name: 'Stand-in Tracker',
      url: upstream.url,
      auth_type: 'oauth2',
    })
    const client = await connect('standin')
    expect((await client.listTools()).tools.map((tool) => tool.name)).toEqual(['connect'])
    const result = await client.callTool({ name: 'connect', arguments: {} })
    const text = (result.content as { text: string }[])[0].text
    expect(text).toContain(`${gatehouse.url}/connections?connect=${server.id}`)
    expect(text).toContain('Stand-in Tracker')
    // Nothing was sent upstream for the user: there was no credential of theirs to send.
    expect(upstream.authorizations.filter(Boolean)).toEqual([])
  })

  it('refreshes once and retries when the upstream refuses a token it revoked silently', async () => {
    const as = await track(startOAuthServer())
    const upstream = await track(startV2McpServer({ protectedBy: as.protect() }))
    const server = await register('revoking', { url: upstream.url, auth_type: 'oauth2' })
    const started = await api('GET', `/api/v1/mcp/servers/${server.id}/oauth2/connect`)
    const back = await as.approve(started.body.authorization_url)
    expect((await api('GET', back.pathname + back.search)).body).toEqual({ connected: true })
    // The upstream no longer accepts the stored access token, which has not expired.
    const binding = { server_id: server.id, user_id: owner.id }
    await gatehouse.deps.db
      .updateTable('mcp_server_user_tokens')
      .set({
        access_token: await sealValue(gatehouse.deps.keyring, tokenBinding(binding, 'access_token'), 'revoked-token'),
      })
      .where('server_id', '=', server.id)
      .execute()
    const refreshesBefore = as.tokenRequestsOf('refresh_token').length
    const client = await connect('revoking')
    expect((await client.callTool({ name: 'echo', arguments: { text: 'again' } })).content).toEqual([
      { type: 'text', text: 'again' },
    ])
    expect(as.tokenRequestsOf('refresh_token').length).toBe(refreshesBefore + 1)
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
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: {} } }),
    })
    expect(response.status).toBe(200)
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

  describe('transparency', () => {
    /** A hand-written upstream, for what the SDK servers cannot be made to do on cue. */
    function rawUpstream(handler: (request: Request) => Response | Promise<Response>) {
      const server = Bun.serve({ port: 0, hostname: '127.0.0.1', idleTimeout: 0, fetch: handler })
      const upstream = { url: `http://127.0.0.1:${server.port}/mcp`, close: async () => void server.stop(true) }
      started.push(upstream)
      return upstream
    }
    const post = (slug: string, body: unknown = { jsonrpc: '2.0', id: 1, method: 'ping' }, init: RequestInit = {}) =>
      fetch(`${gatehouse.url}/mcp/servers/${slug}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${owner.token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          cookie: 'gatehouse_session=must-not-leave',
        },
        body: JSON.stringify(body),
        ...init,
      })

    it('sends the API key header, drops the client’s cookie, and passes MCP headers both ways', async () => {
      let seen: Headers | undefined
      const upstream = rawUpstream((request) => {
        seen = request.headers
        return Response.json(
          { jsonrpc: '2.0', id: 1, result: {} },
          {
            headers: {
              'mcp-session-id': 'upstream-session-1',
              'set-cookie': 'upstream=secret',
              'www-authenticate': 'Bearer realm="upstream"',
            },
          },
        )
      })
      await register('keyed', {
        url: upstream.url,
        auth_type: 'api_key',
        api_key_header: 'X-Api-Key',
        api_key_value: 'k-123',
      })
      const response = await post('keyed', undefined, {
        headers: {
          authorization: `Bearer ${owner.token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          cookie: 'gatehouse_session=must-not-leave',
          'mcp-session-id': 'client-session-9',
          'mcp-protocol-version': '2025-06-18',
        },
      })
      expect(response.status).toBe(200)
      expect(seen!.get('x-api-key')).toBe('k-123')
      expect(seen!.get('authorization')).toBeNull()
      expect(seen!.get('cookie')).toBeNull()
      expect(seen!.get('mcp-session-id')).toBe('client-session-9')
      expect(seen!.get('mcp-protocol-version')).toBe('2025-06-18')
      expect(response.headers.get('mcp-session-id')).toBe('upstream-session-1')
      expect(response.headers.get('set-cookie')).toBeNull()
      expect(response.headers.get('www-authenticate')).toBeNull()
    })

    it('never forwards identity or proxy headers a client sends; its own identity headers only when asked', async () => {
      const seen: Headers[] = []
      const upstream = rawUpstream((request) => {
        seen.push(request.headers)
        return Response.json({ jsonrpc: '2.0', id: 1, result: {} })
      })
      await register('quiet', { url: upstream.url })
      await register('identified', { url: upstream.url, forward_identity_headers: true })
      const spoofed = {
        'x-gatehouse-user-id': 'someone-else',
        'x-gatehouse-user-email': 'boss@example.com',
        'x-gatehouse-username': 'boss',
        'x-gatehouse-role': 'owner',
        forwarded: 'for=203.0.113.9',
        'x-real-ip': '203.0.113.9',
        'true-client-ip': '203.0.113.9',
        'cf-connecting-ip': '203.0.113.9',
        'x-client-ip': '203.0.113.9',
        'x-forwarded-for': '203.0.113.9',
      }
      const headers = {
        authorization: `Bearer ${owner.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...spoofed,
      }
      expect((await post('quiet', undefined, { headers })).status).toBe(200)
      expect((await post('identified', undefined, { headers })).status).toBe(200)
      const [quiet, identified] = seen
      for (const name of Object.keys(spoofed)) expect(quiet.get(name)).toBeNull()
      expect(identified.get('x-gatehouse-user-id')).toBe(owner.id)
      expect(identified.get('x-gatehouse-user-email')).toBe(OWNER.email)
      expect(identified.get('x-gatehouse-username')).toBe(OWNER.username)
      for (const name of [
        'x-gatehouse-role',
        'forwarded',
        'x-real-ip',
        'true-client-ip',
        'cf-connecting-ip',
        'x-client-ip',
      ])
        expect(identified.get(name)).toBeNull()
    })

    it('passes back only the response headers MCP needs, and only Gatehouse’s own CORS headers', async () => {
      const upstream = rawUpstream(() =>
        Response.json(
          { jsonrpc: '2.0', id: 1, result: {} },
          {
            headers: {
              'mcp-session-id': 'upstream-session-2',
              'cache-control': 'no-store',
              'clear-site-data': '"cookies"',
              refresh: '0;url=http://evil.example',
              'content-security-policy': "default-src 'none'",
              'access-control-allow-origin': '*',
              'access-control-allow-credentials': 'true',
              'set-cookie': 'upstream=secret',
              link: '<http://evil.example/style.css>; rel=stylesheet',
              'x-upstream': 'internal-build-42',
            },
          },
        ),
      )
      await register('headers', { url: upstream.url })
      const dropped = [
        'clear-site-data',
        'refresh',
        'content-security-policy',
        'access-control-allow-credentials',
        'set-cookie',
        'link',
        'x-upstream',
      ]
      const plain = await post('headers')
      expect(plain.status).toBe(200)
      expect(plain.headers.get('content-type')).toStartWith('application/json')
      expect(plain.headers.get('mcp-session-id')).toBe('upstream-session-2')
      expect(plain.headers.get('cache-control')).toBe('no-store')
      expect(plain.headers.get('access-control-allow-origin')).toBeNull()
      for (const name of dropped) expect(plain.headers.get(name)).toBeNull()
      const origin = 'http://localhost:5173'
      const browser = await post('headers', undefined, {
        headers: {
          authorization: `Bearer ${owner.token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          origin,
        },
      })
      expect(browser.status).toBe(200)
      expect(browser.headers.get('access-control-allow-origin')).toBe(origin)
      expect(browser.headers.get('access-control-expose-headers')).toContain('Mcp-Session-Id')
      for (const name of dropped) expect(browser.headers.get(name)).toBeNull()
    })

    it('answers an upstream redirect with a JSON-RPC error naming it, never passing its Location on', async () => {
      const upstream = rawUpstream(
        () => new Response(null, { status: 307, headers: { location: 'http://evil.example/mcp' } }),
      )
      await register('moved', { url: upstream.url })
      const response = await post('moved')
      expect(response.status).toBe(502)
      expect(response.headers.get('location')).toBeNull()
      const body = await response.json()
      expect(body).toMatchObject({ jsonrpc: '2.0', id: 1 })
      expect(body.error.message).toStartWith('moved is unavailable:')
      expect(body.error.message).toContain('redirect (HTTP 307)')
    })

    it('streams SSE as it comes: the first event arrives before the upstream sends the second', async () => {
      let release!: () => void
      const second = new Promise<void>((resolve) => {
        release = resolve
      })
      const encoder = new TextEncoder()
      const upstream = rawUpstream(
        () =>
          new Response(
            new ReadableStream({
              async start(controller) {
                controller.enqueue(
                  encoder.encode(
                    'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\n\n',
                  ),
                )
                await second
                controller.enqueue(encoder.encode('event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n'))
                controller.close()
              },
            }),
            { headers: { 'content-type': 'text/event-stream' } },
          ),
      )
      await register('stream', { url: upstream.url })
      const response = await post('stream')
      expect(response.headers.get('content-type')).toStartWith('text/event-stream')
      const reader = response.body!.getReader()
      let text = ''
      while (!text.includes('notifications/progress')) text += new TextDecoder().decode((await reader.read()).value)
      expect(text).not.toContain('"result"')
      release()
      while (!text.includes('"result"')) {
        const chunk = await reader.read()
        if (chunk.done) break
        text += new TextDecoder().decode(chunk.value)
      }
      expect(text).toContain('"result"')
    })

    it('ends the upstream exchange when the client goes away', async () => {
      let cancelled!: () => void
      const upstreamCancelled = new Promise<void>((resolve) => {
        cancelled = resolve
      })
      const upstream = rawUpstream(
        () =>
          new Response(
            new ReadableStream({
              start(controller) {
                controller.enqueue(new TextEncoder().encode(': first\n\n'))
              },
              cancel() {
                cancelled()
              },
            }),
            { headers: { 'content-type': 'text/event-stream' } },
          ),
      )
      await register('long', { url: upstream.url })
      const abort = new AbortController()
      const response = await post('long', undefined, { signal: abort.signal })
      await response.body!.getReader().read()
      abort.abort()
      await Promise.race([
        upstreamCancelled,
        Bun.sleep(5000).then(() => {
          throw new Error('the upstream stream was not cancelled')
        }),
      ])
    })

    it('ends the client’s stream when the upstream stops mid-stream, and keeps serving', async () => {
      const upstream = rawUpstream(
        () =>
          new Response(
            new ReadableStream({
              start(controller) {
                controller.enqueue(
                  new TextEncoder().encode(
                    'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"half"}}\n\n',
                  ),
                )
                setTimeout(() => controller.error(new Error('upstream crashed')), 50)
              },
            }),
            { headers: { 'content-type': 'text/event-stream' } },
          ),
      )
      await register('crashing', { url: upstream.url })
      const response = await post('crashing')
      expect(response.status).toBe(200)
      const reader = response.body!.getReader()
      let text = ''
      try {
        for (;;) {
          const chunk = await reader.read()
          if (chunk.done) break
          text += new TextDecoder().decode(chunk.value)
        }
      } catch {
        // The stream breaks off, as the upstream's did.
      }
      expect(text).toContain('"half"')
      const health = await fetch(`${gatehouse.url}/healthz`)
      expect(health.status).toBe(200)
    })

    it('passes a compressed body on as it came, decodable once by the client', async () => {
      const upstream = rawUpstream(
        () =>
          new Response(
            Bun.gzipSync(new TextEncoder().encode(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { ok: true } }))),
            {
              headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
            },
          ),
      )
      await register('zipped', { url: upstream.url })
      const response = await post('zipped')
      expect(await response.json()).toEqual({ jsonrpc: '2.0', id: 1, result: { ok: true } })
    })

    it('counts each request per server and outcome in /metrics, by server ID and never by slug', async () => {
      const upstream = rawUpstream(() => Response.json({ jsonrpc: '2.0', id: 1, result: {} }))
      const server = await register('acme-payroll', { url: upstream.url })
      await post('acme-payroll')
      await post('acme-payroll')
      const metrics = await (await fetch(`${gatehouse.url}/metrics`)).text()
      expect(metrics).toContain(`gatehouse_upstream_requests_total{server_id="${server.id}",outcome="ok"} 2`)
      expect(metrics).toContain(`gatehouse_upstream_response_seconds_count{server_id="${server.id}"} 2`)
      // Anyone who can reach /metrics would otherwise learn every organization's server names.
      expect(metrics).not.toContain('acme-payroll')
    })
  })
})

describe('an upstream slower than GATEHOUSE_UPSTREAM_TIMEOUT', () => {
  it('answers 504 with a JSON-RPC error naming the server, instead of waiting on', async () => {
    const upstream = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      idleTimeout: 0,
      fetch: () => new Promise<Response>(() => {}),
    })
    const port = await findFreePort()
    const gatehouse = await startTestServer({
      port,
      publicUrl: `http://127.0.0.1:${port}`,
      outboundAllowPrivate: true,
      upstreamTimeoutSeconds: 1,
    })
    try {
      const owner = await bootstrapOwner(remote(gatehouse.url))
      const created = await fetch(`${gatehouse.url}/api/v1/mcp/servers`, {
        method: 'POST',
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          display_name: 'Sleepy',
          slug: 'sleepy',
          url: `http://127.0.0.1:${upstream.port}/mcp`,
          enabled: true,
        }),
      })
      expect(created.status).toBe(201)
      const response = await fetch(`${gatehouse.url}/mcp/servers/sleepy`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${owner.token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/list' }),
      })
      expect(response.status).toBe(504)
      const body = await response.json()
      expect(body.id).toBe(5)
      expect(body.error.message).toStartWith('Sleepy is unavailable:')
      expect(body.error.message).toContain('did not answer within 1000 ms')
    } finally {
      await gatehouse.close()
      upstream.stop(true)
    }
  })
})
