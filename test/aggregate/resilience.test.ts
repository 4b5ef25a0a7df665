import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import {
  type Account,
  type AggregateGatehouse,
  eventually,
  startAggregateGatehouse,
  startV1Upstream,
  startV2Upstream,
  text,
  textOf,
  upstreamToolNames,
} from '../fixtures/aggregate.ts'
import { findFreePort } from '../fixtures/cli-process.ts'
import { postMcp, toolCall } from '../mcp/support-mcp-server.ts'

/**
 * One upstream's trouble stays its own (DESIGN.md, "Serving upstreams"): a stopped, dead or hanging
 * upstream never fails or empties the user's list, and a call to its tool is a tool error naming
 * the server, never an HTTP 5xx. And an upstream's `list_changed` reaches the next `tools/list`.
 */

let gatehouse: AggregateGatehouse
let alice: Account
const started: { close: () => Promise<void> }[] = []

beforeAll(async () => {
  gatehouse = await startAggregateGatehouse()
  alice = await gatehouse.createUser('alice')
})

afterEach(async () => {
  await gatehouse.closeClients()
  await Promise.all(started.splice(0).map((upstream) => upstream.close()))
})

afterAll(() => gatehouse?.close())

/** A raw `tools/call` on `/mcp` as a 2025-06-18 client sends it: the HTTP status and the JSON-RPC answer. */
const postToolCall = (url: string, token: string, name: string, args: Record<string, unknown> = {}) =>
  postMcp(url, token, toolCall(name, args))

let servers = 0
const nextSlug = (name: string) => `${name}-${++servers}`

describe('an upstream that stops', () => {
  for (const [kind, start] of [
    ['v2', startV2Upstream],
    ['v1 session-based', startV1Upstream],
  ] as const) {
    it(`leaves the other upstreams listed and callable when a ${kind} upstream stops`, async () => {
      const healthy = await startV2Upstream()
      const doomed = await start()
      started.push(healthy)
      const [alive, gone] = [nextSlug('alive'), nextSlug('gone')]
      await gatehouse.register(alive, { url: healthy.url, availability: 'default_on' })
      await gatehouse.register(gone, { display_name: 'Doomed Service', url: doomed.url, availability: 'default_on' })
      const client = await gatehouse.mcp(alice.token)
      expect(await upstreamToolNames(client)).toEqual(expect.arrayContaining([`${alive}__echo`, `${gone}__echo`]))

      await doomed.close()
      expect(await upstreamToolNames(client)).toEqual(expect.arrayContaining([`${alive}__echo`, `${alive}__whoami`]))
      const result = await client.callTool({ name: `${alive}__echo`, arguments: { text: 'fine' } })
      expect(result.content).toEqual([{ type: 'text', text: 'fine' }])
    })

    it(`answers a call to a stopped ${kind} upstream’s tool with a tool error naming the server, not a 5xx`, async () => {
      const doomed = await start()
      const gone = nextSlug('gone')
      await gatehouse.register(gone, { display_name: 'Doomed Service', url: doomed.url, availability: 'default_on' })
      const client = await gatehouse.mcp(alice.token)
      expect(textOf(await client.callTool({ name: `${gone}__echo`, arguments: { text: 'before' } }))).toBe('before')

      await doomed.close()
      const result = await client.callTool({ name: `${gone}__echo`, arguments: { text: 'after' } })
      expect(result.isError).toBe(true)
      expect(textOf(result)).toContain('Doomed Service')

      const raw = await postToolCall(gatehouse.url, alice.token, `${gone}__echo`, { text: 'raw' })
      expect(raw.status).toBe(200)
      expect(raw.body.result.isError).toBe(true)
      expect(raw.body.result.content[0].text).toContain('Doomed Service')
    })
  }

  it('leaves out an upstream that never answered and lists the rest', async () => {
    const healthy = await startV2Upstream()
    started.push(healthy)
    const [alive, dead] = [nextSlug('alive'), nextSlug('dead')]
    await gatehouse.register(alive, { url: healthy.url, availability: 'default_on' })
    await gatehouse.register(dead, { url: `http://127.0.0.1:${await findFreePort()}/mcp`, availability: 'default_on' })
    const names = await upstreamToolNames(await gatehouse.mcp(alice.token))
    expect(names).toEqual(expect.arrayContaining([`${alive}__echo`, `${alive}__whoami`]))
    expect(names.filter((name) => name.startsWith(`${dead}__`))).toEqual([])
  })

  it('answers a call to a tool of an upstream that never answered with an error naming the tool, not a 5xx', async () => {
    const dead = nextSlug('dead')
    await gatehouse.register(dead, { url: `http://127.0.0.1:${await findFreePort()}/mcp`, availability: 'default_on' })
    const raw = await postToolCall(gatehouse.url, alice.token, `${dead}__echo`, { text: 'x' })
    expect(raw.status).toBeLessThan(500)
    expect(JSON.stringify(raw.body)).toContain(`${dead}__echo`)
  })
})

describe('a 2025-era upstream that forgot its session', () => {
  it('gets a new session, and the user’s next call goes through', async () => {
    const upstream = await startV1Upstream()
    started.push(upstream)
    const slug = nextSlug('forgetful')
    await gatehouse.register(slug, { url: upstream.url, availability: 'default_on' })
    const client = await gatehouse.mcp(alice.token)
    expect(textOf(await client.callTool({ name: `${slug}__echo`, arguments: { text: 'one' } }))).toBe('one')
    const sessions = new Set(upstream.calls.map((call) => call.headers.get('mcp-session-id')))

    upstream.forgetSessions()
    const result = await client.callTool({ name: `${slug}__echo`, arguments: { text: 'two' } })
    expect(result.isError).toBeFalsy()
    expect(textOf(result)).toBe('two')
    expect(sessions.has(upstream.calls.at(-1)!.headers.get('mcp-session-id'))).toBe(false)
    expect(upstream.sessionCount).toBe(1)
  })
})

describe('an upstream that hangs (GATEHOUSE_UPSTREAM_TIMEOUT 1 s)', () => {
  let impatient: AggregateGatehouse

  beforeAll(async () => {
    impatient = await startAggregateGatehouse({ upstreamTimeoutSeconds: 1 })
  })

  afterAll(() => impatient?.close())

  it('is left out of the list after the time cap, and the others are listed', async () => {
    const hanging = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      idleTimeout: 0,
      fetch: () => new Promise<Response>(() => {}),
    })
    const healthy = await startV2Upstream()
    started.push(healthy, { close: async () => void hanging.stop(true) })
    await impatient.register('healthy', { url: healthy.url, availability: 'default_on' })
    await impatient.register('hanging', { url: `http://127.0.0.1:${hanging.port}/mcp`, availability: 'default_on' })
    const names = await upstreamToolNames(await impatient.mcp(impatient.owner.token))
    expect(names).toEqual(['healthy__echo', 'healthy__whoami'])
  })

  it('answers a call that outlasts the timeout with a tool error naming the server, not a 5xx', async () => {
    const upstream = await startV2Upstream({
      tools: [
        {
          name: 'stall',
          run: (_args, call) =>
            new Promise((resolve) => call.signal.addEventListener('abort', () => resolve(text('late')))),
        },
      ],
    })
    started.push(upstream)
    await impatient.register('stalling', {
      display_name: 'Stalling Service',
      url: upstream.url,
      availability: 'default_on',
    })
    const raw = await postToolCall(impatient.url, impatient.owner.token, 'stalling__stall')
    expect(raw.status).toBe(200)
    expect(raw.body.result.isError).toBe(true)
    expect(raw.body.result.content[0].text).toContain('Stalling Service')
  })
})

describe('an upstream’s list_changed notification', () => {
  for (const [kind, start] of [
    ['2026 (SDK v2, subscriptions/listen)', startV2Upstream],
    ['2025 session-based (SDK v1)', startV1Upstream],
  ] as const)
    it(`shows a ${kind} upstream’s new tool in the next tools/list`, async () => {
      const upstream = await start()
      started.push(upstream)
      const slug = nextSlug('growing')
      await gatehouse.register(slug, { url: upstream.url, availability: 'default_on' })
      const client = await gatehouse.mcp(alice.token)
      // Listed once, so the upstream's list is cached (60 s) when the tool is added.
      expect(await upstreamToolNames(client)).not.toContain(`${slug}__fresh`)

      await upstream.addTool({ name: 'fresh', description: 'Added while connected', run: () => text('fresh') })
      await eventually(
        async () => ((await upstreamToolNames(client)).includes(`${slug}__fresh`) ? true : undefined),
        `${slug}__fresh in tools/list`,
      )
      expect(textOf(await client.callTool({ name: `${slug}__fresh`, arguments: {} }))).toBe('fresh')
    })

  it('is passed on to a 2026-07-28 client listening for tool list changes', async () => {
    const upstream = await startV2Upstream()
    started.push(upstream)
    const slug = nextSlug('announcing')
    await gatehouse.register(slug, { url: upstream.url, availability: 'default_on' })
    const heard: string[][] = []
    const client = await gatehouse.mcp(alice.token, {
      era: 'modern',
      options: {
        listChanged: {
          tools: {
            debounceMs: 0,
            onChanged: (_error, tools) => void heard.push((tools ?? []).map((tool) => tool.name)),
          },
        },
      },
    })
    expect(await upstreamToolNames(client)).not.toContain(`${slug}__fresh`)

    upstream.addTool({ name: 'fresh', run: () => text('fresh') })
    await eventually(
      async () => (heard.some((names) => names.includes(`${slug}__fresh`)) ? true : undefined),
      'the client to hear of the new tool',
    )
  })
})
