import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { cookieNamesFor } from '../../src/auth/cookies.ts'
import { bootstrapOwner, createUserAndLogin, OWNER, setup, type TestContext } from '../setup.ts'
import { authorizeUrl, authorizeWithBearer, createPkce, type Pkce, REDIRECT_URI, registerClient } from './helpers.ts'
import { authorizeParams, exchangeCode, getAuthorize, hiddenFieldsOf, ISSUER, sessionCookie } from './support-flow.ts'

const WEB_REDIRECT = 'https://app.example.com/callback'

describe('authorization endpoint', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  let clientId: string
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
    clientId = (await registerClient(ctx, { client_name: 'Claude Code' })).client_id
  })
  afterEach(async () => {
    await ctx.close()
  })

  const bearer = () => ({ authorization: `Bearer ${owner.token}` })

  /** Asserts the refusal was shown as a page and not sent anywhere; returns the page text. */
  async function expectErrorPage(response: Response): Promise<string> {
    expect(response.status).toBe(400)
    expect(response.headers.get('content-type')).toContain('text/html')
    expect(response.headers.get('location')).toBeNull()
    return response.text()
  }

  /** Asserts a redirect to the registered URI and returns its query parameters. */
  function expectRedirect(response: Response, target = REDIRECT_URI): URLSearchParams {
    expect(response.status).toBeGreaterThanOrEqual(300)
    expect(response.status).toBeLessThan(400)
    const location = new URL(response.headers.get('location')!)
    expect(location.origin + location.pathname).toBe(target)
    return location.searchParams
  }

  describe('before the client and its redirect URI are trusted', () => {
    it('shows an error page, never a redirect, for an unknown client_id', async () => {
      const response = await getAuthorize(ctx, authorizeParams('no-such-client', createPkce()), bearer())
      const page = await expectErrorPage(response)
      expect(page).toContain('not registered')
    })

    it('shows an error page for a redirect_uri that is not registered', async () => {
      const response = await getAuthorize(
        ctx,
        authorizeParams(clientId, createPkce(), { redirect_uri: 'https://app.example.com/callback' }),
        bearer(),
      )
      const page = await expectErrorPage(response)
      expect(page).toContain('does not match any redirect URI registered')
    })

    for (const [label, uri] of [
      ['another host', 'https://evil.example.com/cb'],
      ['the registered URI with an extra path segment', `${REDIRECT_URI}/extra`],
      ['the registered URI with an extra query', `${REDIRECT_URI}?next=https://evil.example.com`],
      ['a host that only starts with the loopback address', 'http://127.0.0.1.evil.com:8765/callback'],
      ['localhost instead of the registered 127.0.0.1', 'http://localhost:8765/callback'],
    ] as const)
      it(`refuses an open-redirect attempt with ${label}`, async () => {
        const response = await getAuthorize(
          ctx,
          authorizeParams(clientId, createPkce(), { redirect_uri: uri }),
          bearer(),
        )
        await expectErrorPage(response)
      })

    it('shows an error page rather than redirecting when the client_id is missing', async () => {
      const response = await getAuthorize(ctx, authorizeParams('', createPkce(), { client_id: undefined }), bearer())
      const page = await expectErrorPage(response)
      expect(page).toContain('no client_id')
    })
  })

  describe('loopback redirect URIs (RFC 8252 §7.3)', () => {
    it('accepts the registered loopback URI on another port and sends the code to that exact URI', async () => {
      const other = 'http://127.0.0.1:51234/callback'
      const pkce = createPkce()
      const location = await authorizeWithBearer(
        ctx,
        owner.token,
        authorizeParams(clientId, pkce, { redirect_uri: other }),
      )
      expect(location.origin + location.pathname).toBe(other)
      const code = location.searchParams.get('code')!
      expect(code).toStartWith('gth_code_')
      const tokens = await exchangeCode(ctx, { clientId, code, verifier: pkce.verifier, redirectUri: other })
      expect(tokens.status).toBe(200)
      expect(tokens.body.access_token).toStartWith('gth_oat_')
    })
  })

  describe('errors sent back to the client', () => {
    it('redirects with invalid_request, the state and the issuer when code_challenge is missing', async () => {
      const params = expectRedirect(
        await getAuthorize(ctx, authorizeParams(clientId, createPkce(), { code_challenge: undefined }), bearer()),
      )
      expect(params.get('error')).toBe('invalid_request')
      expect(params.get('error_description')).toContain('code_challenge')
      expect(params.get('state')).toBe('the-state')
      expect(params.get('iss')).toBe(ISSUER)
      expect(params.get('code')).toBeNull()
    })

    it('redirects with invalid_request for code_challenge_method=plain', async () => {
      const pkce = createPkce()
      const params = expectRedirect(
        await getAuthorize(
          ctx,
          authorizeParams(clientId, pkce, { code_challenge: pkce.verifier, code_challenge_method: 'plain' }),
          bearer(),
        ),
      )
      expect(params.get('error')).toBe('invalid_request')
      expect(params.get('error_description')).toContain('plain is not supported')
      expect(params.get('state')).toBe('the-state')
    })

    it('redirects with invalid_request when code_challenge_method is missing', async () => {
      const params = expectRedirect(
        await getAuthorize(
          ctx,
          authorizeParams(clientId, createPkce(), { code_challenge_method: undefined }),
          bearer(),
        ),
      )
      expect(params.get('error')).toBe('invalid_request')
      expect(params.get('error_description')).toContain('S256')
    })

    it('redirects with unsupported_response_type for response_type=token', async () => {
      const params = expectRedirect(
        await getAuthorize(ctx, authorizeParams(clientId, createPkce(), { response_type: 'token' }), bearer()),
      )
      expect(params.get('error')).toBe('unsupported_response_type')
      expect(params.get('state')).toBe('the-state')
      expect(params.get('access_token')).toBeNull()
    })

    it('redirects with invalid_target for a resource this server does not serve', async () => {
      const params = expectRedirect(
        await getAuthorize(
          ctx,
          authorizeParams(clientId, createPkce(), { resource: 'https://other.example.com/mcp' }),
          bearer(),
        ),
      )
      expect(params.get('error')).toBe('invalid_target')
      expect(params.get('error_description')).toContain('https://other.example.com/mcp')
      expect(params.get('state')).toBe('the-state')
      expect(params.get('iss')).toBe(ISSUER)
    })

    it('redirects with invalid_scope when only unknown scopes are asked for', async () => {
      const params = expectRedirect(
        await getAuthorize(ctx, authorizeParams(clientId, createPkce(), { scope: 'openid profile' }), bearer()),
      )
      expect(params.get('error')).toBe('invalid_scope')
      expect(params.get('state')).toBe('the-state')
      expect(params.get('code')).toBeNull()
    })
  })

  describe('scopes', () => {
    it('narrows unknown scopes away: openid mcp grants mcp', async () => {
      const pkce = createPkce()
      const location = await authorizeWithBearer(
        ctx,
        owner.token,
        authorizeParams(clientId, pkce, { scope: 'openid mcp' }),
      )
      const tokens = await exchangeCode(ctx, {
        clientId,
        code: location.searchParams.get('code')!,
        verifier: pkce.verifier,
      })
      expect(tokens.status).toBe(200)
      expect(tokens.body.scope).toBe('mcp')
    })

    it('gives a member who asks for mcp:admin only mcp', async () => {
      const member = await createUserAndLogin(ctx, owner.token, 'member1')
      const pkce = createPkce()
      const location = await authorizeWithBearer(
        ctx,
        member.token,
        authorizeParams(clientId, pkce, { scope: 'mcp mcp:admin' }),
      )
      const tokens = await exchangeCode(ctx, {
        clientId,
        code: location.searchParams.get('code')!,
        verifier: pkce.verifier,
      })
      expect(tokens.status).toBe(200)
      expect(tokens.body.scope).toBe('mcp')
    })

    it('lists only the narrowed scopes on the consent page of a member', async () => {
      const member = await createUserAndLogin(ctx, owner.token, 'member1')
      const response = await getAuthorize(ctx, authorizeParams(clientId, createPkce(), { scope: 'mcp mcp:admin' }), {
        authorization: `Bearer ${member.token}`,
      })
      expect(response.status).toBe(200)
      const page = await response.text()
      expect(page).toContain('<code>mcp</code>')
      expect(page).not.toContain('<code>mcp:admin</code>')
    })

    it('ignores parameters it does not know, such as prompt=consent', async () => {
      const location = await authorizeWithBearer(
        ctx,
        owner.token,
        authorizeParams(clientId, createPkce(), { prompt: 'consent', nonce: 'n-0S6', ui_locales: 'de' }),
      )
      expect(location.searchParams.get('code')).toStartWith('gth_code_')
      expect(location.searchParams.get('error')).toBeNull()
    })
  })

  describe('sign-in', () => {
    it('sends a visitor without a session to the login page with the request as next', async () => {
      const params = authorizeParams(clientId, createPkce())
      const response = await getAuthorize(ctx, params)
      expect(response.status).toBe(302)
      const location = response.headers.get('location')!
      expect(location).toStartWith('/login?next=')
      const next = new URL(location, 'http://localhost').searchParams.get('next')!
      const expected = new URL(authorizeUrl(params))
      expect(next).toBe(expected.pathname + expected.search)
    })

    it('returns to the authorization request after signing in on the login page', async () => {
      const first = await getAuthorize(ctx, authorizeParams(clientId, createPkce()))
      const loginUrl = new URL(first.headers.get('location')!, 'http://localhost')

      const loginPage = await ctx.app.handle(new Request(loginUrl))
      expect(loginPage.status).toBe(200)
      const csrfCookie = loginPage.headers
        .getSetCookie()
        .find((line) => line.startsWith(`${cookieNamesFor(ctx.config.publicUrl).loginCsrf}=`))!
      const fields = hiddenFieldsOf(await loginPage.text())
      expect(fields.next).toBe(loginUrl.searchParams.get('next')!)

      const signedIn = await ctx.app.handle(
        new Request('http://localhost/login', {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: csrfCookie.split(';')[0] },
          body: new URLSearchParams({ ...fields, login: OWNER.username, password: OWNER.password }).toString(),
        }),
      )
      expect(signedIn.status).toBe(303)
      expect(signedIn.headers.get('location')).toBe(fields.next)
      const session = signedIn.headers
        .getSetCookie()
        .find((line) => line.startsWith(`${cookieNamesFor(ctx.config.publicUrl).session}=`))!
        .split(';')[0]

      const back = await ctx.app.handle(new Request(`http://localhost${fields.next}`, { headers: { cookie: session } }))
      expect(back.status).toBe(200)
      expect(await back.text()).toContain('Claude Code')
    })
  })

  describe('consent page', () => {
    async function consentPage(name?: string) {
      const id = name ? (await registerClient(ctx, { client_name: name })).client_id : clientId
      const params = authorizeParams(id, createPkce())
      const response = await getAuthorize(ctx, params, sessionCookie(owner.token))
      return { response, params }
    }

    it('shows the client name and the host the user returns to', async () => {
      const { response } = await consentPage()
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toContain('text/html')
      const page = await response.text()
      expect(page).toContain('Claude Code')
      expect(page).toContain('127.0.0.1:8765')
    })

    it('warns that the code goes to a program on this computer for a localhost redirect', async () => {
      const page = await (await consentPage()).response.text()
      expect(page).toContain('sent to a program on this computer (localhost)')
    })

    it('refuses to be framed', async () => {
      const { response } = await consentPage()
      expect(response.headers.get('x-frame-options')).toBe('DENY')
      expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
    })

    it('is never cached', async () => {
      const { response } = await consentPage()
      expect(response.headers.get('cache-control')).toBe('no-store')
    })

    it('escapes a client name that contains markup', async () => {
      const page = await (await consentPage('<script>alert(1)</script>')).response.text()
      expect(page).not.toContain('<script>alert(1)</script>')
      expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
    })
  })

  describe('the decision', () => {
    function postDecision(fields: Record<string, string>, headers: Record<string, string>) {
      return ctx.app.handle(
        new Request('http://localhost/oauth2/authorize', {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
          body: new URLSearchParams(fields).toString(),
        }),
      )
    }

    async function formOfConsentPage() {
      const response = await getAuthorize(ctx, authorizeParams(clientId, createPkce()), sessionCookie(owner.token))
      expect(response.status).toBe(200)
      return hiddenFieldsOf(await response.text())
    }

    it('refuses a cookie-authenticated approval without the CSRF token with a 403 page and no code', async () => {
      const { csrf_token: _, ...fields } = await formOfConsentPage()
      const response = await postDecision({ ...fields, decision: 'approve' }, sessionCookie(owner.token))
      expect(response.status).toBe(403)
      expect(response.headers.get('content-type')).toContain('text/html')
      expect(response.headers.get('location')).toBeNull()
      expect(await response.text()).toContain('The consent form expired, or was not the one shown for this request')
    })

    it("refuses a consent form taken from one client's page and posted with another client's parameters", async () => {
      const fields = await formOfConsentPage()
      const other = await registerClient(ctx, { client_name: 'Other app' })
      const pkce = createPkce()
      const response = await postDecision(
        { ...authorizeParams(other.client_id, pkce), csrf_token: fields.csrf_token, decision: 'approve' },
        sessionCookie(owner.token),
      )
      expect(response.status).toBe(403)
      expect(response.headers.get('location')).toBeNull()
    })

    for (const [name, value] of [
      ['scope', 'mcp api'],
      ['code_challenge', 'x'.repeat(43)],
      ['redirect_uri', 'http://127.0.0.1:9999/callback'],
      ['resource', 'http://localhost:3000/api'],
      ['state', 'another-state'],
    ])
      it(`refuses a consent form whose ${name} was changed after the page was shown`, async () => {
        const fields = await formOfConsentPage()
        const response = await postDecision(
          { ...fields, [name]: value, decision: 'approve' },
          sessionCookie(owner.token),
        )
        expect(response.status).toBe(403)
        expect(response.headers.get('location')).toBeNull()
      })

    it('refuses a cookie-authenticated approval with a wrong CSRF token', async () => {
      const fields = await formOfConsentPage()
      const response = await postDecision(
        { ...fields, csrf_token: 'f'.repeat(64), decision: 'approve' },
        sessionCookie(owner.token),
      )
      expect(response.status).toBe(403)
      expect(response.headers.get('location')).toBeNull()
    })

    it('redirects with a code when the form carries the CSRF token from the page', async () => {
      const fields = await formOfConsentPage()
      expect(fields.csrf_token).toMatch(/^[0-9a-f]{64}$/)
      const response = await postDecision({ ...fields, decision: 'approve' }, sessionCookie(owner.token))
      const params = expectRedirect(response)
      expect(params.get('code')).toStartWith('gth_code_')
      expect(params.get('state')).toBe('the-state')
      expect(params.get('iss')).toBe(ISSUER)
    })

    it('accepts a bearer-authenticated approval without a CSRF token', async () => {
      const params = authorizeParams(clientId, createPkce())
      const response = await ctx.app.handle(
        new Request(authorizeUrl(params), {
          method: 'POST',
          headers: { ...bearer(), 'content-type': 'application/x-www-form-urlencoded' },
          body: 'decision=approve',
        }),
      )
      expect(expectRedirect(response).get('code')).toStartWith('gth_code_')
    })

    it('redirects with access_denied and the state when the user denies', async () => {
      const location = await authorizeWithBearer(ctx, owner.token, authorizeParams(clientId, createPkce()), 'deny')
      expect(location.origin + location.pathname).toBe(REDIRECT_URI)
      expect(location.searchParams.get('error')).toBe('access_denied')
      expect(location.searchParams.get('state')).toBe('the-state')
      expect(location.searchParams.get('iss')).toBe(ISSUER)
      expect(location.searchParams.get('code')).toBeNull()
    })
  })

  describe('remembered consent', () => {
    it('skips the consent page the next time the same client asks for the same scopes and redirect URI', async () => {
      const confidential = await registerClient(ctx, {
        client_name: 'Web app',
        redirect_uris: [WEB_REDIRECT],
        token_endpoint_auth_method: 'client_secret_basic',
      })
      const params = (pkce: Pkce) =>
        authorizeParams(confidential.client_id, pkce, { scope: 'mcp', redirect_uri: WEB_REDIRECT })
      await authorizeWithBearer(ctx, owner.token, params(createPkce()))
      const redirect = expectRedirect(await getAuthorize(ctx, params(createPkce()), bearer()), WEB_REDIRECT)
      expect(redirect.get('code')).toStartWith('gth_code_')
      expect(redirect.get('state')).toBe('the-state')
    })

    it('shows the page again to a public client with a loopback redirect, whatever was approved before', async () => {
      // Any local program can present this client's ID and listen on a port of its own (RFC 8252 §8.6).
      await authorizeWithBearer(ctx, owner.token, authorizeParams(clientId, createPkce(), { scope: 'mcp' }))
      const response = await getAuthorize(ctx, authorizeParams(clientId, createPkce(), { scope: 'mcp' }), bearer())
      expect(response.status).toBe(200)
      expect(response.headers.get('location')).toBeNull()
      expect(await response.text()).toContain('Claude Code')
    })

    it('shows the consent page again when the client asks for a new scope', async () => {
      await authorizeWithBearer(ctx, owner.token, authorizeParams(clientId, createPkce(), { scope: 'mcp' }))
      const response = await getAuthorize(ctx, authorizeParams(clientId, createPkce(), { scope: 'mcp api' }), bearer())
      expect(response.status).toBe(200)
      expect(response.headers.get('location')).toBeNull()
      expect(await response.text()).toContain('<code>api</code>')
    })

    it('does not carry consent over to another user', async () => {
      await authorizeWithBearer(ctx, owner.token, authorizeParams(clientId, createPkce()))
      const member = await createUserAndLogin(ctx, owner.token, 'member1')
      const response = await getAuthorize(ctx, authorizeParams(clientId, createPkce()), {
        authorization: `Bearer ${member.token}`,
      })
      expect(response.status).toBe(200)
    })

    it('does not count a denial as consent', async () => {
      await authorizeWithBearer(ctx, owner.token, authorizeParams(clientId, createPkce()), 'deny')
      const response = await getAuthorize(ctx, authorizeParams(clientId, createPkce()), bearer())
      expect(response.status).toBe(200)
    })
  })

  describe('repeated parameters (RFC 6749 §3.1)', () => {
    for (const name of ['client_id', 'redirect_uri'])
      it(`answers a repeated ${name} with an error page, never a code or a redirect`, async () => {
        const url = new URL(authorizeUrl(authorizeParams(clientId, createPkce())))
        url.searchParams.append(name, url.searchParams.get(name)!)
        const response = await ctx.app.handle(new Request(url, { headers: bearer() }))
        expect(response.status).toBe(400)
        expect(response.headers.get('location')).toBeNull()
        expect(await response.text()).toContain(`gives ${name} more than once`)
      })

    for (const name of ['state', 'response_type', 'scope', 'code_challenge', 'resource'])
      it(`answers a repeated ${name} with invalid_request at the redirect URI, and no code`, async () => {
        const url = new URL(
          authorizeUrl(authorizeParams(clientId, createPkce(), { scope: 'mcp', resource: `${ISSUER}/mcp` })),
        )
        url.searchParams.append(name, url.searchParams.get(name)!)
        const response = await ctx.app.handle(new Request(url, { headers: bearer() }))
        const params = expectRedirect(response)
        expect(params.get('error')).toBe('invalid_request')
        expect(params.get('error_description')).toContain(name)
        expect(params.get('code')).toBeNull()
      })

    it('refuses a POST that gives a parameter in the query and again in the body', async () => {
      const url = authorizeUrl(authorizeParams(clientId, createPkce()))
      const response = await ctx.app.handle(
        new Request(url, {
          method: 'POST',
          headers: { ...bearer(), 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ decision: 'approve', scope: 'mcp:admin' }).toString(),
        }),
      )
      // scope appears once in the body only, so this one is fine; now repeat client_id across both.
      expect(response.status).toBe(303)
      const twice = await ctx.app.handle(
        new Request(url, {
          method: 'POST',
          headers: { ...bearer(), 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ decision: 'approve', client_id: clientId }).toString(),
        }),
      )
      expect(twice.status).toBe(400)
      expect(twice.headers.get('location')).toBeNull()
    })
  })
})
