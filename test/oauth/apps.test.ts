import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { bootstrapOwner, createUserAndLogin, setup, type TestContext } from '../setup.ts'
import { authorizeWithBearer, createPkce, obtainTokens, REDIRECT_URI } from './helpers.ts'
import { API_RESOURCE, authorizeParams, basicAuth, callApi, exchangeCode, getAuthorize } from './support-flow.ts'

const API_TOKENS = { scope: 'api offline_access', resource: API_RESOURCE }

describe('OAuth apps in the management API', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  let defaultOrgId: string
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
    const orgs = await ctx.api(owner.token).api.v1.organizations.get()
    defaultOrgId = orgs.data!.find((org) => org.is_default)!.id
  })
  afterEach(async () => {
    await ctx.close()
  })

  const apps = (token: string, orgId = defaultOrgId) => ctx.api(token).api.v1.organizations({ id: orgId })['oauth-apps']

  async function createApp(options: { confidential?: boolean; orgId?: string; name?: string } = {}) {
    const created = await apps(owner.token, options.orgId).post({
      name: options.name ?? 'Internal dashboard',
      redirect_uris: [REDIRECT_URI],
      confidential: options.confidential,
    })
    if (created.status !== 201 || !created.data)
      throw new Error(`create app: ${created.status} ${JSON.stringify(created.error?.value)}`)
    return created.data
  }

  async function addSecret(appId: string, orgId = defaultOrgId) {
    const created = await apps(owner.token, orgId)({ appId }).secrets.post()
    if (created.status !== 201 || !created.data) throw new Error(`add secret: ${created.status}`)
    return created.data
  }

  /** The full code flow for a confidential app, authenticated with client_secret_basic. */
  async function tokensFor(appId: string, secret: string, userToken = owner.token) {
    const pkce = createPkce()
    const location = await authorizeWithBearer(ctx, userToken, authorizeParams(appId, pkce, API_TOKENS))
    return exchangeCode(
      ctx,
      { code: location.searchParams.get('code')!, verifier: pkce.verifier },
      {},
      basicAuth(appId, secret),
    )
  }

  /** An organization besides the default one, with a user who administers it and belongs nowhere else. */
  async function otherOrganization() {
    const created = await ctx.api(owner.token).api.v1.organizations.post({ name: 'acme' })
    const orgId = created.data!.id
    const outsider = await createUserAndLogin(ctx, owner.token, 'outsider')
    await ctx.api(owner.token).api.v1.organizations({ id: defaultOrgId }).members({ userId: outsider.id }).delete()
    await ctx
      .api(owner.token)
      .api.v1.organizations({ id: orgId })
      .members({ userId: outsider.id })
      .put({ role: 'admin' })
    return { orgId, outsider }
  }

  describe('apps and secrets', () => {
    it('lets the owner create a confidential app', async () => {
      const created = await apps(owner.token).post({ name: 'Internal dashboard', redirect_uris: [REDIRECT_URI] })
      expect(created.status).toBe(201)
      expect(created.data).toMatchObject({
        organization_id: defaultOrgId,
        name: 'Internal dashboard',
        kind: 'managed',
        redirect_uris: [REDIRECT_URI],
        token_endpoint_auth_method: 'client_secret_basic',
      })
      const listed = await apps(owner.token).get()
      expect(listed.data?.map((app) => app.id)).toContain(created.data!.id)
    })

    it('shows a new secret once, and afterwards lists only its prefix', async () => {
      const app = await createApp()
      const secret = await addSecret(app.id)
      expect(secret.client_secret).toStartWith('gth_cs_')
      expect(secret.client_secret.startsWith(secret.prefix)).toBe(true)
      const listed = await apps(owner.token)({ appId: app.id }).secrets.get()
      expect(listed.status).toBe(200)
      expect(listed.data).toHaveLength(1)
      expect(listed.data![0]).toMatchObject({ id: secret.id, prefix: secret.prefix })
      expect(JSON.stringify(listed.data)).not.toContain(secret.client_secret)
    })

    it('lets the app use its secret at the token endpoint for a full flow', async () => {
      const app = await createApp()
      const secret = await addSecret(app.id)
      const tokens = await tokensFor(app.id, secret.client_secret)
      expect(tokens.status).toBe(200)
      expect(tokens.body.refresh_token).toStartWith('gth_ort_')
      const me = await callApi(ctx, tokens.body.access_token)
      expect(me.status).toBe(200)
      expect(me.body.id).toBe(owner.id)
    })

    it('refuses a deleted secret at the token endpoint with invalid_client', async () => {
      const app = await createApp()
      const secret = await addSecret(app.id)
      const deleted = await apps(owner.token)({ appId: app.id }).secrets({ secretId: secret.id }).delete()
      expect(deleted.status).toBe(204)
      const tokens = await tokensFor(app.id, secret.client_secret)
      expect(tokens.status).toBe(401)
      expect(tokens.body.error).toBe('invalid_client')
    })

    it('refuses a secret for a public app with 409', async () => {
      const app = await createApp({ confidential: false })
      expect(app.token_endpoint_auth_method).toBe('none')
      const response = await apps(owner.token)({ appId: app.id }).secrets.post()
      expect(response.status).toBe(409)
      expect(response.error?.value).toMatchObject({ message: 'A public app has no secrets' })
    })

    it("stops the app's tokens from working when the app is deleted", async () => {
      const app = await createApp()
      const secret = await addSecret(app.id)
      const tokens = await tokensFor(app.id, secret.client_secret)
      expect((await callApi(ctx, tokens.body.access_token)).status).toBe(200)
      const deleted = await apps(owner.token)({ appId: app.id }).delete()
      expect(deleted.status).toBe(204)
      expect((await callApi(ctx, tokens.body.access_token)).status).toBe(401)
    })
  })

  describe('who may manage apps', () => {
    it('answers a member of the organization with 403', async () => {
      const member = await createUserAndLogin(ctx, owner.token, 'member1')
      const app = await createApp()
      expect((await apps(member.token).get()).status).toBe(403)
      expect((await apps(member.token).post({ name: 'Mine', redirect_uris: [REDIRECT_URI] })).status).toBe(403)
      expect((await apps(member.token)({ appId: app.id }).secrets.post()).status).toBe(403)
    })

    it('answers a user of another organization with 404 for the organization', async () => {
      const { outsider } = await otherOrganization()
      const response = await apps(outsider.token).get()
      expect(response.status).toBe(404)
      expect(response.error?.value).toMatchObject({ message: 'Organization not found' })
    })

    it("answers 404 when a user of another organization names this organization's app through their own", async () => {
      const { orgId, outsider } = await otherOrganization()
      const app = await createApp()
      const read = await apps(outsider.token, orgId)({ appId: app.id }).get()
      expect(read.status).toBe(404)
      const secret = await apps(outsider.token, orgId)({ appId: app.id }).secrets.post()
      expect(secret.status).toBe(404)
      const deleted = await apps(outsider.token, orgId)({ appId: app.id }).delete()
      expect(deleted.status).toBe(404)
      expect((await apps(owner.token)({ appId: app.id }).get()).status).toBe(200)
    })

    it('answers 404 for an app of organization A addressed through organization B', async () => {
      const { orgId } = await otherOrganization()
      const app = await createApp()
      const response = await apps(owner.token, orgId)({ appId: app.id }).get()
      expect(response.status).toBe(404)
      expect(response.error?.value).toMatchObject({ message: 'OAuth app not found' })
    })

    it('lets the admin of another organization manage the apps of that organization', async () => {
      const { orgId, outsider } = await otherOrganization()
      const created = await apps(outsider.token, orgId).post({ name: 'Acme tool', redirect_uris: [REDIRECT_URI] })
      expect(created.status).toBe(201)
      expect(created.data?.organization_id).toBe(orgId)
    })
  })

  describe('grants', () => {
    it('lists an app the user authorized under their grants', async () => {
      const member = await createUserAndLogin(ctx, owner.token, 'member1')
      const app = await createApp()
      const secret = await addSecret(app.id)
      await tokensFor(app.id, secret.client_secret, member.token)
      const grants = await ctx.api(member.token).api.v1.users.me['oauth-grants'].get()
      expect(grants.status).toBe(200)
      expect(grants.data).toHaveLength(1)
      expect(grants.data![0]).toMatchObject({
        client_id: app.id,
        client_name: 'Internal dashboard',
        user_id: member.id,
      })
    })

    it('shows the union of the scopes of every grant the user gave the app', async () => {
      const member = await createUserAndLogin(ctx, owner.token, 'member1')
      const app = await createApp()
      const secret = await addSecret(app.id)
      for (const scope of ['mcp', 'api']) {
        const pkce = createPkce()
        const location = await authorizeWithBearer(ctx, member.token, authorizeParams(app.id, pkce, { scope }))
        const code = location.searchParams.get('code')!
        expect(
          (await exchangeCode(ctx, { code, verifier: pkce.verifier }, {}, basicAuth(app.id, secret.client_secret)))
            .status,
        ).toBe(200)
      }
      const grants = await ctx.api(member.token).api.v1.users.me['oauth-grants'].get()
      expect(grants.data).toHaveLength(1)
      expect(grants.data![0].scope.split(' ').sort()).toEqual(['api', 'mcp'])
    })

    it("stops the app's tokens when the user revokes its grant", async () => {
      const member = await createUserAndLogin(ctx, owner.token, 'member1')
      const app = await createApp()
      const secret = await addSecret(app.id)
      const tokens = await tokensFor(app.id, secret.client_secret, member.token)
      const revoked = await ctx.api(member.token).api.v1.users.me['oauth-grants']({ clientId: app.id }).delete()
      expect(revoked.status).toBe(204)
      expect((await callApi(ctx, tokens.body.access_token)).status).toBe(401)
      expect((await ctx.api(member.token).api.v1.users.me['oauth-grants'].get()).data).toEqual([])
    })

    it('asks for consent again after the user revoked the grant', async () => {
      const member = await createUserAndLogin(ctx, owner.token, 'member1')
      const app = await createApp()
      const secret = await addSecret(app.id)
      await tokensFor(app.id, secret.client_secret, member.token)
      const remembered = await getAuthorize(ctx, authorizeParams(app.id, createPkce(), API_TOKENS), {
        authorization: `Bearer ${member.token}`,
      })
      expect(remembered.status).toBe(302)
      await ctx.api(member.token).api.v1.users.me['oauth-grants']({ clientId: app.id }).delete()
      const response = await getAuthorize(ctx, authorizeParams(app.id, createPkce(), API_TOKENS), {
        authorization: `Bearer ${member.token}`,
      })
      expect(response.status).toBe(200)
      expect(await response.text()).toContain('Internal dashboard')
    })

    it('answers 404 when the user revokes a grant they never gave', async () => {
      const app = await createApp()
      const response = await ctx.api(owner.token).api.v1.users.me['oauth-grants']({ clientId: app.id }).delete()
      expect(response.status).toBe(404)
    })

    it('shows an admin the users who authorized an app', async () => {
      const member = await createUserAndLogin(ctx, owner.token, 'member1')
      const app = await createApp()
      const secret = await addSecret(app.id)
      await tokensFor(app.id, secret.client_secret, member.token)
      const grants = await apps(owner.token)({ appId: app.id }).grants.get()
      expect(grants.status).toBe(200)
      expect(grants.data?.map((grant) => grant.username)).toEqual(['member1'])
    })

    it("lets an admin revoke one user's grant for an app, leaving other users' grants alone", async () => {
      const member = await createUserAndLogin(ctx, owner.token, 'member1')
      const app = await createApp()
      const secret = await addSecret(app.id)
      const memberTokens = await tokensFor(app.id, secret.client_secret, member.token)
      const ownerTokens = await tokensFor(app.id, secret.client_secret)
      const revoked = await apps(owner.token)({ appId: app.id }).grants({ userId: member.id }).delete()
      expect(revoked.status).toBe(204)
      expect((await callApi(ctx, memberTokens.body.access_token)).status).toBe(401)
      expect((await callApi(ctx, ownerTokens.body.access_token)).status).toBe(200)
      const grants = await apps(owner.token)({ appId: app.id }).grants.get()
      expect(grants.data?.map((grant) => grant.username)).toEqual(['owner'])
    })

    it('lists dynamically registered clients the user authorized too', async () => {
      const { client } = await obtainTokens(ctx, owner.token, API_TOKENS)
      const grants = await ctx.api(owner.token).api.v1.users.me['oauth-grants'].get()
      expect(grants.data?.map((grant) => grant.client_id)).toEqual([client.client_id])
    })
  })
})
