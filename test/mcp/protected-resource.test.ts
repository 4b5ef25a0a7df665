import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { setup, type TestContext } from '../setup.ts'

// RFC 9728 metadata of /mcp as a browser-based client fetches it.

describe('protected resource metadata of /mcp', () => {
  let ctx: TestContext
  beforeAll(async () => {
    ctx = await setup()
  })
  afterAll(async () => {
    await ctx.close()
  })

  const PATHS = ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']

  it("lists the resource's scopes mcp and mcp:admin, not the authorization server's offline_access", async () => {
    for (const path of PATHS) {
      const metadata = await (await ctx.app.handle(new Request(`http://localhost${path}`))).json()
      expect(metadata.scopes_supported).toEqual(['mcp', 'mcp:admin'])
    }
  })

  it('lets a page on any origin read it', async () => {
    for (const path of PATHS) {
      const response = await ctx.app.handle(
        new Request(`http://localhost${path}`, {
          headers: { origin: 'https://inspector.example.com', 'mcp-protocol-version': '2025-06-18' },
        }),
      )
      expect(response.status).toBe(200)
      expect(response.headers.get('access-control-allow-origin')).toBe('*')
    }
  })

  it('answers the preflight of a fetch that sends MCP-Protocol-Version', async () => {
    for (const path of PATHS) {
      const response = await ctx.app.handle(
        new Request(`http://localhost${path}`, {
          method: 'OPTIONS',
          headers: {
            origin: 'https://inspector.example.com',
            'access-control-request-method': 'GET',
            'access-control-request-headers': 'mcp-protocol-version',
          },
        }),
      )
      expect(response.status).toBe(204)
      expect(response.headers.get('access-control-allow-origin')).toBe('*')
      expect(response.headers.get('access-control-allow-headers')).toContain('mcp-protocol-version')
    }
  })
})
