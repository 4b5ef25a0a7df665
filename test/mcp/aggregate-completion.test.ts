import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { createMcpHandler, Server } from '@modelcontextprotocol/server'
import { findFreePort } from '../fixtures/cli-process.ts'
import { remote } from '../fixtures/http.ts'
import { bootstrapOwner, startTestServer } from '../setup.ts'

const COLORS = ['red', 'green', 'blue', 'rose']

/** An upstream with a prompt and a resource template whose arguments it completes; it records what it was asked. */
function startCompletingUpstream() {
  const asked: unknown[] = []
  const handler = createMcpHandler(
    () => {
      const server = new Server(
        { name: 'completing', version: '1.0.0' },
        { capabilities: { prompts: {}, resources: {}, completions: {} } },
      )
      server.setRequestHandler('prompts/list', () => ({
        prompts: [{ name: 'pick', arguments: [{ name: 'color', required: true }] }],
      }))
      server.setRequestHandler('prompts/get', (request) => ({
        messages: [{ role: 'user', content: { type: 'text', text: `Pick ${request.params.arguments?.color}` } }],
      }))
      server.setRequestHandler('resources/list', () => ({ resources: [] }))
      server.setRequestHandler('resources/templates/list', () => ({
        resourceTemplates: [{ name: 'swatch', uriTemplate: 'paint://swatch/{color}' }],
      }))
      server.setRequestHandler('completion/complete', (request) => {
        asked.push(request.params.ref)
        const prefix = request.params.argument.value
        return { completion: { values: COLORS.filter((color) => color.startsWith(prefix)) } }
      })
      return server
    },
    { legacy: 'stateless' },
  )
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: (request) => handler.fetch(request) })
  return {
    url: `http://127.0.0.1:${server.port}/mcp`,
    asked,
    async close() {
      await handler.close()
      server.stop(true)
    },
  }
}

describe('argument completion through /mcp', () => {
  let gatehouse: Awaited<ReturnType<typeof startTestServer>>
  let owner: { id: string; token: string }
  let upstream: ReturnType<typeof startCompletingUpstream>

  beforeAll(async () => {
    const port = await findFreePort()
    gatehouse = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}`, outboundAllowPrivate: true })
    owner = await bootstrapOwner(remote(gatehouse.url))
    upstream = startCompletingUpstream()
    const created = await fetch(`${gatehouse.url}/api/v1/mcp/servers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        display_name: 'Paint',
        slug: 'paint',
        url: upstream.url,
        enabled: true,
        availability: 'default_on',
      }),
    })
    expect(created.status).toBe(201)
  })
  afterAll(async () => {
    await upstream.close()
    await gatehouse.close()
  })

  for (const mode of ['legacy', 'auto'] as const)
    it(`completes a prompt's and a template's arguments from the upstream (${mode} client)`, async () => {
      const client = new Client({ name: 'completer', version: '1.0.0' }, { versionNegotiation: { mode } })
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`${gatehouse.url}/mcp`), {
          requestInit: { headers: { authorization: `Bearer ${owner.token}` } },
        }),
      )
      try {
        expect(client.getServerCapabilities()?.completions).toBeDefined()
        expect((await client.listPrompts()).prompts.map((prompt) => prompt.name)).toEqual(['paint__pick'])
        const prompt = await client.complete({
          ref: { type: 'ref/prompt', name: 'paint__pick' },
          argument: { name: 'color', value: 'r' },
        })
        expect(prompt.completion.values).toEqual(['red', 'rose'])
        const [template] = (await client.listResourceTemplates()).resourceTemplates
        expect(template.uriTemplate).toBe(`gatehouse://paint/${encodeURIComponent('paint://swatch/')}{color}`)
        const swatch = await client.complete({
          ref: { type: 'ref/resource', uri: template.uriTemplate },
          argument: { name: 'color', value: 'g' },
        })
        expect(swatch.completion.values).toEqual(['green'])
        // The upstream was asked in its own names.
        expect(upstream.asked.slice(-2)).toEqual([
          { type: 'ref/prompt', name: 'pick' },
          { type: 'ref/resource', uri: 'paint://swatch/{color}' },
        ])
        await expect(
          client.complete({ ref: { type: 'ref/prompt', name: 'paint__nope' }, argument: { name: 'x', value: '' } }),
        ).rejects.toThrow(/Nothing to complete/)
      } finally {
        await client.close()
      }
    })
})
