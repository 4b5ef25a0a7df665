import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { setup, type TestContext } from '../setup.ts'
import { registerClient } from './helpers.ts'
import { oauthPost } from './support-flow.ts'

const WELL_KNOWN = '/.well-known/oauth-authorization-server'

function get(ctx: TestContext, path: string) {
  return ctx.app.handle(new Request(`http://localhost${path}`))
}

describe('authorization server metadata (RFC 8414)', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup()
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('names the public URL as the issuer, byte for byte', async () => {
    const response = await get(ctx, WELL_KNOWN)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toContain('application/json')
    const metadata = await response.json()
    expect(metadata.issuer).toBe('http://localhost:3000')
  })

  it('lists every endpoint under the issuer', async () => {
    const metadata = await (await get(ctx, WELL_KNOWN)).json()
    expect(metadata).toMatchObject({
      authorization_endpoint: 'http://localhost:3000/oauth2/authorize',
      token_endpoint: 'http://localhost:3000/oauth2/token',
      registration_endpoint: 'http://localhost:3000/oauth2/register',
      revocation_endpoint: 'http://localhost:3000/oauth2/revoke',
      introspection_endpoint: 'http://localhost:3000/oauth2/introspect',
    })
  })

  it('supports only the code flow with S256 PKCE', async () => {
    const metadata = await (await get(ctx, WELL_KNOWN)).json()
    expect(metadata.response_types_supported).toEqual(['code'])
    expect(metadata.code_challenge_methods_supported).toEqual(['S256'])
    expect(metadata.grant_types_supported).toEqual(['authorization_code', 'refresh_token'])
  })

  it('lists the token endpoint auth methods none, client_secret_basic and client_secret_post', async () => {
    const metadata = await (await get(ctx, WELL_KNOWN)).json()
    expect([...metadata.token_endpoint_auth_methods_supported].sort()).toEqual([
      'client_secret_basic',
      'client_secret_post',
      'none',
    ])
  })

  it('lists the scopes mcp, mcp:admin, api and offline_access', async () => {
    const metadata = await (await get(ctx, WELL_KNOWN)).json()
    expect([...metadata.scopes_supported].sort()).toEqual(['api', 'mcp', 'mcp:admin', 'offline_access'])
  })

  it('advertises client ID metadata documents and the iss authorization response parameter', async () => {
    const metadata = await (await get(ctx, WELL_KNOWN)).json()
    expect(metadata.client_id_metadata_document_supported).toBe(true)
    expect(metadata.authorization_response_iss_parameter_supported).toBe(true)
  })

  it('does not serve a path-aware variant when the issuer has no path', async () => {
    const response = await get(ctx, `${WELL_KNOWN}/gh`)
    expect(response.status).toBe(404)
  })
})

describe('authorization server metadata for an issuer with a path', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup({ publicUrl: 'https://example.com/gh' })
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('serves the document at the path-aware well-known URL (RFC 8414 §3.1)', async () => {
    const response = await get(ctx, `${WELL_KNOWN}/gh`)
    expect(response.status).toBe(200)
    const metadata = await response.json()
    expect(metadata.issuer).toBe('https://example.com/gh')
    expect(metadata.token_endpoint).toBe('https://example.com/gh/oauth2/token')
  })

  it('also serves the same document at the root well-known URL', async () => {
    const root = await (await get(ctx, WELL_KNOWN)).json()
    const pathAware = await (await get(ctx, `${WELL_KNOWN}/gh`)).json()
    expect(root.issuer).toBe('https://example.com/gh')
    expect(root).toEqual(pathAware)
  })
})

describe('CORS on the endpoints browser-based clients call', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup()
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('allows any origin to read the metadata', async () => {
    const response = await get(ctx, WELL_KNOWN)
    expect(response.headers.get('access-control-allow-origin')).toBe('*')
  })

  it('allows any origin on a successful registration', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/oauth2/register', {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: 'https://app.example.com' },
        body: JSON.stringify({
          client_name: 'SPA',
          redirect_uris: ['https://app.example.com/cb'],
          token_endpoint_auth_method: 'none',
        }),
      }),
    )
    expect(response.status).toBe(201)
    expect(response.headers.get('access-control-allow-origin')).toBe('*')
  })

  it('allows any origin on a refused registration', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/oauth2/register', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_name: 'SPA', redirect_uris: ['javascript:alert(1)'] }),
      }),
    )
    expect(response.status).toBe(400)
    expect((await response.json()).error).toBe('invalid_redirect_uri')
    expect(response.headers.get('access-control-allow-origin')).toBe('*')
  })

  it('allows any origin on a token error', async () => {
    const response = await oauthPost(ctx, '/oauth2/token', { grant_type: 'password' })
    expect(response.status).toBe(400)
    expect(response.body.error).toBe('unsupported_grant_type')
    expect(response.headers.get('access-control-allow-origin')).toBe('*')
  })

  it('allows any origin on a token error for a body that cannot be parsed', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/oauth2/token', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"grant_type":',
      }),
    )
    expect(response.status).toBe(400)
    expect((await response.json()).error).toBe('invalid_request')
    expect(response.headers.get('access-control-allow-origin')).toBe('*')
  })

  it('allows any origin on a revocation', async () => {
    const client = await registerClient(ctx)
    const response = await oauthPost(ctx, '/oauth2/revoke', { token: 'gth_oat_unknown', client_id: client.client_id })
    expect(response.status).toBe(200)
    expect(response.headers.get('access-control-allow-origin')).toBe('*')
  })

  it('allows any origin on a revocation error', async () => {
    const response = await oauthPost(ctx, '/oauth2/revoke', { token: 'gth_oat_unknown' })
    expect(response.status).toBe(401)
    expect(response.body.error).toBe('invalid_client')
    expect(response.headers.get('access-control-allow-origin')).toBe('*')
  })

  for (const path of [WELL_KNOWN, '/oauth2/token', '/oauth2/register', '/oauth2/revoke'])
    it(`answers an OPTIONS preflight on ${path} with 204 and allows the authorization header`, async () => {
      const response = await ctx.app.handle(
        new Request(`http://localhost${path}`, {
          method: 'OPTIONS',
          headers: {
            origin: 'https://app.example.com',
            'access-control-request-method': 'POST',
            'access-control-request-headers': 'authorization, content-type',
          },
        }),
      )
      expect(response.status).toBe(204)
      expect(response.headers.get('access-control-allow-origin')).toBe('*')
      const allowed = (response.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(/\s*,\s*/)
      expect(allowed).toContain('authorization')
      expect(allowed).toContain('content-type')
    })
})
