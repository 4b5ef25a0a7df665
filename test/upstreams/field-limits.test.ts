import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'bun:test'
import * as limits from '../../src/upstreams/limits.ts'
import { bootstrapOwner, setup, type TestContext } from '../setup.ts'

/**
 * Every size limit of an MCP server's fields, from src/upstreams/limits.ts: the OpenAPI document
 * states it, a value at the limit is taken, one past it is a 422 naming the field, on create and
 * on update, and nothing is written.
 */

type Limit = keyof typeof limits

interface LimitCase {
  limit: Limit
  /** The field the refusal names (`validations[].field`). */
  field: string
  /** Where the OpenAPI document states the limit, from a body schema's `properties`; `*`: the only entry. */
  documented: string[]
  /** The fields of a body whose limited part has size `n`. */
  body: (n: number) => Record<string, unknown>
  /** Only on create (organization_id): a server does not move between organizations. */
  createOnly?: boolean
  /** The answer at the limit, when not 201 (an organization ID of the longest length that does not exist). */
  atLimitStatus?: number
}

/** `https://…/` padded to exactly `n` characters. */
const urlOf = (n: number, host = 'mcp.example') => {
  const prefix = `https://${host}/`
  return prefix + 'p'.repeat(n - prefix.length)
}
const oauth2 = {
  auth_type: 'oauth2',
  oauth2_client_id: 'client-1',
  oauth2_auth_url: 'https://as.example/authorize',
  oauth2_token_url: 'https://as.example/token',
}
/** A header name of `n` characters. */
const headerNameOf = (n: number) => `X-${'h'.repeat(n - 2)}`
const toolsOf = (n: number) => Array.from({ length: n }, (_, i) => `tool_${i}`)

const CASES: LimitCase[] = [
  {
    limit: 'ID_MAX_LENGTH',
    field: 'organization_id',
    documented: ['organization_id', 'maxLength'],
    body: (n) => ({ organization_id: 'o'.repeat(n) }),
    createOnly: true,
    atLimitStatus: 404,
  },
  {
    limit: 'DISPLAY_NAME_MAX_LENGTH',
    field: 'display_name',
    documented: ['display_name', 'maxLength'],
    body: (n) => ({ display_name: 'D'.repeat(n) }),
  },
  {
    limit: 'SLUG_MAX_LENGTH',
    field: 'slug',
    documented: ['slug', 'maxLength'],
    body: (n) => ({ slug: 's'.repeat(n) }),
  },
  {
    limit: 'DESCRIPTION_MAX_LENGTH',
    field: 'description',
    documented: ['description', 'maxLength'],
    body: (n) => ({ description: 'd'.repeat(n) }),
  },
  { limit: 'URL_MAX_LENGTH', field: 'url', documented: ['url', 'maxLength'], body: (n) => ({ url: urlOf(n) }) },
  {
    limit: 'URL_MAX_LENGTH',
    field: 'icon_url',
    documented: ['icon_url', 'maxLength'],
    body: (n) => ({ icon_url: urlOf(n, 'icons.example') }),
  },
  {
    limit: 'URL_MAX_LENGTH',
    field: 'oauth2_auth_url',
    documented: ['oauth2_auth_url', 'maxLength'],
    body: (n) => ({ ...oauth2, oauth2_auth_url: urlOf(n, 'as.example') }),
  },
  {
    limit: 'URL_MAX_LENGTH',
    field: 'oauth2_token_url',
    documented: ['oauth2_token_url', 'maxLength'],
    body: (n) => ({ ...oauth2, oauth2_token_url: urlOf(n, 'as.example') }),
  },
  {
    limit: 'OAUTH2_CLIENT_ID_MAX_LENGTH',
    field: 'oauth2_client_id',
    documented: ['oauth2_client_id', 'maxLength'],
    body: (n) => ({ ...oauth2, oauth2_client_id: 'c'.repeat(n) }),
  },
  {
    limit: 'OAUTH2_CLIENT_SECRET_MAX_LENGTH',
    field: 'oauth2_client_secret',
    documented: ['oauth2_client_secret', 'maxLength'],
    body: (n) => ({ ...oauth2, oauth2_client_secret: 's'.repeat(n) }),
  },
  {
    limit: 'OAUTH2_SCOPES_MAX_LENGTH',
    field: 'oauth2_scopes',
    documented: ['oauth2_scopes', 'maxLength'],
    body: (n) => ({ ...oauth2, oauth2_scopes: `read ${'w'.repeat(n - 5)}` }),
  },
  {
    limit: 'HEADER_NAME_MAX_LENGTH',
    field: 'api_key_header',
    documented: ['api_key_header', 'maxLength'],
    body: (n) => ({ auth_type: 'api_key', api_key_header: headerNameOf(n), api_key_value: 'key' }),
  },
  {
    limit: 'HEADER_NAME_MAX_LENGTH',
    field: 'custom_headers',
    documented: ['custom_headers', 'propertyNames', 'maxLength'],
    body: (n) => ({ auth_type: 'custom_headers', custom_headers: { [headerNameOf(n)]: 'value' } }),
  },
  {
    limit: 'HEADER_VALUE_MAX_LENGTH',
    field: 'api_key_value',
    documented: ['api_key_value', 'maxLength'],
    body: (n) => ({ auth_type: 'api_key', api_key_header: 'X-Api-Key', api_key_value: 'v'.repeat(n) }),
  },
  {
    limit: 'HEADER_VALUE_MAX_LENGTH',
    field: 'custom_headers.X-Team',
    documented: ['custom_headers', 'patternProperties', '*', 'maxLength'],
    body: (n) => ({ auth_type: 'custom_headers', custom_headers: { 'X-Team': 'v'.repeat(n) } }),
  },
  {
    limit: 'CUSTOM_HEADERS_MAX_COUNT',
    field: 'custom_headers',
    documented: ['custom_headers', 'maxProperties'],
    body: (n) => ({
      auth_type: 'custom_headers',
      custom_headers: Object.fromEntries(Array.from({ length: n }, (_, i) => [`X-Header-${i}`, 'value'])),
    }),
  },
  {
    limit: 'TOOL_LIST_MAX_ITEMS',
    field: 'tool_allow_list',
    documented: ['tool_allow_list', 'maxItems'],
    body: (n) => ({ tool_allow_list: toolsOf(n) }),
  },
  {
    limit: 'TOOL_LIST_MAX_ITEMS',
    field: 'tool_deny_list',
    documented: ['tool_deny_list', 'maxItems'],
    body: (n) => ({ tool_deny_list: toolsOf(n) }),
  },
  {
    limit: 'TOOL_NAME_MAX_LENGTH',
    field: 'tool_allow_list.1',
    documented: ['tool_allow_list', 'items', 'maxLength'],
    body: (n) => ({ tool_allow_list: ['list_*', 't'.repeat(n)] }),
  },
  {
    limit: 'TOOL_NAME_MAX_LENGTH',
    field: 'tool_deny_list.0',
    documented: ['tool_deny_list', 'items', 'maxLength'],
    body: (n) => ({ tool_deny_list: [`${'t'.repeat(n - 1)}*`] }),
  },
]

const BASE = { display_name: 'Limits', slug: 'limits', url: 'https://mcp.example/mcp' }

describe('size limits of the MCP server fields', () => {
  let ctx: TestContext
  let token: string
  let schemas: Record<string, { properties: Record<string, unknown> }>

  beforeAll(async () => {
    ctx = await setup()
    token = (await bootstrapOwner(ctx)).token
    const response = await ctx.app.handle(new Request('http://localhost/openapi/json'))
    schemas = (await response.json()).components.schemas
  })
  afterAll(async () => {
    await ctx.close()
  })
  beforeEach(async () => {
    await ctx.db.deleteFrom('mcp_servers').execute()
  })

  async function call(method: string, path: string, body?: unknown) {
    const response = await ctx.app.handle(
      new Request(`http://localhost/api/v1/mcp${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    )
    const text = await response.text()
    return { status: response.status, body: text ? JSON.parse(text) : undefined }
  }
  const fieldsOf = (body: { validations?: { field: string }[] } | undefined) => body?.validations?.map((v) => v.field)
  const documented = (schema: string, path: string[]) =>
    path.reduce<any>(
      (value, key) => (key === '*' ? Object.values(value ?? {})[0] : value?.[key]),
      schemas[schema].properties,
    )

  it('tests every limit the limits module defines', () => {
    expect<string[]>([...new Set(CASES.map((c) => c.limit))].sort()).toEqual(Object.keys(limits).sort())
  })

  for (const c of CASES)
    it(`takes ${c.field} at ${c.limit} (${limits[c.limit]}), refuses one more with 422 naming it, as documented`, async () => {
      const limit = limits[c.limit]
      expect(documented('upstreams.create', c.documented)).toBe(limit)
      if (!c.createOnly) expect(documented('upstreams.update', c.documented)).toBe(limit)

      const tooLong = await call('POST', '/servers', { ...BASE, ...c.body(limit + 1) })
      expect({ status: tooLong.status, fields: fieldsOf(tooLong.body) }).toEqual({ status: 422, fields: [c.field] })
      expect((await call('GET', '/servers')).body).toEqual([])

      const atLimit = await call('POST', '/servers', { ...BASE, ...c.body(limit) })
      expect({ status: atLimit.status, body: atLimit.body }).toMatchObject({ status: c.atLimitStatus ?? 201 })
      if (c.createOnly) return

      const server = atLimit.body
      const refused = await call('PATCH', `/servers/${server.id}`, c.body(limit + 1))
      expect({ status: refused.status, fields: fieldsOf(refused.body) }).toEqual({ status: 422, fields: [c.field] })
      expect((await call('GET', `/servers/${server.id}`)).body).toEqual(server)
      expect((await call('PATCH', `/servers/${server.id}`, c.body(limit))).status).toBe(200)
    })

  it('documents the slug limit it enforces, in words too', () => {
    expect(documented('upstreams.create', ['slug', 'description'])).toContain(`at most ${limits.SLUG_MAX_LENGTH}`)
  })
})
