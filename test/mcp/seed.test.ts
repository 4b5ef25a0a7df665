// The seed's MCP end-to-end scenarios (coderd/mcp/mcp_e2e_test.go), ported: the official SDK client
// against a real server, authenticated with the owner's session token as bearer unless said otherwise.

import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { authorizeWithBearer, createPkce, REDIRECT_URI, registerClient, tokenRequest } from '../oauth/helpers.ts'
import { closeClients, connectClient, postMcp, startMcpServer, textJson, type McpServer } from './support-mcp-server.ts'

describe('MCP endpoint (seed scenarios)', () => {
  let server: McpServer
  beforeEach(async () => {
    server = await startMcpServer()
  })
  afterEach(async () => {
    await closeClients()
    await server.close()
  })

  it('initializes with the server name gatehouse, a protocol version and the tools capability', async () => {
    const client = await connectClient(server.url, server.owner.token)
    expect(client.getServerVersion()).toMatchObject({ name: 'gatehouse' })
    expect(client.getNegotiatedProtocolVersion()).toMatch(/^\d{4}-\d{2}-\d{2}$/)
    expect(client.getServerCapabilities()?.tools).toBeDefined()
  })

  it('lists get_authenticated_user with an input schema and a read-only annotation', async () => {
    const client = await connectClient(server.url, server.owner.token)
    const { tools } = await client.listTools()
    expect(tools.length).toBeGreaterThan(0)
    const tool = tools.find((candidate) => candidate.name === 'get_authenticated_user')
    expect(tool).toBeDefined()
    expect(tool!.inputSchema).toMatchObject({ type: 'object' })
    expect(tool!.annotations?.readOnlyHint).toBe(true)
  })

  it('returns the signed-in user as one text block whose JSON equals the structured content', async () => {
    const client = await connectClient(server.url, server.owner.token)
    const result = await client.callTool({ name: 'get_authenticated_user', arguments: {} })
    expect(result.isError).toBeFalsy()
    expect(result.content).toHaveLength(1)
    expect((result.content as { type: string }[])[0].type).toBe('text')
    const user = textJson(result)
    expect(Object.keys(user)).toEqual(
      expect.arrayContaining(['id', 'username', 'email', 'status', 'login_type', 'roles', 'organization_ids']),
    )
    expect(user).toMatchObject({
      id: server.owner.id,
      username: 'owner',
      email: 'owner@example.com',
      status: 'active',
      roles: ['owner'],
    })
    expect(user.organization_ids).toHaveLength(1)
    expect(result.structuredContent).toEqual(user)
  })

  it('answers a ping', async () => {
    const client = await connectClient(server.url, server.owner.token, { supportedProtocolVersions: ['2025-06-18'] })
    expect(await client.ping()).toEqual({})
  })

  it('fails the connect of a client without a token instead of hanging', async () => {
    const connecting = connectClient(server.url, undefined)
    await expect(connecting).rejects.toThrow(/Authentication required/)
  })

  it('answers an unauthenticated initialize with 401 and a challenge naming the resource metadata and scope', async () => {
    const response = await fetch(`${server.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"jsonrpc":"2.0","method":"initialize","params":{},"id":1}',
    })
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe(
      `Bearer realm="gatehouse", resource_metadata="${server.publicUrl}/.well-known/oauth-protected-resource/mcp", scope="mcp"`,
    )
  })

  it('answers a bodiless POST without credentials with the same 401 challenge', async () => {
    const response = await fetch(`${server.url}/mcp`, { method: 'POST' })
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toStartWith('Bearer realm="gatehouse"')
  })

  it('refuses an invalid bearer token with 401 invalid_token', async () => {
    const response = await postMcp(server.url, 'invalid_token_value', { jsonrpc: '2.0', id: 1, method: 'tools/list' })
    expect(response.status).toBe(401)
    const challenge = response.headers.get('www-authenticate')
    expect(challenge).toStartWith('Bearer realm="gatehouse"')
    expect(challenge).toContain('error="invalid_token"')
  })

  it('names the tool in the error for a tool that does not exist', async () => {
    const client = await connectClient(server.url, server.owner.token)
    await expect(client.callTool({ name: 'nonexistent_tool', arguments: {} })).rejects.toThrow('nonexistent_tool')
  })

  it('answers five concurrent tools/list calls on one client', async () => {
    const client = await connectClient(server.url, server.owner.token)
    const results = await Promise.all(Array.from({ length: 5 }, () => client.listTools()))
    for (const result of results) expect(result.tools.map((tool) => tool.name)).toContain('get_authenticated_user')
  })

  it('works with an OAuth access token from the authorization code flow', async () => {
    const { tokens } = await server.oauthToken(server.owner.token)
    expect(tokens.token_type).toBe('Bearer')
    const client = await connectClient(server.url, tokens.access_token)
    expect(client.getServerVersion()?.name).toBe('gatehouse')
    const { tools } = await client.listTools()
    expect(tools.map((tool) => tool.name)).toContain('get_authenticated_user')
    const result = await client.callTool({ name: 'get_authenticated_user', arguments: {} })
    expect(textJson(result)).toMatchObject({ id: server.owner.id, username: 'owner' })
  })

  it('keeps answering for the same user with the access token a refresh returned', async () => {
    const { client: registered, tokens } = await server.oauthToken(server.owner.token)
    const first = await connectClient(server.url, tokens.access_token)
    const before = textJson(await first.callTool({ name: 'get_authenticated_user', arguments: {} }))

    const refreshed = await tokenRequest(server.ctx, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token,
      client_id: registered.client_id,
    })
    expect(refreshed.status).toBe(200)
    expect(refreshed.body.access_token).not.toBe(tokens.access_token)
    const second = await connectClient(server.url, refreshed.body.access_token)
    const after = textJson(await second.callTool({ name: 'get_authenticated_user', arguments: {} }))
    expect(after).toEqual(before)
  })

  it('works with the tokens of a dynamically registered confidential client', async () => {
    const registered = await registerClient(server.ctx, {
      client_name: 'dynamic-mcp-client',
      token_endpoint_auth_method: 'client_secret_basic',
      response_types: ['code'],
    })
    expect(registered.client_secret).toBeString()
    const pkce = createPkce()
    const location = await authorizeWithBearer(server.ctx, server.owner.token, {
      response_type: 'code',
      client_id: registered.client_id,
      redirect_uri: REDIRECT_URI,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      state: 'dynamic_state',
    })
    const basic = `Basic ${btoa(`${encodeURIComponent(registered.client_id)}:${encodeURIComponent(registered.client_secret!)}`)}`
    const exchanged = await tokenRequest(
      server.ctx,
      {
        grant_type: 'authorization_code',
        code: location.searchParams.get('code')!,
        redirect_uri: REDIRECT_URI,
        code_verifier: pkce.verifier,
      },
      { authorization: basic },
    )
    expect(exchanged.status).toBe(200)

    const client = await connectClient(server.url, exchanged.body.access_token)
    const result = await client.callTool({ name: 'get_authenticated_user', arguments: {} })
    expect(textJson(result)).toMatchObject({ username: 'owner' })
  })
})
