import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { bootstrapOwner, createUserAndLogin, setup, type TestContext } from '../setup.ts'
import { MCP_HEADERS, readRaw, toolCall } from './support-mcp-server.ts'

/** get_authenticated_user's organization IDs follow a membership change at once, though they are cached. */
describe('get_authenticated_user and memberships', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
  })
  afterEach(() => ctx.close())

  async function organizationIds(token: string): Promise<string[]> {
    const response = await ctx.app.handle(
      new Request('http://localhost:3000/mcp', {
        method: 'POST',
        headers: { ...MCP_HEADERS, host: 'localhost:3000', authorization: `Bearer ${token}` },
        body: JSON.stringify(toolCall('get_authenticated_user')),
      }),
    )
    return (await readRaw(response)).body.result.structuredContent.organization_ids
  }

  async function api(method: string, path: string, body?: unknown) {
    const response = await ctx.app.handle(
      new Request(`http://localhost:3000/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    )
    return { status: response.status, body: await response.json().catch(() => undefined) }
  }

  it('shows an organization the user joined, and drops one they left, on the next call', async () => {
    const member = await createUserAndLogin(ctx, owner.token, 'joiner')
    const before = await organizationIds(member.token)
    expect(before).toHaveLength(1)
    const created = await api('POST', '/organizations', { name: 'research' })
    expect(created.status).toBe(201)
    expect(
      (await api('PUT', `/organizations/${created.body.id}/members/${member.id}`, { role: 'member' })).status,
    ).toBe(200)
    expect((await organizationIds(member.token)).sort()).toEqual([...before, created.body.id].sort())
    expect((await api('DELETE', `/organizations/${created.body.id}/members/${member.id}`)).status).toBe(204)
    expect(await organizationIds(member.token)).toEqual(before)
  })
})
