import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import { cookieNamesFor } from '../../src/auth/cookies.ts'
import { nowSeconds } from '../../src/db/index.ts'
import {
  type OAuthServer,
  startOAuthServer,
  startV2McpServer,
  UPSTREAM_ERROR_MARKER,
  type UpstreamServer,
} from '../fixtures/upstreams.ts'
import { bootstrapOwner, createUserAndLogin, setup, type TestContext } from '../setup.ts'

/**
 * What a browser shows when connecting a server fails: the user comes back from the upstream's
 * sign-in to a page in plain words with a way back, never raw JSON, for every way it can fail.
 * A real authorization server and MCP server on loopback; the browser is the session cookie and
 * the Accept header a browser sends. Scripts asking for JSON still get JSON.
 */

const PUBLIC_URL = 'http://localhost:3000'
const BROWSER = 'text/html,application/xhtml+xml,*/*;q=0.8'
const SESSION = cookieNamesFor(PUBLIC_URL).session

type User = { id: string; token: string }

let ctx: TestContext
let owner: User
let alice: User
let bob: User
let as: OAuthServer
let upstream: UpstreamServer
let serverId: string

beforeAll(async () => {
  ctx = await setup({ outboundAllowPrivate: true, publicUrl: PUBLIC_URL })
  owner = await bootstrapOwner(ctx)
  alice = await createUserAndLogin(ctx, owner.token, 'alice')
  bob = await createUserAndLogin(ctx, owner.token, 'bob')
  as = await startOAuthServer()
  upstream = await startV2McpServer({ protectedBy: as.protect() })
  const created = await ctx.app.handle(
    new Request('http://localhost/api/v1/mcp/servers', {
      method: 'POST',
      headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        display_name: 'Tracker <Beta>',
        slug: 'tracker',
        url: upstream.url,
        auth_type: 'oauth2',
        enabled: true,
      }),
    }),
  )
  if (created.status !== 201) throw new Error(`create: ${created.status} ${await created.text()}`)
  serverId = (await created.json()).id
})

afterEach(() => {
  as.tokenEndpoint.failWith = undefined
})

afterAll(async () => {
  await upstream?.close()
  await as?.close()
  await ctx.close()
})

/** A browser's request: the session cookie (if signed in) and a browser's Accept; redirects not followed. */
function browse(
  user: User | undefined,
  path: string,
  cookie = user ? `${SESSION}=${user.token}` : '',
): Promise<Response> {
  return ctx.app.handle(
    new Request(`http://localhost${path}`, { headers: { accept: BROWSER, ...(cookie ? { cookie } : {}) } }),
  )
}

/** Connect as `user` in the browser, approve at the authorization server: the way back, not yet followed. */
async function approvedCallback(user: User): Promise<URL> {
  const started = await browse(user, `/api/v1/mcp/servers/${serverId}/oauth2/connect`)
  if (started.status !== 302) throw new Error(`connect: ${started.status} ${await started.text()}`)
  return as.approve(started.headers.get('location')!)
}

const pathOf = (url: URL) => `${url.pathname}${url.search}`

/** A failure page as every one must be: HTML, its status, unframeable, uncached, with the way back. */
async function failurePage(response: Response, status: number): Promise<string> {
  expect(response.status).toBe(status)
  expect(response.headers.get('content-type')).toStartWith('text/html')
  expect(response.headers.get('x-frame-options')).toBe('DENY')
  expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
  expect(response.headers.get('cache-control')).toBe('no-store')
  expect(response.headers.get('location')).toBeNull()
  const html = await response.text()
  expect(html).toContain('<h1>Connecting failed</h1>')
  expect(html).toContain('<a class="button" href="/connections">Back to your connections</a>')
  return html
}

const retryLink = () => `<a class="button primary" href="/connections?connect=${serverId}">Connect again</a>`

/** The message of the page, unescaped. */
const messageOf = (html: string) =>
  html
    .match(/<p class="error" role="alert">([^<]*)<\/p>/)?.[1]
    ?.replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')

const tokenRow = (userId: string) =>
  ctx.db
    .selectFrom('mcp_server_user_tokens')
    .selectAll()
    .where('server_id', '=', serverId)
    .where('user_id', '=', userId)
    .executeTakeFirst()

describe('the page a browser lands on when connecting fails', () => {
  it('says the browser is not signed in, not raw JSON, when the session is gone by the callback', async () => {
    const back = await approvedCallback(alice)
    for (const cookie of ['', `${SESSION}=gth_ses_no-such-session`, `gatehouse_session=${alice.token}`]) {
      const html = await failurePage(await browse(undefined, pathOf(back), cookie), 401)
      expect(messageOf(html)).toBe('This browser is not signed in to Gatehouse, so the connection could not be saved.')
      expect(html).toContain('another Gatehouse on this host name replaced its cookie')
      expect(html).toContain(retryLink())
    }
    expect(await tokenRow(alice.id)).toBeUndefined()
  })

  it('says the same when a signed-out browser opens the connect route', async () => {
    const html = await failurePage(await browse(undefined, `/api/v1/mcp/servers/${serverId}/oauth2/connect`), 401)
    expect(messageOf(html)).toBe('This browser is not signed in to Gatehouse, so the connection could not be saved.')
  })

  it('says access was denied when the user declined at the upstream, escaping what the upstream said', async () => {
    const state = (await approvedCallback(alice)).searchParams.get('state')!
    const query = new URLSearchParams({
      error: 'access_denied',
      error_description: 'The user said no <script>alert(1)</script>',
      state,
    })
    const html = await failurePage(await browse(alice, `/api/v1/mcp/servers/${serverId}/oauth2/callback?${query}`), 400)
    expect(messageOf(html)).toBe('Tracker <Beta> was not connected: access was denied at its sign-in page')
    expect(html).toContain(
      'Its authorization server answered access_denied: The user said no &lt;script&gt;alert(1)&lt;/script&gt;. Connect again and allow access to use its tools.',
    )
    expect(html).not.toContain('<script>alert')
    expect(html).not.toContain('<Beta>')
    expect(html).toContain(retryLink())
  })

  it('shows an upstream error with a very long description on the page, shortened, instead of refusing it', async () => {
    const query = new URLSearchParams({ error: 'server_error', error_description: 'x'.repeat(5000), state: 'anything' })
    const html = await failurePage(await browse(alice, `/api/v1/mcp/servers/${serverId}/oauth2/callback?${query}`), 400)
    expect(messageOf(html)).toBe('Tracker <Beta> was not connected: its sign-in page reported a problem')
    expect(html).toContain(`Its authorization server answered server_error: ${'x'.repeat(300)}.`)
    expect(html).not.toContain('x'.repeat(301))
  })

  it('says a sign-in is not one Gatehouse waits for when its state is unknown or used', async () => {
    const back = await approvedCallback(alice)
    back.searchParams.set('state', 'not-a-state-gatehouse-issued')
    const html = await failurePage(await browse(alice, pathOf(back)), 400)
    expect(messageOf(html)).toBe(
      'Tracker <Beta> was not connected: this sign-in was already used, or was not started from this Gatehouse',
    )
    expect(html).toContain('Start connecting again.')
    expect(html).toContain(retryLink())
  })

  it('says the sign-in took too long when its state expired', async () => {
    const back = await approvedCallback(alice)
    await ctx.db
      .updateTable('mcp_oauth_states')
      .set({ expires_at: nowSeconds() - 1 })
      .execute()
    const html = await failurePage(await browse(alice, pathOf(back)), 400)
    expect(messageOf(html)).toBe('Tracker <Beta> was not connected: the sign-in took longer than 10 minutes')
    expect(await tokenRow(alice.id)).toBeUndefined()
  })

  it('says another user started the sign-in when it comes back to someone else’s browser', async () => {
    const back = await approvedCallback(alice)
    const html = await failurePage(await browse(bob, pathOf(back)), 400)
    expect(messageOf(html)).toBe(
      'Tracker <Beta> was not connected: this sign-in was started by another Gatehouse user, not by bob',
    )
    expect(html).toContain('Sign in to Gatehouse as the user who started it, or connect again as yourself.')
    expect(await tokenRow(alice.id)).toBeUndefined()
    expect(await tokenRow(bob.id)).toBeUndefined()
  })

  it('says the upstream issued no tokens when the code exchange fails, without what it said', async () => {
    as.tokenEndpoint.failWith = 500
    const html = await failurePage(await browse(alice, pathOf(await approvedCallback(alice))), 502)
    expect(messageOf(html)).toBe(
      'Tracker <Beta> was not connected: its authorization server did not issue tokens for this sign-in',
    )
    expect(html).toContain('if it keeps failing, tell your Gatehouse admin')
    expect(html).not.toContain(UPSTREAM_ERROR_MARKER)
    expect(await tokenRow(alice.id)).toBeUndefined()
  })

  it('says why a server cannot be connected when the connect route refuses a browser', async () => {
    const missing = crypto.randomUUID()
    const html = await failurePage(await browse(alice, `/api/v1/mcp/servers/${missing}/oauth2/connect`), 404)
    expect(messageOf(html)).toBe('MCP server not found')
    expect(html).not.toContain('Connect again')
  })

  it('keeps answering JSON to a script that asks for it', async () => {
    const back = await approvedCallback(alice)
    const json = (path: string, headers: Record<string, string>) =>
      ctx.app.handle(new Request(`http://localhost${path}`, { headers: { accept: 'application/json', ...headers } }))

    const signedOut = await json(pathOf(back), {})
    expect(signedOut.status).toBe(401)
    expect(signedOut.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"')
    expect(await signedOut.json()).toEqual({ message: 'Authentication required' })

    const stranger = await json(pathOf(back), { authorization: `Bearer ${bob.token}` })
    expect(stranger.status).toBe(400)
    expect(await stranger.json()).toEqual({
      message: 'Tracker <Beta> was not connected: this sign-in was started by another Gatehouse user, not by bob',
      detail: 'Sign in to Gatehouse as the user who started it, or connect again as yourself.',
    })
  })
})
