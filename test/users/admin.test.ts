import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { bootstrapOwner, createUserAndLogin, login, setup, type TestContext } from '../setup.ts'

const REVOKED = { message: 'The session or token is invalid, expired or revoked' }

describe('user administration', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  /** A user without a password (no hashing), created by the owner. */
  async function createUser(username: string, role: 'admin' | 'member' = 'member') {
    const created = await ctx.api(owner.token).api.v1.users.post({ email: `${username}@example.com`, username, role })
    if (created.status !== 201 || !created.data) throw new Error(`create ${username}: ${created.status}`)
    return created.data
  }

  it('forbids members from listing users with 403', async () => {
    const alice = await createUserAndLogin(ctx, owner.token, 'alice')
    const { error } = await ctx.api(alice.token).api.v1.users.get()
    expect(error?.status).toBe(403)
    expect(error?.value).toEqual({ message: 'This action requires the admin role' })
  })

  it('lets admins list users', async () => {
    const admin = await createUserAndLogin(ctx, owner.token, 'ada', 'admin')
    await createUser('zed')
    const { data, status } = await ctx.api(admin.token).api.v1.users.get()
    expect(status).toBe(200)
    expect(data?.users.map((user) => user.username)).toEqual(['ada', 'owner', 'zed'])
    expect(data?.next_after).toBeNull()
  })

  it('lets the owner create an admin', async () => {
    const { data, status } = await ctx
      .api(owner.token)
      .api.v1.users.post({ email: 'ada@example.com', username: 'ada', role: 'admin' })
    expect(status).toBe(201)
    expect(data).toMatchObject({
      username: 'ada',
      email: 'ada@example.com',
      role: 'admin',
      status: 'active',
      login_type: 'none',
    })
  })

  it('forbids an admin from creating an admin with 403', async () => {
    const admin = await createUserAndLogin(ctx, owner.token, 'ada', 'admin')
    const { error } = await ctx
      .api(admin.token)
      .api.v1.users.post({ email: 'eve@example.com', username: 'eve', role: 'admin' })
    expect(error?.status).toBe(403)
    expect(error?.value).toEqual({ message: 'Only the owner can create admins' })
    const users = await ctx.api(owner.token).api.v1.users.get()
    expect(users.data?.users.map((user) => user.username)).not.toContain('eve')
  })

  it('lets an admin create a member', async () => {
    const admin = await createUserAndLogin(ctx, owner.token, 'ada', 'admin')
    const { data, status } = await ctx.api(admin.token).api.v1.users.post({ email: 'bob@example.com', username: 'bob' })
    expect(status).toBe(201)
    expect(data).toMatchObject({ username: 'bob', role: 'member' })
  })

  it('rejects a duplicate email with 409 naming the email', async () => {
    await createUser('alice')
    const { error } = await ctx.api(owner.token).api.v1.users.post({ email: 'ALICE@example.com', username: 'alice2' })
    expect(error?.status).toBe(409)
    expect(error?.value).toEqual({ message: 'A user with this email already exists' })
  })

  it('rejects a duplicate username in any letter case with 409 naming the username', async () => {
    await createUser('alice')
    const { error } = await ctx.api(owner.token).api.v1.users.post({ email: 'other@example.com', username: 'Alice' })
    expect(error?.status).toBe(409)
    expect(error?.value).toEqual({ message: 'A user with this username already exists' })
  })

  it('locks a suspended user out at once: their session and their API token both get 401', async () => {
    const alice = await createUserAndLogin(ctx, owner.token, 'alice')
    const apiToken = (await ctx.api(alice.token).api.v1.tokens.post({ name: 'ci' })).data!.token
    expect((await ctx.api(apiToken).api.v1.users.me.get()).status).toBe(200)

    const suspended = await ctx.api(owner.token).api.v1.users({ id: alice.id }).suspend.post()
    expect(suspended.status).toBe(200)
    expect(suspended.data).toMatchObject({ id: alice.id, status: 'suspended' })

    const viaSession = await ctx.api(alice.token).api.v1.users.me.get()
    expect(viaSession.status).toBe(401)
    expect(viaSession.error?.value).toEqual(REVOKED)
    const viaToken = await ctx.api(apiToken).api.v1.users.me.get()
    expect(viaToken.status).toBe(401)
    expect(viaToken.error?.value).toEqual(REVOKED)
  })

  it('restores API tokens on reactivation, while sessions stay ended until the user signs in again', async () => {
    const alice = await createUserAndLogin(ctx, owner.token, 'alice')
    const apiToken = (await ctx.api(alice.token).api.v1.tokens.post({ name: 'ci' })).data!.token
    await ctx.api(owner.token).api.v1.users({ id: alice.id }).suspend.post()

    const activated = await ctx.api(owner.token).api.v1.users({ id: alice.id }).activate.post()
    expect(activated.status).toBe(200)
    expect(activated.data).toMatchObject({ id: alice.id, status: 'active' })

    const viaToken = await ctx.api(apiToken).api.v1.users.me.get()
    expect(viaToken.status).toBe(200)
    expect(viaToken.data?.username).toBe('alice')
    const viaOldSession = await ctx.api(alice.token).api.v1.users.me.get()
    expect(viaOldSession.status).toBe(401)
    const freshSession = await login(ctx, 'alice', 'alice-password-1')
    expect((await ctx.api(freshSession).api.v1.users.me.get()).status).toBe(200)
  })

  it('refuses to suspend the owner with 409', async () => {
    const admin = await createUserAndLogin(ctx, owner.token, 'ada', 'admin')
    const { error } = await ctx.api(admin.token).api.v1.users({ id: owner.id }).suspend.post()
    expect(error?.status).toBe(409)
    expect(error?.value).toEqual({ message: 'The owner cannot be suspended' })
    expect((await ctx.api(owner.token).api.v1.users.me.get()).data?.status).toBe('active')
  })

  it('refuses to let the owner suspend themselves with 409', async () => {
    const { error } = await ctx.api(owner.token).api.v1.users({ id: owner.id }).suspend.post()
    expect(error?.status).toBe(409)
    expect(error?.value).toEqual({ message: 'You cannot suspend yourself' })
  })

  it('refuses to let an admin suspend themselves with 409', async () => {
    const admin = await createUserAndLogin(ctx, owner.token, 'ada', 'admin')
    const { error } = await ctx.api(admin.token).api.v1.users({ id: admin.id }).suspend.post()
    expect(error?.status).toBe(409)
    expect(error?.value).toEqual({ message: 'You cannot suspend yourself' })
    expect((await ctx.api(admin.token).api.v1.users.me.get()).status).toBe(200)
  })

  it('forbids an admin from suspending another admin with 403', async () => {
    const admin = await createUserAndLogin(ctx, owner.token, 'ada', 'admin')
    const other = await createUser('grace', 'admin')
    const { error } = await ctx.api(admin.token).api.v1.users({ id: other.id }).suspend.post()
    expect(error?.status).toBe(403)
    expect(error?.value).toEqual({ message: "Only the owner can change an admin's status" })
  })

  it('forbids an admin from reactivating an admin the owner suspended', async () => {
    const admin = await createUserAndLogin(ctx, owner.token, 'ada', 'admin')
    const other = await createUser('grace', 'admin')
    expect((await ctx.api(owner.token).api.v1.users({ id: other.id }).suspend.post()).status).toBe(200)
    const { error } = await ctx.api(admin.token).api.v1.users({ id: other.id }).activate.post()
    expect(error?.status).toBe(403)
    const fetched = await ctx.api(owner.token).api.v1.users({ id: other.id }).get()
    expect(fetched.data?.status).toBe('suspended')
  })

  it('hides another user from a member with 404, the same as a user that does not exist', async () => {
    const alice = await createUserAndLogin(ctx, owner.token, 'alice')
    const bob = await createUser('bob')
    const other = await ctx.api(alice.token).api.v1.users({ id: bob.id }).get()
    const missing = await ctx.api(alice.token).api.v1.users({ id: crypto.randomUUID() }).get()
    expect(other.status).toBe(404)
    expect(other.error?.value).toEqual({ message: 'User not found' })
    expect(missing.status).toBe(404)
    expect(missing.error?.value).toEqual(other.error?.value)
  })

  it('lets a member read their own user', async () => {
    const alice = await createUserAndLogin(ctx, owner.token, 'alice')
    const { data, status } = await ctx.api(alice.token).api.v1.users({ id: alice.id }).get()
    expect(status).toBe(200)
    expect(data).toMatchObject({ id: alice.id, username: 'alice', role: 'member' })
  })

  it('rejects an invalid body with 422 and validations naming the field', async () => {
    const { error } = await ctx.api(owner.token).api.v1.users.post({ email: 'not-an-email', username: 'valid-name' })
    expect(error?.status).toBe(422)
    expect(error?.value).toMatchObject({ message: 'Invalid request body' })
    const validations = (error?.value as { validations?: { field: string; detail: string }[] }).validations ?? []
    expect(validations.map((validation) => validation.field)).toEqual(['email'])
    expect(validations[0].detail).toBeTruthy()
  })
})

describe('a demotion takes effect at once, everywhere', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  let alice: { id: string; token: string }
  let defaultOrgId: string
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
    alice = await createUserAndLogin(ctx, owner.token, 'alice', 'admin')
    const orgs = await ctx.api(owner.token).api.v1.organizations.get()
    defaultOrgId = orgs.data!.find((org) => org.is_default)!.id
  })
  afterEach(async () => {
    await ctx.close()
  })

  const apps = (token: string) => ctx.api(token).api.v1.organizations({ id: defaultOrgId })['oauth-apps'].get()

  it('takes the default organization’s admin rights from a demoted admin', async () => {
    expect((await apps(alice.token)).status).toBe(200)
    const demoted = await ctx.api(owner.token).api.v1.users({ id: alice.id }).role.put({ role: 'member' })
    expect(demoted.status).toBe(200)
    const { error } = await apps(alice.token)
    expect(error?.status).toBe(403)
    expect(error?.value).toEqual({ message: 'Managing this organization requires its admin role' })
  })

  it('shows the demoted admin as a member of the default organization', async () => {
    await ctx.api(owner.token).api.v1.users({ id: alice.id }).role.put({ role: 'member' })
    const members = await ctx.api(owner.token).api.v1.organizations({ id: defaultOrgId }).members.get()
    expect(members.data!.find((member) => member.user_id === alice.id)?.role).toBe('member')
  })

  it('gives a promoted member the default organization’s admin rights', async () => {
    const bob = await createUserAndLogin(ctx, owner.token, 'bob')
    expect((await apps(bob.token)).status).toBe(403)
    await ctx.api(owner.token).api.v1.users({ id: bob.id }).role.put({ role: 'admin' })
    expect((await apps(bob.token)).status).toBe(200)
  })
})
