import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { bootstrapOwner, createUserAndLogin, OWNER, setup, type TestContext } from '../setup.ts'

const REVOKED = { message: 'The session or token is invalid, expired or revoked' }

function sha256Hex(value: string): string {
  return new Bun.CryptoHasher('sha256').update(value).digest('hex')
}

describe('personal API tokens', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  async function createToken(body: { name: string; expires_in_seconds?: number } = { name: 'ci' }) {
    const created = await ctx.api(owner.token).api.v1.tokens.post(body)
    if (created.status !== 201 || !created.data) throw new Error(`create token: ${created.status}`)
    return created.data
  }

  it('creates a token shown once, starting with gth_pat_, whose prefix is its start', async () => {
    const { data, status } = await ctx.api(owner.token).api.v1.tokens.post({ name: 'ci' })
    expect(status).toBe(201)
    expect(data).toMatchObject({ name: 'ci', expires_at: null, last_used_at: null })
    expect(data!.token).toStartWith('gth_pat_')
    expect(data!.prefix.length).toBeGreaterThan('gth_pat_'.length)
    expect(data!.prefix.length).toBeLessThan(data!.token.length)
    expect(data!.token.startsWith(data!.prefix)).toBe(true)
  })

  it('authenticates GET /users/me as its user when sent as a bearer token', async () => {
    const { token } = await createToken()
    const me = await ctx.api(token).api.v1.users.me.get()
    expect(me.status).toBe(200)
    expect(me.data).toMatchObject({ id: owner.id, username: OWNER.username })
  })

  it('lists the token without its secret', async () => {
    const created = await createToken()
    const { data, status } = await ctx.api(owner.token).api.v1.tokens.get()
    expect(status).toBe(200)
    expect(data).toEqual([
      {
        id: created.id,
        name: 'ci',
        prefix: created.prefix,
        created_at: created.created_at,
        expires_at: null,
        last_used_at: null,
      },
    ])
    expect(JSON.stringify(data)).not.toContain(created.token)
    expect(JSON.stringify(data)).not.toContain(created.token.slice('gth_pat_'.length))
  })

  it('revokes a token with 204, after which it gets 401', async () => {
    const created = await createToken()
    expect((await ctx.api(created.token).api.v1.users.me.get()).status).toBe(200)
    const revoked = await ctx.api(owner.token).api.v1.tokens({ id: created.id }).delete()
    expect(revoked.status).toBe(204)
    const me = await ctx.api(created.token).api.v1.users.me.get()
    expect(me.status).toBe(401)
    expect(me.error?.value).toEqual(REVOKED)
    expect((await ctx.api(owner.token).api.v1.tokens.get()).data).toEqual([])
  })

  it("answers 404 to revoking another user's token, which keeps working", async () => {
    const created = await createToken()
    const bob = await createUserAndLogin(ctx, owner.token, 'bob')
    const attempt = await ctx.api(bob.token).api.v1.tokens({ id: created.id }).delete()
    expect(attempt.status).toBe(404)
    expect(attempt.error?.value).toEqual({ message: 'API token not found' })
    const me = await ctx.api(created.token).api.v1.users.me.get()
    expect(me.status).toBe(200)
    expect(me.data?.id).toBe(owner.id)
  })

  it('answers 404 to revoking a token that does not exist', async () => {
    const attempt = await ctx.api(owner.token).api.v1.tokens({ id: crypto.randomUUID() }).delete()
    expect(attempt.status).toBe(404)
    expect(attempt.error?.value).toEqual({ message: 'API token not found' })
  })

  it('refuses an expired token with 401', async () => {
    const created = await createToken({ name: 'short', expires_in_seconds: 60 })
    expect(Date.parse(created.expires_at!) - Date.parse(created.created_at)).toBe(60_000)
    expect((await ctx.api(created.token).api.v1.users.me.get()).status).toBe(200)
    await ctx.db
      .updateTable('api_tokens')
      .set({ expires_at: Math.floor(Date.now() / 1000) - 1 })
      .where('id', '=', created.id)
      .execute()
    const response = await ctx.app.handle(
      new Request('http://localhost/api/v1/users/me', { headers: { authorization: `Bearer ${created.token}` } }),
    )
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse", error="invalid_token"')
    expect(await response.json()).toEqual(REVOKED)
  })

  it('stores only the SHA-256 hash of the token', async () => {
    const created = await createToken()
    const rows = await ctx.db.selectFrom('api_tokens').selectAll().execute()
    expect(rows).toHaveLength(1)
    expect(rows[0].token_hash).toBe(sha256Hex(created.token))
    for (const value of Object.values(rows[0])) {
      expect(value).not.toBe(created.token)
      if (typeof value === 'string') expect(value).not.toContain(created.token.slice('gth_pat_'.length))
    }
  })

  it('rejects a lifetime shorter than a minute with 422 naming the field', async () => {
    const { error } = await ctx.api(owner.token).api.v1.tokens.post({ name: 'ci', expires_in_seconds: 30 })
    expect(error?.status).toBe(422)
    expect(error?.value).toMatchObject({ message: 'Invalid request body' })
    const fields = (error?.value as { validations?: { field: string }[] }).validations?.map((v) => v.field)
    expect(fields).toContain('expires_in_seconds')
  })
})
