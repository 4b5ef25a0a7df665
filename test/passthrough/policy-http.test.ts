import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { type AggregateGatehouse, startAggregateGatehouse } from '../fixtures/aggregate.ts'
import { startEverythingServer } from '../fixtures/everything-server.ts'
import { DEFAULT_TOOLS, type FixtureTool, startV1SessionMcpServer, startV2McpServer } from '../fixtures/upstreams.ts'

/**
 * A server's allow and deny lists on `/mcp/servers/{slug}`: refused tools and prompts are never
 * called, and list answers (JSON or SSE) come without them, for real SDK upstreams of both eras
 * driven by the official SDK client, and for hand-written upstreams where the wire matters.
 */
describe('the allow and deny lists on /mcp/servers/{slug}', () => {
  let gatehouse: AggregateGatehouse
  const started: { close: () => unknown }[] = []
  const clients: Client[] = []

  beforeAll(async () => {
    gatehouse = await startAggregateGatehouse()
  })
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close().catch(() => {})))
    await Promise.all(started.splice(0).map((server) => server.close()))
  })
  afterAll(() => gatehouse.close())

  const track = async <T extends { close: () => unknown }>(server: T | Promise<T>) => {
    const value = await server
    started.push(value)
    return value
  }

  /** Tools that record their calls, so a test can tell that a refused one never ran. */
  function recordingTools(names: string[]) {
    const calls: string[] = []
    const tools: FixtureTool[] = names.map((name) => ({
      name,
      description: `The ${name} tool`,
      inputSchema: { type: 'object', properties: {} },
      run: () => {
        calls.push(name)
        return { content: [{ type: 'text', text: `${name} ran` }] }
      },
    }))
    return { calls, tools }
  }

  /** The SDK client on `/mcp/servers/<slug>`; `contentTypes` records the type of each answer. */
  async function connect(slug: string, era: 'legacy' | 'modern') {
    const contentTypes: string[] = []
    const client = new Client(
      { name: 'policy-test', version: '1.0.0' },
      { versionNegotiation: { mode: era === 'modern' ? 'auto' : 'legacy' } },
    )
    const transport = new StreamableHTTPClientTransport(new URL(`${gatehouse.url}/mcp/servers/${slug}`), {
      requestInit: { headers: { authorization: `Bearer ${gatehouse.owner.token}` } },
      fetch: async (url, init) => {
        const response = await fetch(url, init)
        contentTypes.push(response.headers.get('content-type') ?? '')
        return response
      },
    })
    clients.push(client)
    await client.connect(transport)
    return { client, contentTypes }
  }

  /** A hand-written upstream that records the bodies it gets. */
  function rawUpstream(handler: (request: Request, body: string) => Response | Promise<Response>) {
    const bodies: string[] = []
    const server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      idleTimeout: 0,
      async fetch(request) {
        const body = await request.text()
        bodies.push(body)
        return handler(request, body)
      },
    })
    started.push({ close: () => server.stop(true) })
    return { url: `http://127.0.0.1:${server.port}/mcp`, bodies }
  }

  const post = (slug: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${gatehouse.url}/mcp/servers/${slug}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${gatehouse.owner.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      body,
      signal: AbortSignal.timeout(10_000),
    })

  const names = (items: { name: string }[]) => items.map((item) => item.name)

  it('hides and refuses what the deny list names, for a 2026-era upstream answering in JSON', async () => {
    const { calls, tools } = recordingTools(['echo', 'delete_everything'])
    const upstream = await track(startV2McpServer({ tools }))
    await gatehouse.register('modern', { url: upstream.url, tool_deny_list: ['delete_*', 'greet', 'readme'] })
    const { client, contentTypes } = await connect('modern', 'modern')
    expect(client.getNegotiatedProtocolVersion()).toBe('2026-07-28')

    expect(names((await client.listTools()).tools)).toEqual(['echo'])
    expect(contentTypes.at(-1)).toStartWith('application/json')
    const refusal = client.callTool({ name: 'delete_everything', arguments: {} })
    await expect(refusal).rejects.toThrow(`modern's policy does not allow the tool "delete_everything"`)
    expect(calls).toEqual([])
    expect((await client.callTool({ name: 'echo', arguments: {} })).content).toEqual([
      { type: 'text', text: 'echo ran' },
    ])
    expect(calls).toEqual(['echo'])

    expect((await client.listPrompts()).prompts).toEqual([])
    await expect(client.getPrompt({ name: 'greet', arguments: { name: 'Ada' } })).rejects.toThrow(
      `modern's policy does not allow the prompt "greet"`,
    )
    expect((await client.listResources()).resources).toEqual([])
  })

  it('lets only what the allow list names through, for a 2025-era upstream answering in SSE', async () => {
    const upstream = await track(startV1SessionMcpServer({ tools: DEFAULT_TOOLS }))
    await gatehouse.register('sessions', { url: upstream.url, tool_allow_list: ['ech*', 'greet'] })
    const { client, contentTypes } = await connect('sessions', 'legacy')

    expect(names((await client.listTools()).tools)).toEqual(['echo'])
    expect(contentTypes.at(-1)).toStartWith('text/event-stream')
    await expect(client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).rejects.toThrow(
      `sessions's policy does not allow the tool "add"`,
    )
    expect((await client.callTool({ name: 'echo', arguments: { text: 'through' } })).content).toEqual([
      { type: 'text', text: 'through' },
    ])
    expect(names((await client.listPrompts()).prompts)).toEqual(['greet'])
    expect((await client.listResources()).resources).toEqual([])
  })

  it('answers a batch holding a refused call itself, sending none of it', async () => {
    const upstream = rawUpstream(() => Response.json([]))
    await gatehouse.register('batched', { url: upstream.url, tool_deny_list: ['delete_*'] })
    const response = await post(
      'batched',
      JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'delete_everything', arguments: {} } },
        { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: {} } },
        { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } },
      ]),
    )
    expect(response.status).toBe(200)
    const answers = await response.json()
    expect(answers).toHaveLength(2)
    expect(answers[0]).toMatchObject({ jsonrpc: '2.0', id: 1, error: { code: -32602 } })
    expect(answers[0].error.message).toBe(`batched's policy does not allow the tool "delete_everything"`)
    expect(answers[1]).toMatchObject({ jsonrpc: '2.0', id: 2, error: { code: -32600 } })
    expect(answers[1].error.message).toStartWith('Not sent:')
    expect(upstream.bodies).toEqual([])
  })

  it('refuses a body another parser could read differently, and reads no body of a server without lists', async () => {
    const upstream = rawUpstream(() => Response.json({ jsonrpc: '2.0', id: 1, result: {} }))
    await gatehouse.register('strict', { url: upstream.url, tool_deny_list: ['delete_*'] })
    await gatehouse.register('open', { url: upstream.url })
    // JSON.parse keeps the last name; a parser that keeps the first would call delete_everything.
    const twice = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_everything","name":"echo"}}'
    const refused = await post('strict', twice)
    expect(refused.status).toBe(400)
    const body = await refused.json()
    expect(body.error.code).toBe(-32600)
    expect(body.error.message).toContain('"name" is given twice')
    const broken = await post('strict', '{"jsonrpc":"2.0",')
    expect(broken.status).toBe(400)
    expect((await broken.json()).error.code).toBe(-32700)
    expect(upstream.bodies).toEqual([])

    expect((await post('open', twice)).status).toBe(200)
    expect((await post('open', '{"jsonrpc":"2.0",')).status).toBe(200)
    expect(upstream.bodies).toEqual([twice, '{"jsonrpc":"2.0",'])
  })

  it('streams an SSE answer, rewriting only the event that answers tools/list', async () => {
    let release!: () => void
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    const progress =
      'event: message\r\nid: ev-1\r\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\r\n\r\n'
    const after =
      'event: message\nid: ev-3\ndata: {"jsonrpc":"2.0","method":"notifications/message",\ndata: "params":{"level":"info","data":"after"}}\n\n'
    const list = {
      jsonrpc: '2.0',
      id: 1,
      result: {
        tools: ['echo', 'delete_everything', 'add'].map((name) => ({ name, inputSchema: { type: 'object' } })),
      },
    }
    const encoder = new TextEncoder()
    const upstream = rawUpstream(
      () =>
        new Response(
          new ReadableStream({
            async start(controller) {
              controller.enqueue(encoder.encode(progress))
              await held
              const event = encoder.encode(`event: message\nid: ev-2\ndata: ${JSON.stringify(list)}\n\n${after}`)
              // Cut mid-event, so the event is put together across chunks.
              for (let at = 0; at < event.length; at += 7) controller.enqueue(event.subarray(at, at + 7))
              controller.close()
            },
          }),
          { headers: { 'content-type': 'text/event-stream' } },
        ),
    )
    await gatehouse.register('streamed', { url: upstream.url, tool_deny_list: ['delete_*'] })
    const response = await post('streamed', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }))
    expect(response.headers.get('content-type')).toStartWith('text/event-stream')
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    let text = ''
    while (!text.includes('notifications/progress')) text += decoder.decode((await reader.read()).value)
    expect(text).toEndWith(progress)
    release()
    for (;;) {
      const chunk = await reader.read()
      if (chunk.done) break
      text += decoder.decode(chunk.value)
    }
    const filtered = {
      ...list,
      result: { tools: list.result.tools.filter((tool) => tool.name !== 'delete_everything') },
    }
    expect(text).toEndWith(`${progress}event: message\nid: ev-2\ndata: ${JSON.stringify(filtered)}\n\n${after}`)
  })

  it('filters the list answers a resumed stream replays', async () => {
    const everything = await track(startEverythingServer())
    await gatehouse.register('replayed', { url: everything.url, tool_deny_list: ['test_simple_text'] })
    const headers = { 'mcp-protocol-version': '2025-11-25' }
    const initialized = await post(
      'replayed',
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'resume', version: '1.0.0' } },
      }),
      headers,
    )
    const sessionId = initialized.headers.get('mcp-session-id')!
    await initialized.body?.cancel()
    const session = { ...headers, 'mcp-session-id': sessionId }
    expect(
      (await post('replayed', JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), session)).status,
    ).toBe(202)

    const listed = await (
      await post('replayed', JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }), session)
    ).text()
    const primingId = /^id: (.+)$/m.exec(listed)?.[1]
    expect(primingId).toBeString()
    expect(listed).toContain('"test_image_content"')
    expect(listed).not.toContain('"test_simple_text"')

    const resumed = await fetch(`${gatehouse.url}/mcp/servers/replayed`, {
      headers: {
        authorization: `Bearer ${gatehouse.owner.token}`,
        accept: 'text/event-stream',
        ...session,
        'last-event-id': primingId!,
      },
      signal: AbortSignal.timeout(10_000),
    })
    expect(resumed.status).toBe(200)
    const reader = resumed.body!.getReader()
    let replay = ''
    while (!replay.includes('"id":2')) replay += new TextDecoder().decode((await reader.read()).value)
    await reader.cancel()
    expect(replay).toContain('"test_image_content"')
    expect(replay).not.toContain('"test_simple_text"')
  })

  it('ends the upstream stream when the client leaves a GET stream it filters', async () => {
    let cancelled!: () => void
    const upstreamCancelled = new Promise<void>((resolve) => {
      cancelled = resolve
    })
    const upstream = rawUpstream(
      () =>
        new Response(
          new ReadableStream({
            start(controller) {
              controller.enqueue(
                new TextEncoder().encode('event: message\ndata: {"jsonrpc":"2.0","method":"ping","id":1}\n\n'),
              )
            },
            cancel() {
              cancelled()
            },
          }),
          { headers: { 'content-type': 'text/event-stream' } },
        ),
    )
    await gatehouse.register('listening', { url: upstream.url, tool_deny_list: ['delete_*'] })
    const abort = new AbortController()
    const response = await fetch(`${gatehouse.url}/mcp/servers/listening`, {
      headers: { authorization: `Bearer ${gatehouse.owner.token}`, accept: 'text/event-stream' },
      signal: abort.signal,
    })
    const reader = response.body!.getReader()
    let text = ''
    while (!text.includes('"ping"')) text += new TextDecoder().decode((await reader.read()).value)
    abort.abort()
    await Promise.race([
      upstreamCancelled,
      Bun.sleep(5000).then(() => {
        throw new Error('the upstream stream was not cancelled')
      }),
    ])
  })

  it('answers a list larger than the cap with a JSON-RPC error naming the server and the cap', async () => {
    const tools = Array.from({ length: 90_000 }, (_, index) => ({
      name: `tool_${index}`,
      description: 'x'.repeat(80),
      inputSchema: { type: 'object' },
    }))
    const upstream = rawUpstream(() => Response.json({ jsonrpc: '2.0', id: 4, result: { tools } }))
    await gatehouse.register('huge', { url: upstream.url, tool_deny_list: ['delete_*'] })
    const response = await post('huge', JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/list' }))
    expect(response.status).toBe(502)
    const body = await response.json()
    expect(body).toMatchObject({ jsonrpc: '2.0', id: 4, error: { code: -32000 } })
    expect(body.error.message).toContain('huge')
    expect(body.error.message).toContain('8 MiB')
  })
})
