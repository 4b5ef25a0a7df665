import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { csrfTokenFor } from '../../src/auth/auth.service.ts'
import { cookieNamesFor } from '../../src/auth/cookies.ts'
import { nowSeconds } from '../../src/db/index.ts'
import { storeConnection } from '../../src/upstreams/upstream-tokens.ts'
import { findUserToken } from '../../src/upstreams/user-token.repository.ts'
import { bootstrapOwner, createUserAndLogin, setup, type TestContext } from '../setup.ts'

// The /connections page through app.handle: who gets it, what it says about each server, and
// what its forms change. The full flow in a browser is connections-browser.test.ts.

const MANUAL_OAUTH = {
  auth_type: 'oauth2',
  oauth2_client_id: 'gatehouse-client',
  oauth2_auth_url: 'https://auth.example.com/authorize',
  oauth2_token_url: 'https://auth.example.com/token',
  oauth2_scopes: 'read',
}

describe('the connections page', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }

  /** Sets up a deployment; `publicUrl` decides the base path and the cookie names. */
  async function start(publicUrl = 'http://localhost:3000') {
    ctx = await setup({ publicUrl })
    owner = await bootstrapOwner(ctx)
  }
  beforeEach(() => start())
  afterEach(async () => {
    await ctx.close()
  })

  const session = (token: string, name = cookieNamesFor(ctx.config.publicUrl).session) => ({
    cookie: `${name}=${token}`,
  })

  async function get(path: string, token?: string, cookieName?: string): Promise<Response> {
    return ctx.app.handle(new Request(`http://localhost${path}`, { headers: token ? session(token, cookieName) : {} }))
  }

  async function post(path: string, token: string | undefined, fields: Record<string, string>): Promise<Response> {
    return ctx.app.handle(
      new Request(`http://localhost${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(token ? session(token) : {}) },
        body: new URLSearchParams(fields),
      }),
    )
  }

  async function createServer(slug: string, fields: Record<string, unknown> = {}): Promise<{ id: string }> {
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/mcp/servers', {
        method: 'POST',
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          display_name: slug.toUpperCase(),
          slug,
          url: `https://${slug}.example.com/mcp`,
          enabled: true,
          ...fields,
        }),
      }),
    )
    if (response.status !== 201) throw new Error(`create ${slug}: ${response.status} ${await response.text()}`)
    return response.json()
  }

  async function connectOwner(serverId: string, expiresIn = 3600, refresh = true): Promise<void> {
    await storeConnection(
      ctx.deps,
      { serverId, userId: owner.id },
      {
        access_token: 'upstream-access',
        token_type: 'Bearer',
        expires_in: expiresIn,
        ...(refresh ? { refresh_token: 'upstream-refresh' } : {}),
      },
      'read',
    )
  }

  /** The list item of one server, by slug. */
  function itemOf(html: string, slug: string): string {
    const item = html.split('<li class="server"').find((chunk) => chunk.includes(`data-slug="${slug}"`))
    if (!item) throw new Error(`no item for ${slug} in ${html}`)
    return item.slice(0, item.indexOf('</li>'))
  }

  /** The value of a hidden field in a piece of HTML. */
  const hidden = (html: string, name: string) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))?.[1]

  describe('signing in', () => {
    it('sends a signed-out browser to the sign-in page, coming back to /connections', async () => {
      const response = await get('/connections')
      expect(response.status).toBe(302)
      expect(response.headers.get('location')).toBe('/login?next=%2Fconnections')
    })

    it('keeps ?connect= through the sign-in', async () => {
      const response = await get('/connections?connect=abc')
      expect(response.status).toBe(302)
      const location = new URL(response.headers.get('location')!, 'http://localhost')
      expect(location.pathname).toBe('/login')
      expect(location.searchParams.get('next')).toBe('/connections?connect=abc')
    })

    it('sends a browser whose session cookie is invalid or not a session to the sign-in page', async () => {
      expect((await get('/connections', 'gth_ses_notarealsession')).status).toBe(302)
      const response = await ctx.app.handle(
        new Request('http://localhost/connections', { headers: { authorization: `Bearer ${owner.token}` } }),
      )
      expect(response.status).toBe(302)
    })

    it('shows the page to a signed-in user, with headers that forbid framing and caching', async () => {
      const response = await get('/connections', owner.token)
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toStartWith('text/html')
      expect(response.headers.get('x-frame-options')).toBe('DENY')
      expect(response.headers.get('cache-control')).toBe('no-store')
      const html = await response.text()
      expect(html).toContain('Signed in as <strong>owner</strong>')
      expect(html).toContain('No MCP servers are available to you yet')
    })
  })

  describe('the list', () => {
    it('says each server’s status in words, with the buttons that status calls for', async () => {
      const connected = await createServer('linear', MANUAL_OAUTH)
      const stale = await createServer('github', MANUAL_OAUTH)
      const fresh = await createServer('sentry', MANUAL_OAUTH)
      await createServer('docs', { auth_type: 'none' })
      await connectOwner(connected.id)
      await connectOwner(stale.id)
      await ctx.db
        .updateTable('mcp_server_user_tokens')
        .set({ needs_reauth: 1, updated_at: nowSeconds() })
        .where('server_id', '=', stale.id)
        .where('user_id', '=', owner.id)
        .execute()

      const html = await (await get('/connections', owner.token)).text()

      const linear = itemOf(html, 'linear')
      expect(linear).toContain('<p class="status connected">Connected · renews automatically</p>')
      expect(linear).not.toContain('expires')
      expect(linear).toContain(`action="/connections/${connected.id}/disconnect"`)
      expect(linear).not.toContain('>Connect<')

      const github = itemOf(html, 'github')
      expect(github).toContain('<p class="status needs_reauth">Needs reconnecting</p>')
      expect(github).toContain('>Reconnect</a>')
      expect(github).toContain('>Disconnect</button>')

      const sentry = itemOf(html, 'sentry')
      expect(sentry).toContain('<p class="status not_connected">Not connected</p>')
      expect(sentry).toContain(
        `href="/api/v1/mcp/servers/${fresh.id}/oauth2/connect?return_to=%2Fconnections" data-popup="/api/v1/mcp/servers/${fresh.id}/oauth2/connect">Connect</a>`,
      )
      expect(sentry).not.toContain('Disconnect')

      const docs = itemOf(html, 'docs')
      expect(docs).toContain('No sign-in needed')
      expect(docs).not.toContain('Connect')
      expect(docs).not.toContain('Disconnect')
    })

    it('says a connection renews automatically once its access token has expired, while a refresh token is held', async () => {
      const server = await createServer('linear', MANUAL_OAUTH)
      await connectOwner(server.id, -60)
      const linear = itemOf(await (await get('/connections', owner.token)).text(), 'linear')
      expect(linear).toContain('Connected · renews automatically')
    })

    it('says when a connection without a refresh token will need reconnecting', async () => {
      const server = await createServer('notion', MANUAL_OAUTH)
      await connectOwner(server.id, 3 * 86_400 + 600, false)
      const notion = itemOf(await (await get('/connections', owner.token)).text(), 'notion')
      expect(notion).toMatch(/Connected · needs reconnecting <time datetime="[^"]+"[^>]*>in 3 days<\/time>/)
      expect(notion).not.toContain('renews')
    })

    it('leaves out disabled servers, even for an admin who can see them elsewhere', async () => {
      await createServer('hidden', { auth_type: 'none', enabled: false })
      await createServer('shown', { auth_type: 'none' })
      const html = await (await get('/connections', owner.token)).text()
      expect(html).toContain('data-slug="shown"')
      expect(html).not.toContain('data-slug="hidden"')
    })

    it('shows "Always included" without a switch for force_on, and the switch state otherwise', async () => {
      await createServer('forced', { auth_type: 'none', availability: 'force_on' })
      await createServer('optin', { auth_type: 'none', availability: 'default_off' })
      await createServer('optout', { auth_type: 'none', availability: 'default_on' })
      const html = await (await get('/connections', owner.token)).text()
      expect(itemOf(html, 'forced')).toContain('Always included')
      expect(itemOf(html, 'forced')).not.toContain('role="switch"')
      expect(itemOf(html, 'optin')).toContain('role="switch" aria-checked="false"')
      expect(hidden(itemOf(html, 'optin'), 'selected')).toBe('true')
      expect(itemOf(html, 'optout')).toContain('role="switch" aria-checked="true"')
      expect(hidden(itemOf(html, 'optout'), 'selected')).toBe('false')
    })

    it('carries the session’s CSRF token in every form', async () => {
      await createServer('linear', MANUAL_OAUTH)
      const html = await (await get('/connections', owner.token)).text()
      const tokens = [...html.matchAll(/name="csrf_token" value="([^"]*)"/g)].map((match) => match[1])
      expect(tokens.length).toBeGreaterThan(0)
      expect(new Set(tokens)).toEqual(new Set([csrfTokenFor(owner.token)]))
    })

    it('escapes hostile names and descriptions and shows icons only from https URLs', async () => {
      await createServer('evil', {
        auth_type: 'none',
        display_name: '<script>alert(1)</script>',
        description: '"><img src=x onerror=alert(2)>',
      })
      await createServer('plain', { auth_type: 'none', icon_url: 'http://icons.example.com/plain.png' })
      await createServer('pretty', {
        auth_type: 'none',
        icon_url: 'https://icons.example.com/p.png?a=1&b="x" onerror="y',
      })
      const response = await get('/connections', owner.token)
      const html = await response.text()
      expect(html).not.toContain('<script>alert(1)')
      expect(html).not.toContain('<img src=x')
      expect(html).not.toContain('onerror="')
      const evil = itemOf(html, 'evil')
      expect(evil).toContain('<h2>&lt;script&gt;alert(1)&lt;/script&gt;</h2>')
      expect(evil).toContain('&quot;&gt;&lt;img src=x onerror=alert(2)&gt;')
      expect(evil).toContain('<span class="icon placeholder" aria-hidden="true">&lt;</span>')
      expect(itemOf(html, 'plain')).toContain('<span class="icon placeholder" aria-hidden="true">P</span>')
      expect(itemOf(html, 'pretty')).toContain('src="https://icons.example.com/p.png?a=1&amp;b=%22x%22%20onerror=%22y"')
      expect(response.headers.get('content-security-policy')).toContain("img-src 'self' data: https:;")
    })

    it('shows a member only the enabled servers of their organization', async () => {
      const member = await createUserAndLogin(ctx, owner.token, 'bob')
      await createServer('shared', { auth_type: 'none' })
      await createServer('off', { auth_type: 'none', enabled: false })
      const html = await (await get('/connections', member.token)).text()
      expect(html).toContain('Signed in as <strong>bob</strong>')
      expect(html).toContain('data-slug="shared"')
      expect(html).not.toContain('data-slug="off"')
    })
  })

  describe('the forms', () => {
    it('refuses a disconnect with a missing or wrong CSRF token, and leaves the connection', async () => {
      const server = await createServer('linear', MANUAL_OAUTH)
      await connectOwner(server.id)
      const other = await createUserAndLogin(ctx, owner.token, 'mallory')
      const attempts: Record<string, string>[] = [
        {},
        { csrf_token: 'wrong' },
        { csrf_token: csrfTokenFor(other.token) },
      ]
      for (const fields of attempts) {
        const response = await post(`/connections/${server.id}/disconnect`, owner.token, fields)
        expect(response.status).toBe(403)
        expect(await response.text()).toContain('This page expired')
      }
      expect(await findUserToken(ctx.db, server.id, owner.id)).toBeDefined()
    })

    it('refuses a selection change with a wrong CSRF token', async () => {
      const server = await createServer('optin', { auth_type: 'none', availability: 'default_off' })
      const response = await post(`/connections/${server.id}/selection`, owner.token, {
        csrf_token: 'wrong',
        selected: 'true',
      })
      expect(response.status).toBe(403)
      expect(hidden(itemOf(await (await get('/connections', owner.token)).text(), 'optin'), 'selected')).toBe('true')
    })

    it('sends a signed-out form post to the sign-in page and changes nothing', async () => {
      const server = await createServer('linear', MANUAL_OAUTH)
      await connectOwner(server.id)
      const response = await post(`/connections/${server.id}/disconnect`, undefined, { csrf_token: 'x' })
      expect(response.status).toBe(303)
      expect(response.headers.get('location')).toBe('/login?next=%2Fconnections')
      expect(await findUserToken(ctx.db, server.id, owner.id)).toBeDefined()
    })

    it('disconnects from the form and comes back to the list showing Not connected', async () => {
      const server = await createServer('linear', MANUAL_OAUTH)
      await connectOwner(server.id)
      const html = await (await get('/connections', owner.token)).text()
      const csrf = hidden(itemOf(html, 'linear'), 'csrf_token')!

      const response = await post(`/connections/${server.id}/disconnect`, owner.token, { csrf_token: csrf })
      expect(response.status).toBe(303)
      expect(response.headers.get('location')).toBe(`/connections#server-${server.id}`)
      expect(await findUserToken(ctx.db, server.id, owner.id)).toBeUndefined()
      expect(itemOf(await (await get('/connections', owner.token)).text(), 'linear')).toContain('Not connected')

      // Again: idempotent.
      const again = await post(`/connections/${server.id}/disconnect`, owner.token, { csrf_token: csrf })
      expect(again.status).toBe(303)
    })

    it('includes a default_off server from its switch, and leaves it out again', async () => {
      const server = await createServer('optin', { auth_type: 'none', availability: 'default_off' })
      const csrf = csrfTokenFor(owner.token)
      const on = await post(`/connections/${server.id}/selection`, owner.token, { csrf_token: csrf, selected: 'true' })
      expect(on.status).toBe(303)
      expect(itemOf(await (await get('/connections', owner.token)).text(), 'optin')).toContain('aria-checked="true"')
      const api = await ctx.api(owner.token).api.v1.mcp.servers({ id: server.id }).get()
      expect(api.data?.selected).toBe(true)

      await post(`/connections/${server.id}/selection`, owner.token, { csrf_token: csrf, selected: 'false' })
      expect(itemOf(await (await get('/connections', owner.token)).text(), 'optin')).toContain('aria-checked="false"')
    })

    it('answers an error page, not JSON, for a server the user cannot see or a bad value', async () => {
      const csrf = csrfTokenFor(owner.token)
      const missing = await post('/connections/nope/selection', owner.token, { csrf_token: csrf, selected: 'true' })
      expect(missing.status).toBe(404)
      expect(missing.headers.get('content-type')).toStartWith('text/html')
      expect(await missing.text()).toContain('MCP server not found')
      expect((await post('/connections/nope/disconnect', owner.token, { csrf_token: csrf })).status).toBe(404)

      const server = await createServer('optin', { auth_type: 'none', availability: 'default_off' })
      const bad = await post(`/connections/${server.id}/selection`, owner.token, { csrf_token: csrf, selected: 'yes' })
      expect(bad.status).toBe(400)
    })
  })

  describe('?connect=', () => {
    it('sends a signed-in user on to the server’s connect route, coming back to /connections', async () => {
      const server = await createServer('linear', MANUAL_OAUTH)
      const response = await get(`/connections?connect=${server.id}`, owner.token)
      expect(response.status).toBe(302)
      const location = response.headers.get('location')!
      expect(location).toBe(`/api/v1/mcp/servers/${server.id}/oauth2/connect?return_to=%2Fconnections`)

      // The connect route, with the same cookie, sends the browser to the upstream's authorization page.
      const connect = await get(location, owner.token)
      expect(connect.status).toBe(302)
      const upstream = new URL(connect.headers.get('location')!)
      expect(upstream.origin + upstream.pathname).toBe(MANUAL_OAUTH.oauth2_auth_url)
      expect(upstream.searchParams.get('code_challenge_method')).toBe('S256')
    })

    it('says so for a server that is unknown or needs no sign-in', async () => {
      const unknown = await get('/connections?connect=%3Cb%3Enope', owner.token)
      expect(unknown.status).toBe(404)
      const text = await unknown.text()
      expect(text).toContain('No MCP server “&lt;b&gt;nope” is available to you.')

      const server = await createServer('docs', { auth_type: 'none' })
      const none = await get(`/connections?connect=${server.id}`, owner.token)
      expect(none.status).toBe(200)
      expect(await none.text()).toContain('DOCS needs no sign-in')
    })
  })

  describe('behind a path prefix', () => {
    beforeEach(async () => {
      await ctx.close()
      await start('https://example.com/gh')
    })

    it('keeps every link, form and redirect under the prefix', async () => {
      const signedOut = await get('/connections?connect=x')
      expect(signedOut.headers.get('location')).toBe(
        `/gh/login?next=${encodeURIComponent('/gh/connections?connect=x')}`,
      )

      const server = await createServer('linear', MANUAL_OAUTH)
      const html = await (await get('/connections', owner.token, '__Host-gatehouse_session')).text()
      const linear = itemOf(html, 'linear')
      expect(linear).toContain(
        `href="/gh/api/v1/mcp/servers/${server.id}/oauth2/connect?return_to=%2Fgh%2Fconnections"`,
      )
      expect(linear).toContain(`action="/gh/connections/${server.id}/selection"`)

      const connect = await get(`/connections?connect=${server.id}`, owner.token, '__Host-gatehouse_session')
      expect(connect.headers.get('location')).toBe(
        `/gh/api/v1/mcp/servers/${server.id}/oauth2/connect?return_to=%2Fgh%2Fconnections`,
      )

      const changed = await ctx.app.handle(
        new Request(`http://localhost/connections/${server.id}/selection`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            cookie: `__Host-gatehouse_session=${owner.token}`,
          },
          body: new URLSearchParams({ csrf_token: csrfTokenFor(owner.token), selected: 'false' }),
        }),
      )
      expect(changed.status).toBe(303)
      expect(changed.headers.get('location')).toBe(`/gh/connections#server-${server.id}`)
    })
  })
})
