import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import { cookieNamesFor } from '../../src/auth/cookies.ts'
import { type Config, ConfigError, loadConfig } from '../../src/config.ts'
import { openValue } from '../../src/secrets/sealed-column.ts'
import { cliEnv, createTempDir, encodeKey, findFreePort, killChildren, runCli } from '../fixtures/cli-process.ts'
import { OFF_SITE_PATHS } from '../fixtures/http.ts'
import {
  type ForgedAccount,
  gatehouseLoginClient,
  type GithubEmail,
  type GithubStandIn,
  type GithubUser,
  type IdTokenTampering,
  signInThroughGatehouse,
  startForgingOidcProvider,
  startGithubStandIn,
} from '../fixtures/identity-providers.ts'
import { type OidcProviderServer, startOidcProvider } from '../fixtures/upstreams.ts'
import { createTestDatabase, OWNER, startTestServer, TEST_KEY } from '../setup.ts'

/**
 * Signing in to Gatehouse with an identity provider, end to end: real Gatehouse servers on
 * loopback ports whose public URL is their own, a real OpenID provider (oidc-provider, a static
 * confidential client per Gatehouse, client_secret_basic), a hand-written OpenID provider that
 * forges the ID tokens a real one never sends, and a GitHub stand-in. The browser's part is done
 * by hand: redirects followed one at a time with a cookie jar.
 */

const TIMEOUT_MS = 10_000
const CLIENT_SECRET = 'gatehouse-client-secret'
const DISPLAY_NAME = 'Example SSO'

type Server = Awaited<ReturnType<typeof startTestServer>>
type User = { id: string; token: string }

/** The identity-provider part of a configuration, read from the variables an operator sets. */
function providerSettings(env: Record<string, string>): Partial<Config> {
  const config = loadConfig({ DATABASE_URL: ':memory:', ...env })
  return {
    oidc: config.oidc,
    github: config.github,
    oidcAllowSignups: config.oidcAllowSignups,
    passwordLogin: config.passwordLogin,
  }
}

const oidcEnv = (issuer: string, clientId: string) => ({
  GATEHOUSE_OIDC_ISSUER: issuer,
  GATEHOUSE_OIDC_CLIENT_ID: clientId,
  GATEHOUSE_OIDC_CLIENT_SECRET: CLIENT_SECRET,
  GATEHOUSE_OIDC_DISPLAY_NAME: DISPLAY_NAME,
})

const callbackOf = (publicUrl: string, provider: 'oidc' | 'github') => `${publicUrl}/login/${provider}/callback`

/** oidc-provider's static client for the Gatehouse at `publicUrl`. */
const staticClient = (clientId: string, publicUrl: string) => gatehouseLoginClient(publicUrl, clientId, CLIENT_SECRET)

async function call(server: Server, token: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  })
  const text = await response.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {}
  return { status: response.status, text, body: json }
}

async function postJson(url: string, body: unknown) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  })
}

async function signUpOwner(server: Server): Promise<User> {
  const created = await postJson(`${server.url}/api/v1/users/first`, OWNER)
  if (created.status !== 201) throw new Error(`first user: ${created.status} ${await created.text()}`)
  const login = await postJson(`${server.url}/api/v1/auth/login`, { login: OWNER.username, password: OWNER.password })
  if (login.status !== 200) throw new Error(`login: ${login.status} ${await login.text()}`)
  return { id: (await created.json()).id, token: (await login.json()).session_token }
}

async function createPasswordUser(server: Server, owner: User, username: string, role = 'member') {
  const created = await call(server, owner.token, 'POST', '/api/v1/users', {
    email: `${username}@example.com`,
    username,
    password: `${username}-password-1`,
    role,
  })
  if (created.status !== 201) throw new Error(`create ${username}: ${created.status} ${created.text}`)
  return created.body as { id: string }
}

const countUsers = async (server: Server) =>
  Number(
    (
      await server.deps.db
        .selectFrom('users')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  )

const userByEmail = (server: Server, email: string) =>
  server.deps.db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst()

const linksOf = (server: Server, userId: string) =>
  server.deps.db.selectFrom('user_links').selectAll().where('user_id', '=', userId).execute()

/** The message of a Gatehouse error page. */
const pageMessage = (html: string) => html.match(/<p class="error">([^<]*)<\/p>/)?.[1]?.replaceAll('&#39;', "'")

describe('sign-in with an OpenID provider and GitHub', () => {
  let idp: OidcProviderServer
  let github: GithubStandIn
  let server: Server
  let owner: User
  let carol: { id: string }
  let sam: { id: string }
  let bob: { id: string }

  beforeAll(async () => {
    const port = await findFreePort()
    const publicUrl = `http://127.0.0.1:${port}`
    idp = await startOidcProvider({
      clients: [staticClient('gatehouse-main', publicUrl)],
      accounts: {
        newbie: { email: 'newbie@example.com', email_verified: true, name: 'New Bie' },
        carol: { email: 'Carol@Example.com', email_verified: true, name: 'Carol' },
        'fake-bob': { email: 'bob@example.com', email_verified: false, name: 'Not Bob' },
        ghost: { email: 'ghost@example.com', email_verified: false },
        sam: { email: 'sam@example.com', email_verified: true },
      },
    })
    github = await startGithubStandIn({
      clientId: 'gh-client',
      clientSecret: 'gh-secret',
      redirectUri: callbackOf(publicUrl, 'github'),
    })
    server = await startTestServer({
      port,
      publicUrl,
      ...providerSettings({
        ...oidcEnv(idp.issuer, 'gatehouse-main'),
        GATEHOUSE_GITHUB_CLIENT_ID: 'gh-client',
        GATEHOUSE_GITHUB_CLIENT_SECRET: 'gh-secret',
        GATEHOUSE_GITHUB_URL: github.url,
      }),
    })
    owner = await signUpOwner(server)
    carol = await createPasswordUser(server, owner, 'carol')
    bob = await createPasswordUser(server, owner, 'bob')
    sam = await createPasswordUser(server, owner, 'sam')
    const suspended = await call(server, owner.token, 'POST', `/api/v1/users/${sam.id}/suspend`)
    if (suspended.status !== 200) throw new Error(`suspend: ${suspended.status} ${suspended.text}`)
  })

  afterAll(async () => {
    await server?.close()
    await idp?.close()
    await github?.close()
  })

  const oidcSignIn = (accountId: string, options: Parameters<typeof signInThroughGatehouse>[3] = {}) =>
    signInThroughGatehouse(server.url, 'oidc', (url) => idp.approve(url, { accountId }), options)

  /** The link's tokens, opened with the server's keyring. */
  async function linkTokens(userId: string) {
    const [link] = await linksOf(server, userId)
    const open = (column: 'access_token' | 'refresh_token') =>
      openValue(
        server.deps.keyring,
        { table: 'user_links', column, rowKey: `${userId}/${link.provider}` },
        link[column]!,
      )
    return { link, accessToken: await open('access_token'), refreshToken: await open('refresh_token') }
  }

  describe('OpenID Connect', () => {
    it('sends the browser to the provider with PKCE S256, state and nonce, the flow kept in a callback-scoped cookie', async () => {
      const response = await fetch(`${server.url}/login/oidc?return_to=/connections`, {
        redirect: 'manual',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
      expect(response.status).toBe(302)
      const location = new URL(response.headers.get('location')!)
      expect(location.origin).toBe(new URL(idp.issuer).origin)
      expect(Object.fromEntries(location.searchParams)).toMatchObject({
        response_type: 'code',
        client_id: 'gatehouse-main',
        redirect_uri: callbackOf(server.url, 'oidc'),
        scope: 'openid email profile offline_access',
        code_challenge_method: 'S256',
      })
      for (const name of ['state', 'nonce', 'code_challenge'])
        expect(location.searchParams.get(name)!.length).toBeGreaterThanOrEqual(32)
      const [cookie] = response.headers.getSetCookie()
      expect(cookie).toStartWith(`${cookieNamesFor(server.url).identityFlow('oidc')}=`)
      expect(cookie).toContain('Path=/login/oidc/callback')
      expect(cookie).toContain('HttpOnly')
      expect(cookie).toContain('SameSite=Lax')
      // The code verifier rides in the cookie, never in the URL sent to the provider.
      expect(location.searchParams.has('code_verifier')).toBe(false)
    })

    it('creates a new verified user as a member of the default organization, signed in and sent to return_to', async () => {
      const before = await countUsers(server)
      const signIn = await oidcSignIn('newbie', { returnTo: '/connections?tab=mine' })
      expect(signIn.status).toBe(303)
      expect(signIn.location).toBe('/connections?tab=mine')
      expect(await countUsers(server)).toBe(before + 1)

      const user = (await userByEmail(server, 'newbie@example.com'))!
      expect(user).toMatchObject({ username: 'newbie', display_name: 'New Bie', role: 'member', password_hash: null })
      const membership = await server.deps.db
        .selectFrom('organization_members')
        .innerJoin('organizations', 'organizations.id', 'organization_members.organization_id')
        .select(['organizations.is_default', 'organization_members.role'])
        .where('organization_members.user_id', '=', user.id)
        .execute()
      expect(membership.map((row) => ({ ...row, is_default: Number(row.is_default) }))).toEqual([
        { is_default: 1, role: 'member' },
      ])

      // The session cookie alone signs the browser in.
      const me = await fetch(`${server.url}/api/v1/users/me`, {
        headers: { cookie: `${cookieNamesFor(server.url).session}=${signIn.sessionToken}` },
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
      expect(me.status).toBe(200)
      expect(await me.json()).toMatchObject({ id: user.id, email: 'newbie@example.com', login_type: 'oidc' })
      // The flow cookie is spent.
      expect(signIn.jar.get(cookieNamesFor(server.url).identityFlow('oidc'))).toBeUndefined()
    })

    it('links a second sign-in to the same user, with the new tokens stored', async () => {
      const first = await oidcSignIn('newbie')
      expect(first.status).toBe(303)
      const user = (await userByEmail(server, 'newbie@example.com'))!
      const before = await linkTokens(user.id)
      const users = await countUsers(server)

      const second = await oidcSignIn('newbie')
      expect(second.status).toBe(303)
      expect(second.location).toBe('/login')
      expect(await countUsers(server)).toBe(users)
      const after = await linkTokens(user.id)
      expect(await linksOf(server, user.id)).toHaveLength(1)
      expect(after.link.subject).toBe('newbie')
      expect(after.accessToken).not.toBe(before.accessToken)
      expect(after.refreshToken).not.toBe(before.refreshToken)
      // The stored tokens are the provider's live ones.
      expect(await idp.verifyAccessToken(after.accessToken)).toMatchObject({ clientId: 'gatehouse-main' })
      expect(second.sessionToken).not.toBe(first.sessionToken)
      const me = await call(server, second.sessionToken!, 'GET', '/api/v1/users/me')
      expect(me.body.id).toBe(user.id)
    })

    it('links an existing password user with the same verified email instead of creating another', async () => {
      const users = await countUsers(server)
      const signIn = await oidcSignIn('carol')
      expect(signIn.status).toBe(303)
      expect(await countUsers(server)).toBe(users)
      const me = await call(server, signIn.sessionToken!, 'GET', '/api/v1/users/me')
      expect(me.body).toMatchObject({ id: carol.id, username: 'carol', login_type: 'oidc' })
      expect((await linksOf(server, carol.id)).map((link) => [link.provider, link.subject])).toEqual([
        ['oidc', 'carol'],
      ])
      // The password still works too.
      const password = await postJson(`${server.url}/api/v1/auth/login`, {
        login: 'carol',
        password: 'carol-password-1',
      })
      expect(password.status).toBe(200)
    })

    it('does not link an unverified email to the existing account with that address', async () => {
      const users = await countUsers(server)
      const signIn = await oidcSignIn('fake-bob')
      expect(signIn.status).toBe(403)
      expect(pageMessage(signIn.text)).toBe(
        `Your email at ${DISPLAY_NAME} is not verified, so it cannot sign you in to the account with that address; verify it there first`,
      )
      expect(signIn.sessionToken).toBeUndefined()
      expect(await countUsers(server)).toBe(users)
      expect(await linksOf(server, bob.id)).toEqual([])
    })

    it('creates nobody for an unverified email that no account has', async () => {
      const users = await countUsers(server)
      const signIn = await oidcSignIn('ghost')
      expect(signIn.status).toBe(403)
      expect(pageMessage(signIn.text)).toContain('did not give a verified email address')
      expect(signIn.sessionToken).toBeUndefined()
      expect(await countUsers(server)).toBe(users)
      expect(await userByEmail(server, 'ghost@example.com')).toBeUndefined()
    })

    it('refuses a suspended user and stores no tokens for them', async () => {
      const signIn = await oidcSignIn('sam')
      expect(signIn.status).toBe(403)
      expect(pageMessage(signIn.text)).toBe('This account is suspended')
      expect(signIn.sessionToken).toBeUndefined()
      expect(await linksOf(server, sam.id)).toEqual([])
    })

    it('refuses a callback whose state is not the one this browser started with (400 page)', async () => {
      const users = await countUsers(server)
      const signIn = await oidcSignIn('newbie', {
        alterCallback: (callback) => {
          callback.searchParams.set('state', 'x'.repeat(43))
          return callback
        },
      })
      expect(signIn.status).toBe(400)
      expect(signIn.text).toContain('<h1>Sign-in failed</h1>')
      expect(pageMessage(signIn.text)).toBe(
        'This sign-in expired or was not started in this browser. Please sign in again.',
      )
      expect(signIn.sessionToken).toBeUndefined()
      expect(await countUsers(server)).toBe(users)
    })

    it('refuses a callback without a state (400 page)', async () => {
      const signIn = await oidcSignIn('newbie', {
        alterCallback: (callback) => {
          callback.searchParams.delete('state')
          return callback
        },
      })
      expect(signIn.status).toBe(400)
      expect(pageMessage(signIn.text)).toContain('This sign-in expired or was not started in this browser')
      expect(signIn.sessionToken).toBeUndefined()
    })

    it('refuses a callback that comes without the flow cookie (another browser)', async () => {
      const started = await fetch(`${server.url}/login/oidc`, {
        redirect: 'manual',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
      const back = await idp.approve(started.headers.get('location')!, { accountId: 'newbie' })
      const response = await fetch(back, { redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_MS) })
      expect(response.status).toBe(400)
      expect(pageMessage(await response.text())).toContain('was not started in this browser')
      expect(
        response.headers.getSetCookie().some((cookie) => cookie.startsWith(`${cookieNamesFor(server.url).session}=`)),
      ).toBe(false)
    })

    it("shows the provider's error when it refuses the sign-in", async () => {
      const signIn = await oidcSignIn('newbie', {
        alterCallback: (callback) => {
          const refused = new URL(callback.origin + callback.pathname)
          refused.searchParams.set('error', 'access_denied')
          refused.searchParams.set('error_description', 'The user said no')
          refused.searchParams.set('state', callback.searchParams.get('state')!)
          return refused
        },
      })
      expect(signIn.status).toBe(400)
      expect(pageMessage(signIn.text)).toBe(`${DISPLAY_NAME} refused the sign-in: access_denied.`)
      expect(signIn.sessionToken).toBeUndefined()
    })

    for (const returnTo of ['//evil.example/steal', ...OFF_SITE_PATHS])
      it(`keeps the browser on this server when return_to is ${JSON.stringify(returnTo)}`, async () => {
        const signIn = await oidcSignIn('newbie', { returnTo })
        expect(signIn.status).toBe(303)
        expect(signIn.location).toBe('/login')
        expect(new URL(signIn.location!, server.url).origin).toBe(new URL(server.url).origin)
      })

    it('offers each configured provider on the sign-in page, next to the password form', async () => {
      const response = await fetch(`${server.url}/login?next=/connections`, { signal: AbortSignal.timeout(TIMEOUT_MS) })
      const html = await response.text()
      expect(html).toContain(
        `<a class="button primary provider" href="/login/oidc?return_to=%2Fconnections">Sign in with ${DISPLAY_NAME}</a>`,
      )
      expect(html).toContain(
        '<a class="button primary provider" href="/login/github?return_to=%2Fconnections">Sign in with GitHub</a>',
      )
      expect(html).toContain('<input type="password"')
    })

    it('answers 404 for a provider that is not configured', async () => {
      const response = await fetch(`${server.url}/login/gitlab`, {
        redirect: 'manual',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
      expect(response.status).toBe(404)
      expect(pageMessage(await response.text())).toBe('This sign-in method is not configured here.')
    })
  })

  describe('the links API', () => {
    let member: User
    let newbie: { id: string }
    let tokens: { accessToken: string; refreshToken: string }

    beforeAll(async () => {
      const signIn = await oidcSignIn('newbie')
      if (signIn.status !== 303) throw new Error(`sign-in: ${signIn.status} ${signIn.text}`)
      member = { id: (await userByEmail(server, 'newbie@example.com'))!.id, token: signIn.sessionToken! }
      newbie = { id: member.id }
      tokens = await linkTokens(member.id)
    })

    it("shows the caller's link with provider, subject, email, expiry, refresh token presence and claims", async () => {
      const response = await call(server, member.token, 'GET', '/api/v1/users/me/links')
      expect(response.status).toBe(200)
      expect(response.body).toHaveLength(1)
      const [link] = response.body
      expect(link).toMatchObject({
        provider: 'oidc',
        subject: 'newbie',
        email: 'newbie@example.com',
        has_refresh_token: true,
        claims: { sub: 'newbie', iss: idp.issuer, aud: 'gatehouse-main', email: 'newbie@example.com' },
      })
      expect(Date.parse(link.expires_at)).toBeGreaterThan(Date.now())
      expect(Object.keys(link).sort()).toEqual(
        [
          'claims',
          'created_at',
          'email',
          'expires_at',
          'has_refresh_token',
          'provider',
          'subject',
          'updated_at',
        ].sort(),
      )
    })

    it('never returns the tokens themselves', async () => {
      const mine = await call(server, member.token, 'GET', '/api/v1/users/me/links')
      const theirs = await call(server, owner.token, 'GET', `/api/v1/users/${newbie.id}/links`)
      for (const body of [mine.text, theirs.text]) {
        expect(body).not.toContain(tokens.accessToken)
        expect(body).not.toContain(tokens.refreshToken)
        expect(body).not.toMatch(/"(access|refresh|id)_token"/)
      }
    })

    it("lets an admin read another user's links", async () => {
      const response = await call(server, owner.token, 'GET', `/api/v1/users/${newbie.id}/links`)
      expect(response.status).toBe(200)
      expect(response.body.map((link: { subject: string }) => link.subject)).toEqual(['newbie'])
      expect((await call(server, owner.token, 'GET', `/api/v1/users/${owner.id}/links`)).body).toEqual([])
    })

    it("refuses a member another user's links (403)", async () => {
      const response = await call(server, member.token, 'GET', `/api/v1/users/${carol.id}/links`)
      expect(response.status).toBe(403)
      expect(response.text).not.toContain('carol@example.com')
    })

    it('answers 404 for the links of a user that does not exist', async () => {
      const response = await call(server, owner.token, 'GET', `/api/v1/users/${crypto.randomUUID()}/links`)
      expect(response.status).toBe(404)
    })
  })

  describe('GitHub', () => {
    const octo: GithubUser = { id: 583231, login: 'Octo.Cat', name: 'The Octocat' }
    const githubSignIn = (user: GithubUser, emails: GithubEmail[]) =>
      signInThroughGatehouse(server.url, 'github', (url) => github.approve(url, { user, emails }), {
        returnTo: '/connections',
      })

    it('signs up a user with a verified primary email as login_type github', async () => {
      const signIn = await githubSignIn(octo, [
        { email: 'octo-work@example.com', primary: false, verified: true },
        { email: 'Octo@Example.com', primary: true, verified: true },
      ])
      expect(signIn.status).toBe(303)
      expect(signIn.location).toBe('/connections')
      const me = await call(server, signIn.sessionToken!, 'GET', '/api/v1/users/me')
      expect(me.body).toMatchObject({ email: 'octo@example.com', username: 'octo.cat', login_type: 'github' })
      const links = await call(server, signIn.sessionToken!, 'GET', '/api/v1/users/me/links')
      expect(links.body).toEqual([
        expect.objectContaining({
          provider: 'github',
          subject: '583231',
          email: 'octo@example.com',
          has_refresh_token: false,
          claims: { id: 583231, login: 'Octo.Cat', name: 'The Octocat' },
        }),
      ])
      expect(github.requests).toContain('GET /api/v3/user/emails')
    })

    it('links a GitHub sign-in to the existing account of its verified primary email', async () => {
      const signIn = await githubSignIn({ id: 99, login: 'carol-gh', name: null }, [
        { email: 'carol@example.com', primary: true, verified: true },
      ])
      expect(signIn.status).toBe(303)
      const me = await call(server, signIn.sessionToken!, 'GET', '/api/v1/users/me')
      expect(me.body).toMatchObject({ id: carol.id, login_type: 'github' })
    })

    it('neither links nor signs up with an unverified primary email, even when a verified one exists', async () => {
      const users = await countUsers(server)
      for (const emails of [
        [{ email: 'bob@example.com', primary: true, verified: false }],
        [
          { email: 'bob@example.com', primary: true, verified: false },
          { email: 'lurker@example.com', primary: false, verified: true },
        ],
        [],
      ]) {
        const signIn = await githubSignIn({ id: 4242, login: 'not-bob', name: 'Not Bob' }, emails)
        expect(signIn.status).toBe(403)
        expect(pageMessage(signIn.text)).toBe('GitHub did not give a verified email address, which an account needs')
        expect(signIn.sessionToken).toBeUndefined()
      }
      expect(await countUsers(server)).toBe(users)
      expect(await linksOf(server, bob.id)).toEqual([])
      expect(await userByEmail(server, 'lurker@example.com')).toBeUndefined()
    })

    it('shows a sign-in failure page, not a 500, when GitHub no longer accepts the code', async () => {
      const signIn = await signInThroughGatehouse(
        server.url,
        'github',
        (url) => github.approve(url, { user: octo, emails: [] }),
        {
          alterCallback: (callback) => {
            callback.searchParams.set('code', 'expired-code')
            return callback
          },
        },
      )
      expect(signIn.status).toBe(502)
      expect(pageMessage(signIn.text)).toBe('GitHub did not exchange the sign-in code.')
      expect(signIn.sessionToken).toBeUndefined()
    })

    it("shows a sign-in failure page, not a 500, when GitHub's API does not answer JSON", async () => {
      const signIn = await signInThroughGatehouse(server.url, 'github', (url) =>
        github.approve(url, { user: octo, emails: [], htmlApi: true }),
      )
      expect(signIn.status).toBe(502)
      expect(pageMessage(signIn.text)).toStartWith("GitHub's API")
      expect(signIn.sessionToken).toBeUndefined()
    })
  })
})

describe('sign-in with sign-ups turned off', () => {
  let idp: OidcProviderServer
  let server: Server
  let dave: { id: string }

  beforeAll(async () => {
    const port = await findFreePort()
    const publicUrl = `http://127.0.0.1:${port}`
    idp = await startOidcProvider({
      clients: [staticClient('gatehouse-closed', publicUrl)],
      accounts: {
        stranger: { email: 'stranger@example.com', email_verified: true },
        dave: { email: 'dave@example.com', email_verified: true },
      },
    })
    server = await startTestServer({
      port,
      publicUrl,
      ...providerSettings({ ...oidcEnv(idp.issuer, 'gatehouse-closed'), GATEHOUSE_OIDC_ALLOW_SIGNUPS: 'false' }),
    })
    const owner = await signUpOwner(server)
    dave = await createPasswordUser(server, owner, 'dave')
  })

  afterAll(async () => {
    await server?.close()
    await idp?.close()
  })

  it('creates no user and says the account does not exist', async () => {
    const users = await countUsers(server)
    const signIn = await signInThroughGatehouse(server.url, 'oidc', (url) =>
      idp.approve(url, { accountId: 'stranger' }),
    )
    expect(signIn.status).toBe(403)
    expect(pageMessage(signIn.text)).toBe(
      'No Gatehouse account belongs to stranger@example.com; ask an admin to create one',
    )
    expect(signIn.sessionToken).toBeUndefined()
    expect(await countUsers(server)).toBe(users)
  })

  it('still signs in an existing user by their verified email', async () => {
    const signIn = await signInThroughGatehouse(server.url, 'oidc', (url) => idp.approve(url, { accountId: 'dave' }))
    expect(signIn.status).toBe(303)
    const me = await call(server, signIn.sessionToken!, 'GET', '/api/v1/users/me')
    expect(me.body).toMatchObject({ id: dave.id, login_type: 'oidc' })
  })
})

describe('sign-in with a provider before the owner exists', () => {
  it('creates nobody, so the first account stays the bootstrap owner', async () => {
    const port = await findFreePort()
    const publicUrl = `http://127.0.0.1:${port}`
    const idp = await startOidcProvider({
      clients: [staticClient('gatehouse-fresh', publicUrl)],
      accounts: { first: { email: 'first@example.com', email_verified: true } },
    })
    const server = await startTestServer({
      port,
      publicUrl,
      ...providerSettings(oidcEnv(idp.issuer, 'gatehouse-fresh')),
    })
    try {
      const signIn = await signInThroughGatehouse(server.url, 'oidc', (url) => idp.approve(url, { accountId: 'first' }))
      expect(signIn.status).toBe(403)
      expect(pageMessage(signIn.text)).toBe(
        'Gatehouse has no owner yet; create the first user before signing in with a provider',
      )
      expect((await postJson(`${server.url}/api/v1/users/first`, OWNER)).status).toBe(201)
    } finally {
      await server.close()
      await idp.close()
    }
  })
})

describe('ID tokens that do not verify', () => {
  let forger: Awaited<ReturnType<typeof startForgingOidcProvider>>
  let server: Server
  const account: ForgedAccount = { sub: 'eve-1', email: 'eve@example.com', email_verified: true, name: 'Eve' }

  beforeAll(async () => {
    const port = await findFreePort()
    const publicUrl = `http://127.0.0.1:${port}`
    forger = await startForgingOidcProvider({
      clientId: 'gatehouse-forged',
      clientSecret: CLIENT_SECRET,
      redirectUri: callbackOf(publicUrl, 'oidc'),
    })
    server = await startTestServer({ port, publicUrl, ...providerSettings(oidcEnv(forger.issuer, 'gatehouse-forged')) })
    await signUpOwner(server)
  })

  afterAll(async () => {
    await server?.close()
    await forger?.close()
  })

  const signInWith = (tamper?: IdTokenTampering) =>
    signInThroughGatehouse(server.url, 'oidc', (url) => forger.approve(url, { account, tamper }))

  it('signs in with an untampered ID token (the control)', async () => {
    const signIn = await signInWith()
    expect(signIn.status).toBe(303)
    const me = await call(server, signIn.sessionToken!, 'GET', '/api/v1/users/me')
    expect(me.body).toMatchObject({ email: 'eve@example.com', login_type: 'oidc' })
    await server.deps.db.deleteFrom('users').where('email', '=', 'eve@example.com').execute()
  })

  const refusals: [IdTokenTampering, string][] = [
    ['aud', 'the identity provider sent an ID token that does not verify'],
    ['iss', 'the identity provider sent an ID token that does not verify'],
    ['signature', 'the identity provider sent an ID token that does not verify'],
    ['expired', 'the identity provider sent an ID token that does not verify'],
    ['unsigned', 'the identity provider sent an ID token that does not verify'],
    ['nonce', 'the ID token was not issued for this sign-in (nonce)'],
    ['no-nonce', 'the ID token was not issued for this sign-in (nonce)'],
  ]
  for (const [tamper, message] of refusals)
    it(`refuses an ID token with a wrong ${tamper} and starts no session`, async () => {
      const users = await countUsers(server)
      const signIn = await signInWith(tamper)
      expect(signIn.status).toBe(502)
      expect(pageMessage(signIn.text)).toBe(`${DISPLAY_NAME}: ${message}.`)
      expect(signIn.sessionToken).toBeUndefined()
      expect(await countUsers(server)).toBe(users)
      expect(await server.deps.db.selectFrom('user_links').selectAll().execute()).toEqual([])
    })

  for (const [tamper, claim] of [
    ['no-exp', 'exp'],
    ['no-iat', 'iat'],
  ] as const)
    it(`refuses a correctly signed ID token without ${claim} and starts no session`, async () => {
      const users = await countUsers(server)
      const sessions = () => server.deps.db.selectFrom('sessions').select('user_id').execute()
      const sessionsBefore = await sessions()
      const signIn = await signInWith(tamper)
      expect(signIn.status).toBe(502)
      expect(pageMessage(signIn.text)).toBe(
        `${DISPLAY_NAME}: the identity provider sent an ID token that does not verify.`,
      )
      expect(signIn.sessionToken).toBeUndefined()
      expect(await countUsers(server)).toBe(users)
      expect(await server.deps.db.selectFrom('user_links').selectAll().execute()).toEqual([])
      expect(await sessions()).toEqual(sessionsBefore)
    })
})

describe('OpenID provider discovery', () => {
  it('shows the provider as unavailable (502 page) when its metadata cannot be fetched', async () => {
    const deadIssuer = `http://127.0.0.1:${await findFreePort()}`
    const server = await startTestServer(providerSettings(oidcEnv(deadIssuer, 'gatehouse-dead')))
    try {
      const response = await fetch(`${server.url}/login/oidc`, {
        redirect: 'manual',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
      expect(response.status).toBe(502)
      expect(pageMessage(await response.text())).toBe(
        `${DISPLAY_NAME} is not available: the identity provider ${deadIssuer} could not be reached.`,
      )
      expect(response.headers.getSetCookie()).toEqual([])
    } finally {
      await server.close()
    }
  })

  it('signs in with an issuer that ends in a slash, compared exactly as the provider writes it', async () => {
    const port = await findFreePort()
    const publicUrl = `http://127.0.0.1:${port}`
    const forger = await startForgingOidcProvider({
      clientId: 'gatehouse-slash',
      clientSecret: CLIENT_SECRET,
      redirectUri: callbackOf(publicUrl, 'oidc'),
      trailingSlash: true,
    })
    const server = await startTestServer({
      port,
      publicUrl,
      ...providerSettings(oidcEnv(forger.issuer, 'gatehouse-slash')),
    })
    try {
      expect(forger.issuer).toEndWith('/')
      await signUpOwner(server)
      const signIn = await signInThroughGatehouse(server.url, 'oidc', (url) =>
        forger.approve(url, { account: { sub: 's-1', email: 'slash@example.com', email_verified: true } }),
      )
      expect(pageMessage(signIn.text)).toBeUndefined()
      expect(signIn.status).toBe(303)
    } finally {
      await server.close()
      await forger.close()
    }
  })
})

describe('password sign-in turned off', () => {
  let idp: OidcProviderServer
  let server: Server
  const database = { url: '', drop: async () => {} }
  const dataDir = createTempDir()

  beforeAll(async () => {
    const port = await findFreePort()
    const publicUrl = `http://127.0.0.1:${port}`
    idp = await startOidcProvider({
      clients: [staticClient('gatehouse-nopw', publicUrl)],
      accounts: { root: { email: 'root@example.com', email_verified: true } },
    })
    Object.assign(database, await createTestDatabase())
    if (database.url === ':memory:') database.url = `sqlite:${dataDir.path}/gatehouse.db`
    // The owner comes from the CLI, which is how a deployment without passwords starts.
    const created = await runCli(
      ['create-admin', '--email', 'root@example.com', '--username', 'root', '--password', 'root-password-1'],
      cliEnv({
        DATABASE_URL: database.url,
        GATEHOUSE_DATA_DIR: dataDir.path,
        GATEHOUSE_ENCRYPTION_KEYS: `${TEST_KEY.id}:${encodeKey(TEST_KEY.key)}`,
        GATEHOUSE_PASSWORD_LOGIN: 'false',
        ...oidcEnv(idp.issuer, 'gatehouse-nopw'),
      }),
    )
    if (created.exitCode !== 0) throw new Error(`create-admin: ${created.exitCode} ${created.stderr}`)
    expect(created.stdout).toBe('created owner root <root@example.com>\n')
    server = await startTestServer({
      port,
      publicUrl,
      databaseUrl: database.url,
      ...providerSettings({ ...oidcEnv(idp.issuer, 'gatehouse-nopw'), GATEHOUSE_PASSWORD_LOGIN: 'false' }),
    })
  })

  afterAll(async () => {
    killChildren()
    await server?.close()
    await idp?.close()
    await database.drop()
    dataDir.remove()
  })

  it('shows no password form on the sign-in page, only the provider', async () => {
    const response = await fetch(`${server.url}/login`, { signal: AbortSignal.timeout(TIMEOUT_MS) })
    const html = await response.text()
    expect(response.status).toBe(200)
    expect(html).not.toContain('<form')
    expect(html).not.toContain('type="password"')
    expect(html).toContain(`Sign in with ${DISPLAY_NAME}</a>`)
  })

  it('refuses POST /api/v1/auth/login with 403 naming why, even with the right password', async () => {
    const response = await postJson(`${server.url}/api/v1/auth/login`, { login: 'root', password: 'root-password-1' })
    expect(response.status).toBe(403)
    expect(await response.json()).toEqual({
      message: 'Password sign-in is turned off here; sign in with your identity provider',
    })
    expect(response.headers.getSetCookie()).toEqual([])
  })

  it('refuses a password posted to the sign-in page', async () => {
    const page = await fetch(`${server.url}/login`, { signal: AbortSignal.timeout(TIMEOUT_MS) })
    const csrf = page.headers
      .getSetCookie()
      .find((cookie) => cookie.startsWith(`${cookieNamesFor(server.url).loginCsrf}=`))!
      .split(';')[0]
    const response = await fetch(`${server.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: csrf, origin: server.url },
      body: new URLSearchParams({ login: 'root', password: 'root-password-1', csrf_token: csrf.split('=')[1] }),
      redirect: 'manual',
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    expect(response.status).toBe(403)
    expect(await response.text()).toContain('Password sign-in is turned off here')
    expect(
      response.headers.getSetCookie().some((cookie) => cookie.startsWith(`${cookieNamesFor(server.url).session}=`)),
    ).toBe(false)
  })

  it('lets the owner the CLI created sign in through the provider by their verified email', async () => {
    const signIn = await signInThroughGatehouse(server.url, 'oidc', (url) => idp.approve(url, { accountId: 'root' }))
    expect(signIn.status).toBe(303)
    const me = await call(server, signIn.sessionToken!, 'GET', '/api/v1/users/me')
    expect(me.body).toMatchObject({ username: 'root', role: 'owner', login_type: 'oidc' })
  })
})

describe('identity-provider configuration', () => {
  /** The problems loadConfig reports for `env`; fails the test if it accepts it. */
  function problemsOf(env: Record<string, string>): string[] {
    try {
      loadConfig(env)
    } catch (error) {
      if (error instanceof ConfigError) return error.problems
      throw error
    }
    throw new Error(`expected ${JSON.stringify(env)} to be rejected`)
  }

  it('reads an OpenID provider with the default scopes and display name, and GitHub Enterprise URLs', () => {
    const config = loadConfig({
      GATEHOUSE_OIDC_ISSUER: 'https://login.example.com/realms/staff',
      GATEHOUSE_OIDC_CLIENT_ID: 'gatehouse',
      GATEHOUSE_GITHUB_CLIENT_ID: 'gh',
      GATEHOUSE_GITHUB_CLIENT_SECRET: 'gh-secret',
      GATEHOUSE_GITHUB_URL: 'https://github.example.com/',
    })
    expect(config.oidc).toEqual({
      issuer: 'https://login.example.com/realms/staff',
      clientId: 'gatehouse',
      clientSecret: undefined,
      scopes: ['openid', 'email', 'profile', 'offline_access'],
      displayName: 'Single sign-on',
    })
    expect(config.github).toEqual({
      clientId: 'gh',
      clientSecret: 'gh-secret',
      url: 'https://github.example.com',
      apiUrl: 'https://github.example.com/api/v3',
    })
    expect(config).toMatchObject({ oidcAllowSignups: true, passwordLogin: true })
    expect(loadConfig({}).github).toBeUndefined()
    expect(loadConfig({ GATEHOUSE_GITHUB_CLIENT_ID: 'gh', GATEHOUSE_GITHUB_CLIENT_SECRET: 's' }).github).toMatchObject({
      url: 'https://github.com',
      apiUrl: 'https://api.github.com',
    })
  })

  it('rejects an issuer that is not a URL in one line naming the issuer variable', () => {
    expect(problemsOf({ GATEHOUSE_OIDC_ISSUER: 'not a url', GATEHOUSE_OIDC_CLIENT_ID: 'gatehouse' })).toEqual([
      'GATEHOUSE_OIDC_ISSUER: the issuer must be an https URL (http only on loopback), got "not a url"',
    ])
  })

  it('rejects a plain-http issuer off loopback in one line, however many OIDC variables are set', () => {
    expect(
      problemsOf({
        GATEHOUSE_OIDC_ISSUER: 'http://login.example.com',
        GATEHOUSE_OIDC_CLIENT_ID: 'gatehouse',
        GATEHOUSE_OIDC_CLIENT_SECRET: 'secret',
        GATEHOUSE_OIDC_DISPLAY_NAME: 'Staff',
      }),
    ).toEqual([
      'GATEHOUSE_OIDC_ISSUER: the issuer must be an https URL (http only on loopback), got "http://login.example.com"',
    ])
  })

  it('rejects an issuer without a client ID, and a client ID without an issuer', () => {
    expect(problemsOf({ GATEHOUSE_OIDC_ISSUER: 'https://login.example.com' })).toEqual([
      'GATEHOUSE_OIDC_ISSUER: needs GATEHOUSE_OIDC_CLIENT_ID too',
    ])
    expect(problemsOf({ GATEHOUSE_OIDC_CLIENT_ID: 'gatehouse' })).toEqual([
      'GATEHOUSE_OIDC_CLIENT_ID: needs GATEHOUSE_OIDC_ISSUER too',
    ])
  })

  it('rejects a GitHub client ID without its secret in one line', () => {
    expect(problemsOf({ GATEHOUSE_GITHUB_CLIENT_ID: 'gh' })).toEqual([
      'GATEHOUSE_GITHUB_CLIENT_ID: needs GATEHOUSE_GITHUB_CLIENT_SECRET too',
    ])
    expect(
      problemsOf({ GATEHOUSE_GITHUB_CLIENT_ID: 'gh', GATEHOUSE_GITHUB_URL: 'https://github.example.com' }),
    ).toEqual(['GATEHOUSE_GITHUB_CLIENT_ID: needs GATEHOUSE_GITHUB_CLIENT_SECRET too'])
  })

  it('rejects scopes without openid', () => {
    expect(
      problemsOf({
        GATEHOUSE_OIDC_ISSUER: 'https://login.example.com',
        GATEHOUSE_OIDC_CLIENT_ID: 'gatehouse',
        GATEHOUSE_OIDC_SCOPES: 'email profile',
      }),
    ).toEqual(['GATEHOUSE_OIDC_ISSUER: GATEHOUSE_OIDC_SCOPES must include openid'])
  })

  describe('gatehouse serve', () => {
    afterEach(() => killChildren())

    const cases: [string, Record<string, string>, string][] = [
      [
        'a bad issuer URL',
        { GATEHOUSE_OIDC_ISSUER: 'login.example.com', GATEHOUSE_OIDC_CLIENT_ID: 'gatehouse' },
        'gatehouse:   GATEHOUSE_OIDC_ISSUER: the issuer must be an https URL (http only on loopback), got "login.example.com"',
      ],
      [
        'an issuer without a client ID',
        { GATEHOUSE_OIDC_ISSUER: 'https://login.example.com' },
        'gatehouse:   GATEHOUSE_OIDC_ISSUER: needs GATEHOUSE_OIDC_CLIENT_ID too',
      ],
      [
        'a GitHub client ID without its secret',
        { GATEHOUSE_GITHUB_CLIENT_ID: 'gh' },
        'gatehouse:   GATEHOUSE_GITHUB_CLIENT_ID: needs GATEHOUSE_GITHUB_CLIENT_SECRET too',
      ],
    ]
    for (const [what, env, line] of cases)
      it(`exits with status 2 and one clear line for ${what}`, async () => {
        const dataDir = createTempDir()
        try {
          const result = await runCli(['serve'], cliEnv({ ...env, GATEHOUSE_DATA_DIR: dataDir.path }))
          expect(result.exitCode).toBe(2)
          expect(result.stderr.trim().split('\n')).toEqual(['gatehouse: invalid configuration:', line])
          expect(result.stdout).toBe('')
        } finally {
          dataDir.remove()
        }
      })
  })
})
