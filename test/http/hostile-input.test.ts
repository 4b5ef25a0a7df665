import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { MAX_JSON_DEPTH } from '../../src/http/json-depth.ts'
import { findFreePort } from '../fixtures/cli-process.ts'
import { startV2McpServer, type UpstreamServer } from '../fixtures/upstreams.ts'
import { MCP_HEADERS } from '../mcp/support-mcp-server.ts'
import { bootstrapOwner, setup, type TestContext } from '../setup.ts'

/**
 * Every route, taken from the app itself so a new route is covered without touching this file,
 * gets hostile path parameters, query strings and bodies; none may answer 5xx (DESIGN.md
 * "Surface": bad input is a 4xx naming the problem). Runs on SQLite and, with TEST_DATABASE_URL,
 * on Postgres, where NUL characters used to reach the database and fail there.
 */

const HUGE = 'x'.repeat(100_000)
const MALFORMED_URLS = ['https://', 'https://a:99999/x', 'https://[::1/x', 'javascript:alert(1)']

/** Put into every field of a JSON body at once (a huge string goes into one field at a time). */
const HOSTILE_VALUES: unknown[] = [
  'a\u0000b',
  '\u0000',
  ...MALFORMED_URLS,
  '\ud800',
  '',
  12345,
  -1.5,
  1e308,
  true,
  null,
  [],
  ['a', 'b'],
  {},
  { nested: { deeper: 'x' } },
]

/**
 * Put into one field at a time, the others plausible, so the check that field reaches runs. (A NUL
 * is refused before any field is read, so the all-at-once bodies cover it.)
 */
const PER_FIELD_VALUES: unknown[] = [HUGE, ...MALFORMED_URLS, 12345, null, [], {}]

/** Every probe a route with a password accepts costs an argon2 hash (tens of ms), so fewer there. */
const PASSWORD_ROUTE_VALUES: unknown[] = [HUGE, 'https://[::1/x', 12345, {}]

/** Raw query values (already percent-encoded); `%` alone and `%E0%A4%A` are invalid escapes. */
const HOSTILE_QUERY_VALUES = ['a%00b', '%FF%FE', '%', '%E0%A4%A', ...MALFORMED_URLS.map(encodeURIComponent)]

const HOSTILE_PATH_VALUES = [
  'a%00b',
  '%00',
  '%FF%FE',
  '%C3%28',
  '%',
  '%E0%A4%A',
  'x'.repeat(5000),
  encodeURIComponent('https://[::1/x'),
  '%2e%2e',
  '-1',
]

/** Parameters that routes without a schema (OAuth endpoints, the login page, MCP) read by name. */
const COMMON_FIELDS = [
  'client_id',
  'client_secret',
  'redirect_uri',
  'response_type',
  'grant_type',
  'code',
  'code_verifier',
  'code_challenge',
  'code_challenge_method',
  'refresh_token',
  'token',
  'token_type_hint',
  'resource',
  'scope',
  'state',
  'decision',
  'csrf_token',
  'login',
  'password',
  'next',
  'redirect_uris',
  'client_name',
  'client_uri',
  'logo_uri',
  'token_endpoint_auth_method',
  'grant_types',
  'jsonrpc',
  'method',
  'params',
  'id',
]

/** Values that pass the obvious checks, so a hostile value in one other field gets its turn. */
const PLAUSIBLE: Record<string, unknown> = {
  email: 'someone@example.com',
  username: 'someone',
  login: 'someone',
  password: 'some-password-1',
  role: 'member',
  name: 'some-name',
  display_name: 'Some Name',
  redirect_uris: ['https://app.example/cb'],
  redirect_uri: 'https://app.example/cb',
  client_id: 'unknown-client',
  response_type: 'code',
  grant_type: 'authorization_code',
  code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
  code_challenge_method: 'S256',
  code_verifier: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk',
  scope: 'mcp',
  resource: 'http://localhost/mcp',
  expires_in_seconds: 3600,
  confidential: true,
  refresh_tokens: true,
  dynamic_registration: true,
  grant_types: ['authorization_code'],
  jsonrpc: '2.0',
  method: 'tools/list',
  params: {},
  id: 1,
}

/** A shape the client may see for a refusal: API JSON, RFC 6749/6750 JSON, a page, or a redirect. */
async function describeBadResponse(response: Response): Promise<string | undefined> {
  const text = await response.text()
  if (response.status >= 500) return `${response.status} ${text.slice(0, 300)}`
  if (response.status < 400) return undefined
  const type = response.headers.get('content-type') ?? ''
  if (type.includes('text/html')) return text.length > 0 ? undefined : `${response.status} empty page`
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return `${response.status} not JSON (${type}): ${text.slice(0, 200)}`
  }
  const shaped = body as { message?: unknown; error?: unknown; jsonrpc?: unknown }
  if (typeof shaped.message === 'string' || typeof shaped.error === 'string') return undefined
  // MCP answers in JSON-RPC: { jsonrpc, error: { code, message } }.
  if (shaped.jsonrpc === '2.0' && typeof (shaped.error as { message?: unknown })?.message === 'string') return undefined
  return `${response.status} JSON without message or error: ${text.slice(0, 200)}`
}

/**
 * A failed login costs an argon2 hash; past four failures from one address the throttle answers
 * 429 without one. The probes still reach the user lookup, which is what hostile input could break.
 */
const FEW_PASSWORD_CHECKS = { loginMaxFailures: 1 }

interface Probe {
  method: string
  path: string
  query?: string
  body?: BodyInit
  contentType?: string
  label: string
}

interface Route {
  method: string
  path: string
  fields: string[]
  queryFields: string[]
  /** Read parameters by name without a schema, so each one is tried alone too. */
  byName: boolean
}

function routesOf(app: TestContext['app']): Route[] {
  const definitions = (app as unknown as { definitions: { type: Record<string, { properties?: object }> } }).definitions
    .type
  const propertiesOf = (schema: unknown) => {
    const resolved = typeof schema === 'string' ? definitions[schema] : schema
    return Object.keys((resolved as { properties?: object } | undefined)?.properties ?? {})
  }
  const routes = app.routes
    .filter((route) => route.method !== 'HEAD' && !route.path.startsWith('/openapi'))
    .map((route) => {
      const fields = propertiesOf(route.hooks?.body)
      const queryFields = propertiesOf(route.hooks?.query)
      const byName = fields.length === 0 && queryFields.length === 0
      return {
        method: route.method,
        path: route.path,
        fields: fields.length > 0 ? fields : COMMON_FIELDS,
        queryFields: queryFields.length > 0 ? queryFields : COMMON_FIELDS,
        byName,
      }
    })
  // Signing out ends the owner's session, so it goes last.
  return routes.sort((a, b) => Number(a.path.endsWith('/logout')) - Number(b.path.endsWith('/logout')))
}

function withParams(path: string, value: string): string {
  return path.replace(/:[A-Za-z]+/g, value)
}

function plausibleOf(fields: string[]): Record<string, unknown> {
  return Object.fromEntries(fields.map((field) => [field, PLAUSIBLE[field] ?? 'x']))
}

function formOf(values: Record<string, unknown>): string {
  return Object.entries(values)
    .map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(String(value))}`)
    .join('&')
}

function queryOf(names: string[], value: string): string {
  return names.map((name) => `${name}=${value}`).join('&')
}

/** The probes for one route: hostile path parameters, query strings, and (when it takes one) bodies. */
function probesFor(route: Route, { thorough }: { thorough: boolean }): Probe[] {
  const { method } = route
  const path = withParams(route.path, 'x')
  const probes: Probe[] = []
  if (route.path.includes(':'))
    for (const value of HOSTILE_PATH_VALUES)
      probes.push({ method, path: withParams(route.path, value), label: `path ${value.slice(0, 20)}` })
  for (const value of HOSTILE_QUERY_VALUES)
    probes.push({ method, path, query: queryOf(route.queryFields, value), label: `query all=${value.slice(0, 20)}` })
  probes.push({ method, path, query: 'client_id=a&client_id=b&scope', label: 'query repeated' })
  probes.push({ method, path, query: `${route.queryFields[0]}=${HUGE}`, label: 'query huge' })
  // One parameter at a time where a handler reads them by name: GETs, and POST /oauth2/authorize.
  if (thorough && route.byName && (method === 'GET' || method === 'POST')) {
    const base = formOf(plausibleOf(route.queryFields))
    for (const name of route.queryFields)
      for (const value of ['https%3A%2F%2F', 'https%3A%2F%2Fa%3A99999%2Fx', '%FF%FE'])
        probes.push({ method, path, query: `${base}&${name}=${value}`, label: `query ${name}=${value}` })
  }
  if (method === 'GET' || method === 'OPTIONS') return probes

  const json = (body: BodyInit, label: string) =>
    probes.push({ method, path, body, contentType: 'application/json', label: `json ${label}` })
  const form = (body: string, label: string) =>
    probes.push({ method, path, body, contentType: 'application/x-www-form-urlencoded', label: `form ${label}` })
  for (const value of HOSTILE_VALUES)
    json(
      JSON.stringify(Object.fromEntries(route.fields.map((field) => [field, value]))),
      `all=${String(value).slice(0, 20)}`,
    )
  json(JSON.stringify(Object.fromEntries(route.fields.slice(0, 3).map((field) => [field, HUGE]))), 'huge')
  for (const raw of ['null', '"text"', '[]', '1', '{', '{"a":', '{"a":"\\\\u0000"}']) json(raw, raw)
  json(`{"a":"${'['.repeat(5000)}${']'.repeat(5000)}"}`, 'deep string')
  json(`{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`, 'deeply nested')
  json(`${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}`, 'deeply nested objects')
  json(new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]), 'invalid UTF-8')
  json(new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0x00, 0x22, 0x7d]), 'raw NUL byte')
  form(route.fields.map((field) => `${field}=%00`).join('&'), 'all=%00')
  form(route.fields.map((field) => `${field}=%FF%FE`).join('&'), 'all=%FF%FE')
  form(`${route.fields[0]}=${HUGE}`, 'huge')
  form('a=1&a=2&%=%&&=', 'malformed')
  probes.push({ method, path, body: 'a\u0000b', contentType: 'text/plain', label: 'text NUL' })
  probes.push({
    method,
    path,
    body: new Uint8Array([0xff, 0x00, 0xfe]),
    contentType: 'application/octet-stream',
    label: 'binary',
  })
  const multipart = new FormData()
  for (const field of route.fields.slice(0, 5)) multipart.set(field, 'a\u0000b')
  probes.push({ method, path, body: multipart, label: 'multipart' })
  // Schema-less DELETEs take no body; for the rest, one field at a time.
  if (thorough && !(route.byName && method === 'DELETE')) {
    const base = plausibleOf(route.fields)
    const values = !route.byName && route.fields.includes('password') ? PASSWORD_ROUTE_VALUES : PER_FIELD_VALUES
    for (const field of route.fields)
      for (const value of values) {
        const body = { ...base, [field]: value }
        // Routes without a schema mostly read forms (OAuth, the login page); only JSON carries types.
        if (route.byName && typeof value === 'string') form(formOf(body), `${field}=${value.slice(0, 20)}`)
        else json(JSON.stringify(body), `${field}=${String(value).slice(0, 20)}`)
      }
  }
  return probes
}

function requestOf(probe: Probe, token: string | undefined): Request {
  const headers: Record<string, string> = { accept: 'application/json, text/event-stream, text/html;q=0.9, */*;q=0.8' }
  if (probe.contentType) headers['content-type'] = probe.contentType
  if (token) headers.authorization = `Bearer ${token}`
  const url = `http://localhost${probe.path}${probe.query ? `?${probe.query}` : ''}`
  return new Request(url, { method: probe.method, headers, body: probe.body })
}

/** Sends every probe of every route, a route's probes concurrently; returns what went wrong. */
async function sendHostileInput(ctx: TestContext, token: string | undefined, thorough: boolean): Promise<string[]> {
  const failures: string[] = []
  for (const route of routesOf(ctx.app)) {
    const probes = probesFor(route, { thorough })
    await Promise.all(
      probes.map(async (probe) => {
        const response = await ctx.app.handle(requestOf(probe, token))
        const problem = await describeBadResponse(response)
        if (problem) failures.push(`${route.method} ${route.path} [${probe.label}] → ${problem}`)
      }),
    )
  }
  return failures
}

describe('hostile input, before any user exists and signed out', () => {
  let ctx: TestContext
  beforeAll(async () => {
    ctx = await setup(FEW_PASSWORD_CHECKS)
  })
  afterAll(async () => {
    await ctx.close()
  })

  it('answers hostile input on every route with a 4xx naming the problem, never a 5xx', async () => {
    expect(await sendHostileInput(ctx, undefined, false)).toEqual([])
  }, 30_000)
})

describe('hostile input, signed in as the owner', () => {
  let ctx: TestContext
  let token: string
  beforeAll(async () => {
    ctx = await setup(FEW_PASSWORD_CHECKS)
    token = (await bootstrapOwner(ctx)).token
  })
  afterAll(async () => {
    await ctx.close()
  })

  it('refuses a NUL in the path with a 400 naming where it was', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/users/a%00b', { headers: { authorization: `Bearer ${token}` } }),
    )
    expect(response.status).toBe(400)
    expect(await response.json()).toEqual({ message: 'The request contains a NUL character', detail: 'path' })
  })

  it('refuses a NUL escape in a JSON body with a 400', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ login: 'a\u0000b', password: 'x' }),
      }),
    )
    expect(response.status).toBe(400)
    expect(await response.json()).toEqual({ message: 'The request contains a NUL character', detail: 'body' })
  })

  it('refuses a NUL in an OAuth query parameter with RFC 6749 invalid_request', async () => {
    const response = await ctx.app.handle(new Request('http://localhost/oauth2/authorize?client_id=%00'))
    expect(response.status).toBe(400)
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(await response.json()).toEqual({
      error: 'invalid_request',
      error_description: 'The request contains a NUL character (in the query parameter client_id)',
    })
  })

  it('refuses a NUL in an OAuth form body with RFC 6749 invalid_request', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/oauth2/token', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials&client_id=a%00b',
      }),
    )
    expect(response.status).toBe(400)
    expect((await response.json()).error).toBe('invalid_request')
  })

  it('answers a client_id URL that does not parse with a page, not a 500', async () => {
    for (const clientId of ['https://', 'https://a:99999/x', 'https://[::1/x']) {
      const response = await ctx.app.handle(
        new Request(`http://localhost/oauth2/authorize?client_id=${encodeURIComponent(clientId)}`),
      )
      expect(response.status).toBe(400)
      expect(await response.text()).toContain('client ID metadata document URL must be https')
    }
  })

  it('answers hostile input on every route with a 4xx naming the problem, never a 5xx', async () => {
    expect(await sendHostileInput(ctx, token, true)).toEqual([])
  }, 30_000)
})

describe('deeply nested JSON on the MCP endpoints', () => {
  let ctx: TestContext
  let token: string
  let upstream: UpstreamServer
  const DEEP = 100_000
  const deepArray = `${'['.repeat(DEEP)}${']'.repeat(DEEP)}`
  const deepObject = `${'{"a":'.repeat(DEEP)}1${'}'.repeat(DEEP)}`
  /** `levels` objects, one inside the other, as JSON text. */
  const nested = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`

  beforeAll(async () => {
    ctx = await setup({ outboundAllowPrivate: true })
    token = (await bootstrapOwner(ctx)).token
    upstream = await startV2McpServer()
    const closedPort = await findFreePort()
    for (const [slug, url] of [
      ['deep', upstream.url],
      ['gone', `http://127.0.0.1:${closedPort}/mcp`],
    ]) {
      const created = await ctx.app.handle(
        new Request('http://localhost/api/v1/mcp/servers', {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ display_name: slug, slug, url, enabled: true, availability: 'force_on' }),
        }),
      )
      if (created.status !== 201) throw new Error(`create ${slug}: ${created.status} ${await created.text()}`)
    }
  })
  afterAll(async () => {
    await ctx.close()
    await upstream.close()
  })

  async function post(path: string, body: string) {
    const response = await ctx.app.handle(
      new Request(`http://localhost${path}`, {
        method: 'POST',
        headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` },
        body,
      }),
    )
    const text = await response.text()
    let json: any
    try {
      json = JSON.parse(text)
    } catch {}
    return { status: response.status, text, body: json }
  }

  /** A JSON-RPC request as text, its params and id given as JSON text (so they can nest at will). */
  const message = (method: string, params: string, id = '1') =>
    `{"jsonrpc":"2.0","id":${id},"method":"${method}","params":${params}}`

  it('refuses an array nested 100,000 levels deep on /mcp with 400 naming the depth limit', async () => {
    const answer = await post('/mcp', deepArray)
    expect(answer.status).toBe(400)
    expect(answer.body).toMatchObject({ jsonrpc: '2.0', error: { code: -32600 }, id: null })
    expect(answer.body.error.message).toContain(`${MAX_JSON_DEPTH} levels`)
  })

  it('refuses an object nested 100,000 levels deep on /mcp with 400 naming the depth limit', async () => {
    const answer = await post('/mcp', deepObject)
    expect(answer.status).toBe(400)
    expect(answer.body.error.code).toBe(-32600)
    expect(answer.body.error.message).toContain(`${MAX_JSON_DEPTH} levels`)
  })

  it('refuses a call of a Gatehouse tool whose arguments nest too deep, before any tool runs', async () => {
    const answer = await post(
      '/mcp',
      message('tools/call', `{"name":"get_authenticated_user","arguments":${deepObject}}`),
    )
    expect(answer.status).toBe(400)
    expect(answer.body.error.code).toBe(-32600)
  })

  it('refuses a call of an upstream tool whose arguments nest too deep, without forwarding it', async () => {
    const before = upstream.requests.length
    const answer = await post('/mcp', message('tools/call', `{"name":"deep__echo","arguments":{"text":${deepArray}}}`))
    expect(answer.status).toBe(400)
    expect(answer.body.error.code).toBe(-32600)
    expect(upstream.requests.length).toBe(before)
  })

  it('refuses nesting one level past the limit and serves one level within it', async () => {
    const over = await post('/mcp', message('ping', `{"_meta":${nested(MAX_JSON_DEPTH - 1)}}`))
    expect(over.status).toBe(400)
    const within = await post('/mcp', message('ping', `{"_meta":${nested(MAX_JSON_DEPTH - 2)}}`))
    expect(within.status).toBe(200)
    expect(within.text).toContain('"result":{}')
  })

  it('counts brackets inside strings as text, not as nesting', async () => {
    const answer = await post(
      '/mcp',
      message('tools/call', `{"name":"deep__echo","arguments":{"text":${JSON.stringify(`\\"${deepArray}`)}}}`),
    )
    expect(answer.status).toBe(200)
    expect(answer.text).toContain('\\\\\\"[[[')
  })

  it('treats only a top-level array as a batch: a batch inside a batch is no request', async () => {
    const call = message('tools/call', '{"name":"get_authenticated_user","arguments":{}}')
    const answer = await post('/mcp', `[[${call}]]`)
    expect(answer.status).toBeGreaterThanOrEqual(400)
    expect(answer.status).toBeLessThan(500)
    expect(answer.text).not.toContain('owner@example.com')
  })

  it('answers a passthrough request whose id nests deep with a JSON-RPC error, not a 500', async () => {
    const answer = await post('/mcp/servers/gone', message('tools/list', '{}', deepArray))
    expect(answer.status).toBe(502)
    expect(answer.body).toMatchObject({ jsonrpc: '2.0', id: null })
    expect(answer.body.error.message).toContain('gone')
  })

  it('answers a passthrough request nested 100,000 levels deep with a JSON-RPC error, not a 500', async () => {
    const answer = await post('/mcp/servers/gone', deepArray)
    expect(answer.status).toBe(502)
    expect(answer.body).toMatchObject({ jsonrpc: '2.0', id: null })
  })
})
