import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { bootstrapOwner, OWNER, setup, type TestContext } from '../setup.ts'

describe('first-user bootstrap', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup()
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('creates the first user as the owner, a member of the default organization', async () => {
    const { data, status } = await ctx.api().api.v1.users.first.post(OWNER)
    expect(status).toBe(201)
    expect(data).toMatchObject({ username: 'owner', email: 'owner@example.com', role: 'owner', status: 'active' })
    const { token } = {
      token: (await ctx.api().api.v1.auth.login.post({ login: OWNER.email, password: OWNER.password })).data!
        .session_token,
    }
    const me = await ctx.api(token).api.v1.users.me.get()
    expect(me.data?.organization_ids).toHaveLength(1)
  })

  it('answers 409 once a user exists', async () => {
    await bootstrapOwner(ctx)
    const { error } = await ctx
      .api()
      .api.v1.users.first.post({ ...OWNER, email: 'other@example.com', username: 'other' })
    expect(error?.status).toBe(409)
    expect(error?.value).toMatchObject({ message: 'The first user already exists' })
  })

  it('lets exactly one of two simultaneous bootstraps win', async () => {
    const results = await Promise.all(
      ['a', 'b'].map((name) =>
        ctx.api().api.v1.users.first.post({ email: `${name}@example.com`, username: name, password: 'password-123' }),
      ),
    )
    expect(results.map((r) => r.status).sort()).toEqual([201, 409])
  })
})
