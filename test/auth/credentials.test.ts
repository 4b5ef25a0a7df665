import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { cookieNamesFor } from '../../src/auth/cookies.ts'
import { testConfig } from '../../src/config.ts'
import { OWNER, setup, type TestContext } from '../setup.ts'

interface Session {
  session_token: string
  csrf_token: string
}

/** The session cookie of a Gatehouse at the tests' default public URL. */
const SESSION_COOKIE = cookieNamesFor(testConfig().publicUrl).session

function cookieOf(session: Session): string {
  return `${SESSION_COOKIE}=${session.session_token}`
}

function createTokenRequest(headers: Record<string, string>): Request {
  return new Request('http://localhost/api/v1/tokens', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ name: 'laptop' }),
  })
}

describe('session credentials', () => {
  let ctx: TestContext
  let session: Session
  beforeEach(async () => {
    ctx = await setup()
    const first = await ctx.api().api.v1.users.first.post(OWNER)
    if (first.status !== 201) throw new Error(`first user: ${first.status}`)
    const login = await ctx.api().api.v1.auth.login.post({ login: OWNER.username, password: OWNER.password })
    if (!login.data) throw new Error(`login: ${login.status}`)
    session = login.data
  })
  afterEach(async () => {
    await ctx.close()
  })

  async function apiTokenCount(): Promise<number> {
    return (await ctx.db.selectFrom('api_tokens').select('id').execute()).length
  }

  it('accepts the session cookie on GET /users/me', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/users/me', { headers: { cookie: cookieOf(session) } }),
    )
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ username: OWNER.username, email: OWNER.email, role: 'owner' })
  })

  it('accepts the session token as a bearer token on GET /users/me', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/users/me', {
        headers: { authorization: `Bearer ${session.session_token}` },
      }),
    )
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ username: OWNER.username, email: OWNER.email, role: 'owner' })
  })

  it('answers a request without credentials with 401 and a Bearer challenge', async () => {
    const response = await ctx.app.handle(new Request('http://localhost/api/v1/users/me'))
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"')
    expect(await response.json()).toEqual({ message: 'Authentication required' })
  })

  it('answers a garbage bearer token with 401 and error="invalid_token"', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/users/me', {
        headers: { authorization: 'Bearer gth_ses_notarealsessiontoken' },
      }),
    )
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse", error="invalid_token"')
    expect(await response.json()).toEqual({ message: 'The session or token is invalid, expired or revoked' })
  })

  it('answers a garbage session cookie with 401 and error="invalid_token"', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/users/me', { headers: { cookie: `${SESSION_COOKIE}=not-a-token` } }),
    )
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse", error="invalid_token"')
    expect(await response.json()).toEqual({ message: 'The session or token is invalid, expired or revoked' })
  })

  it('refuses a cookie-authenticated POST without the CSRF header with 403 naming the header', async () => {
    const response = await ctx.app.handle(createTokenRequest({ cookie: cookieOf(session) }))
    expect(response.status).toBe(403)
    const body = await response.json()
    expect(body.message).toBe('Missing or invalid CSRF token')
    expect(body.detail).toContain('x-csrf-token')
    expect(await apiTokenCount()).toBe(0)
  })

  it('refuses a cookie-authenticated POST whose CSRF header is wrong', async () => {
    const response = await ctx.app.handle(
      createTokenRequest({ cookie: cookieOf(session), 'x-csrf-token': 'a'.repeat(64) }),
    )
    expect(response.status).toBe(403)
    expect((await response.json()).message).toBe('Missing or invalid CSRF token')
    expect(await apiTokenCount()).toBe(0)
  })

  it('accepts a cookie-authenticated POST carrying the CSRF token from login', async () => {
    const response = await ctx.app.handle(
      createTokenRequest({ cookie: cookieOf(session), 'x-csrf-token': session.csrf_token }),
    )
    expect(response.status).toBe(201)
    expect(await response.json()).toMatchObject({ name: 'laptop' })
    expect(await apiTokenCount()).toBe(1)
  })

  it('needs no CSRF token for a bearer-authenticated POST', async () => {
    const response = await ctx.app.handle(createTokenRequest({ authorization: `Bearer ${session.session_token}` }))
    expect(response.status).toBe(201)
    expect(await response.json()).toMatchObject({ name: 'laptop' })
    expect(await apiTokenCount()).toBe(1)
  })

  it('hands the CSRF token of the session cookie out again on GET /auth/csrf', async () => {
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/auth/csrf', { headers: { cookie: cookieOf(session) } }),
    )
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ csrf_token: session.csrf_token })
  })
})
