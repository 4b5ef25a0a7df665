import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { findFreePort } from '../fixtures/cli-process.ts'
import { remote } from '../fixtures/http.ts'
import { startV1SessionMcpServer, startV2McpServer } from '../fixtures/upstreams.ts'
import { bootstrapOwner, startTestServer } from '../setup.ts'

describe('aggregated /mcp smoke', () => {
  let gatehouse: Awaited<ReturnType<typeof startTestServer>>
  let owner: { id: string; token: string }
  beforeAll(async () => {
    const port = await findFreePort()
    gatehouse = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}`, outboundAllowPrivate: true })
    owner = await bootstrapOwner(remote(gatehouse.url))
  })
  afterAll(() => gatehouse.close())

  async function register(slug: string, fields: Record<string, unknown>) {
    const response = await fetch(`${gatehouse.url}/api/v1/mcp/servers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ display_name: slug, slug, enabled: true, availability: 'default_on', ...fields }),
    })
    expect(response.status).toBe(201)
  }

  it('lists and calls tools of a v2 and a v1 upstream', async () => {
    const v2 = await startV2McpServer()
    const v1 = await startV1SessionMcpServer()
    await register('alpha', { url: v2.url })
    await register('beta', { url: v1.url, auth_type: 'api_key', api_key_header: 'X-Key', api_key_value: 'k1' })
    for (const mode of ['legacy', 'auto'] as const) {
      const client = new Client({ name: 't', version: '1' }, { versionNegotiation: { mode } })
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`${gatehouse.url}/mcp`), {
          requestInit: { headers: { authorization: `Bearer ${owner.token}` } },
        }),
      )
      const names = (await client.listTools()).tools.map((tool) => tool.name)
      console.log(mode, names)
      expect(names).toContain('alpha__echo')
      expect(names).toContain('beta__add')
      expect((await client.callTool({ name: 'alpha__echo', arguments: { text: 'hi' } })).content).toEqual([
        { type: 'text', text: 'hi' },
      ])
      expect((await client.callTool({ name: 'beta__add', arguments: { a: 1, b: 2 } })).content).toEqual([
        { type: 'text', text: '3' },
      ])
      console.log(
        mode,
        (await client.listResources()).resources,
        (await client.listPrompts()).prompts.map((p) => p.name),
      )
      await client.close()
    }
    await v2.close()
    await v1.close()
  })
})
