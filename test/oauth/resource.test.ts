import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { bootstrapOwner, setup, type TestContext } from '../setup.ts'
import { createPkce, obtainTokens, registerClient } from './helpers.ts'
import { authorizeCode, authorizeParams, exchangeCode, getAuthorize, MCP_RESOURCE } from './support-flow.ts'

// RFC 8707 `resource` as clients write it: another spelling of /mcp names /mcp, and anything that
// is not exactly one of our resources is invalid_target.

/** A tools/list on /mcp with `token`, through the app. */
function listTools(ctx: TestContext, token: string): Promise<Response> {
  return ctx.app.handle(
    new Request('http://localhost/mcp', {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    }),
  )
}

describe('resource indicators', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('issues a token for HTTP://LOCALHOST:3000/mcp/ that /mcp accepts as its own', async () => {
    const { tokens } = await obtainTokens(ctx, owner.token, { scope: 'mcp', resource: 'HTTP://LOCALHOST:3000/mcp/' })
    const response = await listTools(ctx, tokens.access_token)
    expect(response.status).toBe(200)
  })

  it('binds the code to the canonical resource, so the token request may spell it differently', async () => {
    const client = await registerClient(ctx)
    const { code, pkce } = await authorizeCode(ctx, owner.token, client.client_id, { resource: MCP_RESOURCE })
    const response = await exchangeCode(
      ctx,
      { clientId: client.client_id, code, verifier: pkce.verifier },
      { resource: 'http://LocalHost:3000/mcp/' },
    )
    expect(response.status).toBe(200)
    expect((await listTools(ctx, response.body.access_token)).status).toBe(200)
  })

  it('issues a per-server token whose audience /mcp refuses', async () => {
    const { tokens } = await obtainTokens(ctx, owner.token, { resource: 'http://localhost:3000/mcp/servers/github' })
    const response = await listTools(ctx, tokens.access_token)
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toContain('http://localhost:3000/mcp/servers/github')
  })

  for (const resource of [
    'http://localhost:3000/mcp/servers/../../api',
    'http://localhost:3000/mcp/servers/%2e%2e/%2e%2e/api',
    'http://localhost:3000/mcp/servers/GitHub',
    'http://localhost:3000/mcp/servers/github/tools',
    'http://localhost:3000/mcp/servers/github?x=1',
    'http://localhost:3000/mcp?x=1',
  ])
    it(`redirects with invalid_target for ${resource}`, async () => {
      const client = await registerClient(ctx)
      const response = await getAuthorize(ctx, authorizeParams(client.client_id, createPkce(), { resource }), {
        authorization: `Bearer ${owner.token}`,
      })
      expect(response.status).toBe(302)
      const location = new URL(response.headers.get('location')!)
      expect(location.searchParams.get('error')).toBe('invalid_target')
      expect(location.searchParams.get('code')).toBeNull()
    })
})
