import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { bootstrapOwner, createUserAndLogin, setup, type TestContext } from '../setup.ts'

const NOT_FOUND = { message: 'Organization not found' }

describe('organizations', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  async function createOrg(name: string) {
    const created = await ctx.api(owner.token).api.v1.organizations.post({ name })
    if (created.status !== 201 || !created.data) throw new Error(`create ${name}: ${created.status}`)
    return created.data
  }

  async function addMember(organizationId: string, userId: string, role: 'admin' | 'member' = 'member') {
    const added = await ctx
      .api(owner.token)
      .api.v1.organizations({ id: organizationId })
      .members({ userId })
      .put({ role })
    if (added.status !== 200) throw new Error(`add member: ${added.status}`)
  }

  /** A user without a password (no hashing), created by the owner. */
  async function createUser(username: string) {
    const created = await ctx.api(owner.token).api.v1.users.post({ email: `${username}@example.com`, username })
    if (created.status !== 201 || !created.data) throw new Error(`create ${username}: ${created.status}`)
    return created.data
  }

  it('has a default organization right after setup, which the owner belongs to', async () => {
    const { data, status } = await ctx.api(owner.token).api.v1.organizations.get()
    expect(status).toBe(200)
    expect(data).toHaveLength(1)
    expect(data![0]).toMatchObject({ name: 'default', display_name: 'Default organization', is_default: true })
    const me = await ctx.api(owner.token).api.v1.users.me.get()
    expect(me.data?.organization_ids).toEqual([data![0].id])
  })

  it('lets the owner create an organization', async () => {
    const { data, status } = await ctx
      .api(owner.token)
      .api.v1.organizations.post({ name: 'acme', display_name: 'Acme Inc.' })
    expect(status).toBe(201)
    expect(data).toMatchObject({ name: 'acme', display_name: 'Acme Inc.', is_default: false })
    const fetched = await ctx.api(owner.token).api.v1.organizations({ id: data!.id }).get()
    expect(fetched.status).toBe(200)
    expect(fetched.data).toEqual(data!)
  })

  it('lets the owner rename an organization', async () => {
    const acme = await createOrg('acme')
    const { data, status } = await ctx
      .api(owner.token)
      .api.v1.organizations({ id: acme.id })
      .patch({ name: 'acme-labs' })
    expect(status).toBe(200)
    expect(data).toMatchObject({ id: acme.id, name: 'acme-labs' })
    const names = (await ctx.api(owner.token).api.v1.organizations.get()).data?.map((org) => org.name)
    expect(names).toEqual(['acme-labs', 'default'])
  })

  it('lets the owner delete an organization', async () => {
    const acme = await createOrg('acme')
    const deleted = await ctx.api(owner.token).api.v1.organizations({ id: acme.id }).delete()
    expect(deleted.status).toBe(204)
    const fetched = await ctx.api(owner.token).api.v1.organizations({ id: acme.id }).get()
    expect(fetched.status).toBe(404)
    expect(fetched.error?.value).toEqual(NOT_FOUND)
  })

  it('rejects a duplicate name with 409', async () => {
    await createOrg('acme')
    const { error } = await ctx.api(owner.token).api.v1.organizations.post({ name: 'acme' })
    expect(error?.status).toBe(409)
    expect(error?.value).toEqual({ message: 'An organization named "acme" already exists' })
  })

  it('rejects renaming an organization to a name in use with 409', async () => {
    const acme = await createOrg('acme')
    const { error } = await ctx.api(owner.token).api.v1.organizations({ id: acme.id }).patch({ name: 'default' })
    expect(error?.status).toBe(409)
    expect(error?.value).toEqual({ message: 'An organization named "default" already exists' })
  })

  it('refuses to delete the default organization with 409', async () => {
    const [defaultOrg] = (await ctx.api(owner.token).api.v1.organizations.get()).data!
    const { error } = await ctx.api(owner.token).api.v1.organizations({ id: defaultOrg.id }).delete()
    expect(error?.status).toBe(409)
    expect(error?.value).toEqual({ message: 'The default organization cannot be deleted' })
    expect((await ctx.api(owner.token).api.v1.organizations({ id: defaultOrg.id }).get()).status).toBe(200)
  })

  it('forbids a non-owner from creating an organization with 403', async () => {
    const admin = await createUserAndLogin(ctx, owner.token, 'ada', 'admin')
    const { error } = await ctx.api(admin.token).api.v1.organizations.post({ name: 'acme' })
    expect(error?.status).toBe(403)
    expect(error?.value).toEqual({ message: 'This action requires the owner role' })
    const names = (await ctx.api(owner.token).api.v1.organizations.get()).data?.map((org) => org.name)
    expect(names).toEqual(['default'])
  })

  it('removes the memberships of a deleted organization', async () => {
    const acme = await createOrg('acme')
    const alice = await createUser('alice')
    await addMember(acme.id, alice.id)
    expect((await ctx.api(owner.token).api.v1.organizations({ id: acme.id }).members.get()).data).toHaveLength(1)

    await ctx.api(owner.token).api.v1.organizations({ id: acme.id }).delete()
    const rows = await ctx.db
      .selectFrom('organization_members')
      .selectAll()
      .where('organization_id', '=', acme.id)
      .execute()
    expect(rows).toEqual([])
    const aliceOrgs = await ctx.db
      .selectFrom('organization_members')
      .select('organization_id')
      .where('user_id', '=', alice.id)
      .execute()
    expect(aliceOrgs.map((row) => row.organization_id)).not.toContain(acme.id)
    expect(aliceOrgs).toHaveLength(1)
  })

  describe('as a member of one organization', () => {
    let acme: { id: string }
    let other: { id: string }
    let alice: { id: string; token: string }
    beforeEach(async () => {
      acme = await createOrg('acme')
      other = await createOrg('other')
      alice = await createUserAndLogin(ctx, owner.token, 'alice')
      await addMember(acme.id, alice.id)
    })

    it('sees only their own organizations in the list', async () => {
      const { data, status } = await ctx.api(alice.token).api.v1.organizations.get()
      expect(status).toBe(200)
      expect(data?.map((org) => org.name)).toEqual(['acme', 'default'])
    })

    it('gets 404 for another organization, the same as for one that does not exist', async () => {
      expect((await ctx.api(alice.token).api.v1.organizations({ id: acme.id }).get()).status).toBe(200)
      const foreign = await ctx.api(alice.token).api.v1.organizations({ id: other.id }).get()
      const missing = await ctx.api(alice.token).api.v1.organizations({ id: crypto.randomUUID() }).get()
      expect(foreign.status).toBe(404)
      expect(foreign.error?.value).toEqual(NOT_FOUND)
      expect(missing.status).toBe(404)
      expect(missing.error?.value).toEqual(foreign.error?.value)
    })

    it("gets 404 for another organization's member list, the same as for one that does not exist", async () => {
      const foreign = await ctx.api(alice.token).api.v1.organizations({ id: other.id }).members.get()
      const missing = await ctx.api(alice.token).api.v1.organizations({ id: crypto.randomUUID() }).members.get()
      expect(foreign.status).toBe(404)
      expect(foreign.error?.value).toEqual(NOT_FOUND)
      expect(missing.status).toBe(404)
      expect(missing.error?.value).toEqual(foreign.error?.value)
    })

    it('gets 404 for adding a member to another organization, the same as for one that does not exist', async () => {
      const orgs = ctx.api(alice.token).api.v1.organizations
      const foreign = await orgs({ id: other.id }).members({ userId: alice.id }).put({ role: 'admin' })
      const missing = await orgs({ id: crypto.randomUUID() }).members({ userId: alice.id }).put({ role: 'admin' })
      expect(foreign.status).toBe(404)
      expect(foreign.error?.value).toEqual(NOT_FOUND)
      expect(missing.status).toBe(404)
      expect(missing.error?.value).toEqual(foreign.error?.value)
      const members = await ctx.api(owner.token).api.v1.organizations({ id: other.id }).members.get()
      expect(members.data).toEqual([])
    })

    it('forbids a plain member from adding members with 403', async () => {
      const bob = await createUser('bob')
      const { error } = await ctx
        .api(alice.token)
        .api.v1.organizations({ id: acme.id })
        .members({ userId: bob.id })
        .put({ role: 'member' })
      expect(error?.status).toBe(403)
      expect(error?.value).toEqual({ message: 'Managing this organization requires its admin role' })
      const members = await ctx.api(owner.token).api.v1.organizations({ id: acme.id }).members.get()
      expect(members.data?.map((member) => member.username)).toEqual(['alice'])
    })

    it('lets an admin of the organization add a member to it', async () => {
      await addMember(acme.id, alice.id, 'admin')
      const bob = await createUser('bob')
      const acmeAsAlice = ctx.api(alice.token).api.v1.organizations({ id: acme.id })
      const { data, status } = await acmeAsAlice.members({ userId: bob.id }).put({ role: 'member' })
      expect(status).toBe(200)
      expect(data).toMatchObject({ user_id: bob.id, username: 'bob', email: 'bob@example.com', role: 'member' })
      const members = await acmeAsAlice.members.get()
      expect(members.data?.map((member) => [member.username, member.role])).toEqual([
        ['alice', 'admin'],
        ['bob', 'member'],
      ])
    })
  })
})
