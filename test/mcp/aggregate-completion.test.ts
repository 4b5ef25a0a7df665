import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { createMcpHandler, Server } from '@modelcontextprotocol/server'
import { type AggregateGatehouse, startAggregateGatehouse } from '../fixtures/aggregate.ts'

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
  let gatehouse: AggregateGatehouse
  let upstream: ReturnType<typeof startCompletingUpstream>

  beforeAll(async () => {
    gatehouse = await startAggregateGatehouse()
    upstream = startCompletingUpstream()
    await gatehouse.register('paint', { display_name: 'Paint', url: upstream.url, availability: 'default_on' })
  })
  afterAll(async () => {
    await gatehouse.closeClients()
    await upstream.close()
    await gatehouse.close()
  })

  for (const mode of ['legacy', 'auto'] as const)
    it(`completes a prompt's and a template's arguments from the upstream (${mode} client)`, async () => {
      const client = await gatehouse.mcp(gatehouse.owner.token, { era: mode === 'auto' ? 'modern' : 'legacy' })
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
