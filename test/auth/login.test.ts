import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { cookieNamesFor } from '../../src/auth/cookies.ts'
import { testConfig } from '../../src/config.ts'
import { nowSeconds } from '../../src/db/index.ts'
import { sweepExpired } from '../../src/ops/maintenance.ts'
import { bootstrapOwner, OWNER, setup, type TestContext } from '../setup.ts'

const WRONG = 'not-the-password'
/** The cookie names of a Gatehouse at the tests' default (http) public URL. */
const NAMES = cookieNamesFor(testConfig().publicUrl)
const BAD_CREDENTIALS = { message: 'Incorrect email/username or password' }
const THROTTLED = { message: 'Too many failed login attempts; try again later' }

function loginRequest(ctx: TestContext, login: string, password: string): Promise<Response> {
  return ctx.app.handle(
    new Request('http://localhost/api/v1/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login, password }),
    }),
  )
}

/** The Set-Cookie line for `name`, as its value plus attributes keyed by lower-case name. */
function setCookie(response: Response, name: string) {
  const line = response.headers.getSetCookie().find((cookie) => cookie.startsWith(`${name}=`))
  if (!line) throw new Error(`no Set-Cookie for ${name} in ${JSON.stringify(response.headers.getSetCookie())}`)
  const [pair, ...rest] = line.split(';').map((part) => part.trim())
  const attributes = new Map(
    rest.map((attribute) => {
      const [key, ...value] = attribute.split('=')
      return [key.toLowerCase(), value.join('=')] as const
    }),
  )
  return { value: pair.slice(name.length + 1), attributes }
}

async function statusesOf(responses: Promise<Response>[]): Promise<number[]> {
  return (await Promise.all(responses)).map((response) => response.status)
}

describe('password login', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup({ loginMaxFailures: 3, loginWindowSeconds: 60 })
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('signs in by username and returns a session token that works', async () => {
    const response = await loginRequest(ctx, OWNER.username, OWNER.password)
    expect(response.status).toBe(200)
    const body = await response.json()
    expect(body.session_token).toStartWith('gth_ses_')
    expect(body.csrf_token).toMatch(/^[0-9a-f]{64}$/)
    expect(body.user).toMatchObject({ id: owner.id, username: 'owner', role: 'owner' })
    const me = await ctx.api(body.session_token).api.v1.users.me.get()
    expect(me.status).toBe(200)
    expect(me.data).toMatchObject({ id: owner.id, username: 'owner' })
  })

  it('signs in by email and returns a session token that works', async () => {
    const response = await loginRequest(ctx, OWNER.email, OWNER.password)
    expect(response.status).toBe(200)
    const body = await response.json()
    expect(body.user).toMatchObject({ email: OWNER.email })
    const me = await ctx.api(body.session_token).api.v1.users.me.get()
    expect(me.status).toBe(200)
    expect(me.data?.email).toBe(OWNER.email)
  })

  it('refuses a wrong password with 401 and a message that does not say which part was wrong', async () => {
    const response = await loginRequest(ctx, OWNER.username, WRONG)
    expect(response.status).toBe(401)
    expect(await response.json()).toEqual(BAD_CREDENTIALS)
    expect(response.headers.getSetCookie()).toEqual([])
  })

  it('answers an unknown user exactly as a wrong password, so accounts cannot be enumerated', async () => {
    const unknown = await loginRequest(ctx, 'nobody@example.com', WRONG)
    const wrong = await loginRequest(ctx, OWNER.email, WRONG)
    expect(unknown.status).toBe(401)
    expect(await unknown.json()).toEqual(BAD_CREDENTIALS)
    expect(wrong.status).toBe(401)
    expect(await wrong.json()).toEqual(BAD_CREDENTIALS)
  })

  it('throttles an account after the configured number of failures with 429 and retry-after', async () => {
    for (let attempt = 1; attempt <= 3; attempt++)
      expect((await loginRequest(ctx, OWNER.username, WRONG)).status).toBe(401)
    const throttled = await loginRequest(ctx, OWNER.username, WRONG)
    expect(throttled.status).toBe(429)
    expect(await throttled.json()).toEqual(THROTTLED)
    const retryAfter = Number(throttled.headers.get('retry-after'))
    expect(Number.isInteger(retryAfter)).toBe(true)
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(60)
  })

  it('refuses even the correct password while the account is throttled', async () => {
    for (let attempt = 1; attempt <= 3; attempt++) await loginRequest(ctx, OWNER.username, WRONG)
    const response = await loginRequest(ctx, OWNER.username, OWNER.password)
    expect(response.status).toBe(429)
    expect(await response.json()).toEqual(THROTTLED)
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(response.headers.getSetCookie()).toEqual([])
  })

  it('counts failures by username and by email against the same account', async () => {
    await loginRequest(ctx, OWNER.username, WRONG)
    await loginRequest(ctx, OWNER.username, WRONG)
    expect((await loginRequest(ctx, OWNER.email, WRONG)).status).toBe(401)
    const response = await loginRequest(ctx, OWNER.username, WRONG)
    expect(response.status).toBe(429)
    expect(await response.json()).toEqual(THROTTLED)
  })

  it('refuses more guesses than the limit even when they arrive at the same time', async () => {
    const statuses = await statusesOf(Array.from({ length: 8 }, () => loginRequest(ctx, OWNER.username, WRONG)))
    expect(statuses.filter((status) => status === 401).length).toBeLessThanOrEqual(3)
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThanOrEqual(5)
  })

  it("does not throttle another account for one account's failures", async () => {
    const bobPassword = 'bob-password-1'
    const created = await ctx
      .api(owner.token)
      .api.v1.users.post({ email: 'bob@example.com', username: 'bob', password: bobPassword })
    expect(created.status).toBe(201)
    for (let attempt = 1; attempt <= 3; attempt++) await loginRequest(ctx, OWNER.username, WRONG)
    expect((await loginRequest(ctx, OWNER.username, OWNER.password)).status).toBe(429)
    const bob = await loginRequest(ctx, 'bob', bobPassword)
    expect(bob.status).toBe(200)
    expect((await bob.json()).user.username).toBe('bob')
  })

  it('throttles every account from a client address after four times the limit of failures', async () => {
    // Three failures each for four accounts: no account is over its limit, the address is.
    const statuses: number[] = []
    for (const login of ['ghost1', 'ghost2', 'ghost3', 'ghost4'])
      for (let attempt = 1; attempt <= 3; attempt++) statuses.push((await loginRequest(ctx, login, WRONG)).status)
    expect(statuses).toEqual(Array(12).fill(401))
    const response = await loginRequest(ctx, OWNER.username, OWNER.password)
    expect(response.status).toBe(429)
    expect(await response.json()).toEqual(THROTTLED)
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/)
  })

  it('records no account for made-up names once the address is throttled', async () => {
    for (let attempt = 1; attempt <= 12; attempt++) await loginRequest(ctx, `spray${attempt}`, WRONG)
    const rows = async () =>
      Number(
        (
          await ctx.db
            .selectFrom('login_failures')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      )
    const before = await rows()
    for (let attempt = 1; attempt <= 20; attempt++)
      expect((await loginRequest(ctx, `more${attempt}`, WRONG)).status).toBe(429)
    expect(await rows()).toBe(before)
  })

  it('forgets failure counts whose window has ended when the expiry sweep runs', async () => {
    for (const login of ['old1', 'old2', 'old3']) await loginRequest(ctx, login, WRONG)
    await ctx.db
      .updateTable('login_failures')
      .set({ window_started_at: nowSeconds() - 61 })
      .execute()
    await loginRequest(ctx, 'fresh', WRONG)
    await sweepExpired(ctx.deps)
    const keys = (await ctx.db.selectFrom('login_failures').select('key').execute()).map((row) => row.key).sort()
    expect(keys).toEqual(['ip:unknown', 'login:fresh'])
  })

  it("clears the account's failure count on a successful login", async () => {
    await loginRequest(ctx, OWNER.username, WRONG)
    await loginRequest(ctx, OWNER.username, WRONG)
    expect((await loginRequest(ctx, OWNER.username, OWNER.password)).status).toBe(200)
    expect((await loginRequest(ctx, OWNER.username, WRONG)).status).toBe(401)
    expect((await loginRequest(ctx, OWNER.username, WRONG)).status).toBe(401)
    const response = await loginRequest(ctx, OWNER.username, OWNER.password)
    expect(response.status).toBe(200)
  })

  it("refuses a suspended user's correct password with 403", async () => {
    const password = 'carol-password-1'
    const created = await ctx
      .api(owner.token)
      .api.v1.users.post({ email: 'carol@example.com', username: 'carol', password })
    expect(created.status).toBe(201)
    const suspended = await ctx.api(owner.token).api.v1.users({ id: created.data!.id }).suspend.post()
    expect(suspended.status).toBe(200)
    const response = await loginRequest(ctx, 'carol', password)
    expect(response.status).toBe(403)
    expect(await response.json()).toEqual({ message: 'This account is suspended' })
    expect(response.headers.getSetCookie()).toEqual([])
  })

  it('ends the session on logout, after which its token gets 401', async () => {
    const logout = await ctx.api(owner.token).api.v1.auth.logout.post()
    expect(logout.status).toBe(204)
    const me = await ctx.api(owner.token).api.v1.users.me.get()
    expect(me.status).toBe(401)
    expect(me.error?.value).toEqual({ message: 'The session or token is invalid, expired or revoked' })
  })

  it('clears the session cookie on logout', async () => {
    const login = await (await loginRequest(ctx, OWNER.username, OWNER.password)).json()
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/auth/logout', {
        method: 'POST',
        headers: {
          cookie: `${NAMES.session}=${login.session_token}`,
          'x-csrf-token': login.csrf_token,
        },
      }),
    )
    expect(response.status).toBe(204)
    for (const name of [NAMES.session]) {
      const cookie = setCookie(response, name)
      expect(cookie.value).toBe('')
      expect(cookie.attributes.get('path')).toBe('/')
      const expired =
        cookie.attributes.get('max-age') === '0' || Date.parse(cookie.attributes.get('expires') ?? '') <= Date.now()
      expect(expired).toBe(true)
    }
    expect((await ctx.api(login.session_token).api.v1.users.me.get()).status).toBe(401)
  })

  it('sets an HttpOnly, SameSite=Lax session cookie without Secure when the public URL is http', async () => {
    const response = await loginRequest(ctx, OWNER.username, OWNER.password)
    const body = await response.json()
    const session = setCookie(response, NAMES.session)
    expect(session.value).toBe(body.session_token)
    expect(session.attributes.has('httponly')).toBe(true)
    expect(session.attributes.get('samesite')).toBe('Lax')
    expect(session.attributes.get('path')).toBe('/')
    expect(session.attributes.has('secure')).toBe(false)
  })

  it('sets no CSRF cookie: the token is in the answer, and no script could read an HttpOnly cookie', async () => {
    const response = await loginRequest(ctx, OWNER.username, OWNER.password)
    expect((await response.json()).csrf_token).toMatch(/^[0-9a-f]{64}$/)
    expect(response.headers.getSetCookie().map((line) => line.split('=')[0])).toEqual([NAMES.session])
  })

  it("gives the session cookie the session's expiry", async () => {
    const response = await loginRequest(ctx, OWNER.username, OWNER.password)
    const body = await response.json()
    const expires = Date.parse(setCookie(response, NAMES.session).attributes.get('expires') ?? '')
    expect(expires).toBe(Date.parse(body.expires_at))
    const sevenDays = 7 * 86400 * 1000
    expect(Math.abs(expires - (Date.now() + sevenDays))).toBeLessThan(60_000)
  })
})

describe('session cookies behind an https public URL', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup({ publicUrl: 'https://gatehouse.example.com' })
    await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('names the session cookie __Host-, Secure, for path / and no domain', async () => {
    const response = await loginRequest(ctx, OWNER.username, OWNER.password)
    expect(response.status).toBe(200)
    const body = await response.json()
    const session = setCookie(response, '__Host-gatehouse_session')
    expect(session.value).toBe(body.session_token)
    expect(session.attributes.has('secure')).toBe(true)
    expect(session.attributes.has('httponly')).toBe(true)
    expect(session.attributes.get('samesite')).toBe('Lax')
    expect(session.attributes.get('path')).toBe('/')
    expect(session.attributes.has('domain')).toBe(false)
    expect(response.headers.getSetCookie().some((line) => line.startsWith('gatehouse_session'))).toBe(false)
  })

  it('accepts the __Host- session cookie, and not the unprefixed one, as a credential', async () => {
    const { session_token } = await (await loginRequest(ctx, OWNER.username, OWNER.password)).json()
    const me = (cookie: string) =>
      ctx.app.handle(new Request('https://gatehouse.example.com/api/v1/users/me', { headers: { cookie } }))
    expect((await me(`__Host-gatehouse_session=${session_token}`)).status).toBe(200)
    expect((await me(`gatehouse_session=${session_token}`)).status).toBe(401)
  })

  it('scopes the sign-in form cookie to the login path under a __Secure- name', async () => {
    const page = await ctx.app.handle(new Request('https://gatehouse.example.com/login'))
    const form = setCookie(page, '__Secure-gatehouse_login_csrf')
    expect(form.attributes.has('secure')).toBe(true)
    expect(form.attributes.get('path')).toBe('/login')
  })
})

describe('login CSRF', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup()
    await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  const credentials = { login: OWNER.username, password: OWNER.password }

  it('refuses a form-encoded sign-in with 415 and sets no cookie', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
        body: new URLSearchParams(credentials).toString(),
      }),
    )
    expect(response.status).toBe(415)
    expect(await response.json()).toEqual({
      message: 'The sign-in body must be JSON',
      detail: 'Send Content-Type: application/json',
    })
    expect(response.headers.getSetCookie()).toEqual([])
  })

  it('refuses a multipart or text/plain sign-in with 415', async () => {
    for (const body of [new FormData(), 'x']) {
      if (body instanceof FormData) for (const [k, v] of Object.entries(credentials)) body.set(k, v)
      const response = await ctx.app.handle(
        new Request('http://localhost/api/v1/auth/login', {
          method: 'POST',
          headers: typeof body === 'string' ? { 'content-type': 'text/plain' } : {},
          body,
        }),
      )
      expect(response.status).toBe(415)
    }
  })

  it('refuses a JSON sign-in from another origin with 403 and sets no cookie', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
        body: JSON.stringify(credentials),
      }),
    )
    expect(response.status).toBe(403)
    expect((await response.json()).message).toBe('Cross-site sign-in refused')
    expect(response.headers.getSetCookie()).toEqual([])
  })

  it('refuses a sign-in a browser marks as coming from another site, whatever Origin says', async () => {
    for (const site of ['cross-site', 'same-site']) {
      const response = await ctx.app.handle(
        new Request('http://localhost/api/v1/auth/login', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'sec-fetch-site': site, origin: 'http://localhost' },
          body: JSON.stringify(credentials),
        }),
      )
      expect(response.status).toBe(403)
    }
  })

  it('accepts a same-origin form post that a no-referrer page sends with Origin: null', async () => {
    const page = await ctx.app.handle(new Request('http://localhost/login'))
    const csrf = setCookie(page, NAMES.loginCsrf).value
    const response = await ctx.app.handle(
      new Request('http://localhost/login', {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          cookie: `${NAMES.loginCsrf}=${csrf}`,
          origin: 'null',
          'sec-fetch-site': 'same-origin',
        },
        body: new URLSearchParams({ ...credentials, csrf_token: csrf }).toString(),
      }),
    )
    expect(response.status).toBe(303)
    expect(response.headers.getSetCookie().some((line) => line.startsWith(`${NAMES.session}=`))).toBe(true)
  })

  it('accepts a JSON sign-in from its own origin', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: 'http://localhost:3000' },
        body: JSON.stringify(credentials),
      }),
    )
    expect(response.status).toBe(200)
  })

  it('refuses the sign-in page form posted from another origin, setting no session', async () => {
    const page = await ctx.app.handle(new Request('http://localhost/login'))
    const csrf = setCookie(page, NAMES.loginCsrf).value
    const response = await ctx.app.handle(
      new Request('http://localhost/login', {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          cookie: `${NAMES.loginCsrf}=${csrf}`,
          origin: 'https://evil.example',
        },
        body: new URLSearchParams({ ...credentials, csrf_token: csrf }).toString(),
      }),
    )
    expect(response.status).toBe(403)
    expect(response.headers.getSetCookie().some((line) => line.startsWith(`${NAMES.session}=`))).toBe(false)
  })
})
