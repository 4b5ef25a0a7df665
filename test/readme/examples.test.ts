import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  type AggregateGatehouse,
  seenHeaders,
  startAggregateGatehouse,
  startV2Upstream,
  upstreamToolNames,
  type V2Upstream,
} from '../fixtures/aggregate.ts'
import { type OAuthServer, startOAuthServer } from '../fixtures/upstreams.ts'

/**
 * The README's "Registering a server" walk-through, request by request: each `curl` body is read
 * from the README and sent to a real Gatehouse, and what the text says of the answer is checked,
 * so the examples cannot drift from the API. Only `url` is replaced (with a fixture upstream's),
 * since the README's addresses stand for the reader's own servers.
 */

interface Example {
  method: string
  /** The path after `$GATEHOUSE`, with `$SERVER` as written. */
  path: string
  body: Record<string, any>
}

function readExamples(): Example[] {
  const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8')
  const start = readme.indexOf('### Registering a server')
  if (start < 0) throw new Error('the README has no "Registering a server" section')
  const section = readme.slice(start, readme.indexOf('\n### ', start + 1))
  return [...section.matchAll(/curl -X (\w+) \$GATEHOUSE(\S+)[\s\S]*?-d '([^']*)'/g)].map(([, method, path, body]) => {
    try {
      return { method: method!, path: path!, body: JSON.parse(body!) }
    } catch (error) {
      throw new Error(`the README's ${method} ${path} body is not JSON: ${(error as Error).message}`)
    }
  })
}

const examples = readExamples()
const creations = examples.filter((example) => example.method === 'POST' && example.path === '/api/v1/mcp/servers')

/** The creation example for an auth type (oauth2: `discovered` or configured by hand). */
function creation(authType: string, manual = false): Record<string, any> {
  const found = creations.find(
    ({ body }) => (body.auth_type ?? 'none') === authType && (body.oauth2_client_id !== undefined) === manual,
  )
  if (!found) throw new Error(`the README has no ${authType} registration example`)
  return found.body
}

function step(method: string, pathEnd: string): Example {
  const found = examples.find((example) => example.method === method && example.path.endsWith(pathEnd))
  if (!found) throw new Error(`the README has no ${method} …${pathEnd} example`)
  return found
}

let gatehouse: AggregateGatehouse
let upstream: V2Upstream
let as: OAuthServer
let protectedUpstream: V2Upstream

beforeAll(async () => {
  gatehouse = await startAggregateGatehouse()
  upstream = await startV2Upstream()
  as = await startOAuthServer()
  protectedUpstream = await startV2Upstream({ protectedBy: as.protect() })
})

afterAll(async () => {
  await gatehouse?.close()
  await Promise.all([upstream?.close(), protectedUpstream?.close()])
  await as?.close()
})

/** The owner's upstream tools in `/mcp` whose names start with the slug's prefix. */
async function toolsOf(slug: string): Promise<string[]> {
  const names = await upstreamToolNames(await gatehouse.mcp(gatehouse.owner.token))
  await gatehouse.closeClients()
  return names.filter((name) => name.startsWith(`${slug}__`))
}

async function callWhoami(slug: string) {
  const client = await gatehouse.mcp(gatehouse.owner.token)
  const result = await client.callTool({ name: `${slug}__whoami`, arguments: {} })
  await gatehouse.closeClients()
  return seenHeaders(result)
}

describe('the README examples of registering a server', () => {
  it('show each auth type the text describes, as JSON bodies', () => {
    expect(creations.map(({ body }) => body.auth_type ?? 'none').sort()).toEqual([
      'api_key',
      'custom_headers',
      'none',
      'oauth2',
      'oauth2',
    ])
  })

  it('leave a server with the defaults out of /mcp until it is enabled and the admin opts in', async () => {
    const body = creation('none')
    const created = await gatehouse.api('POST', '/api/v1/mcp/servers', { ...body, url: upstream.url })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ enabled: false, availability: 'default_off', selected: false })
    expect(await toolsOf(body.slug)).toEqual([])

    const enable = step('PATCH', '/api/v1/mcp/servers/$SERVER')
    const enabled = await gatehouse.api('PATCH', enable.path.replace('$SERVER', created.body.id), enable.body)
    expect(enabled.status).toBe(200)
    expect(enabled.body).toMatchObject({ enabled: true, availability: 'default_off', selected: false })
    expect(await toolsOf(body.slug)).toEqual([])

    const select = step('PUT', '/selection')
    const selected = await gatehouse.api('PUT', select.path.replace('$SERVER', created.body.id), select.body)
    expect(selected.status).toBe(200)
    expect(selected.body.selected).toBe(true)
    expect(await toolsOf(body.slug)).toContain(`${body.slug}__echo`)
  })

  it('send the api_key header upstream and answer only that a key is set', async () => {
    const body = creation('api_key')
    const created = await gatehouse.api('POST', '/api/v1/mcp/servers', { ...body, url: upstream.url })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ has_api_key: true, api_key_header: body.api_key_header, selected: true })
    expect(created.body).not.toHaveProperty('api_key_value')
    const seen = await callWhoami(body.slug)
    expect(seen[body.api_key_header.toLowerCase()]).toBe(body.api_key_value)
  })

  it('send every custom header and the identity headers, and answer only that headers are set', async () => {
    const body = creation('custom_headers')
    const created = await gatehouse.api('POST', '/api/v1/mcp/servers', { ...body, url: upstream.url })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ has_custom_headers: true, forward_identity_headers: true, selected: true })
    expect(created.body).not.toHaveProperty('custom_headers')
    const seen = await callWhoami(body.slug)
    for (const [name, value] of Object.entries(body.custom_headers as Record<string, string>))
      expect(seen[name.toLowerCase()]).toBe(value)
    expect(seen['x-gatehouse-user-id']).toBe(gatehouse.owner.id)
    expect(seen['x-gatehouse-username']).toBe('owner')
    expect(seen['x-gatehouse-user-email']).toBe('owner@example.com')
  })

  it('discover and register at the upstream authorization server, then offer the connect tool', async () => {
    const body = creation('oauth2')
    const created = await gatehouse.api('POST', '/api/v1/mcp/servers', { ...body, url: protectedUpstream.url })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ oauth2_registration: 'dynamic', auth_connected: false })
    expect(created.body.oauth2_client_id).not.toBe('')
    expect(created.body.oauth2_auth_url).toStartWith(as.issuer)
    expect(created.body.oauth2_token_url).toStartWith(as.issuer)
    expect(await toolsOf(body.slug)).toEqual([`${body.slug}__connect`])
  })

  it('take OAuth settings by hand only all three together', async () => {
    const body = creation('oauth2', true)
    const { oauth2_token_url: _, ...partial } = body
    const refused = await gatehouse.api('POST', '/api/v1/mcp/servers', partial)
    expect(refused.status).toBe(400)
    expect(refused.body.message).toContain('none of them')

    const created = await gatehouse.api('POST', '/api/v1/mcp/servers', body)
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({
      oauth2_registration: 'manual',
      oauth2_client_id: body.oauth2_client_id,
      has_oauth2_secret: true,
    })
    expect(created.body).not.toHaveProperty('oauth2_client_secret')
  })
})
