import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { bootstrapOwner, setup, type TestContext } from '../setup.ts'

/**
 * Every field of the MCP server routes is type-checked as sent: a value of the wrong JSON type is
 * a 422 naming the field, an unknown field too (a misspelt `tool_denylist` silently dropped would
 * leave an admin believing a tool is denied), and nothing is written.
 */

type JsonType = 'string' | 'boolean' | 'array' | 'object'

/** The JSON type of every field `POST /api/v1/mcp/servers` takes; PATCH takes the same but `organization_id`. */
const FIELDS: Record<string, JsonType> = {
  organization_id: 'string',
  display_name: 'string',
  slug: 'string',
  description: 'string',
  icon_url: 'string',
  transport: 'string',
  url: 'string',
  auth_type: 'string',
  oauth2_client_id: 'string',
  oauth2_client_secret: 'string',
  oauth2_auth_url: 'string',
  oauth2_token_url: 'string',
  oauth2_scopes: 'string',
  api_key_header: 'string',
  api_key_value: 'string',
  custom_headers: 'object',
  tool_allow_list: 'array',
  tool_deny_list: 'array',
  availability: 'string',
  enabled: 'boolean',
  forward_identity_headers: 'boolean',
}

/** Values of every other JSON type; no field is nullable, so null is wrong everywhere. */
const WRONG_VALUES: Record<JsonType, unknown[]> = {
  string: [1, 0.5, true, [], ['linear'], {}, { value: 'linear' }, null],
  boolean: ['true', 'false', 1, 0, [], [true], {}, null],
  array: ['list_*', 1, true, {}, { 0: 'list_*' }, null],
  object: ['X-Team: a', 1, true, [], ['X-Team', 'a'], [['X-Team', 'a']], null],
}

const BASE = { display_name: 'Linear', slug: 'linear', url: 'https://mcp.linear.example/mcp' }

describe('types of the MCP server fields', () => {
  let ctx: TestContext
  let token: string
  let server: Record<string, unknown>

  beforeAll(async () => {
    ctx = await setup()
    token = (await bootstrapOwner(ctx)).token
    const created = await call('POST', '/servers', { ...BASE, tool_deny_list: ['delete_*'] })
    expect(created.status).toBe(201)
    server = created.body
  })
  afterAll(async () => {
    await ctx.close()
  })

  async function call(method: string, path: string, body?: unknown) {
    const response = await ctx.app.handle(
      new Request(`http://localhost/api/v1/mcp${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    )
    const text = await response.text()
    return { status: response.status, body: text ? JSON.parse(text) : undefined }
  }

  /** What is wrong with an answer that should be a 422 naming exactly `field`; undefined when right. */
  function problemOf(answer: { status: number; body: any }, field: string): string | undefined {
    const named = (answer.body?.validations ?? []).map((v: { field: string }) => v.field)
    if (answer.status === 422 && named.length > 0 && named.every((name: string) => name === field)) return undefined
    return `${answer.status} naming ${JSON.stringify(named)}`
  }

  const state = async () => ({
    list: (await call('GET', '/servers')).body,
    one: (await call('GET', `/servers/${server.id}`)).body,
  })

  it('knows every field the OpenAPI document gives the create, update and selection bodies', async () => {
    const spec = await (await ctx.app.handle(new Request('http://localhost/openapi/json'))).json()
    const { schemas } = spec.components
    expect(Object.keys(schemas['upstreams.create'].properties).sort()).toEqual(Object.keys(FIELDS).sort())
    const { organization_id: _, ...updatable } = FIELDS
    expect(Object.keys(schemas['upstreams.update'].properties).sort()).toEqual(Object.keys(updatable).sort())
    expect(Object.keys(schemas['upstreams.selection'].properties)).toEqual(['selected'])
  })

  for (const [field, type] of Object.entries(FIELDS))
    it(`refuses ${field} of any type but ${type} with 422 naming it, on create and update, writing nothing`, async () => {
      const before = await state()
      const failures: string[] = []
      for (const value of WRONG_VALUES[type]) {
        const created = problemOf(await call('POST', '/servers', { ...BASE, slug: 'other', [field]: value }), field)
        if (created) failures.push(`POST ${JSON.stringify(value)}: ${created}`)
        if (field === 'organization_id') continue
        const updated = problemOf(await call('PATCH', `/servers/${server.id}`, { [field]: value }), field)
        if (updated) failures.push(`PATCH ${JSON.stringify(value)}: ${updated}`)
      }
      expect(failures).toEqual([])
      expect(await state()).toEqual(before)
    })

  it('refuses a selection that is not a boolean with 422 naming selected, leaving the choice as it was', async () => {
    const before = await state()
    const failures: string[] = []
    for (const value of WRONG_VALUES.boolean) {
      const problem = problemOf(await call('PUT', `/servers/${server.id}/selection`, { selected: value }), 'selected')
      if (problem) failures.push(`${JSON.stringify(value)}: ${problem}`)
    }
    expect(failures).toEqual([])
    expect(await state()).toEqual(before)
  })

  const entries: [string, Record<string, unknown>, string][] = [
    ['a tool allow list holding a number', { tool_allow_list: [1] }, 'tool_allow_list.0'],
    ['a tool deny list holding null', { tool_deny_list: ['ok', null] }, 'tool_deny_list.1'],
    ['a tool deny list holding a list', { tool_deny_list: [['x']] }, 'tool_deny_list.0'],
    ['a header whose value is a number', { custom_headers: { 'X-Team': 1 } }, 'custom_headers.X-Team'],
    ['a header whose value is null', { custom_headers: { 'X-Team': null } }, 'custom_headers.X-Team'],
    ['a header whose value is a list', { custom_headers: { 'X-Team': ['a', 'b'] } }, 'custom_headers.X-Team'],
    ['a header whose value is an object', { custom_headers: { 'X-Team': { v: 'a' } } }, 'custom_headers.X-Team'],
  ]
  for (const [what, change, field] of entries)
    it(`refuses ${what} with 422 naming ${field}, on create and update`, async () => {
      const before = await state()
      const body = { ...change, auth_type: 'custom_headers' }
      expect(problemOf(await call('POST', '/servers', { ...BASE, slug: 'other', ...body }), field)).toBeUndefined()
      expect(problemOf(await call('PATCH', `/servers/${server.id}`, body), field)).toBeUndefined()
      expect(await state()).toEqual(before)
    })

  it('refuses an unknown field with 422 naming it instead of ignoring it', async () => {
    const before = await state()
    expect(
      problemOf(await call('POST', '/servers', { ...BASE, slug: 'other', tool_denylist: ['*'] }), 'tool_denylist'),
    ).toBeUndefined()
    expect(
      problemOf(await call('PATCH', `/servers/${server.id}`, { tool_denylist: [] }), 'tool_denylist'),
    ).toBeUndefined()
    expect(
      problemOf(await call('PATCH', `/servers/${server.id}`, { enabled: true, enable: true }), 'enable'),
    ).toBeUndefined()
    // An organization is chosen when a server is created; it does not move.
    expect(
      problemOf(
        await call('PATCH', `/servers/${server.id}`, { organization_id: server.organization_id }),
        'organization_id',
      ),
    ).toBeUndefined()
    expect(
      problemOf(await call('PUT', `/servers/${server.id}/selection`, { selected: true, slug: 'x' }), 'slug'),
    ).toBeUndefined()
    expect(await state()).toEqual(before)
  })

  it('refuses a body that is not a JSON object with 422', async () => {
    const before = await state()
    for (const body of [null, [], [BASE], 'linear', 1, true]) {
      expect((await call('POST', '/servers', body)).status).toBe(422)
      expect((await call('PATCH', `/servers/${server.id}`, body)).status).toBe(422)
      expect((await call('PUT', `/servers/${server.id}/selection`, body)).status).toBe(422)
    }
    expect(await state()).toEqual(before)
  })

  it('still takes every field with its right type', async () => {
    const created = await call('POST', '/servers', {
      ...BASE,
      slug: 'typed',
      organization_id: server.organization_id,
      description: 'Issues',
      icon_url: 'https://mcp.linear.example/icon.png',
      transport: 'sse',
      auth_type: 'custom_headers',
      custom_headers: { 'X-Team': 'platform' },
      tool_allow_list: ['list_*'],
      tool_deny_list: [],
      availability: 'default_on',
      enabled: true,
      forward_identity_headers: false,
    })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ transport: 'sse', has_custom_headers: true, tool_allow_list: ['list_*'] })
    const selected = await call('PUT', `/servers/${created.body.id}/selection`, { selected: false })
    expect(selected.status).toBe(200)
    expect(selected.body.selected).toBe(false)
    expect((await call('DELETE', `/servers/${created.body.id}`)).status).toBe(204)
  })
})
