import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { obtainTokens } from '../oauth/helpers.ts'
import { API_RESOURCE } from '../oauth/support-flow.ts'
import { bootstrapOwner, createUserAndLogin, setup, type TestContext } from '../setup.ts'

const REFUSAL = {
  message: 'An OAuth access token cannot create credentials or grant rights',
  detail: 'Use a session or an API token: what this creates would outlive the OAuth grant the token belongs to',
}

describe('OAuth access tokens cannot mint what outlives their grant', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  let oauthToken: string
  let defaultOrgId: string
  let appId: string
  let member: { id: string; token: string }

  beforeAll(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
    member = await createUserAndLogin(ctx, owner.token, 'mallory')
    oauthToken = (await obtainTokens(ctx, owner.token, { scope: 'api', resource: API_RESOURCE })).tokens.access_token
    const orgs = await ctx.api(owner.token).api.v1.organizations.get()
    defaultOrgId = orgs.data!.find((org) => org.is_default)!.id
    const app = await ctx
      .api(owner.token)
      .api.v1.organizations({ id: defaultOrgId })
      ['oauth-apps'].post({ name: 'Internal', redirect_uris: ['https://app.example/callback'] })
    appId = app.data!.id
  })
  afterAll(() => ctx.close())

  /** The same request with the owner's OAuth token and with the owner's session. */
  async function both(method: string, path: string, body: unknown) {
    const send = (token: string) =>
      ctx.app.handle(
        new Request(`http://localhost${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        }),
      )
    return { oauth: await send(oauthToken), session: await send(owner.token) }
  }

  it('still lets the token read the API on the owner’s behalf', async () => {
    expect((await ctx.api(oauthToken).api.v1.users.me.get()).status).toBe(200)
  })

  const cases: [string, string, () => string, unknown][] = [
    ['an API token', 'POST', () => '/api/v1/tokens', { name: 'forever' }],
    [
      'a user',
      'POST',
      () => '/api/v1/users',
      { email: 'eve@example.com', username: 'eve', password: 'eve-password-1', role: 'admin' },
    ],
    ['a site role', 'PUT', () => `/api/v1/users/${member.id}/role`, { role: 'admin' }],
    [
      'an organization role',
      'PUT',
      () => `/api/v1/organizations/${defaultOrgId}/members/${member.id}`,
      { role: 'admin' },
    ],
    ['a client secret', 'POST', () => `/api/v1/organizations/${defaultOrgId}/oauth-apps/${appId}/secrets`, {}],
  ]
  for (const [what, method, path, body] of cases)
    it(`refuses to create ${what} with 403 naming why, where a session may`, async () => {
      const { oauth, session } = await both(method, path(), body)
      expect(oauth.status).toBe(403)
      expect(await oauth.json()).toEqual(REFUSAL)
      expect(session.status).toBeLessThan(300)
    })

  it('leaves no API token behind for a refused request: only the session made one', async () => {
    const tokens = await ctx.api(owner.token).api.v1.tokens.get()
    expect(tokens.data!.filter((token) => token.name === 'forever')).toHaveLength(1)
  })
})
