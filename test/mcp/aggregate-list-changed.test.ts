import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import type { Tool } from '@modelcontextprotocol/client'
import { type AggregateGatehouse, startAggregateGatehouse } from '../fixtures/aggregate.ts'
import { startV2McpServer } from '../fixtures/upstreams.ts'

/** A 2026-07-28 client listening with `subscriptions/listen` hears that its `/mcp` lists changed. */
describe('list changes told to listening 2026 clients', () => {
  let gatehouse: AggregateGatehouse
  let upstream: Awaited<ReturnType<typeof startV2McpServer>>

  beforeAll(async () => {
    gatehouse = await startAggregateGatehouse()
    upstream = await startV2McpServer()
  })
  afterAll(async () => {
    await gatehouse.closeClients()
    await upstream.close()
    await gatehouse.close()
  })

  it('tells the client when an admin’s edit changes its tools, and the next list shows the change', async () => {
    const server = await gatehouse.register('tracker', { url: upstream.url, availability: 'default_on' })
    let told = 0
    const client = await gatehouse.mcp(gatehouse.owner.token, {
      era: 'modern',
      options: { listChanged: { tools: { autoRefresh: false, debounceMs: 0, onChanged: () => void told++ } } },
    })
    const names = (tools: Tool[]) => tools.map((tool) => tool.name).filter((name) => name.startsWith('tracker__'))
    expect(names((await client.listTools(undefined, { cacheMode: 'bypass' })).tools)).toEqual([
      'tracker__echo',
      'tracker__add',
    ])
    await gatehouse.update(server.id, { tool_deny_list: ['add'] })
    for (let waited = 0; told === 0 && waited < 5000; waited += 20) await Bun.sleep(20)
    expect(told).toBeGreaterThan(0)
    expect(names((await client.listTools(undefined, { cacheMode: 'bypass' })).tools)).toEqual(['tracker__echo'])
  })
})
