import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { bootstrapOwner, setup, type TestContext } from '../setup.ts'
import { obtainTokens, registerClient } from './helpers.ts'
import { API_RESOURCE, authorizeCode, basicAuth, callApi, exchangeCode, oauthPost, refresh } from './support-flow.ts'

const API_TOKENS = { scope: 'api offline_access', resource: API_RESOURCE }

describe('token revocation (RFC 7009)', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  function revoke(clientId: string, token: string, hint?: string) {
    return oauthPost(ctx, '/oauth2/revoke', { token, client_id: clientId, ...(hint ? { token_type_hint: hint } : {}) })
  }

  it('answers 200 for a token it does not know', async () => {
    const client = await registerClient(ctx)
    const response = await revoke(client.client_id, 'gth_oat_doesnotexist')
    expect(response.status).toBe(200)
    expect(response.headers.get('cache-control')).toBe('no-store')
  })

  it("answers 200 for another client's token and leaves that token working", async () => {
    const { tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
    const other = await registerClient(ctx)
    const response = await revoke(other.client_id, tokens.access_token)
    expect(response.status).toBe(200)
    expect((await callApi(ctx, tokens.access_token)).status).toBe(200)
  })

  it("leaves another client's refresh token working", async () => {
    const { client, tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
    const other = await registerClient(ctx)
    expect((await revoke(other.client_id, tokens.refresh_token)).status).toBe(200)
    expect((await refresh(ctx, client.client_id, tokens.refresh_token)).status).toBe(200)
  })

  it('stops a revoked access token from working at once', async () => {
    const { client, tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
    expect((await callApi(ctx, tokens.access_token)).status).toBe(200)
    expect((await revoke(client.client_id, tokens.access_token, 'access_token')).status).toBe(200)
    expect((await callApi(ctx, tokens.access_token)).status).toBe(401)
  })

  it('ends the grant when its refresh token is revoked: the refresh token is refused', async () => {
    const { client, tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
    expect((await revoke(client.client_id, tokens.refresh_token, 'refresh_token')).status).toBe(200)
    const refreshed = await refresh(ctx, client.client_id, tokens.refresh_token)
    expect(refreshed.status).toBe(400)
    expect(refreshed.body.error).toBe('invalid_grant')
  })

  it('ends the grant when its refresh token is revoked: the access token stops working too', async () => {
    const { client, tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
    await revoke(client.client_id, tokens.refresh_token)
    expect((await callApi(ctx, tokens.access_token)).status).toBe(401)
  })

  it('refuses a revocation without client identification with 401 invalid_client', async () => {
    const { tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
    const response = await oauthPost(ctx, '/oauth2/revoke', { token: tokens.access_token })
    expect(response.status).toBe(401)
    expect(response.body.error).toBe('invalid_client')
    expect((await callApi(ctx, tokens.access_token)).status).toBe(200)
  })
})

describe('token introspection (RFC 7662)', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  /** A confidential client and the tokens the owner granted it. */
  async function confidentialTokens() {
    const client = await registerClient(ctx, { token_endpoint_auth_method: 'client_secret_basic' })
    const auth = basicAuth(client.client_id, client.client_secret!)
    const { code, pkce } = await authorizeCode(ctx, owner.token, client.client_id, API_TOKENS)
    const tokens = await exchangeCode(ctx, { code, verifier: pkce.verifier }, {}, auth)
    expect(tokens.status).toBe(200)
    return { client, auth, tokens: tokens.body }
  }

  function introspect(token: string, auth: Record<string, string>) {
    return oauthPost(ctx, '/oauth2/introspect', { token }, auth)
  }

  it("describes the client's own live access token", async () => {
    const { client, auth, tokens } = await confidentialTokens()
    const response = await introspect(tokens.access_token, auth)
    expect(response.status).toBe(200)
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(response.body).toMatchObject({
      active: true,
      scope: 'api offline_access',
      client_id: client.client_id,
      username: 'owner',
      sub: owner.id,
      aud: API_RESOURCE,
    })
    const now = Math.floor(Date.now() / 1000)
    expect(response.body.exp).toBeGreaterThan(now)
    expect(response.body.exp).toBeLessThanOrEqual(now + 3600 + 5)
  })

  it("describes the client's own live refresh token as active", async () => {
    const { client, auth, tokens } = await confidentialTokens()
    const response = await introspect(tokens.refresh_token, auth)
    expect(response.body).toMatchObject({ active: true, client_id: client.client_id, sub: owner.id })
  })

  it('answers active false for a revoked token', async () => {
    const { auth, tokens } = await confidentialTokens()
    expect((await oauthPost(ctx, '/oauth2/revoke', { token: tokens.access_token }, auth)).status).toBe(200)
    const response = await introspect(tokens.access_token, auth)
    expect(response.status).toBe(200)
    expect(response.body).toEqual({ active: false })
  })

  it("answers active false for another client's token", async () => {
    const { tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
    const { auth } = await confidentialTokens()
    const response = await introspect(tokens.access_token, auth)
    expect(response.status).toBe(200)
    expect(response.body).toEqual({ active: false })
  })

  it('answers active false for garbage', async () => {
    const { auth } = await confidentialTokens()
    const response = await introspect('not-a-token-at-all', auth)
    expect(response.status).toBe(200)
    expect(response.body).toEqual({ active: false })
  })

  it('answers a public client with 401 invalid_client', async () => {
    const { client, tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
    const response = await oauthPost(ctx, '/oauth2/introspect', {
      token: tokens.access_token,
      client_id: client.client_id,
    })
    expect(response.status).toBe(401)
    expect(response.body.error).toBe('invalid_client')
    expect(response.body.active).toBeUndefined()
  })

  it('answers a wrong client secret with 401 invalid_client', async () => {
    const { client, tokens } = await confidentialTokens()
    const response = await introspect(tokens.access_token, basicAuth(client.client_id, 'gth_cs_wrong'))
    expect(response.status).toBe(401)
    expect(response.body.error).toBe('invalid_client')
  })
})
