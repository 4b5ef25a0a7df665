import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { sweepExpired } from '../../src/ops/maintenance.ts'
import { bootstrapOwner, createUserAndLogin, setup, startTestServer, type TestContext } from '../setup.ts'
import { createPkce, obtainTokens, REDIRECT_URI, registerClient } from './helpers.ts'
import { API_RESOURCE, authorizeParams, callApi, getAuthorize, refresh } from './support-flow.ts'

type Ctx = Pick<TestContext, 'app'>

async function register(ctx: Ctx, body: unknown, headers: Record<string, string> = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  const response = await ctx.app.handle(
    new Request('http://localhost/oauth2/register', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'content-length': String(new TextEncoder().encode(text).length),
        ...headers,
      },
      body: text,
    }),
  )
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, any> }
}

async function manage(ctx: Ctx, method: string, clientId: string, token: string, body?: unknown) {
  const response = await ctx.app.handle(
    new Request(`http://localhost/oauth2/register/${encodeURIComponent(clientId)}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    }),
  )
  const text = await response.text()
  return {
    status: response.status,
    headers: response.headers,
    body: (text ? JSON.parse(text) : undefined) as Record<string, any>,
  }
}

const PUBLIC_CLIENT = {
  client_name: 'Claude Code',
  redirect_uris: [REDIRECT_URI],
  grant_types: ['authorization_code', 'refresh_token'],
  token_endpoint_auth_method: 'none',
}

describe('dynamic client registration (RFC 7591)', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup()
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('registers a public client without a secret', async () => {
    const response = await register(ctx, PUBLIC_CLIENT)
    expect(response.status).toBe(201)
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(response.body).toMatchObject({
      client_name: 'Claude Code',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'none',
    })
    expect(typeof response.body.client_id).toBe('string')
    expect(response.body.registration_access_token).toStartWith('gth_reg_')
    expect(response.body.client_secret).toBeUndefined()
    expect(response.body.client_secret_expires_at).toBeUndefined()
  })

  it('gives a confidential client a secret that does not expire', async () => {
    const response = await register(ctx, { ...PUBLIC_CLIENT, token_endpoint_auth_method: 'client_secret_basic' })
    expect(response.status).toBe(201)
    expect(response.body.token_endpoint_auth_method).toBe('client_secret_basic')
    expect(response.body.client_secret).toStartWith('gth_cs_')
    expect(response.body.client_secret_expires_at).toBe(0)
  })

  it('accepts client_secret_post', async () => {
    const response = await register(ctx, { ...PUBLIC_CLIENT, token_endpoint_auth_method: 'client_secret_post' })
    expect(response.status).toBe(201)
    expect(response.body.token_endpoint_auth_method).toBe('client_secret_post')
    expect(response.body.client_secret).toStartWith('gth_cs_')
  })

  it('allows two clients with the same name, each with its own client_id', async () => {
    const first = await register(ctx, PUBLIC_CLIENT)
    const second = await register(ctx, PUBLIC_CLIENT)
    expect(first.status).toBe(201)
    expect(second.status).toBe(201)
    expect(second.body.client_name).toBe(first.body.client_name)
    expect(second.body.client_id).not.toBe(first.body.client_id)
  })

  it('registers a VS Code-like client and drops the device_code grant it does not support', async () => {
    const response = await register(ctx, {
      client_name: 'Visual Studio Code',
      redirect_uris: ['http://127.0.0.1:33418/', 'https://vscode.dev/redirect'],
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    })
    expect(response.status).toBe(201)
    expect(response.body.grant_types).toEqual(['authorization_code', 'refresh_token'])
  })

  it('accepts a private-use scheme redirect URI for a public client', async () => {
    const response = await register(ctx, {
      ...PUBLIC_CLIENT,
      redirect_uris: ['cursor://anysphere.cursor-retrieval/oauth/callback'],
    })
    expect(response.status).toBe(201)
    expect(response.body.redirect_uris).toEqual(['cursor://anysphere.cursor-retrieval/oauth/callback'])
  })

  it('refuses a private-use scheme redirect URI for a confidential client', async () => {
    const response = await register(ctx, {
      ...PUBLIC_CLIENT,
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: ['cursor://anysphere.cursor-retrieval/oauth/callback'],
    })
    expect(response.status).toBe(400)
    expect(response.body.error).toBe('invalid_redirect_uri')
    expect(response.body.error_description).toContain('public clients')
  })

  for (const [label, uri, words] of [
    ['a javascript: URI', 'javascript:alert(document.cookie)', 'javascript'],
    ['a data: URI', 'data:text/html,<script>alert(1)</script>', 'data'],
    ['a URI with a fragment', 'https://app.example.com/cb#fragment', 'fragment'],
    ['plain http to a public host', 'http://app.example.com/cb', 'https'],
  ] as const)
    it(`refuses ${label} with invalid_redirect_uri`, async () => {
      const response = await register(ctx, { ...PUBLIC_CLIENT, redirect_uris: [uri] })
      expect(response.status).toBe(400)
      expect(response.headers.get('cache-control')).toBe('no-store')
      expect(response.body.error).toBe('invalid_redirect_uri')
      expect(response.body.error_description).toContain(words)
    })

  it('refuses a registration without redirect_uris with invalid_redirect_uri', async () => {
    const { redirect_uris: _, ...body } = PUBLIC_CLIENT
    const response = await register(ctx, body)
    expect(response.status).toBe(400)
    expect(response.body.error).toBe('invalid_redirect_uri')
    expect(response.body.error_description).toContain('redirect_uris')
  })

  it('refuses a body over 16 KiB with 413', async () => {
    const response = await register(ctx, {
      ...PUBLIC_CLIENT,
      client_uri: `https://app.example.com/${'a'.repeat(17 * 1024)}`,
    })
    expect(response.status).toBe(413)
    expect(response.body.error).toBe('invalid_client_metadata')
    expect(response.headers.get('cache-control')).toBe('no-store')
  })

  it('refuses a body that is not JSON with invalid_request or invalid_client_metadata, never a 500', async () => {
    const response = await register(ctx, '{"client_name":')
    expect(response.status).toBe(400)
    expect(['invalid_request', 'invalid_client_metadata']).toContain(response.body.error)
  })
})

describe('registration limits', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup({ registrationRateLimit: 2 })
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('answers the third registration from one address within the hour with 429 and retry-after', async () => {
    expect((await register(ctx, PUBLIC_CLIENT)).status).toBe(201)
    expect((await register(ctx, PUBLIC_CLIENT)).status).toBe(201)
    const third = await register(ctx, PUBLIC_CLIENT)
    expect(third.status).toBe(429)
    expect(third.body.error).toBe('temporarily_unavailable')
    const retryAfter = Number(third.headers.get('retry-after'))
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(3600)
  })
})

describe('registration limits on a real server', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>
  beforeEach(async () => {
    server = await startTestServer({ registrationRateLimit: 2, trustProxy: true })
  })
  afterEach(async () => {
    await server.close()
  })

  function registerFrom(address: string) {
    return fetch(new URL('/oauth2/register', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
      body: JSON.stringify(PUBLIC_CLIENT),
    })
  }

  it('counts registrations per client address', async () => {
    expect((await registerFrom('203.0.113.1')).status).toBe(201)
    expect((await registerFrom('203.0.113.1')).status).toBe(201)
    expect((await registerFrom('203.0.113.1')).status).toBe(429)
    expect((await registerFrom('198.51.100.7')).status).toBe(201)
  })
})

describe('turning dynamic registration off', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('answers registrations with 403 access_denied once an admin turned it off', async () => {
    const changed = await ctx.api(owner.token).api.v1.settings.oauth.put({ dynamic_registration: false })
    expect(changed.status).toBe(200)
    expect(changed.data).toEqual({ dynamic_registration: false })
    const response = await register(ctx, PUBLIC_CLIENT)
    expect(response.status).toBe(403)
    expect(response.body.error).toBe('access_denied')
    expect(response.body.error_description).toContain('turned off')
  })

  it('opens registration again when an admin turns it back on', async () => {
    await ctx.api(owner.token).api.v1.settings.oauth.put({ dynamic_registration: false })
    await ctx.api(owner.token).api.v1.settings.oauth.put({ dynamic_registration: true })
    expect((await ctx.api(owner.token).api.v1.settings.oauth.get()).data).toEqual({ dynamic_registration: true })
    expect((await register(ctx, PUBLIC_CLIENT)).status).toBe(201)
  })

  it('does not let a member change the setting', async () => {
    const member = await createUserAndLogin(ctx, owner.token, 'member1')
    const response = await ctx.api(member.token).api.v1.settings.oauth.put({ dynamic_registration: false })
    expect(response.status).toBe(403)
    expect((await register(ctx, PUBLIC_CLIENT)).status).toBe(201)
  })
})

describe('client registration management (RFC 7592)', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup()
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('reads a registration with its registration access token', async () => {
    const registered = (await register(ctx, PUBLIC_CLIENT)).body
    const response = await manage(ctx, 'GET', registered.client_id, registered.registration_access_token)
    expect(response.status).toBe(200)
    expect(response.body).toMatchObject({
      client_id: registered.client_id,
      client_name: 'Claude Code',
      redirect_uris: [REDIRECT_URI],
      registration_client_uri: `http://localhost:3000/oauth2/register/${registered.client_id}`,
    })
    expect(response.body.client_secret).toBeUndefined()
  })

  it('answers a wrong registration access token with 401 invalid_token', async () => {
    const registered = (await register(ctx, PUBLIC_CLIENT)).body
    const response = await manage(ctx, 'GET', registered.client_id, 'gth_reg_wrong')
    expect(response.status).toBe(401)
    expect(response.body.error).toBe('invalid_token')
    expect(response.headers.get('www-authenticate')).toContain('invalid_token')
  })

  it("answers another client's registration access token with 401 invalid_token", async () => {
    const mine = (await register(ctx, PUBLIC_CLIENT)).body
    const theirs = (await register(ctx, PUBLIC_CLIENT)).body
    const response = await manage(ctx, 'GET', theirs.client_id, mine.registration_access_token)
    expect(response.status).toBe(401)
    expect(response.body.error).toBe('invalid_token')
  })

  it('changes the redirect_uris with PUT', async () => {
    const registered = (await register(ctx, PUBLIC_CLIENT)).body
    const updated = await manage(ctx, 'PUT', registered.client_id, registered.registration_access_token, {
      ...PUBLIC_CLIENT,
      client_id: registered.client_id,
      redirect_uris: ['https://app.example.com/callback'],
    })
    expect(updated.status).toBe(200)
    expect(updated.body.redirect_uris).toEqual(['https://app.example.com/callback'])
    const read = await manage(ctx, 'GET', registered.client_id, registered.registration_access_token)
    expect(read.body.redirect_uris).toEqual(['https://app.example.com/callback'])
  })

  it('refuses the old redirect URI at the authorization endpoint after PUT replaced it', async () => {
    const registered = (await register(ctx, PUBLIC_CLIENT)).body
    await manage(ctx, 'PUT', registered.client_id, registered.registration_access_token, {
      ...PUBLIC_CLIENT,
      redirect_uris: ['https://app.example.com/callback'],
    })
    const response = await getAuthorize(ctx, authorizeParams(registered.client_id, createPkce()))
    expect(response.status).toBe(400)
    expect(response.headers.get('location')).toBeNull()
  })

  it('refuses a PUT whose client_id differs from the URL', async () => {
    const registered = (await register(ctx, PUBLIC_CLIENT)).body
    const response = await manage(ctx, 'PUT', registered.client_id, registered.registration_access_token, {
      ...PUBLIC_CLIENT,
      client_id: 'someone-else',
    })
    expect(response.status).toBe(400)
    expect(response.body.error).toBe('invalid_client_metadata')
  })

  it('deletes a registration with 204', async () => {
    const registered = (await register(ctx, PUBLIC_CLIENT)).body
    const deleted = await manage(ctx, 'DELETE', registered.client_id, registered.registration_access_token)
    expect(deleted.status).toBe(204)
    const read = await manage(ctx, 'GET', registered.client_id, registered.registration_access_token)
    expect(read.status).toBe(401)
  })

  it("stops the client's tokens from working once the registration is deleted", async () => {
    const owner = await bootstrapOwner(ctx)
    const { client, tokens } = await obtainTokens(ctx, owner.token, {
      scope: 'api offline_access',
      resource: API_RESOURCE,
    })
    expect((await callApi(ctx, tokens.access_token)).status).toBe(200)
    const deleted = await manage(ctx, 'DELETE', client.client_id, client.registration_access_token)
    expect(deleted.status).toBe(204)
    expect((await callApi(ctx, tokens.access_token)).status).toBe(401)
    const refreshed = await refresh(ctx, client.client_id, tokens.refresh_token)
    expect(refreshed.status).toBe(401)
    expect(refreshed.body.error).toBe('invalid_client')
  })
})

describe('expiry of unused dynamic clients', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup({ dynamicClientTtlSeconds: 3600 })
  })
  afterEach(async () => {
    await ctx.close()
  })

  async function ageClient(clientId: string) {
    await ctx.db
      .updateTable('oauth_clients')
      .set({ created_at: Math.floor(Date.now() / 1000) - 7200 })
      .where('id', '=', clientId)
      .execute()
  }

  it('deletes a dynamic client that never completed a sign-in once it is older than the TTL', async () => {
    const client = await registerClient(ctx)
    await ageClient(client.client_id)
    await sweepExpired(ctx.deps)
    const response = await getAuthorize(ctx, authorizeParams(client.client_id, createPkce()))
    expect(response.status).toBe(400)
    expect(await response.text()).toContain('not registered')
  })

  it('keeps an unused dynamic client that is younger than the TTL', async () => {
    const client = await registerClient(ctx)
    await sweepExpired(ctx.deps)
    const response = await getAuthorize(ctx, authorizeParams(client.client_id, createPkce()))
    expect(response.status).toBe(302)
    expect(response.headers.get('location')).toStartWith('/login?next=')
  })

  it('keeps an old dynamic client that has been used', async () => {
    const owner = await bootstrapOwner(ctx)
    const { client, tokens } = await obtainTokens(ctx, owner.token, {
      scope: 'api offline_access',
      resource: API_RESOURCE,
    })
    await ageClient(client.client_id)
    await sweepExpired(ctx.deps)
    const refreshed = await refresh(ctx, client.client_id, tokens.refresh_token)
    expect(refreshed.status).toBe(200)
    expect((await callApi(ctx, refreshed.body.access_token)).status).toBe(200)
  })
})
