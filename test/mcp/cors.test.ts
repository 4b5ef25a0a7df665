// Browser-based MCP clients (MCP Inspector's web UI, web agents) on /mcp: CORS preflights, CORS
// headers on every answer to an allowed origin (the 401 challenge included), GATEHOUSE_ALLOWED_ORIGINS,
// every loopback origin for a loopback public URL, and the DNS-rebinding 403 kept for the rest.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'bun:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { ConfigError, loadConfig } from '../../src/config.ts'
import { cliEnv, createTempDir, runCli } from '../fixtures/cli-process.ts'
import { bootstrapOwner, setup, type TestContext } from '../setup.ts'
import {
  challengeParams,
  MCP_HEADERS,
  pinRevision,
  REQUEST_TIMEOUT_MS,
  REVISIONS,
  rpc,
  startMcpServer,
  type McpServer,
} from './support-mcp-server.ts'

/** Request headers a page may send without a preflight (Fetch standard, "CORS-safelisted request-header"). */
const SAFELISTED_REQUEST_HEADERS = new Set(['accept', 'accept-language', 'content-language'])
const SAFELISTED_CONTENT_TYPES = new Set(['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'])
/** Response headers a page may read without them being exposed ("CORS-safelisted response-header name"). */
const SAFELISTED_RESPONSE_HEADERS = new Set([
  'cache-control',
  'content-language',
  'content-length',
  'content-type',
  'expires',
  'last-modified',
  'pragma',
])

function listOf(header: string | null): string[] {
  return (header ?? '')
    .split(',')
    .map((item) => item.trim().toLowerCase())
    .filter(Boolean)
}

/**
 * `fetch` as a page on `origin` gets it from a browser: an Origin header, a preflight whenever
 * the Fetch standard asks for one (refused unless it allows the method and every header), a
 * network error unless the answer allows the origin, and only safelisted or exposed response
 * headers visible. `preflights` records each preflight's requested headers.
 */
function browserFetch(origin: string, preflights: string[][] = []): typeof fetch {
  const browser = async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    const unsafe = [...request.headers]
      .filter(([name, value]) =>
        name === 'content-type'
          ? !SAFELISTED_CONTENT_TYPES.has(value.split(';')[0].trim().toLowerCase())
          : !SAFELISTED_REQUEST_HEADERS.has(name),
      )
      .map(([name]) => name)
      .sort()
    if (unsafe.length > 0 || !['GET', 'HEAD', 'POST'].includes(request.method)) {
      preflights.push(unsafe)
      const preflight = await fetch(request.url, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': request.method,
          ...(unsafe.length > 0 ? { 'access-control-request-headers': unsafe.join(',') } : {}),
        },
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      })
      if (!preflight.ok) throw new TypeError(`Failed to fetch: preflight answered ${preflight.status}`)
      if (preflight.headers.get('access-control-allow-origin') !== origin)
        throw new TypeError('Failed to fetch: the preflight does not allow this origin')
      const methods = listOf(preflight.headers.get('access-control-allow-methods'))
      if (!['GET', 'HEAD', 'POST'].includes(request.method) && !methods.includes(request.method.toLowerCase()))
        throw new TypeError(`Failed to fetch: method ${request.method} is not allowed`)
      const allowed = listOf(preflight.headers.get('access-control-allow-headers'))
      const missing = unsafe.filter((name) => !allowed.includes(name))
      if (missing.length > 0) throw new TypeError(`Failed to fetch: headers ${missing.join(', ')} are not allowed`)
    }
    const headers = new Headers(request.headers)
    headers.set('origin', origin)
    const response = await fetch(request.url, {
      method: request.method,
      headers,
      body: request.body ? await request.arrayBuffer() : undefined,
      signal: request.signal,
    })
    if (response.headers.get('access-control-allow-origin') !== origin)
      throw new TypeError(`Failed to fetch: the ${response.status} answer does not allow this origin`)
    const exposed = new Set(listOf(response.headers.get('access-control-expose-headers')))
    const visible = new Headers()
    for (const [name, value] of response.headers)
      if (SAFELISTED_RESPONSE_HEADERS.has(name) || exposed.has(name)) visible.set(name, value)
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers: visible })
  }
  return browser as typeof fetch
}

function preflight(url: string, origin: string, method = 'POST', headers = 'authorization, content-type') {
  return fetch(`${url}/mcp`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
}

describe('CORS on /mcp with a loopback public URL', () => {
  let server: McpServer
  beforeAll(async () => {
    server = await startMcpServer()
  })
  afterAll(async () => {
    await server.close()
  })

  it('answers the preflight from the public URL origin with 204, without a token', async () => {
    const response = await preflight(server.url, server.publicUrl, 'DELETE', 'mcp-session-id, last-event-id')
    expect(response.status).toBe(204)
    expect(response.headers.get('access-control-allow-origin')).toBe(server.publicUrl)
    expect(listOf(response.headers.get('access-control-allow-methods'))).toEqual(
      expect.arrayContaining(['get', 'post', 'delete', 'options']),
    )
    expect(listOf(response.headers.get('access-control-allow-headers'))).toEqual(
      expect.arrayContaining([
        'authorization',
        'content-type',
        'mcp-protocol-version',
        'mcp-session-id',
        'last-event-id',
      ]),
    )
    expect(Number(response.headers.get('access-control-max-age'))).toBeGreaterThan(0)
    expect(listOf(response.headers.get('vary'))).toContain('origin')
  })

  for (const origin of ['http://localhost:6274', 'http://127.0.0.1:5173', 'http://[::1]:8080'])
    it(`allows the loopback origin ${origin} on another port`, async () => {
      const response = await preflight(server.url, origin)
      expect(response.status).toBe(204)
      expect(response.headers.get('access-control-allow-origin')).toBe(origin)
    })

  it('lets a page read the 401 challenge and its WWW-Authenticate', async () => {
    const response = await browserFetch('http://localhost:6274')(`${server.url}/mcp`, {
      method: 'POST',
      headers: MCP_HEADERS,
      body: JSON.stringify(rpc('tools/list')),
    })
    expect(response.status).toBe(401)
    const params = challengeParams(response.headers.get('www-authenticate'))
    expect(params.resource_metadata).toBe(`${server.publicUrl}/.well-known/oauth-protected-resource/mcp`)
  })

  it('puts the CORS headers on the 405 of GET /mcp too', async () => {
    const response = await fetch(`${server.url}/mcp`, {
      headers: { origin: 'http://localhost:6274', authorization: `Bearer ${server.owner.token}` },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    })
    expect(response.status).toBe(405)
    expect(response.headers.get('access-control-allow-origin')).toBe('http://localhost:6274')
    expect(listOf(response.headers.get('access-control-expose-headers'))).toEqual(
      expect.arrayContaining(['www-authenticate', 'mcp-session-id', 'mcp-protocol-version']),
    )
  })

  for (const revision of REVISIONS)
    it(`lets the SDK client in a page on localhost list and call tools (${revision})`, async () => {
      const preflights: string[][] = []
      const client = new Client({ name: 'browser-page', version: '1.0.0' }, pinRevision(revision))
      const transport = new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), {
        fetch: browserFetch(`http://localhost:6274`, preflights),
        requestInit: { headers: { authorization: `Bearer ${server.owner.token}` } },
      })
      try {
        await client.connect(transport)
        const tools = await client.listTools()
        expect(tools.tools.map((tool) => tool.name)).toContain('get_authenticated_user')
        const result = await client.callTool({ name: 'get_authenticated_user', arguments: {} })
        expect(result.structuredContent).toMatchObject({ username: 'owner' })
      } finally {
        await client.close().catch(() => {})
      }
      expect(preflights.length).toBeGreaterThan(0)
    })

  it('allows the Mcp-Param-* headers a preflight asks for', async () => {
    const response = await preflight(server.url, 'http://localhost:6274', 'POST', 'authorization, mcp-param-region')
    expect(listOf(response.headers.get('access-control-allow-headers'))).toContain('mcp-param-region')
  })

  it('still refuses a foreign origin: a 403 without CORS headers, and its preflight too', async () => {
    const response = await fetch(`${server.url}/mcp`, {
      method: 'POST',
      headers: { ...MCP_HEADERS, authorization: `Bearer ${server.owner.token}`, origin: 'https://evil.example.com' },
      body: JSON.stringify(rpc('tools/list')),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    })
    expect(response.status).toBe(403)
    expect(response.headers.get('access-control-allow-origin')).toBeNull()
    const refused = await preflight(server.url, 'https://evil.example.com')
    expect(refused.status).toBe(403)
    expect(refused.headers.get('access-control-allow-origin')).toBeNull()
  })

  it('refuses a page served from a loopback origin that is not http(s), or the opaque origin null', async () => {
    for (const origin of ['null', 'file://localhost']) expect((await preflight(server.url, origin)).status).toBe(403)
  })
})

describe('CORS on /mcp with GATEHOUSE_ALLOWED_ORIGINS', () => {
  let ctx: TestContext
  let owner: { token: string }
  beforeEach(async () => {
    ctx = await setup({ publicUrl: 'https://gate.example.com', allowedOrigins: ['https://app.example.com'] })
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  function postFrom(origin: string) {
    return ctx.app.handle(
      new Request('http://localhost/mcp', {
        method: 'POST',
        headers: { ...MCP_HEADERS, authorization: `Bearer ${owner.token}`, origin },
        body: JSON.stringify(rpc('tools/list')),
      }),
    )
  }

  it('answers a listed origin, with CORS headers', async () => {
    const response = await postFrom('https://app.example.com')
    expect(response.status).toBe(200)
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
  })

  it("answers the public URL's own origin", async () => {
    const response = await postFrom('https://gate.example.com')
    expect(response.status).toBe(200)
    expect(response.headers.get('access-control-allow-origin')).toBe('https://gate.example.com')
  })

  it('refuses an unlisted origin, loopback ones included when the public URL is not loopback', async () => {
    for (const origin of ['https://evil.example.com', 'http://localhost:6274', 'https://app.example.com:8443']) {
      const response = await postFrom(origin)
      expect(response.status).toBe(403)
      expect(response.headers.get('access-control-allow-origin')).toBeNull()
    }
  })
})

describe('GATEHOUSE_ALLOWED_ORIGINS', () => {
  function problemsOf(value: string): string[] {
    try {
      loadConfig({ GATEHOUSE_ALLOWED_ORIGINS: value })
    } catch (error) {
      if (error instanceof ConfigError) return error.problems
      throw error
    }
    return []
  }

  it('reads comma-separated origins as a browser writes them', () => {
    const config = loadConfig({ GATEHOUSE_ALLOWED_ORIGINS: ' HTTPS://App.Example.com:443/ , http://localhost:6274' })
    expect(config.allowedOrigins).toEqual(['https://app.example.com', 'http://localhost:6274'])
  })

  it('allows no other origin by default', () => {
    expect(loadConfig({}).allowedOrigins).toEqual([])
  })

  for (const value of [
    'https://app.example.com/path',
    '*',
    'app.example.com',
    'ftp://app.example.com',
    'https://a.example.com?x',
  ])
    it(`refuses ${JSON.stringify(value)} with one line naming the variable`, () => {
      const problems = problemsOf(`https://ok.example.com,${value}`)
      expect(problems).toHaveLength(1)
      expect(problems[0]).toStartWith('GATEHOUSE_ALLOWED_ORIGINS: ')
      expect(problems[0]).toContain(value)
    })

  it('stops gatehouse serve with status 2', async () => {
    const dataDir = createTempDir()
    try {
      const result = await runCli(
        ['serve'],
        cliEnv({ GATEHOUSE_ALLOWED_ORIGINS: 'https://app.example.com/mcp', GATEHOUSE_DATA_DIR: dataDir.path }),
      )
      expect(result.exitCode).toBe(2)
      expect(result.stderr).toContain('GATEHOUSE_ALLOWED_ORIGINS')
    } finally {
      dataDir.remove()
    }
  })
})
