import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { cookieNamesFor } from '../../src/auth/cookies.ts'
import { safeReturnTo } from '../../src/http/return-to.ts'
import { OFF_SITE_PATHS } from '../fixtures/http.ts'
import { bootstrapOwner, OWNER, setup, type TestContext } from '../setup.ts'

const PUBLIC = 'https://gatehouse.example'
const FALLBACK = '/login'

/** Each of these leads a browser off-site (or nowhere safe) when used as a Location. */
const HOSTILE = [
  '/\t/evil.example',
  '/\n/evil.example',
  '/\r\n/evil.example',
  '/\\evil.example',
  '\\\\evil.example',
  '//evil.example',
  '/\\/evil.example',
  '%2F%2Fevil.example',
  'https://evil.example/',
  'https:evil.example',
  'javascript:alert(1)',
  ' //evil.example',
  'evil.example',
  ...OFF_SITE_PATHS,
]

describe('safeReturnTo', () => {
  for (const value of HOSTILE)
    it(`refuses ${JSON.stringify(value)}`, () => {
      expect(safeReturnTo(value, PUBLIC, FALLBACK)).toBe(FALLBACK)
    })

  it('keeps a local path with its query and fragment', () => {
    expect(safeReturnTo('/oauth2/authorize?client_id=a&state=b#x', PUBLIC, FALLBACK)).toBe(
      '/oauth2/authorize?client_id=a&state=b#x',
    )
  })

  it('keeps a path under the base path of a public URL that has one', () => {
    expect(safeReturnTo('/gh/connections', `${PUBLIC}/gh`, FALLBACK)).toBe('/gh/connections')
  })

  it('normalises dot segments instead of passing them on', () => {
    expect(safeReturnTo('/a/../connections', PUBLIC, FALLBACK)).toBe('/connections')
    expect(safeReturnTo('/%2e/connections', PUBLIC, FALLBACK)).toBe('/connections')
  })

  it('keeps an empty segment that does not start the path', () => {
    expect(safeReturnTo('/connections//x', PUBLIC, FALLBACK)).toBe('/connections//x')
  })

  for (const value of ['/gh/..//evil.example', '/gh/.././/evil.example', '/gh/../\\evil.example'])
    it(`refuses ${JSON.stringify(value)} under a public URL with a base path`, () => {
      expect(safeReturnTo(value, `${PUBLIC}/gh`, FALLBACK)).toBe(FALLBACK)
    })

  it('never returns a path a browser reads as another host, whatever it is given', () => {
    const pieces = ['/', '\\', '.', '..', '%2e', '%2f', '%5c', '\t', 'evil.example']
    const leaks: string[] = []
    for (const a of pieces)
      for (const b of pieces)
        for (const c of pieces) {
          const result = safeReturnTo(`/${a}${b}${c}`, PUBLIC, FALLBACK)
          const resolved = new URL(result, `${PUBLIC}/`)
          if (/^[/\\]{2}/.test(result) || resolved.origin !== PUBLIC) leaks.push(`/${a}${b}${c} → ${result}`)
        }
    expect(leaks).toEqual([])
  })

  it('refuses what is not a string', () => {
    expect(safeReturnTo(['/x'], PUBLIC, FALLBACK)).toBe(FALLBACK)
    expect(safeReturnTo(undefined, PUBLIC, FALLBACK)).toBe(FALLBACK)
  })
})

describe('the sign-in page never redirects off-site', () => {
  let ctx: TestContext
  let session: string
  beforeAll(async () => {
    ctx = await setup()
    session = (await bootstrapOwner(ctx)).token
  })
  afterAll(() => ctx.close())

  for (const value of HOSTILE)
    it(`sends a signed-in user given next=${JSON.stringify(value)} nowhere but this server`, async () => {
      const response = await ctx.app.handle(
        new Request(`http://localhost/login?next=${encodeURIComponent(value)}`, {
          headers: { cookie: `${cookieNamesFor(ctx.config.publicUrl).session}=${session}` },
        }),
      )
      const location = response.headers.get('location')
      // Either the signed-in page itself (200) or a redirect that stays on this origin.
      if (location !== null) expect(new URL(location, 'http://localhost/').origin).toBe('http://localhost')
      else expect(response.status).toBe(200)
    })

  it('redirects after a form sign-in only to a local path, even when next was tampered with', async () => {
    const page = await ctx.app.handle(new Request('http://localhost/login'))
    const csrfCookie = page.headers
      .getSetCookie()
      .find((line) => line.startsWith(`${cookieNamesFor(ctx.config.publicUrl).loginCsrf}=`))!
    const csrf = csrfCookie.split(';')[0].split('=')[1]
    const response = await ctx.app.handle(
      new Request('http://localhost/login', {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          cookie: `${cookieNamesFor(ctx.config.publicUrl).loginCsrf}=${csrf}`,
          origin: 'http://localhost',
        },
        body: new URLSearchParams({
          login: OWNER.username,
          password: OWNER.password,
          csrf_token: csrf,
          next: '/\t/evil.example',
        }).toString(),
      }),
    )
    expect(response.status).toBe(303)
    expect(response.headers.get('location')).toBe('/login')
  })
})
