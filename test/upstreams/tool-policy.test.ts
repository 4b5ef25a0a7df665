import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { type AggregateGatehouse, startAggregateGatehouse } from '../fixtures/aggregate.ts'
import { startOAuthServer, startV2McpServer } from '../fixtures/upstreams.ts'

/** `GET /api/v1/mcp/servers/{id}/tools`: what an admin writes allow and deny lists from. */
describe('the tool policy view of an MCP server', () => {
  let gatehouse: AggregateGatehouse
  let upstream: Awaited<ReturnType<typeof startV2McpServer>>

  beforeAll(async () => {
    gatehouse = await startAggregateGatehouse()
    upstream = await startV2McpServer({
      tools: [
        {
          name: 'echo',
          description: 'Returns its text',
          inputSchema: { type: 'object' },
          run: () => ({ content: [] }),
        },
        { name: 'admin_reset', description: 'Resets', inputSchema: { type: 'object' }, run: () => ({ content: [] }) },
        { name: 'x'.repeat(70), description: 'Long', inputSchema: { type: 'object' }, run: () => ({ content: [] }) },
      ],
    })
  })
  afterAll(async () => {
    await upstream.close()
    await gatehouse.close()
  })

  const api = (method: string, path: string, token: string, body?: unknown) =>
    gatehouse.api(method, `/api/v1${path}`, body, token)
  const ownerToken = () => gatehouse.owner.token

  it('lists the upstream’s tools with their /mcp names and whether the lists let them through', async () => {
    const created = await api('POST', '/mcp/servers', ownerToken(), {
      display_name: 'Tracker',
      slug: 'tracker',
      url: upstream.url,
      tool_deny_list: ['admin_*'],
    })
    expect(created.status).toBe(201)
    const policy = await api('GET', `/mcp/servers/${created.body.id}/tools`, ownerToken())
    expect(policy.status).toBe(200)
    expect(policy.body.tool_deny_list).toEqual(['admin_*'])
    const byName = new Map(policy.body.tools.map((tool: { name: string }) => [tool.name, tool]))
    expect(byName.get('echo')).toMatchObject({
      mcp_name: 'tracker__echo',
      allowed: true,
      description: 'Returns its text',
    })
    expect(byName.get('admin_reset')).toMatchObject({ mcp_name: 'tracker__admin_reset', allowed: false })
    const long = byName.get('x'.repeat(70)) as { mcp_name: string }
    expect(long.mcp_name).toHaveLength(64)
    expect(long.mcp_name).toMatch(/^tracker__x+_[0-9a-f]{6}$/)

    // Narrowing to an allow list changes the answer at once.
    await api('PATCH', `/mcp/servers/${created.body.id}`, ownerToken(), { tool_allow_list: ['ech*'] })
    const narrowed = await api('GET', `/mcp/servers/${created.body.id}/tools`, ownerToken())
    expect(
      narrowed.body.tools
        .filter((tool: { allowed: boolean }) => tool.allowed)
        .map((tool: { name: string }) => tool.name),
    ).toEqual(['echo'])
  })

  it('is for the organization’s admins: a member is refused', async () => {
    const created = await api('POST', '/mcp/servers', ownerToken(), {
      display_name: 'Members',
      slug: 'members-see',
      url: upstream.url,
      enabled: true,
    })
    const member = await gatehouse.createUser('policy-member')
    const refused = await api('GET', `/mcp/servers/${created.body.id}/tools`, member.token)
    expect(refused.status).toBe(403)
    expect(refused.body.message).toContain('admin')
    expect((await api('GET', '/mcp/servers/no-such-id/tools', ownerToken())).status).toBe(404)
  })

  it('answers 502 naming the server when the upstream does not answer, and 409 for an oauth2 server not connected', async () => {
    const gone = await startV2McpServer()
    const down = await api('POST', '/mcp/servers', ownerToken(), { display_name: 'Gone', slug: 'gone', url: gone.url })
    await gone.close()
    const failed = await api('GET', `/mcp/servers/${down.body.id}/tools`, ownerToken())
    expect(failed.status).toBe(502)
    expect(failed.body.message).toContain('Gone did not list its tools')

    const as = await startOAuthServer()
    const protectedUpstream = await startV2McpServer({ protectedBy: as.protect() })
    try {
      const oauth = await api('POST', '/mcp/servers', ownerToken(), {
        display_name: 'Linear',
        slug: 'linear-policy',
        url: protectedUpstream.url,
        auth_type: 'oauth2',
      })
      expect(oauth.status).toBe(201)
      const unconnected = await api('GET', `/mcp/servers/${oauth.body.id}/tools`, ownerToken())
      expect(unconnected.status).toBe(409)
      expect(unconnected.body.message).toContain(`/connections?connect=${oauth.body.id}`)
    } finally {
      await protectedUpstream.close()
      await as.close()
    }
  })
})
