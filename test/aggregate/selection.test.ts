import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import {
  type Account,
  type AggregateGatehouse,
  refusalOf,
  seenHeaders,
  startAggregateGatehouse,
  startV1Upstream,
  startV2Upstream,
  text,
  type UpstreamTool,
  upstreamToolNames,
  type V1Upstream,
  type V2Upstream,
} from '../fixtures/aggregate.ts'

/**
 * Which servers and tools each user's `/mcp` holds (DESIGN.md, "Serving upstreams"): enabled, in
 * one of the user's organizations, `force_on`, `default_on` not deselected or `default_off`
 * selected, each server's tools after its allow and deny lists. Two members in two organizations
 * (both also in the default one), servers registered through the API by the owner.
 */

const fileTool = (name: string): UpstreamTool => ({ name, description: `The ${name} tool`, run: () => text(name) })
const FILE_TOOLS = ['read_file', 'read_dir', 'write_file', 'delete_file'].map(fileTool)

let gatehouse: AggregateGatehouse
let upstream: V2Upstream
let files: V1Upstream
let alice: Account
let bob: Account
let acme: string
let globex: string
let always: string

/** The slugs of the servers whose tools the user's `/mcp` lists, sorted. */
async function slugsOf(account: Account): Promise<string[]> {
  const names = await upstreamToolNames(await gatehouse.mcp(account.token))
  return [...new Set(names.map((name) => name.slice(0, name.indexOf('__'))))].sort()
}

/** The upstream names of one server's tools in the user's `/mcp`, in listed order. */
async function toolsOf(account: Account, slug: string): Promise<string[]> {
  const names = await upstreamToolNames(await gatehouse.mcp(account.token))
  return names.filter((name) => name.startsWith(`${slug}__`)).map((name) => name.slice(slug.length + 2))
}

beforeAll(async () => {
  gatehouse = await startAggregateGatehouse()
  upstream = await startV2Upstream()
  files = await startV1Upstream({ tools: FILE_TOOLS })
  acme = await gatehouse.createOrganization('acme')
  globex = await gatehouse.createOrganization('globex')
  ;[alice, bob] = await Promise.all([gatehouse.createUser('alice'), gatehouse.createUser('bob')])
  await gatehouse.addMember(acme, alice.id)
  await gatehouse.addMember(globex, bob.id)
  const on = { url: upstream.url, availability: 'default_on' }
  await gatehouse.register('acme-tools', { ...on, organization_id: acme })
  await gatehouse.register('globex-tools', { ...on, organization_id: globex })
  await gatehouse.register('everyone', on)
  await gatehouse.register('dormant', { ...on, enabled: false })
  always = (await gatehouse.register('always', { url: upstream.url, availability: 'force_on' })).id
  const listed = { url: files.url, availability: 'default_on' }
  await gatehouse.register('files-allow', { ...listed, tool_allow_list: ['read_*'] })
  await gatehouse.register('files-deny', { ...listed, tool_deny_list: ['delete_*', 'write_file'] })
  await gatehouse.register('files-both', { ...listed, tool_allow_list: ['*_file'], tool_deny_list: ['delete_file'] })
})

afterEach(() => gatehouse.closeClients())

afterAll(async () => {
  await gatehouse?.close()
  await upstream?.close()
  await files?.close()
})

describe('which servers a user’s /mcp holds', () => {
  const common = ['always', 'everyone', 'files-allow', 'files-both', 'files-deny']

  it('lists for each member exactly the enabled, switched-on servers of their own organizations', async () => {
    expect(await slugsOf(alice)).toEqual(['acme-tools', ...common].sort())
    expect(await slugsOf(bob)).toEqual([...common, 'globex-tools'].sort())
  })

  it('lists the tools of each such server under <slug>__<tool>', async () => {
    const names = await upstreamToolNames(await gatehouse.mcp(alice.token))
    expect(names).toContain('acme-tools__echo')
    expect(names).toContain('acme-tools__whoami')
    expect(names).toContain('everyone__echo')
    expect(names).toContain('always__whoami')
  })

  it('refuses a member a tool of another organization’s server, naming it, and never calls that upstream', async () => {
    const client = await gatehouse.mcp(alice.token)
    const before = upstream.calls.length
    const refusal = await refusalOf(client.callTool({ name: 'globex-tools__echo', arguments: { text: 'x' } }))
    expect(refusal).toContain('globex-tools__echo')
    expect(upstream.calls.length).toBe(before)
  })

  it('leaves out a disabled server, and drops a listed one at the next tools/list once an admin disables it', async () => {
    expect(await slugsOf(alice)).not.toContain('dormant')
    const server = await gatehouse.register('switch', { url: upstream.url, availability: 'default_on' })
    expect(await slugsOf(alice)).toContain('switch')
    await gatehouse.update(server.id, { enabled: false })
    expect(await slugsOf(alice)).not.toContain('switch')
  })

  it('adds a default_off server once the user selects it, for that user only', async () => {
    const server = await gatehouse.register('opt-in', { url: upstream.url, availability: 'default_off' })
    expect(await slugsOf(alice)).not.toContain('opt-in')
    expect((await gatehouse.select(server.id, true, alice.token)).selected).toBe(true)
    expect(await toolsOf(alice, 'opt-in')).toEqual(['echo', 'whoami'])
    expect(await slugsOf(bob)).not.toContain('opt-in')
  })

  it('keeps a server registered without an availability out of /mcp until the user selects it', async () => {
    const server = await gatehouse.register('unstated', { url: upstream.url })
    expect(await slugsOf(alice)).not.toContain('unstated')
    await gatehouse.select(server.id, true, alice.token)
    expect(await slugsOf(alice)).toContain('unstated')
  })

  it('drops a default_on server the user deselects, and brings it back when they select it again', async () => {
    const server = await gatehouse.register('optional', { url: upstream.url, availability: 'default_on' })
    expect(await slugsOf(alice)).toContain('optional')
    expect((await gatehouse.select(server.id, false, alice.token)).selected).toBe(false)
    expect(await slugsOf(alice)).not.toContain('optional')
    expect(await slugsOf(bob)).toContain('optional')
    await gatehouse.select(server.id, true, alice.token)
    expect(await slugsOf(alice)).toContain('optional')
  })

  it('keeps a force_on server listed when the user deselects it', async () => {
    expect((await gatehouse.select(always, false, alice.token)).selected).toBe(true)
    expect(await toolsOf(alice, 'always')).toEqual(['echo', 'whoami'])
  })
})

describe('the allow and deny lists', () => {
  it('let only the allow list’s tools through, matching a * glob', async () => {
    expect(await toolsOf(alice, 'files-allow')).toEqual(['read_file', 'read_dir'])
  })

  it('remove the deny list’s tools, exact names and globs', async () => {
    expect(await toolsOf(alice, 'files-deny')).toEqual(['read_file', 'read_dir'])
  })

  it('apply the allow list first, then the deny list', async () => {
    expect(await toolsOf(alice, 'files-both')).toEqual(['read_file', 'write_file'])
  })

  it('refuse a call to a tool the lists filter out, naming it, without calling the upstream', async () => {
    const client = await gatehouse.mcp(alice.token)
    const before = files.calls.length
    const refusal = await refusalOf(client.callTool({ name: 'files-deny__delete_file', arguments: {} }))
    expect(refusal).toContain('files-deny__delete_file')
    expect(files.calls.length).toBe(before)
  })

  it('refuse a call to a tool no server has, naming it', async () => {
    const client = await gatehouse.mcp(alice.token)
    const refusal = await refusalOf(client.callTool({ name: 'everyone__no_such_tool', arguments: {} }))
    expect(refusal).toContain('everyone__no_such_tool')
  })

  it('take effect at the next tools/list after an admin edits them', async () => {
    const server = await gatehouse.register('files-edited', { url: files.url, availability: 'default_on' })
    expect(await toolsOf(alice, 'files-edited')).toEqual(['read_file', 'read_dir', 'write_file', 'delete_file'])
    await gatehouse.update(server.id, { tool_deny_list: ['read_*'] })
    expect(await toolsOf(alice, 'files-edited')).toEqual(['write_file', 'delete_file'])
  })

  it('let a call through to a tool the lists allow', async () => {
    const client = await gatehouse.mcp(alice.token)
    const result = await client.callTool({ name: 'files-both__write_file', arguments: {} })
    expect(result.content).toEqual([{ type: 'text', text: 'write_file' }])
    expect(files.calls.at(-1)?.tool).toBe('write_file')
  })
})

describe('changes an admin makes', () => {
  it('drop a deleted server at the next tools/list', async () => {
    const server = await gatehouse.register('short-lived', { url: upstream.url, availability: 'default_on' })
    expect(await slugsOf(alice)).toContain('short-lived')
    expect((await gatehouse.api('DELETE', `/api/v1/mcp/servers/${server.id}`)).status).toBe(204)
    expect(await slugsOf(alice)).not.toContain('short-lived')
  })

  it('drop an organization’s servers at the next tools/list once the user leaves it', async () => {
    const initech = await gatehouse.createOrganization('initech')
    await gatehouse.addMember(initech, alice.id)
    await gatehouse.register('initech-tools', {
      url: upstream.url,
      availability: 'default_on',
      organization_id: initech,
    })
    expect(await slugsOf(alice)).toContain('initech-tools')
    const removed = await gatehouse.api('DELETE', `/api/v1/organizations/${initech}/members/${alice.id}`)
    expect(removed.status).toBe(204)
    expect(await slugsOf(alice)).not.toContain('initech-tools')
    const refusal = await refusalOf(
      (await gatehouse.mcp(alice.token)).callTool({ name: 'initech-tools__echo', arguments: { text: 'x' } }),
    )
    expect(refusal).toContain('initech-tools__echo')
  })

  it('list the new upstream’s tools at the next tools/list after the URL changes', async () => {
    const server = await gatehouse.register('moving', { url: upstream.url, availability: 'default_on' })
    expect(await toolsOf(alice, 'moving')).toEqual(['echo', 'whoami'])
    await gatehouse.update(server.id, { url: files.url })
    expect(await toolsOf(alice, 'moving')).toEqual(['read_file', 'read_dir', 'write_file', 'delete_file'])
  })

  it('send the new API key from the next call after each change of it', async () => {
    const server = await gatehouse.register('rotating', {
      url: upstream.url,
      availability: 'default_on',
      auth_type: 'api_key',
      api_key_header: 'X-Api-Key',
      api_key_value: 'key-0',
    })
    const client = await gatehouse.mcp(alice.token)
    const sentKey = async () =>
      seenHeaders(await client.callTool({ name: 'rotating__whoami', arguments: {} }))['x-api-key']
    expect(await sentKey()).toBe('key-0')
    for (const key of ['key-1', 'key-2', 'key-3']) {
      await gatehouse.update(server.id, { api_key_value: key })
      expect(await sentKey()).toBe(key)
    }
  })
})
