import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { bootstrapOwner, createUserAndLogin, setup, type TestContext } from '../setup.ts'
import { hashToken } from '../../src/auth/token.ts'
import { createPkce, obtainTokens, REDIRECT_URI, registerClient, tokenRequest } from './helpers.ts'
import { API_RESOURCE, authorizeCode, basicAuth, callApi, exchangeCode, oauthPost, refresh } from './support-flow.ts'

/** An RFC 6749 §5.2 error as a client sees it: the status, the code, no-store. */
function expectTokenError(
  response: { status: number; headers: Headers; body: Record<string, any> },
  status: number,
  error: string,
) {
  expect(response.status).toBe(status)
  expect(response.headers.get('content-type')).toContain('application/json')
  expect(response.headers.get('cache-control')).toBe('no-store')
  expect(response.body.error).toBe(error)
  expect(typeof response.body.error_description).toBe('string')
}

const API_TOKENS = { scope: 'api offline_access', resource: API_RESOURCE }

describe('token endpoint', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  describe('errors (RFC 6749 §5.2)', () => {
    it('answers a request without grant_type with invalid_request', async () => {
      const response = await tokenRequest(ctx, { code: 'x' })
      expectTokenError(response, 400, 'invalid_request')
      expect(response.body.error_description).toBe('grant_type is required')
    })

    it('answers grant_type=password with unsupported_grant_type', async () => {
      const response = await tokenRequest(ctx, { grant_type: 'password', username: 'owner', password: 'x' })
      expectTokenError(response, 400, 'unsupported_grant_type')
      expect(response.body.error_description).toContain('password')
    })

    it('answers a code exchange without code with invalid_request', async () => {
      const client = await registerClient(ctx)
      const response = await tokenRequest(ctx, {
        grant_type: 'authorization_code',
        client_id: client.client_id,
        redirect_uri: REDIRECT_URI,
        code_verifier: createPkce().verifier,
      })
      expectTokenError(response, 400, 'invalid_request')
      expect(response.body.error_description).toBe('code is required')
    })

    it('answers a code exchange without code_verifier with invalid_request', async () => {
      const client = await registerClient(ctx)
      const { code } = await authorizeCode(ctx, owner.token, client.client_id)
      const response = await tokenRequest(ctx, {
        grant_type: 'authorization_code',
        client_id: client.client_id,
        code,
        redirect_uri: REDIRECT_URI,
      })
      expectTokenError(response, 400, 'invalid_request')
      expect(response.body.error_description).toContain('code_verifier is required')
    })

    it('answers a wrong code_verifier with invalid_grant', async () => {
      const client = await registerClient(ctx)
      const { code } = await authorizeCode(ctx, owner.token, client.client_id)
      const response = await exchangeCode(ctx, { clientId: client.client_id, code, verifier: createPkce().verifier })
      expectTokenError(response, 400, 'invalid_grant')
      expect(response.body.error_description).toContain('code_verifier')
    })

    it('answers a redirect_uri that differs from the authorization request with invalid_grant', async () => {
      const client = await registerClient(ctx, { redirect_uris: [REDIRECT_URI, 'https://app.example.com/cb'] })
      const { code, pkce } = await authorizeCode(ctx, owner.token, client.client_id)
      const response = await exchangeCode(ctx, {
        clientId: client.client_id,
        code,
        verifier: pkce.verifier,
        redirectUri: 'https://app.example.com/cb',
      })
      expectTokenError(response, 400, 'invalid_grant')
      expect(response.body.error_description).toContain('redirect_uri')
    })

    it('answers a code issued to another client with invalid_grant', async () => {
      const victim = await registerClient(ctx)
      const attacker = await registerClient(ctx)
      const { code, pkce } = await authorizeCode(ctx, owner.token, victim.client_id)
      const response = await exchangeCode(ctx, { clientId: attacker.client_id, code, verifier: pkce.verifier })
      expectTokenError(response, 400, 'invalid_grant')
    })

    it('answers an expired code with invalid_grant', async () => {
      const client = await registerClient(ctx)
      const { code, pkce } = await authorizeCode(ctx, owner.token, client.client_id)
      await ctx.db
        .updateTable('oauth_authorization_codes')
        .set({ expires_at: Math.floor(Date.now() / 1000) - 10 })
        .where('code_hash', '=', hashToken(code))
        .execute()
      const response = await exchangeCode(ctx, { clientId: client.client_id, code, verifier: pkce.verifier })
      expectTokenError(response, 400, 'invalid_grant')
      expect(response.body.error_description).toContain('expired')
    })

    it('answers an unknown code with invalid_grant', async () => {
      const client = await registerClient(ctx)
      const response = await exchangeCode(ctx, {
        clientId: client.client_id,
        code: 'gth_code_nonsense',
        verifier: createPkce().verifier,
      })
      expectTokenError(response, 400, 'invalid_grant')
    })
  })

  describe('code replay', () => {
    it('refuses a second use of a code with invalid_grant', async () => {
      const client = await registerClient(ctx)
      const { code, pkce } = await authorizeCode(ctx, owner.token, client.client_id)
      expect((await exchangeCode(ctx, { clientId: client.client_id, code, verifier: pkce.verifier })).status).toBe(200)
      const replay = await exchangeCode(ctx, { clientId: client.client_id, code, verifier: pkce.verifier })
      expectTokenError(replay, 400, 'invalid_grant')
      expect(replay.body.error_description).toContain('already used')
    })

    it('revokes the access token the code issued when the code is replayed', async () => {
      const client = await registerClient(ctx)
      const { code, pkce } = await authorizeCode(ctx, owner.token, client.client_id, API_TOKENS)
      const first = await exchangeCode(ctx, { clientId: client.client_id, code, verifier: pkce.verifier })
      expect((await callApi(ctx, first.body.access_token)).status).toBe(200)
      await exchangeCode(ctx, { clientId: client.client_id, code, verifier: pkce.verifier })
      expect((await callApi(ctx, first.body.access_token)).status).toBe(401)
    })

    it('revokes the refresh token the code issued when the code is replayed', async () => {
      const client = await registerClient(ctx)
      const { code, pkce } = await authorizeCode(ctx, owner.token, client.client_id, API_TOKENS)
      const first = await exchangeCode(ctx, { clientId: client.client_id, code, verifier: pkce.verifier })
      expect(first.body.refresh_token).toStartWith('gth_ort_')
      await exchangeCode(ctx, { clientId: client.client_id, code, verifier: pkce.verifier })
      expectTokenError(await refresh(ctx, client.client_id, first.body.refresh_token), 400, 'invalid_grant')
    })
  })

  describe('client authentication', () => {
    async function confidentialClient(method: 'client_secret_basic' | 'client_secret_post' = 'client_secret_basic') {
      const client = await registerClient(ctx, { token_endpoint_auth_method: method })
      expect(client.client_secret).toStartWith('gth_cs_')
      const { code, pkce } = await authorizeCode(ctx, owner.token, client.client_id)
      return { id: client.client_id, secret: client.client_secret!, code, verifier: pkce.verifier }
    }

    it('accepts a confidential client authenticated with HTTP Basic', async () => {
      const client = await confidentialClient()
      const response = await exchangeCode(
        ctx,
        { code: client.code, verifier: client.verifier },
        {},
        basicAuth(client.id, client.secret),
      )
      expect(response.status).toBe(200)
      expect(response.body.access_token).toStartWith('gth_oat_')
    })

    it('accepts a confidential client sending its secret in the body (client_secret_post)', async () => {
      const client = await confidentialClient('client_secret_post')
      const response = await exchangeCode(
        ctx,
        { clientId: client.id, code: client.code, verifier: client.verifier },
        { client_secret: client.secret },
      )
      expect(response.status).toBe(200)
      expect(response.body.access_token).toStartWith('gth_oat_')
    })

    it('answers a wrong secret sent with Basic with 401 invalid_client and a Basic challenge', async () => {
      const client = await confidentialClient()
      const response = await exchangeCode(
        ctx,
        { code: client.code, verifier: client.verifier },
        {},
        basicAuth(client.id, 'gth_cs_wrong'),
      )
      expectTokenError(response, 401, 'invalid_client')
      expect(response.headers.get('www-authenticate')).toStartWith('Basic ')
    })

    it('answers a wrong secret sent in the body with 401 invalid_client', async () => {
      const client = await confidentialClient()
      const response = await exchangeCode(
        ctx,
        { clientId: client.id, code: client.code, verifier: client.verifier },
        { client_secret: 'gth_cs_wrong' },
      )
      expectTokenError(response, 401, 'invalid_client')
    })

    it('answers a confidential client that sends no secret with 401 invalid_client', async () => {
      const client = await confidentialClient()
      const response = await exchangeCode(ctx, { clientId: client.id, code: client.code, verifier: client.verifier })
      expectTokenError(response, 401, 'invalid_client')
      expect(response.body.error_description).toContain('secret')
    })

    it('does not let a failed client authentication spend the code', async () => {
      const client = await confidentialClient()
      await exchangeCode(
        ctx,
        { code: client.code, verifier: client.verifier },
        {},
        basicAuth(client.id, 'gth_cs_wrong'),
      )
      const response = await exchangeCode(
        ctx,
        { code: client.code, verifier: client.verifier },
        {},
        basicAuth(client.id, client.secret),
      )
      expect(response.status).toBe(200)
    })

    it('answers a public client that sends a secret with invalid_client', async () => {
      const client = await registerClient(ctx)
      const { code, pkce } = await authorizeCode(ctx, owner.token, client.client_id)
      const response = await exchangeCode(
        ctx,
        { clientId: client.client_id, code, verifier: pkce.verifier },
        { client_secret: 'gth_cs_whatever' },
      )
      expectTokenError(response, 401, 'invalid_client')
    })

    it('answers an unknown client_id with 401 invalid_client', async () => {
      const response = await exchangeCode(ctx, {
        clientId: 'no-such-client',
        code: 'gth_code_x',
        verifier: createPkce().verifier,
      })
      expectTokenError(response, 401, 'invalid_client')
    })
  })

  describe('refresh token rotation', () => {
    it('issues a new refresh token on every refresh', async () => {
      const { client, tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
      const first = await refresh(ctx, client.client_id, tokens.refresh_token)
      const second = await refresh(ctx, client.client_id, first.body.refresh_token)
      expect(first.status).toBe(200)
      expect(second.status).toBe(200)
      expect(new Set([tokens.refresh_token, first.body.refresh_token, second.body.refresh_token]).size).toBe(3)
      expect(first.headers.get('cache-control')).toBe('no-store')
    })

    it('answers a retry of the previous refresh token within the grace window with a new pair', async () => {
      const { client, tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
      const lost = await refresh(ctx, client.client_id, tokens.refresh_token)
      const retried = await refresh(ctx, client.client_id, tokens.refresh_token)
      expect(retried.status).toBe(200)
      expect(retried.body.refresh_token).toStartWith('gth_ort_')
      expect(retried.body.refresh_token).not.toBe(lost.body.refresh_token)
      expect((await callApi(ctx, retried.body.access_token)).status).toBe(200)
    })

    it('keeps the newest refresh token working after a retry within the grace window', async () => {
      const { client, tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
      await refresh(ctx, client.client_id, tokens.refresh_token)
      const retried = await refresh(ctx, client.client_id, tokens.refresh_token)
      expect((await refresh(ctx, client.client_id, retried.body.refresh_token)).status).toBe(200)
    })

    it('revokes the grant when the token a retry replaced comes back, so a replayer cannot keep it', async () => {
      // The client refreshes RT1 and gets RT2; someone replays RT1 within the window and gets RT3.
      const { client, tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
      const clients = await refresh(ctx, client.client_id, tokens.refresh_token)
      const replayers = await refresh(ctx, client.client_id, tokens.refresh_token)
      expect(replayers.status).toBe(200)
      // The client's RT2 is now reuse: the grant ends, the replayer's RT3 and access token with it.
      const reuse = await refresh(ctx, client.client_id, clients.body.refresh_token)
      expectTokenError(reuse, 400, 'invalid_grant')
      expect(reuse.body.error_description).toContain('the grant is revoked')
      expectTokenError(await refresh(ctx, client.client_id, replayers.body.refresh_token), 400, 'invalid_grant')
      expect((await callApi(ctx, replayers.body.access_token)).status).toBe(401)
    })

    it('refuses a retry within the grace window once the token it produced has been used, revoking the grant', async () => {
      const { client, tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
      const second = await refresh(ctx, client.client_id, tokens.refresh_token)
      const third = await refresh(ctx, client.client_id, second.body.refresh_token)
      expect(third.status).toBe(200)
      expectTokenError(await refresh(ctx, client.client_id, tokens.refresh_token), 400, 'invalid_grant')
      expectTokenError(await refresh(ctx, client.client_id, third.body.refresh_token), 400, 'invalid_grant')
      expect((await callApi(ctx, third.body.access_token)).status).toBe(401)
    })

    it('stops the access token of the pair that a retry within the grace window replaced', async () => {
      const { client, tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
      const lost = await refresh(ctx, client.client_id, tokens.refresh_token)
      await refresh(ctx, client.client_id, tokens.refresh_token)
      expect((await callApi(ctx, lost.body.access_token)).status).toBe(401)
    })

    describe('after the grace window', () => {
      let graceCtx: TestContext
      let graceOwner: { id: string; token: string }
      beforeEach(async () => {
        graceCtx = await setup({ refreshGraceSeconds: 1 })
        graceOwner = await bootstrapOwner(graceCtx)
      })
      afterEach(async () => {
        await graceCtx.close()
      })

      async function reuseAfterWindow() {
        const { client, tokens } = await obtainTokens(graceCtx, graceOwner.token, API_TOKENS)
        const latest = await refresh(graceCtx, client.client_id, tokens.refresh_token)
        expect(latest.status).toBe(200)
        await graceCtx.db
          .updateTable('oauth_refresh_tokens')
          .set({ used_at: Math.floor(Date.now() / 1000) - 60 })
          .where('token_hash', '=', hashToken(tokens.refresh_token))
          .execute()
        const reuse = await refresh(graceCtx, client.client_id, tokens.refresh_token)
        return { client, latest: latest.body, reuse }
      }

      it('answers reuse of a spent refresh token with invalid_grant', async () => {
        const { reuse } = await reuseAfterWindow()
        expectTokenError(reuse, 400, 'invalid_grant')
        expect(reuse.body.error_description).toContain('already used')
      })

      it('revokes the latest refresh token of the grant on reuse', async () => {
        const { client, latest } = await reuseAfterWindow()
        expectTokenError(await refresh(graceCtx, client.client_id, latest.refresh_token), 400, 'invalid_grant')
      })

      it('revokes the latest access token of the grant on reuse', async () => {
        const { latest } = await reuseAfterWindow()
        expect((await callApi(graceCtx, latest.access_token)).status).toBe(401)
      })
    })

    it('leaves exactly one working refresh token after two concurrent refreshes of one token', async () => {
      const client = await registerClient(ctx, { token_endpoint_auth_method: 'client_secret_basic' })
      const auth = basicAuth(client.client_id, client.client_secret!)
      const { code, pkce } = await authorizeCode(ctx, owner.token, client.client_id, API_TOKENS)
      const tokens = await exchangeCode(ctx, { code, verifier: pkce.verifier }, {}, auth)
      const form = { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token }
      const results = await Promise.all([tokenRequest(ctx, form, auth), tokenRequest(ctx, form, auth)])
      const issued = results
        .filter((result) => result.status === 200)
        .map((result) => result.body.refresh_token as string)
      expect(issued.length).toBeGreaterThanOrEqual(1)
      // Introspection reads without rotating, so it shows which of the issued tokens still work.
      const active = []
      for (const token of issued) {
        const answer = await oauthPost(ctx, '/oauth2/introspect', { token }, auth)
        if (answer.body.active) active.push(token)
      }
      expect(active).toHaveLength(1)
      expect((await tokenRequest(ctx, { grant_type: 'refresh_token', refresh_token: active[0] }, auth)).status).toBe(
        200,
      )
    })

    it('refuses a refresh that asks for a wider scope with invalid_scope', async () => {
      const { client, tokens } = await obtainTokens(ctx, owner.token, { scope: 'mcp offline_access' })
      const response = await refresh(ctx, client.client_id, tokens.refresh_token, { scope: 'mcp api offline_access' })
      expectTokenError(response, 400, 'invalid_scope')
      expect(response.body.error_description).toContain('api')
    })

    it('allows a refresh that asks for a narrower scope', async () => {
      const { client, tokens } = await obtainTokens(ctx, owner.token, {
        scope: 'mcp api offline_access',
        resource: API_RESOURCE,
      })
      const response = await refresh(ctx, client.client_id, tokens.refresh_token, { scope: 'mcp' })
      expect(response.status).toBe(200)
      expect(response.body.scope).toBe('mcp')
      expect((await callApi(ctx, response.body.access_token)).status).toBe(403)
    })

    it('answers a refresh token presented by another client with invalid_grant', async () => {
      const { tokens } = await obtainTokens(ctx, owner.token, API_TOKENS)
      const other = await registerClient(ctx)
      expectTokenError(await refresh(ctx, other.client_id, tokens.refresh_token), 400, 'invalid_grant')
    })
  })

  describe('when refresh tokens are issued', () => {
    it('issues a refresh token to a client that registered the refresh_token grant', async () => {
      const { tokens } = await obtainTokens(ctx, owner.token, {
        metadata: { grant_types: ['authorization_code', 'refresh_token'] },
      })
      expect(tokens.refresh_token).toStartWith('gth_ort_')
    })

    it('issues a refresh token to a client that asked for offline_access', async () => {
      const { tokens } = await obtainTokens(ctx, owner.token, {
        scope: 'mcp offline_access',
        metadata: { grant_types: ['authorization_code'] },
      })
      expect(tokens.refresh_token).toStartWith('gth_ort_')
    })

    it('issues no refresh token to a client with neither', async () => {
      const { tokens } = await obtainTokens(ctx, owner.token, {
        scope: 'mcp',
        metadata: { grant_types: ['authorization_code'] },
      })
      expect(tokens.access_token).toStartWith('gth_oat_')
      expect(tokens.refresh_token).toBeUndefined()
    })
  })

  describe('audiences (RFC 8707)', () => {
    it('issues tokens for the MCP endpoint by default, which the management API refuses naming its own resource', async () => {
      const { tokens } = await obtainTokens(ctx, owner.token, { scope: 'mcp api' })
      const response = await callApi(ctx, tokens.access_token)
      expect(response.status).toBe(401)
      expect(response.body.message).toBe('This access token was issued for another resource')
      expect(response.body.detail).toContain(API_RESOURCE)
      expect(response.headers.get('www-authenticate')).toContain('invalid_token')
    })

    it('refuses a token for the API without the api scope with 403', async () => {
      const { tokens } = await obtainTokens(ctx, owner.token, { scope: 'mcp', resource: API_RESOURCE })
      const response = await callApi(ctx, tokens.access_token)
      expect(response.status).toBe(403)
      expect(response.body.message).toContain('api scope')
      expect(response.headers.get('www-authenticate')).toContain('insufficient_scope')
    })

    it('accepts a token for the API with the api scope on /api/v1/users/me', async () => {
      const { tokens } = await obtainTokens(ctx, owner.token, { scope: 'api', resource: API_RESOURCE })
      const response = await callApi(ctx, tokens.access_token)
      expect(response.status).toBe(200)
      expect(response.body).toMatchObject({ id: owner.id, username: 'owner' })
    })

    it('answers a token request naming another resource than the one authorized with invalid_target', async () => {
      const client = await registerClient(ctx)
      const { code, pkce } = await authorizeCode(ctx, owner.token, client.client_id)
      const response = await exchangeCode(
        ctx,
        { clientId: client.client_id, code, verifier: pkce.verifier },
        { resource: API_RESOURCE },
      )
      expectTokenError(response, 400, 'invalid_target')
    })

    it('answers a refresh naming another resource with invalid_target', async () => {
      const { client, tokens } = await obtainTokens(ctx, owner.token, { scope: 'mcp offline_access' })
      const response = await refresh(ctx, client.client_id, tokens.refresh_token, { resource: API_RESOURCE })
      expectTokenError(response, 400, 'invalid_target')
    })
  })

  describe('users', () => {
    it("stops a suspended user's access token from working", async () => {
      const member = await createUserAndLogin(ctx, owner.token, 'member1')
      const { tokens } = await obtainTokens(ctx, member.token, API_TOKENS)
      expect((await callApi(ctx, tokens.access_token)).status).toBe(200)
      const suspended = await ctx.api(owner.token).api.v1.users({ id: member.id }).suspend.post()
      expect(suspended.status).toBe(200)
      expect((await callApi(ctx, tokens.access_token)).status).toBe(401)
    })

    it("refuses to refresh a suspended user's tokens", async () => {
      const member = await createUserAndLogin(ctx, owner.token, 'member1')
      const { client, tokens } = await obtainTokens(ctx, member.token, API_TOKENS)
      await ctx.api(owner.token).api.v1.users({ id: member.id }).suspend.post()
      const response = await refresh(ctx, client.client_id, tokens.refresh_token)
      expect(response.status).toBe(400)
      expect(response.body.error).toBe('invalid_grant')
    })

    it('does not refresh mcp:admin for a user who has since lost the admin role', async () => {
      const admin = await createUserAndLogin(ctx, owner.token, 'admin1', 'admin')
      const { client, tokens } = await obtainTokens(ctx, admin.token, { scope: 'mcp mcp:admin offline_access' })
      expect(tokens.scope).toBe('mcp mcp:admin offline_access')
      const demoted = await ctx.api(owner.token).api.v1.users({ id: admin.id }).role.put({ role: 'member' })
      expect(demoted.status).toBe(200)
      const response = await refresh(ctx, client.client_id, tokens.refresh_token)
      expect(response.body.scope ?? '').not.toContain('mcp:admin')
    })
  })
})
