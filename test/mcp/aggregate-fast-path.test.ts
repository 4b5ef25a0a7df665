import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { createApp } from '../../src/app.ts'
import { type Account, type AggregateGatehouse, startAggregateGatehouse } from '../fixtures/aggregate.ts'
import { startV1SessionMcpServer, startV2McpServer, type FixtureTool } from '../fixtures/upstreams.ts'

const TOOLS: FixtureTool[] = [
  {
    name: 'echo',
    description: 'Returns its text',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
    run: (args) => ({ content: [{ type: 'text', text: String(args.text) }] }),
  },
  {
    name: 'measure',
    description: 'Structured output',
    inputSchema: { type: 'object' },
    run: () => ({
      content: [{ type: 'text', text: '{"length":3}' }],
      structuredContent: { length: 3 },
      _meta: { 'example.com/trace': 'abc' },
    }),
  },
  {
    name: 'fail',
    description: 'A tool error',
    inputSchema: { type: 'object' },
    run: () => ({ content: [{ type: 'text', text: 'it broke' }], isError: true }),
  },
]

/**
 * A plain upstream `tools/call` on `/mcp` is forwarded without the SDK; its answers must be the
 * SDK path's: the same call through an app without the fast path gives the same status, type and
 * JSON, in both eras, for 2026 and 2025 (session) upstreams.
 */
describe('the aggregated tools/call fast path', () => {
  let gatehouse: AggregateGatehouse
  let sdkOnly: ReturnType<typeof createApp>
  let owner: Account
  const upstreams: { close(): Promise<void> }[] = []

  beforeAll(async () => {
    gatehouse = await startAggregateGatehouse()
    owner = gatehouse.owner
    sdkOnly = createApp({ ...gatehouse.deps, config: { ...gatehouse.deps.config, mcpFastPath: false } })
    const modern = await startV2McpServer({ tools: TOOLS })
    const legacy = await startV1SessionMcpServer({ tools: TOOLS })
    upstreams.push(modern, legacy)
    await gatehouse.register('modern', { url: modern.url, availability: 'default_on' })
    await gatehouse.register('legacy', { url: legacy.url, availability: 'default_on' })
  })
  afterAll(async () => {
    await Promise.all(upstreams.map((upstream) => upstream.close()))
    await gatehouse.close()
  })

  function call(version: string, name: string, args: Record<string, unknown>, id: string | number = 1): Request {
    const modern = version === '2026-07-28'
    const params = modern
      ? {
          name,
          arguments: args,
          _meta: {
            'io.modelcontextprotocol/protocolVersion': version,
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        }
      : { name, arguments: args }
    const url = new URL('/mcp', gatehouse.url)
    return new Request(url, {
      method: 'POST',
      headers: {
        host: url.host,
        authorization: `Bearer ${owner.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': version,
        ...(modern ? { 'mcp-method': 'tools/call', 'mcp-name': name } : {}),
      },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params }),
    })
  }

  const parsed = (type: string | null, body: string) =>
    type?.includes('text/event-stream') ? JSON.parse(body.split('\n')[1].slice('data: '.length)) : JSON.parse(body)

  async function both(request: () => Request) {
    const fast = await fetch(request())
    const sdk = await sdkOnly.handle(request())
    const read = async (response: Response) => {
      const type = response.headers.get('content-type')
      return { status: response.status, type, message: parsed(type, await response.text()) }
    }
    return { fast: await read(fast), sdk: await read(sdk) }
  }

  for (const version of ['2025-06-18', '2026-07-28'])
    for (const slug of ['modern', 'legacy']) {
      it(`answers ${slug}__echo for a ${version} client as the SDK path does`, async () => {
        const { fast, sdk } = await both(() => call(version, `${slug}__echo`, { text: 'through' }, 'req-7'))
        expect(fast.status).toBe(200)
        expect(fast.message.id).toBe('req-7')
        expect(fast.message.result.content).toEqual([{ type: 'text', text: 'through' }])
        expect(fast).toEqual(sdk)
      })

      it(`passes ${slug}'s structured content, _meta and tool errors unchanged to a ${version} client`, async () => {
        const measured = await both(() => call(version, `${slug}__measure`, {}))
        expect(measured.fast.message.result.structuredContent).toEqual({ length: 3 })
        expect(measured.fast.message.result._meta['example.com/trace']).toBe('abc')
        expect(measured.fast).toEqual(measured.sdk)
        const failed = await both(() => call(version, `${slug}__fail`, {}))
        expect(failed.fast.message.result).toMatchObject({
          isError: true,
          content: [{ type: 'text', text: 'it broke' }],
        })
        expect(failed.fast).toEqual(failed.sdk)
      })
    }

  for (const version of ['2025-06-18', '2026-07-28'])
    it(`lists Gatehouse’s and the upstreams’ tools for a ${version} client as the SDK path does`, async () => {
      const list = () => {
        const request = call(version, 'unused', {}, 3)
        const modern = version === '2026-07-28'
        const headers = new Headers(request.headers)
        if (modern) {
          headers.set('mcp-method', 'tools/list')
          headers.delete('mcp-name')
        }
        const body = {
          jsonrpc: '2.0',
          id: 3,
          method: 'tools/list',
          ...(modern
            ? {
                params: {
                  _meta: {
                    'io.modelcontextprotocol/protocolVersion': version,
                    'io.modelcontextprotocol/clientCapabilities': {},
                  },
                },
              }
            : {}),
        }
        return new Request(request.url, { method: 'POST', headers, body: JSON.stringify(body) })
      }
      const { fast, sdk } = await both(list)
      const names = fast.message.result.tools.map((tool: { name: string }) => tool.name)
      expect(names).toContain('get_authenticated_user')
      expect(names).toContain('legacy__measure')
      expect(names).toContain('modern__echo')
      expect(fast).toEqual(sdk)
    })

  it('keeps the upstream’s 2025 session across forwarded calls', async () => {
    const legacy = upstreams[1] as Awaited<ReturnType<typeof startV1SessionMcpServer>>
    await fetch(call('2025-06-18', 'legacy__echo', { text: 'first' }))
    const before = legacy.requests.length
    for (let i = 0; i < 3; i++) await fetch(call('2025-06-18', 'legacy__echo', { text: `n${i}` }))
    const forwarded = legacy.requests.slice(before)
    expect(forwarded).toHaveLength(3)
    const sessions = new Set(forwarded.map((request) => request.sessionId))
    expect(sessions.size).toBe(1)
  })

  it('answers a stopped upstream’s tool with a tool error naming the server, not an HTTP error', async () => {
    const doomed = await startV2McpServer({ tools: TOOLS })
    await gatehouse.register('doomed', { display_name: 'Doomed', url: doomed.url, availability: 'default_on' })
    expect((await both(() => call('2026-07-28', 'doomed__echo', { text: 'a' }))).fast.status).toBe(200)
    await doomed.close()
    const { fast } = await both(() => call('2026-07-28', 'doomed__echo', { text: 'b' }))
    expect(fast.status).toBe(200)
    expect(fast.message.result.isError).toBe(true)
    expect(fast.message.result.content[0].text).toContain('Doomed failed')
  })
})
