import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { bootstrapOwner, setup, type TestContext } from '../setup.ts'
import { authorizeWithBearer, createPkce, obtainTokens, registerClient, REDIRECT_URI, tokenRequest } from './helpers.ts'

describe('authorization code flow (seed scenarios)', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('answers a token request without parameters in RFC 6749 JSON with no-store', async () => {
    const response = await tokenRequest(ctx, {})
    expect(response.status).toBe(400)
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(response.body).toEqual({ error: 'invalid_request', error_description: 'grant_type is required' })
  })

  it('issues tokens for a code, refreshes them to new ones for the same user', async () => {
    const { client, tokens } = await obtainTokens(ctx, owner.token, {
      scope: 'mcp api offline_access',
      resource: 'http://localhost:3000/api',
    })
    expect(tokens).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'mcp api offline_access' })
    expect(tokens.access_token).toStartWith('gth_oat_')
    expect(tokens.refresh_token).toStartWith('gth_ort_')
    const before = await ctx.api(tokens.access_token).api.v1.users.me.get()
    expect(before.status).toBe(200)

    const refreshed = await tokenRequest(ctx, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token,
      client_id: client.client_id,
    })
    expect(refreshed.status).toBe(200)
    expect(refreshed.body.access_token).not.toBe(tokens.access_token)
    expect(refreshed.body.refresh_token).not.toBe(tokens.refresh_token)
    const after = await ctx.api(refreshed.body.access_token).api.v1.users.me.get()
    expect(after.data).toEqual(before.data!)
  })

  it('redirects with the code, the state and the issuer', async () => {
    const client = await registerClient(ctx)
    const pkce = createPkce()
    const location = await authorizeWithBearer(ctx, owner.token, {
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: REDIRECT_URI,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      state: 'the-state',
    })
    expect(location.origin + location.pathname).toBe(REDIRECT_URI)
    expect(location.searchParams.get('code')).toStartWith('gth_code_')
    expect(location.searchParams.get('state')).toBe('the-state')
    expect(location.searchParams.get('iss')).toBe('http://localhost:3000')
  })
})
