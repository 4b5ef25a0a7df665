import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { bootstrapOwner, setup, type TestContext } from '../setup.ts'
import { authorizeUrl, createPkce, registerClient, REDIRECT_URI } from './helpers.ts'

/** Behind a proxy that serves Gatehouse under https://example.com/gh and strips the prefix. */
describe('a public URL with a path', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup({ publicUrl: 'https://example.com/gh' })
  })
  afterEach(async () => {
    await ctx.close()
  })

  function authorizeParams(clientId: string) {
    return {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      code_challenge: createPkce().challenge,
      code_challenge_method: 'S256',
      state: 's',
    }
  }

  it('sends an unsigned-in user to the sign-in page under the prefix, returning under it too', async () => {
    const client = await registerClient(ctx)
    const response = await ctx.app.handle(new Request(authorizeUrl(authorizeParams(client.client_id))))
    expect(response.status).toBe(302)
    const location = new URL(response.headers.get('location')!, 'https://example.com')
    expect(location.pathname).toBe('/gh/login')
    expect(location.searchParams.get('next')).toStartWith('/gh/oauth2/authorize?')
  })

  it('posts the sign-in and consent forms to paths under the prefix', async () => {
    const login = await (await ctx.app.handle(new Request('http://localhost/login'))).text()
    expect(login).toContain('action="/gh/login"')

    const owner = await bootstrapOwner(ctx)
    const client = await registerClient(ctx)
    const consent = await ctx.app.handle(
      new Request(authorizeUrl(authorizeParams(client.client_id)), {
        headers: { authorization: `Bearer ${owner.token}` },
      }),
    )
    expect(consent.status).toBe(200)
    expect(await consent.text()).toContain('action="/gh/oauth2/authorize"')
  })
})
