import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { Client, StreamableHTTPClientTransport, type Tool } from '@modelcontextprotocol/client'
import { findFreePort } from '../fixtures/cli-process.ts'
import { remote } from '../fixtures/http.ts'
import { startV2McpServer } from '../fixtures/upstreams.ts'
import { bootstrapOwner, startTestServer } from '../setup.ts'

/** A 2026-07-28 client listening with `subscriptions/listen` hears that its `/mcp` lists changed. */
describe('list changes told to listening 2026 clients', () => {
  let gatehouse: Awaited<ReturnType<typeof startTestServer>>
  let owner: { id: string; token: string }
  let upstream: Awaited<ReturnType<typeof startV2McpServer>>

  beforeAll(async () => {
    const port = await findFreePort()
    gatehouse = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}`, outboundAllowPrivate: true })
    owner = await bootstrapOwner(remote(gatehouse.url))
    upstream = await startV2McpServer()
  })
  afterAll(async () => {
    await upstream.close()
    await gatehouse.close()
  })

  it('tells the client when an admin’s edit changes its tools, and the next list shows the change', async () => {
    const created = await fetch(`${gatehouse.url}/api/v1/mcp/servers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        display_name: 'Tracker',
        slug: 'tracker',
        url: upstream.url,
        enabled: true,
        availability: 'default_on',
      }),
    })
    const server = await created.json()
    let told = 0
    const client = new Client(
      { name: 'listener', version: '1.0.0' },
      {
        versionNegotiation: { mode: 'auto' },
        listChanged: { tools: { autoRefresh: false, debounceMs: 0, onChanged: () => void told++ } },
      },
    )
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${gatehouse.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${owner.token}` } },
      }),
    )
    try {
      expect(client.getNegotiatedProtocolVersion()).toBe('2026-07-28')
      const names = (tools: Tool[]) => tools.map((tool) => tool.name).filter((name) => name.startsWith('tracker__'))
      expect(names((await client.listTools(undefined, { cacheMode: 'bypass' })).tools)).toEqual([
        'tracker__echo',
        'tracker__add',
      ])
      const patched = await fetch(`${gatehouse.url}/api/v1/mcp/servers/${server.id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ tool_deny_list: ['add'] }),
      })
      expect(patched.status).toBe(200)
      for (let waited = 0; told === 0 && waited < 5000; waited += 20) await Bun.sleep(20)
      expect(told).toBeGreaterThan(0)
      expect(names((await client.listTools(undefined, { cacheMode: 'bypass' })).tools)).toEqual(['tracker__echo'])
    } finally {
      await client.close()
    }
  })
})
