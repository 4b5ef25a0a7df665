import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import {
  type Account,
  type AggregateGatehouse,
  ECHO_TOOL,
  startAggregateGatehouse,
  startV1Upstream,
  startV2Upstream,
  text,
  textOf,
  type UpstreamTool,
  upstreamToolNames,
  type V1Upstream,
  type V2Upstream,
  withHelpers,
} from '../fixtures/aggregate.ts'
import { createTempDir, findFreePort } from '../fixtures/cli-process.ts'
import { createTestDatabase, startTestServer, usingPostgres } from '../setup.ts'

/**
 * How upstream tools are named and described in `/mcp` (DESIGN.md, "Serving upstreams"):
 * `<slug>__<tool>`, at most 64 characters of `[A-Za-z0-9_.-]`, a longer or invalid name cut and
 * ended with `_` and 6 hex characters of the SHA-256 of the whole name, the same after a restart,
 * in a deterministic order; the definition and the result otherwise unchanged.
 */

const VALID_NAME = /^[A-Za-z0-9_.-]{1,64}$/

/** The first 6 hex characters of SHA-256 of `<slug>__<tool>`, computed here, not by Gatehouse. */
const hashOf = (slug: string, tool: string) => createHash('sha256').update(`${slug}__${tool}`).digest('hex').slice(0, 6)

/** The listed name of a tool whose `<slug>__<tool>` is too long but valid: cut to 57, `_`, the hash. */
const cutName = (slug: string, tool: string) => `${`${slug}__${tool}`.slice(0, 57)}_${hashOf(slug, tool)}`

const answering = (name: string): UpstreamTool => ({ name, run: () => text(`ran ${name}`) })

// `longnames__` is 11 characters: these are 71, differing only in the last one, and exactly 64.
const LONG_A = 'summarise_every_document_in_the_shared_drive_since_monday_a'
const LONG_B = 'summarise_every_document_in_the_shared_drive_since_monday_b'
const EXACTLY_64 = 'x'.repeat(53)
const WITH_SPACE = 'say hello'

const RICH_TOOL: UpstreamTool = {
  name: 'lookup',
  title: 'Look up a record',
  description: 'Finds a record by its ID',
  inputSchema: {
    type: 'object',
    properties: { id: { type: 'string', description: 'The record ID', minLength: 1 } },
    required: ['id'],
    additionalProperties: false,
  },
  outputSchema: {
    type: 'object',
    properties: { found: { type: 'boolean' }, id: { type: 'string' } },
    required: ['found'],
  },
  annotations: { readOnlyHint: true, destructiveHint: false, openWorldHint: false },
  _meta: { 'example.com/owner': 'records-team' },
  run: (args) =>
    args.id === 'missing'
      ? {
          content: [
            { type: 'text', text: 'No record missing' },
            { type: 'image', data: 'iVBORw0KGgo=', mimeType: 'image/png' },
          ],
          structuredContent: { found: false },
          isError: true,
          _meta: { 'example.com/trace': 'trace-404' },
        }
      : {
          content: [{ type: 'text', text: `Record ${args.id}` }],
          structuredContent: { found: true, id: String(args.id) },
          _meta: { 'example.com/trace': 'trace-200' },
        },
}

describe('tool names and definitions in /mcp', () => {
  let gatehouse: AggregateGatehouse
  let v1: V1Upstream
  let v2: V2Upstream
  let alice: Account

  beforeAll(async () => {
    gatehouse = await startAggregateGatehouse()
    alice = await gatehouse.createUser('alice')
    v1 = await startV1Upstream({
      tools: [answering(LONG_A), answering(LONG_B), answering(EXACTLY_64), answering(WITH_SPACE), RICH_TOOL],
    })
    v2 = await startV2Upstream({ tools: [ECHO_TOOL, RICH_TOOL] })
    await gatehouse.register('longnames', { url: v1.url, availability: 'default_on' })
    await gatehouse.register('records', { display_name: 'Records Vault', url: v2.url, availability: 'default_on' })
  })

  afterEach(() => gatehouse.closeClients())

  afterAll(async () => {
    await gatehouse?.close()
    await v1?.close()
    await v2?.close()
  })

  it('cuts a name longer than 64 characters to 64, ending with _ and 6 hex characters of its hash', async () => {
    const names = await upstreamToolNames(await gatehouse.mcp(alice.token))
    const expected = cutName('longnames', LONG_A)
    expect(expected).toHaveLength(64)
    expect(names).toContain(expected)
    for (const name of names) expect(name).toMatch(VALID_NAME)
  })

  it('calls the upstream tool a cut name stands for', async () => {
    const client = await gatehouse.mcp(alice.token)
    const result = await client.callTool({ name: cutName('longnames', LONG_A), arguments: {} })
    expect(result.content).toEqual([{ type: 'text', text: `ran ${LONG_A}` }])
    expect(v1.calls.at(-1)?.tool).toBe(LONG_A)
  })

  it('keeps two long names that differ only past the cut apart, each calling its own tool', async () => {
    const client = await gatehouse.mcp(alice.token)
    const [a, b] = [cutName('longnames', LONG_A), cutName('longnames', LONG_B)]
    expect(a).not.toBe(b)
    expect(await upstreamToolNames(client)).toEqual(expect.arrayContaining([a, b]))
    expect(textOf(await client.callTool({ name: b, arguments: {} }))).toBe(`ran ${LONG_B}`)
    expect(textOf(await client.callTool({ name: a, arguments: {} }))).toBe(`ran ${LONG_A}`)
  })

  it('keeps a valid name of exactly 64 characters as it is', async () => {
    const names = await upstreamToolNames(await gatehouse.mcp(alice.token))
    expect(`longnames__${EXACTLY_64}`).toHaveLength(64)
    expect(names).toContain(`longnames__${EXACTLY_64}`)
  })

  it('makes a name with characters clients refuse valid, ended with its hash, and callable', async () => {
    const client = await gatehouse.mcp(alice.token)
    const listed = (await upstreamToolNames(client)).find((name) => name.startsWith('longnames__say'))
    expect(listed).toBeDefined()
    expect(listed!).toMatch(VALID_NAME)
    expect(listed!).toEndWith(`_${hashOf('longnames', WITH_SPACE)}`)
    expect(textOf(await client.callTool({ name: listed!, arguments: {} }))).toBe(`ran ${WITH_SPACE}`)
  })

  it('lists the tools in the same order for every request, user and protocol revision', async () => {
    const first = await upstreamToolNames(await gatehouse.mcp(alice.token))
    expect(first.length).toBeGreaterThan(4)
    expect(await upstreamToolNames(await gatehouse.mcp(alice.token))).toEqual(first)
    expect(await upstreamToolNames(await gatehouse.mcp(alice.token, { era: 'modern' }))).toEqual(first)
    expect(await upstreamToolNames(await gatehouse.mcp(gatehouse.owner.token))).toEqual(first)
  })

  it('gives every tool a title that names its server', async () => {
    const { tools } = await (await gatehouse.mcp(alice.token)).listTools()
    const records = tools.filter((tool) => tool.name.startsWith('records__'))
    expect(records.map((tool) => tool.name)).toEqual(['records__echo', 'records__lookup'])
    for (const tool of records) expect(tool.title).toContain('Records Vault')
    expect(records[1].title).toContain(RICH_TOOL.title!)
  })

  it('passes the description, input and output schemas, annotations and _meta through unchanged', async () => {
    for (const era of ['legacy', 'modern'] as const) {
      const { tools } = await (await gatehouse.mcp(alice.token, { era })).listTools()
      for (const name of ['records__lookup', 'longnames__lookup']) {
        const tool = tools.find((candidate) => candidate.name === name)
        expect(tool).toBeDefined()
        expect<Record<string, unknown>>({
          description: tool!.description,
          inputSchema: tool!.inputSchema,
          outputSchema: tool!.outputSchema,
          annotations: tool!.annotations,
          _meta: tool!._meta,
        }).toEqual({
          description: RICH_TOOL.description,
          inputSchema: RICH_TOOL.inputSchema,
          outputSchema: RICH_TOOL.outputSchema,
          annotations: RICH_TOOL.annotations,
          _meta: RICH_TOOL._meta,
        })
      }
    }
  })

  it('passes a result’s content, structuredContent and _meta through unchanged', async () => {
    for (const era of ['legacy', 'modern'] as const) {
      const client = await gatehouse.mcp(alice.token, { era })
      for (const name of ['records__lookup', 'longnames__lookup']) {
        const result = await client.callTool({ name, arguments: { id: 'r-1' } })
        expect(result.content).toEqual([{ type: 'text', text: 'Record r-1' }])
        expect(result.structuredContent).toEqual({ found: true, id: 'r-1' })
        expect(result.isError).toBeFalsy()
        expect(result._meta).toMatchObject({ 'example.com/trace': 'trace-200' })
      }
    }
  })

  it('passes an upstream’s tool error through unchanged: isError, content, structuredContent and _meta', async () => {
    for (const era of ['legacy', 'modern'] as const) {
      const client = await gatehouse.mcp(alice.token, { era })
      for (const name of ['records__lookup', 'longnames__lookup']) {
        const result = await client.callTool({ name, arguments: { id: 'missing' } })
        expect(result.isError).toBe(true)
        expect(result.content).toEqual([
          { type: 'text', text: 'No record missing' },
          { type: 'image', data: 'iVBORw0KGgo=', mimeType: 'image/png' },
        ])
        expect(result.structuredContent).toEqual({ found: false })
        expect(result._meta).toMatchObject({ 'example.com/trace': 'trace-404' })
      }
    }
  })
})

describe('tool names across a restart', () => {
  it('names every tool the same, in the same order, after a restart on the same database', async () => {
    const upstream = await startV1Upstream({ tools: [answering(LONG_A), answering(WITH_SPACE), ECHO_TOOL] })
    const dir = createTempDir()
    const database = usingPostgres
      ? await createTestDatabase()
      : { url: `sqlite:${join(dir.path, 'gatehouse.db')}`, drop: async () => {} }
    const port = await findFreePort()
    const config = {
      port,
      publicUrl: `http://127.0.0.1:${port}`,
      outboundAllowPrivate: true,
      databaseUrl: database.url,
    }
    let second: ReturnType<typeof withHelpers> | undefined
    try {
      const first = await startAggregateGatehouse(config)
      await first.register('longnames', { url: upstream.url, availability: 'default_on' })
      await first.register('again', { url: upstream.url, availability: 'default_on' })
      const before = await upstreamToolNames(await first.mcp(first.owner.token))
      // The database is the test's own (`databaseUrl`), so it outlives the first server.
      await first.close()

      second = withHelpers(await startTestServer(config), first.owner)
      const after = await upstreamToolNames(await second.mcp(first.owner.token))
      expect(after).toEqual(before)
      expect(after).toContain(cutName('longnames', LONG_A))
      expect(after).toContain(cutName('again', LONG_A))
      expect(
        textOf(await (await second.mcp(first.owner.token)).callTool({ name: after[0], arguments: {} })),
      ).toStartWith('ran ')
    } finally {
      await second?.close()
      await upstream.close()
      await database.drop()
      dir.remove()
    }
  })
})
