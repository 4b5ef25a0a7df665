// list_connections and disconnect_server through the official SDK client, against a real
// Gatehouse whose oauth2 upstream is a real MCP server behind a real authorization server.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'bun:test'
import type { Client } from '@modelcontextprotocol/client'
import { startOAuthServer, startV2McpServer, type OAuthServer, type UpstreamServer } from '../fixtures/upstreams.ts'
import {
  callApi,
  closeClients,
  connectClient,
  pinRevision,
  REQUEST_TIMEOUT_MS,
  startMcpServer,
  textJson,
  textOf,
  type McpServer,
} from './support-mcp-server.ts'

describe('connection tools', () => {
  let server: McpServer
  let as: OAuthServer
  let upstream: UpstreamServer
  let linear: { id: string; slug: string }
  let docs: { id: string }

  beforeAll(async () => {
    as = await startOAuthServer()
    upstream = await startV2McpServer({ protectedBy: as.protect() })
  })
  afterAll(async () => {
    await upstream.close()
    await as.close()
  })
  beforeEach(async () => {
    server = await startMcpServer({ outboundAllowPrivate: true })
    linear = await createServer({ display_name: 'Linear', slug: 'linear', url: upstream.url, auth_type: 'oauth2' })
    docs = await createServer({
      display_name: 'Docs',
      slug: 'docs',
      url: upstream.url,
      auth_type: 'none',
      availability: 'default_on',
    })
    await createServer({ display_name: 'Off', slug: 'off', url: upstream.url, auth_type: 'none', enabled: false })
  })
  afterEach(async () => {
    await closeClients()
    await server.close()
  })

  async function createServer(body: Record<string, unknown>): Promise<{ id: string; slug: string }> {
    const created = await callApi(server, server.owner.token, 'POST', '/api/v1/mcp/servers', { enabled: true, ...body })
    if (created.status !== 201) throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`)
    return created.body
  }

  /** The user's part of connecting: the connect route, the fixture AS approving, the callback. */
  async function connectUpstream(sessionToken: string, serverId: string): Promise<void> {
    const headers = { authorization: `Bearer ${sessionToken}`, accept: 'application/json' }
    const started = await fetch(`${server.url}/api/v1/mcp/servers/${serverId}/oauth2/connect`, {
      headers,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    })
    if (started.status !== 200) throw new Error(`connect: ${started.status} ${await started.text()}`)
    const callback = await as.approve((await started.json()).authorization_url)
    const finished = await fetch(callback, { headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
    if (finished.status !== 200) throw new Error(`callback: ${finished.status} ${await finished.text()}`)
  }

  const connect = (token: string) => connectClient(server.url, token, pinRevision('2025-06-18'))

  async function structured(client: Client, name: string, args: Record<string, unknown> = {}): Promise<any> {
    const result = await client.callTool({ name, arguments: args })
    if (result.isError) throw new Error(`${name}: ${textOf(result)}`)
    expect(result.structuredContent).toEqual(textJson(result))
    return result.structuredContent
  }

  const connectLink = (id: string) => `${server.publicUrl}/connections?connect=${id}`

  it('lists the usable servers with their status, and a connect link for an oauth2 one not connected', async () => {
    const { servers } = await structured(await connect(server.owner.token), 'list_connections')
    expect(servers).toEqual([
      {
        id: docs.id,
        slug: 'docs',
        name: 'Docs',
        auth_type: 'none',
        status: 'not_required',
        expires_at: null,
        included_in_mcp: true,
      },
      {
        id: linear.id,
        slug: 'linear',
        name: 'Linear',
        auth_type: 'oauth2',
        status: 'not_connected',
        expires_at: null,
        included_in_mcp: false,
        connect_url: connectLink(linear.id),
      },
    ])
  })

  it('reports a connected server with its expiry and no connect link', async () => {
    await connectUpstream(server.owner.token, linear.id)
    const { servers } = await structured(await connect(server.owner.token), 'list_connections')
    const entry = servers.find((s: { slug: string }) => s.slug === 'linear')
    expect(entry.status).toBe('connected')
    expect(Date.parse(entry.expires_at)).toBeGreaterThan(Date.now())
    expect(entry.connect_url).toBeUndefined()
  })

  it('reports each user’s own connection', async () => {
    await connectUpstream(server.owner.token, linear.id)
    const member = await server.createUser('bob')
    const { servers } = await structured(await connect(member.token), 'list_connections')
    expect(servers.find((s: { slug: string }) => s.slug === 'linear')).toMatchObject({
      status: 'not_connected',
      connect_url: connectLink(linear.id),
    })
  })

  it('disconnects by slug, after which the server is listed as not connected with a link', async () => {
    await connectUpstream(server.owner.token, linear.id)
    const client = await connect(server.owner.token)
    expect(await structured(client, 'disconnect_server', { server: 'linear' })).toEqual({
      id: linear.id,
      slug: 'linear',
      was_connected: true,
      status: 'not_connected',
      connect_url: connectLink(linear.id),
    })
    const { servers } = await structured(client, 'list_connections')
    expect(servers.find((s: { slug: string }) => s.slug === 'linear')).toMatchObject({
      status: 'not_connected',
      connect_url: connectLink(linear.id),
    })
    const api = await callApi(server, server.owner.token, 'GET', `/api/v1/mcp/servers/${linear.id}`)
    expect(api.body.auth_connected).toBe(false)
  })

  it('disconnects by ID, and again without error (idempotent)', async () => {
    await connectUpstream(server.owner.token, linear.id)
    const client = await connect(server.owner.token)
    expect((await structured(client, 'disconnect_server', { server: linear.id })).was_connected).toBe(true)
    expect((await structured(client, 'disconnect_server', { server: linear.id })).was_connected).toBe(false)
  })

  it('answers a tool error naming a server that is unknown, disabled for a member, or not OAuth', async () => {
    const member = await server.createUser('bob')
    const client = await connect(member.token)
    const unknown = await client.callTool({ name: 'disconnect_server', arguments: { server: 'nope' } })
    expect(unknown.isError).toBe(true)
    expect(textOf(unknown)).toContain('No MCP server "nope" is available to you')

    const disabled = await client.callTool({ name: 'disconnect_server', arguments: { server: 'off' } })
    expect(disabled.isError).toBe(true)
    expect(textOf(disabled)).toContain('"off"')

    const none = await client.callTool({ name: 'disconnect_server', arguments: { server: 'docs' } })
    expect(none.isError).toBe(true)
    expect(textOf(none)).toContain('Docs (docs) does not use OAuth')
  })

  it('describes list_connections as read-only and disconnect_server as destructive and idempotent', async () => {
    const { tools } = await (await connect(server.owner.token)).listTools()
    const byName = new Map(tools.map((tool) => [tool.name, tool]))
    expect(byName.get('list_connections')?.annotations).toMatchObject({ readOnlyHint: true, destructiveHint: false })
    expect(byName.get('disconnect_server')?.annotations).toMatchObject({
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: true,
    })
    expect(byName.get('disconnect_server')?.inputSchema).toMatchObject({ required: ['server'] })
  })

  it('works with an OAuth access token that has the mcp scope only', async () => {
    const { tokens } = await server.oauthToken(server.owner.token, { scope: 'mcp' })
    const client = await connect(tokens.access_token)
    const { servers } = await structured(client, 'list_connections')
    expect(servers.map((s: { slug: string }) => s.slug)).toEqual(['docs', 'linear'])
    expect((await structured(client, 'disconnect_server', { server: 'linear' })).was_connected).toBe(false)
  })
})
