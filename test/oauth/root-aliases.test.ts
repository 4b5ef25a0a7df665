import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'bun:test'
import { exchangeAuthorization, registerClient, startAuthorization } from '@modelcontextprotocol/client'
import { findFreePort } from '../fixtures/cli-process.ts'
import { decideAsUser, signUpOwner } from '../fixtures/http.ts'
import { setup, startTestServer, type TestContext } from '../setup.ts'
import { REDIRECT_URI } from './helpers.ts'

// MCP 2025-03-26 clients that find no authorization server metadata fall back to /authorize,
// /token and /register at the MCP URL's origin. Gatehouse redirects them to its /oauth2/ endpoints.

const TIMEOUT_MS = 10_000

describe('the 2025-03-26 default endpoint paths', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup()
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('redirects GET /authorize to /oauth2/authorize with 307, keeping the query', async () => {
    const query = '?response_type=code&client_id=abc&state=s%20t&code_challenge=x'
    const response = await ctx.app.handle(new Request(`http://localhost/authorize${query}`))
    expect(response.status).toBe(307)
    expect(response.headers.get('location')).toBe(`/oauth2/authorize${query}`)
  })

  it('redirects POST /authorize with 307, so the decision is posted again', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/authorize?client_id=abc', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'decision=approve',
      }),
    )
    expect(response.status).toBe(307)
    expect(response.headers.get('location')).toBe('/oauth2/authorize?client_id=abc')
  })

  for (const endpoint of ['token', 'register'])
    it(`redirects POST /${endpoint} to /oauth2/${endpoint} with 307, readable by a browser client`, async () => {
      const response = await ctx.app.handle(
        new Request(`http://localhost/${endpoint}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://app.example.com' },
          body: 'grant_type=authorization_code',
        }),
      )
      expect(response.status).toBe(307)
      expect(response.headers.get('location')).toBe(`/oauth2/${endpoint}`)
      expect(response.headers.get('access-control-allow-origin')).toBe('*')
    })

  it('answers the CORS preflight of /token and /register with 204', async () => {
    for (const endpoint of ['token', 'register']) {
      const response = await ctx.app.handle(
        new Request(`http://localhost/${endpoint}`, {
          method: 'OPTIONS',
          headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' },
        }),
      )
      expect(response.status).toBe(204)
      expect(response.headers.get('access-control-allow-origin')).toBe('*')
    }
  })

  it('leaves a body that cannot be parsed to the endpoint it redirects to', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/token', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{not json',
      }),
    )
    expect(response.status).toBe(307)
  })
})

describe('the 2025-03-26 default endpoint paths behind a proxy that strips /gh', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup({ publicUrl: 'https://example.com/gh' })
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('redirects <base>/authorize and <base>/token under the base path', async () => {
    const authorize = await ctx.app.handle(new Request('http://localhost/authorize?client_id=abc'))
    expect(authorize.status).toBe(307)
    expect(authorize.headers.get('location')).toBe('/gh/oauth2/authorize?client_id=abc')
    const token = await ctx.app.handle(new Request('http://localhost/token', { method: 'POST', body: '' }))
    expect(token.headers.get('location')).toBe('/gh/oauth2/token')
  })
})

describe('an MCP SDK client that skips metadata discovery, over HTTP', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>
  let publicUrl: string
  let sessionToken: string
  beforeAll(async () => {
    const port = await findFreePort()
    publicUrl = `http://127.0.0.1:${port}`
    server = await startTestServer({ port, publicUrl })
    sessionToken = await signUpOwner(publicUrl)
  })
  afterAll(async () => {
    await server?.close()
  })

  it('registers at /register through Bun fetch following the 307 with the body', async () => {
    const response = await fetch(`${publicUrl}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'follows redirects', redirect_uris: [REDIRECT_URI] }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    expect(response.status).toBe(201)
    expect(response.redirected).toBe(true)
    expect(await response.json()).toMatchObject({ client_name: 'follows redirects', redirect_uris: [REDIRECT_URI] })
  })

  it('registers, authorizes and exchanges the code at the root paths, and the token opens /mcp', async () => {
    // No `metadata`: the SDK's functions then use /register, /authorize and /token at the origin.
    const clientInformation = await registerClient(publicUrl, {
      clientMetadata: {
        client_name: 'MCP 2025-03-26 fallback client',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
      },
    })
    const { authorizationUrl, codeVerifier } = await startAuthorization(publicUrl, {
      clientInformation,
      redirectUrl: REDIRECT_URI,
      scope: 'mcp',
      state: 'fallback',
    })
    expect(authorizationUrl.pathname).toBe('/authorize')

    const redirected = await fetch(authorizationUrl, { redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_MS) })
    expect(redirected.status).toBe(307)
    const callback = await decideAsUser(new URL(redirected.headers.get('location')!, publicUrl), sessionToken)
    expect(callback.searchParams.get('state')).toBe('fallback')

    const tokens = await exchangeAuthorization(publicUrl, {
      clientInformation,
      authorizationCode: callback.searchParams.get('code')!,
      codeVerifier,
      redirectUri: REDIRECT_URI,
    })
    expect(tokens.access_token).toStartWith('gth_oat_')
    expect(tokens.scope).toBe('mcp')

    const mcp = await fetch(`${publicUrl}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokens.access_token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-03-26',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    expect(mcp.status).toBe(200)
  })
})
