import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { cookieNamesFor } from '../../src/auth/cookies.ts'
import { loadConfig } from '../../src/config.ts'
import { gatehouseLoginClient } from '../fixtures/identity-providers.ts'
import { type OidcProviderServer, startOidcProvider } from '../fixtures/upstreams.ts'
import { bootstrapOwner, OWNER, setup, type TestContext } from '../setup.ts'

/**
 * Every cookie Gatehouse sets, on every route that sets one (JSON and form sign-in, sign-out,
 * identity-provider sign-in, the connect link), as a browser would receive it: none readable
 * by a script, each with a SameSite, and each Secure behind an https public URL. The identity
 * provider is a real OpenID provider on loopback.
 */

const CLIENT_SECRET = 'gatehouse-client-secret'
const MANUAL_OAUTH = {
  auth_type: 'oauth2',
  oauth2_client_id: 'gatehouse-client',
  oauth2_auth_url: 'https://auth.example.com/authorize',
  oauth2_token_url: 'https://auth.example.com/token',
  oauth2_scopes: 'read',
}

interface SetCookie {
  route: string
  name: string
  value: string
  attributes: Map<string, string>
}

function parseSetCookie(route: string, line: string): SetCookie {
  const [pair, ...rest] = line.split(';').map((part) => part.trim())
  const separator = pair.indexOf('=')
  const attributes = new Map(
    rest.map((attribute) => {
      const [key, ...value] = attribute.split('=')
      return [key.toLowerCase(), value.join('=')] as const
    }),
  )
  return { route, name: pair.slice(0, separator), value: pair.slice(separator + 1), attributes }
}

for (const publicUrl of ['http://localhost:3000', 'https://gatehouse.example.com']) {
  describe(`the cookies of a Gatehouse at ${publicUrl}`, () => {
    const https = publicUrl.startsWith('https://')
    const names = cookieNamesFor(publicUrl)
    let idp: OidcProviderServer
    let ctx: TestContext
    const seen: SetCookie[] = []

    /** Sends a request to Gatehouse as a browser at `publicUrl` would, and notes every cookie it sets. */
    async function send(route: string, path: string, init: RequestInit = {}): Promise<Response> {
      const response = await ctx.app.handle(new Request(new URL(path, publicUrl), init))
      for (const line of response.headers.getSetCookie()) seen.push(parseSetCookie(route, line))
      return response
    }

    const cookieOf = (response: Response, name: string) =>
      response.headers
        .getSetCookie()
        .map((line) => parseSetCookie('', line))
        .find((cookie) => cookie.name === name)?.value

    beforeAll(async () => {
      idp = await startOidcProvider({
        clients: [gatehouseLoginClient(publicUrl, 'gatehouse-cookies', CLIENT_SECRET)],
        accounts: { dana: { email: 'dana@example.com', email_verified: true, name: 'Dana' } },
      })
      const { oidc } = loadConfig({
        DATABASE_URL: ':memory:',
        GATEHOUSE_OIDC_ISSUER: idp.issuer,
        GATEHOUSE_OIDC_CLIENT_ID: 'gatehouse-cookies',
        GATEHOUSE_OIDC_CLIENT_SECRET: CLIENT_SECRET,
      })
      ctx = await setup({ publicUrl, oidc })
      const owner = await bootstrapOwner(ctx)

      // The JSON sign-in, then sign-out with the session cookie and its CSRF header.
      const login = await send('POST /api/v1/auth/login', '/api/v1/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ login: OWNER.username, password: OWNER.password }),
      })
      const session = await login.json()
      await send('POST /api/v1/auth/logout', '/api/v1/auth/logout', {
        method: 'POST',
        headers: { cookie: `${names.session}=${session.session_token}`, 'x-csrf-token': session.csrf_token },
      })

      // The sign-in page and its form post.
      const page = await send('GET /login', '/login')
      const formCsrf = cookieOf(page, names.loginCsrf)!
      await send('POST /login', '/login', {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          cookie: `${names.loginCsrf}=${formCsrf}`,
          origin: new URL(publicUrl).origin,
        },
        body: new URLSearchParams({ login: OWNER.username, password: OWNER.password, csrf_token: formCsrf }),
      })

      // The identity provider's sign-in: the redirect to it, then its way back.
      const started = await send('GET /login/oidc', '/login/oidc?return_to=/connections')
      const flowName = started.headers
        .getSetCookie()
        .map((line) => parseSetCookie('', line).name)
        .find((name) => name.includes('gatehouse_idp_oidc'))!
      const back = await idp.approve(new URL(started.headers.get('location')!), { accountId: 'dana' })
      await send('GET /login/oidc/callback', `${back.pathname}${back.search}`, {
        headers: { cookie: `${flowName}=${cookieOf(started, flowName)}` },
      })

      // The connect link an MCP client shows, signed out and signed in, and the connect route.
      const server = await ctx.app.handle(
        new Request(new URL('/api/v1/mcp/servers', publicUrl), {
          method: 'POST',
          headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            display_name: 'Tracker',
            slug: 'tracker',
            url: 'https://tracker.example/mcp',
            enabled: true,
            ...MANUAL_OAUTH,
          }),
        }),
      )
      const { id } = await server.json()
      await send('GET /connections?connect=', `/connections?connect=${id}`)
      await send('GET /connections?connect= (signed in)', `/connections?connect=${id}`, {
        headers: { cookie: `${names.session}=${owner.token}` },
      })
      await send('GET oauth2/connect', `/api/v1/mcp/servers/${id}/oauth2/connect`, {
        headers: { cookie: `${names.session}=${owner.token}` },
      })
    })

    afterAll(async () => {
      await ctx?.close()
      await idp?.close()
    })

    it('sets cookies on sign-in, sign-out and the identity provider sign-in', () => {
      const routes = new Set(seen.map((cookie) => cookie.route))
      for (const route of [
        'POST /api/v1/auth/login',
        'POST /api/v1/auth/logout',
        'GET /login',
        'POST /login',
        'GET /login/oidc',
        'GET /login/oidc/callback',
      ])
        expect(routes).toContain(route)
      for (const route of ['POST /api/v1/auth/login', 'POST /login', 'GET /login/oidc/callback'])
        expect(seen.some((cookie) => cookie.route === route && cookie.name === names.session && cookie.value)).toBe(
          true,
        )
    })

    it('makes every cookie HttpOnly, so no script on the page can read one', () => {
      expect(seen.filter((cookie) => !cookie.attributes.has('httponly'))).toEqual([])
    })

    it('gives every cookie a SameSite of Lax or Strict', () => {
      expect(seen.filter((cookie) => !['Lax', 'Strict'].includes(cookie.attributes.get('samesite') ?? ''))).toEqual([])
    })

    it('sends the sign-in form cookie only with this site’s own requests', () => {
      const form = seen.filter((cookie) => cookie.name === names.loginCsrf)
      expect(form.length).toBeGreaterThan(0)
      for (const cookie of form) expect(cookie.attributes.get('samesite')).toBe('Strict')
    })

    it('clears the session cookie on sign-out for the path it was set for', () => {
      const cleared = seen.find(
        (cookie) => cookie.route === 'POST /api/v1/auth/logout' && cookie.name === names.session,
      )!
      expect(cleared.value).toBe('')
      expect(cleared.attributes.get('path')).toBe('/')
      expect(cleared.attributes.get('max-age')).toBe('0')
    })

    it('sets no CSRF cookie beside the session: the token comes with the login answer and the pages', () => {
      expect(seen.filter((cookie) => cookie.name.includes('gatehouse_csrf'))).toEqual([])
    })

    if (https)
      it('makes every cookie Secure, under a __Host- or __Secure- name', () => {
        expect(seen.filter((cookie) => !cookie.attributes.has('secure'))).toEqual([])
        expect(seen.filter((cookie) => !/^__(Host|Secure)-/.test(cookie.name))).toEqual([])
        for (const cookie of seen.filter((c) => c.name.startsWith('__Host-'))) {
          expect(cookie.attributes.get('path')).toBe('/')
          expect(cookie.attributes.has('domain')).toBe(false)
        }
      })
    else
      it('sends no Secure cookie over plain http, where a browser would drop it', () => {
        expect(seen.filter((cookie) => cookie.attributes.has('secure'))).toEqual([])
      })
  })
}
