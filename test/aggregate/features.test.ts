import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import type { Progress } from '@modelcontextprotocol/client'
import { acceptedContent, inputRequired } from '@modelcontextprotocol/server'
import {
  type Account,
  type AggregateGatehouse,
  ECHO_TOOL,
  refusalOf,
  startAggregateGatehouse,
  startV1Upstream,
  startV2Upstream,
  text,
  textOf,
  type UpstreamTool,
  type V1Upstream,
  type V2Upstream,
  within,
} from '../fixtures/aggregate.ts'
import {
  FIXTURE_PROMPT,
  FIXTURE_RESOURCE,
  startV1SessionMcpServer,
  startV2McpServer,
  type UpstreamServer,
} from '../fixtures/upstreams.ts'

/**
 * What crosses the fan-out besides tools/list and plain calls (DESIGN.md, "Serving upstreams";
 * issue 13, "Protocol features across the fan-out"): resources and prompts, progress, a 2026
 * client's cancellation, and a 2026 upstream's multi-round-trip request for input.
 */

let gatehouse: AggregateGatehouse
let alice: Account
let bob: Account

beforeAll(async () => {
  gatehouse = await startAggregateGatehouse()
  ;[alice, bob] = await Promise.all([gatehouse.createUser('alice'), gatehouse.createUser('bob')])
})

afterEach(() => gatehouse.closeClients())

afterAll(() => gatehouse?.close())

describe('resources and prompts', () => {
  let v2: UpstreamServer
  let v1: Awaited<ReturnType<typeof startV1SessionMcpServer>>

  beforeAll(async () => {
    v2 = await startV2McpServer()
    v1 = await startV1SessionMcpServer()
    await gatehouse.register('docs', { display_name: 'Docs', url: v2.url, availability: 'default_on' })
    await gatehouse.register('wiki', { display_name: 'Wiki', url: v1.url, availability: 'default_on' })
  })

  afterAll(async () => {
    await v2?.close()
    await v1?.close()
  })

  const wrapped = (slug: string) => `gatehouse://${slug}/${encodeURIComponent(FIXTURE_RESOURCE.uri)}`

  it('lists each upstream’s resources under gatehouse://<slug>/<encoded upstream URI>', async () => {
    for (const era of ['legacy', 'modern'] as const) {
      const { resources } = await (await gatehouse.mcp(alice.token, { era })).listResources()
      const uris = resources.map((resource) => resource.uri)
      expect(uris).toEqual(expect.arrayContaining([wrapped('docs'), wrapped('wiki')]))
      expect(resources.find((resource) => resource.uri === wrapped('docs'))).toMatchObject({
        name: FIXTURE_RESOURCE.name,
        mimeType: 'text/markdown',
      })
    }
  })

  it('reads a wrapped resource from its own upstream', async () => {
    for (const era of ['legacy', 'modern'] as const) {
      const client = await gatehouse.mcp(alice.token, { era })
      for (const slug of ['docs', 'wiki']) {
        const { contents } = await client.readResource({ uri: wrapped(slug) })
        expect(contents).toHaveLength(1)
        expect(contents[0]).toMatchObject({ uri: wrapped(slug), text: FIXTURE_RESOURCE.text })
      }
    }
  })

  it('refuses to read a resource of a server the user does not have, naming it', async () => {
    const client = await gatehouse.mcp(alice.token)
    const uri = `gatehouse://nowhere/${encodeURIComponent(FIXTURE_RESOURCE.uri)}`
    await expect(client.readResource({ uri })).rejects.toThrow(uri)
  })

  it('lists each upstream’s prompts as <slug>__<prompt>', async () => {
    const { prompts } = await (await gatehouse.mcp(alice.token)).listPrompts()
    const names = prompts.map((prompt) => prompt.name)
    expect(names).toEqual(expect.arrayContaining(['docs__greet', 'wiki__greet']))
    expect(prompts.find((prompt) => prompt.name === 'docs__greet')?.description).toBe(FIXTURE_PROMPT.description)
  })

  it('gets a prompt’s messages from its own upstream', async () => {
    for (const era of ['legacy', 'modern'] as const) {
      const client = await gatehouse.mcp(alice.token, { era })
      for (const name of ['docs__greet', 'wiki__greet']) {
        const { messages } = await client.getPrompt({ name, arguments: { name: 'Ada' } })
        expect(messages).toEqual([{ role: 'user', content: { type: 'text', text: 'Say hello to Ada' } }])
      }
    }
  })

  it('refuses an unknown prompt, naming it', async () => {
    const client = await gatehouse.mcp(alice.token)
    await expect(client.getPrompt({ name: 'docs__no_such_prompt', arguments: {} })).rejects.toThrow(
      'docs__no_such_prompt',
    )
  })
})

describe('resource templates', () => {
  let v2: V2Upstream

  beforeAll(async () => {
    v2 = await startV2Upstream({ templates: [{ name: 'note', uriTemplate: 'note://notes/{id}' }] })
    await gatehouse.register('notes', { url: v2.url, availability: 'default_on' })
  })

  afterAll(() => v2?.close())

  it('lists an upstream’s template wrapped, and reads a URI expanded from it at the upstream’s template', async () => {
    const client = await gatehouse.mcp(alice.token)
    const { resourceTemplates } = await client.listResourceTemplates()
    const template = resourceTemplates.find((candidate) => candidate.name === 'note')
    expect(template?.uriTemplate).toStartWith('gatehouse://notes/')
    expect(template?.uriTemplate).toContain('{id}')
    const uri = template!.uriTemplate.replace('{id}', 'n-42')
    const { contents } = await client.readResource({ uri })
    expect(v2.reads).toEqual(['note://notes/n-42'])
    expect(contents).toEqual([expect.objectContaining({ text: 'read note://notes/n-42' })])
  })
})

describe('progress', () => {
  const COUNTING: UpstreamTool = {
    name: 'count',
    description: 'Counts to three, reporting each step',
    run: async (_args, call) => {
      for (const step of [1, 2, 3]) await call.sendProgress(step, 3, `step ${step}`)
      return text(`counted, token ${call.progressToken === undefined ? 'absent' : 'present'}`)
    },
  }
  let v2: V2Upstream
  let v1: V1Upstream

  beforeAll(async () => {
    v2 = await startV2Upstream({ tools: [COUNTING] })
    v1 = await startV1Upstream({ tools: [COUNTING] })
    await gatehouse.register('counter-v2', { url: v2.url, availability: 'default_on' })
    await gatehouse.register('counter-v1', { url: v1.url, availability: 'default_on' })
  })

  afterAll(async () => {
    await v2?.close()
    await v1?.close()
  })

  for (const era of ['legacy', 'modern'] as const)
    it(`relays an upstream’s progress notifications to a ${era === 'legacy' ? '2025' : '2026-07-28'} client`, async () => {
      const client = await gatehouse.mcp(alice.token, { era })
      for (const slug of ['counter-v2', 'counter-v1']) {
        const seen: Progress[] = []
        const result = await client.callTool(
          { name: `${slug}__count`, arguments: {} },
          { onprogress: (progress) => void seen.push(progress) },
        )
        expect(textOf(result)).toBe('counted, token present')
        expect(seen.map(({ progress, total, message }) => ({ progress, total, message }))).toEqual([
          { progress: 1, total: 3, message: 'step 1' },
          { progress: 2, total: 3, message: 'step 2' },
          { progress: 3, total: 3, message: 'step 3' },
        ])
      }
    })
})

describe('cancellation by a 2026-07-28 client', () => {
  let v2: V2Upstream
  let started!: () => void
  let aborted!: () => void
  let callStarted: Promise<void>
  let upstreamAborted: Promise<void>

  beforeAll(async () => {
    const WAITING: UpstreamTool = {
      name: 'wait',
      description: 'Waits until it is cancelled',
      run: (_args, call) => {
        started()
        return new Promise((resolve) => {
          call.signal.addEventListener('abort', () => {
            aborted()
            resolve(text('aborted'))
          })
        })
      },
    }
    v2 = await startV2Upstream({ tools: [WAITING, ECHO_TOOL] })
    await gatehouse.register('waiter', { url: v2.url, availability: 'default_on' })
  })

  afterAll(() => v2?.close())

  for (const [how, options] of [
    ['a plain call', {}],
    ['a call that asks for progress', { onprogress: () => {} }],
  ] as const)
    it(`aborts the upstream call in ${how}, and the next call goes through`, async () => {
      callStarted = new Promise((resolve) => {
        started = resolve
      })
      upstreamAborted = new Promise((resolve) => {
        aborted = resolve
      })
      const client = await gatehouse.mcp(alice.token, { era: 'modern' })
      const cancel = new AbortController()
      const call = client.callTool({ name: 'waiter__wait', arguments: {} }, { ...options, signal: cancel.signal })
      const outcome = call.then(
        () => 'answered',
        () => 'rejected',
      )
      await within(callStarted, 5_000, 'the upstream call')
      cancel.abort()
      expect(await outcome).toBe('rejected')
      await within(upstreamAborted, 5_000, 'the upstream seeing the abort')
      const next = await client.callTool({ name: 'waiter__echo', arguments: { text: 'still here' } })
      expect(next.content).toEqual([{ type: 'text', text: 'still here' }])
    })
})

describe('a 2026 upstream’s request for input (input_required)', () => {
  const UPSTREAM_STATE = 'upstream-state-7'
  const CONFIRMING: UpstreamTool = {
    name: 'deploy',
    description: 'Deploys after the user confirms',
    inputSchema: { type: 'object', properties: { env: { type: 'string' } }, required: ['env'] },
    run: (args, call) => {
      const answer = acceptedContent(call.inputResponses, 'confirm')
      if (answer === undefined)
        return inputRequired({
          inputRequests: {
            confirm: inputRequired.elicit({
              message: `Deploy to ${String(args.env)}?`,
              requestedSchema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] },
            }),
          },
          requestState: UPSTREAM_STATE,
        })
      return text(`deployed to ${String(args.env)}: ok=${String(answer.ok)}, state=${String(call.requestState)}`)
    },
  }
  let v2: V2Upstream
  const elicitation = { capabilities: { elicitation: { form: {} } } }

  beforeAll(async () => {
    v2 = await startV2Upstream({ tools: [CONFIRMING] })
    await gatehouse.register('deployer', { url: v2.url, availability: 'default_on' })
  })

  afterAll(() => v2?.close())

  it('completes through a 2026-07-28 client: its elicitation handler is asked, the final result arrives', async () => {
    const client = await gatehouse.mcp(alice.token, { era: 'modern', options: elicitation })
    const asked: unknown[] = []
    client.setRequestHandler('elicitation/create', async (request) => {
      asked.push(request.params)
      return { action: 'accept', content: { ok: true } }
    })
    const result = await client.callTool({ name: 'deployer__deploy', arguments: { env: 'staging' } })
    expect(asked).toHaveLength(1)
    expect(asked[0]).toMatchObject({ message: 'Deploy to staging?' })
    expect(textOf(result)).toBe(`deployed to staging: ok=true, state=${UPSTREAM_STATE}`)
    expect(result.isError).toBeFalsy()
  })

  /** The first round by hand: what a 2026 client gets back before it answers. */
  async function firstRound(account: Account) {
    const client = await gatehouse.mcp(account.token, {
      era: 'modern',
      options: { ...elicitation, inputRequired: { autoFulfill: false } },
    })
    const round = (await client.callTool({ name: 'deployer__deploy', arguments: { env: 'prod' } }, {
      allowInputRequired: true,
    } as never)) as unknown as { resultType?: string; requestState?: string; inputRequests?: Record<string, unknown> }
    return { client, round }
  }

  const retry = (client: Awaited<ReturnType<typeof firstRound>>['client'], requestState: string | undefined) =>
    client.callTool(
      {
        name: 'deployer__deploy',
        arguments: { env: 'prod' },
        inputResponses: { confirm: { action: 'accept', content: { ok: true } } },
        requestState,
      } as never,
      { allowInputRequired: true } as never,
    )

  it('relays the upstream’s state sealed, not as the upstream wrote it, and takes it back on the retry', async () => {
    const { client, round } = await firstRound(alice)
    expect(round.resultType).toBe('input_required')
    expect(round.inputRequests?.confirm).toMatchObject({ method: 'elicitation/create' })
    expect(round.requestState).toBeString()
    expect(round.requestState).not.toBe(UPSTREAM_STATE)
    expect(textOf(await retry(client, round.requestState))).toBe(`deployed to prod: ok=true, state=${UPSTREAM_STATE}`)
  })

  it('refuses a retry whose state was altered, without asking the upstream', async () => {
    const { client, round } = await firstRound(alice)
    const calls = v2.calls.length
    const state = round.requestState!
    const altered = `${state.slice(0, -2)}${state.endsWith('AA') ? 'BB' : 'AA'}`
    expect(await refusalOf(retry(client, altered))).toMatch(/requestState/i)
    expect(v2.calls.length).toBe(calls)
  })

  it('refuses a retry by another user with the first user’s state', async () => {
    const { round } = await firstRound(alice)
    const { client: bobs } = await firstRound(bob)
    const calls = v2.calls.length
    expect(await refusalOf(retry(bobs, round.requestState))).toMatch(/requestState/i)
    expect(v2.calls.length).toBe(calls)
  })
})

describe('a 2025 upstream’s request for input mid-call', () => {
  let v1: V1Upstream
  const answers: string[] = []

  beforeAll(async () => {
    const ASKING: UpstreamTool = {
      name: 'ask',
      description: 'Asks the user before it answers',
      run: async (_args, call) => {
        try {
          return text(`answered ${JSON.stringify(await call.elicit!('Proceed?'))}`)
        } catch (error) {
          answers.push((error as Error).message)
          return { ...text(`could not ask: ${(error as Error).message}`), isError: true }
        }
      },
    }
    v1 = await startV1Upstream({ tools: [ASKING] })
    await gatehouse.register('asker', { display_name: 'Asker', url: v1.url, availability: 'default_on' })
  })

  afterAll(() => v1?.close())

  for (const [how, options] of [
    ['a plain call', undefined],
    ['a call that asks for progress', { onprogress: () => {} }],
  ] as const)
    it(`is answered, in ${how}, with an error that names the limit and points to /mcp/servers/<slug>`, async () => {
      const client = await gatehouse.mcp(alice.token, { options: { capabilities: { elicitation: { form: {} } } } })
      let asked = false
      client.setRequestHandler('elicitation/create', async () => {
        asked = true
        return { action: 'accept', content: { ok: true } }
      })
      const before = answers.length
      const result = await within(
        client.callTool({ name: 'asker__ask', arguments: {} }, options),
        4_000,
        'the call to be answered',
      )
      expect(asked).toBe(false)
      expect(answers).toHaveLength(before + 1)
      expect(answers.at(-1)).toContain(`${gatehouse.publicUrl}/mcp/servers/asker`)
      expect(answers.at(-1)).toContain('elicitation/create')
      expect(result.isError).toBe(true)
    })
})
