import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { createApp } from '../../src/app.ts'
import { bootstrapOwner, setup, type TestContext } from '../setup.ts'

/**
 * The fast path must be indistinguishable from the SDK: the same call answered by an app with the
 * fast path and by one without it (same database, same user) gives the same status, headers that
 * matter, and body.
 */
describe('tools/call fast path', () => {
  let ctx: TestContext
  let token: string
  let sdkOnly: ReturnType<typeof createApp>
  beforeEach(async () => {
    ctx = await setup()
    token = (await bootstrapOwner(ctx)).token
    sdkOnly = createApp({ ...ctx.deps, config: { ...ctx.config, mcpFastPath: false } })
  })
  afterEach(async () => {
    await ctx.close()
  })

  const PV = 'io.modelcontextprotocol/protocolVersion'
  function call(version: string, name: string, args: Record<string, unknown>, id = 1): Request {
    const modern = version === '2026-07-28'
    const params = modern
      ? { name, arguments: args, _meta: { [PV]: version, 'io.modelcontextprotocol/clientCapabilities': {} } }
      : { name, arguments: args }
    return new Request('http://localhost:3000/mcp', {
      method: 'POST',
      headers: {
        host: 'localhost:3000',
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': version,
        ...(modern ? { 'mcp-method': 'tools/call', 'mcp-name': name } : {}),
      },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params }),
    })
  }

  async function both(request: () => Request) {
    const fast = await ctx.app.handle(request())
    const sdk = await sdkOnly.handle(request())
    return {
      fast: { status: fast.status, type: fast.headers.get('content-type'), body: await fast.text() },
      sdk: { status: sdk.status, type: sdk.headers.get('content-type'), body: await sdk.text() },
    }
  }

  for (const version of ['2025-03-26', '2025-06-18', '2025-11-25', '2026-07-28']) {
    it(`answers get_authenticated_user on ${version} exactly as the SDK does`, async () => {
      const { fast, sdk } = await both(() => call(version, 'get_authenticated_user', {}))
      expect(fast.status).toBe(200)
      expect(fast.body).toContain('"username\\":\\"owner\\"')
      expect(fast).toEqual(sdk)
    })

    it(`answers a tool's own error on ${version} exactly as the SDK does`, async () => {
      const { fast, sdk } = await both(() =>
        call(version, 'revoke_authorized_app', { client_id: 'nobody' }, 'req-2' as unknown as number),
      )
      expect(fast.body).toContain('"isError":true')
      expect(fast).toEqual(sdk)
    })
  }

  it('leaves invalid arguments to the SDK, which names the field', async () => {
    const { fast, sdk } = await both(() => call('2025-06-18', 'list_users', { limit: 'x' }))
    expect(fast.body).toContain('limit')
    expect(fast).toEqual(sdk)
  })

  it('leaves a modern call whose headers disagree with its envelope to the SDK', async () => {
    const request = () => {
      const base = call('2026-07-28', 'get_authenticated_user', {})
      const headers = new Headers(base.headers)
      headers.set('mcp-name', 'list_users')
      return new Request(base, { headers })
    }
    const { fast, sdk } = await both(request)
    expect(fast.status).toBe(400)
    expect(fast).toEqual(sdk)
  })
})
