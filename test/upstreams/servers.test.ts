import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'bun:test'
import { createLogger } from '../../src/ops/logger.ts'
import { bootstrapOwner, createUserAndLogin, setup, type TestContext } from '../setup.ts'

/** Every secret this file stores: no response body may ever contain one. */
const SECRETS = ['sk-live-api-key-0123456789', 'header-secret-value-9876', 'oauth-client-secret-abcdef']

const BASE = {
  display_name: 'Linear',
  slug: 'linear',
  url: 'https://mcp.linear.example/mcp',
}

describe('the MCP server registry', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  let member: { id: string; token: string }
  let defaultOrgId: string
  const bodies: string[] = []
  const logLines: string[] = []

  beforeAll(async () => {
    ctx = await setup(
      {},
      createLogger('info', (line) => logLines.push(line)),
    )
    owner = await bootstrapOwner(ctx)
    member = await createUserAndLogin(ctx, owner.token, 'member1')
    const orgs = await ctx.api(owner.token).api.v1.organizations.get()
    defaultOrgId = orgs.data!.find((org) => org.is_default)!.id
  })
  afterAll(async () => {
    // Security: whatever was asked, no answer carried a stored secret, and no log line either.
    for (const secret of SECRETS) {
      for (const body of bodies) expect(body).not.toContain(secret)
      for (const line of logLines) expect(line).not.toContain(secret)
    }
    expect(bodies.length).toBeGreaterThan(20)
    await ctx.close()
  })
  beforeEach(async () => {
    await ctx.db.deleteFrom('mcp_servers').execute()
  })

  /** A request to the registry as `token`; every response body is kept for the secret search. */
  async function call(token: string, method: string, path: string, body?: unknown) {
    const response = await ctx.app.handle(
      new Request(`http://localhost/api/v1/mcp${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    )
    const text = await response.text()
    bodies.push(text)
    return { status: response.status, body: text ? JSON.parse(text) : undefined }
  }
  const create = (body: Record<string, unknown>, token = owner.token) => call(token, 'POST', '/servers', body)

  describe('lifecycle', () => {
    it('creates a server disabled, with the defaults, the creator and no secrets shown', async () => {
      const created = await create({ ...BASE, description: '  Issues  ' })
      expect(created.status).toBe(201)
      expect(created.body).toMatchObject({
        organization_id: defaultOrgId,
        display_name: 'Linear',
        slug: 'linear',
        description: 'Issues',
        transport: 'streamable_http',
        auth_type: 'none',
        availability: 'default_off',
        enabled: false,
        forward_identity_headers: false,
        tool_allow_list: [],
        tool_deny_list: [],
        has_api_key: false,
        has_oauth2_secret: false,
        has_custom_headers: false,
        created_by: owner.id,
        updated_by: owner.id,
        auth_connected: true,
        connection: { status: 'not_required', expires_at: null, scopes: [] },
        selected: false,
      })
    })

    it('reads, lists, updates and deletes it', async () => {
      const { body: server } = await create(BASE)
      expect((await call(owner.token, 'GET', `/servers/${server.id}`)).body).toEqual(server)
      expect((await call(owner.token, 'GET', '/servers')).body.map((s: { id: string }) => s.id)).toEqual([server.id])
      const patched = await call(owner.token, 'PATCH', `/servers/${server.id}`, {
        enabled: true,
        availability: 'force_on',
      })
      expect(patched.status).toBe(200)
      expect(patched.body).toMatchObject({
        enabled: true,
        availability: 'force_on',
        selected: true,
        display_name: 'Linear',
      })
      expect((await call(owner.token, 'DELETE', `/servers/${server.id}`)).status).toBe(204)
      expect((await call(owner.token, 'GET', `/servers/${server.id}`)).status).toBe(404)
    })

    it('writes a log line per change naming the server and who changed it', async () => {
      const { body: server } = await create({
        ...BASE,
        auth_type: 'api_key',
        api_key_header: 'X-Api-Key',
        api_key_value: SECRETS[0],
      })
      await call(owner.token, 'PATCH', `/servers/${server.id}`, { enabled: true })
      await call(owner.token, 'DELETE', `/servers/${server.id}`)
      const events = logLines.map((line) => JSON.parse(line)).filter((line) => line.server_id === server.id)
      expect(events.map((event) => event.msg)).toEqual([
        'mcp server created',
        'mcp server updated',
        'mcp server deleted',
      ])
      for (const event of events) expect(event).toMatchObject({ slug: 'linear', user_id: owner.id })
      expect(events[1].fields).toEqual(['enabled'])
    })

    it('refuses a second server with the same slug with 409', async () => {
      await create(BASE)
      const again = await create({ ...BASE, display_name: 'Other' })
      expect(again.status).toBe(409)
      expect(again.body.message).toBe('An MCP server with this slug already exists')
    })

    it('trims strings, drops empty tool-list entries and keeps globs', async () => {
      const created = await create({
        ...BASE,
        slug: '  linear  ',
        url: ' https://mcp.linear.example/mcp ',
        tool_allow_list: [' list_* ', '', '  ', 'create_issue', 'create_issue'],
        tool_deny_list: ['*delete*', ''],
      })
      expect(created.status).toBe(201)
      expect(created.body).toMatchObject({
        slug: 'linear',
        url: 'https://mcp.linear.example/mcp',
        tool_allow_list: ['list_*', 'create_issue'],
        tool_deny_list: ['*delete*'],
      })
    })
  })

  describe('validation', () => {
    const cases: [string, Record<string, unknown>, number, string][] = [
      ['an unknown availability', { availability: 'always' }, 422, 'availability'],
      ['an unknown auth_type', { auth_type: 'magic' }, 422, 'auth_type'],
      ['an unknown transport', { transport: 'websocket' }, 422, 'transport'],
      ['a URL that is not http(s)', { url: 'ftp://mcp.example/x' }, 422, 'url'],
      ['a URL with credentials', { url: 'https://user:pw@mcp.example/x' }, 422, 'url'],
      ['a URL on the cloud metadata address', { url: 'http://169.254.169.254/latest/mcp' }, 422, 'url'],
      ['a URL on an IPv6 link-local address', { url: 'http://[fe80::1]/mcp' }, 422, 'url'],
      ['a slug with upper case', { slug: 'Linear' }, 422, 'slug'],
      ['a slug longer than 32', { slug: 'a'.repeat(33) }, 422, 'slug'],
      ['a slug with an underscore', { slug: 'my_server' }, 422, 'slug'],
    ]
    for (const [what, change, status, field] of cases)
      it(`refuses ${what} with ${status} naming ${field}`, async () => {
        const response = await create({ ...BASE, ...change })
        expect(response.status).toBe(status)
        expect(response.body.validations.map((v: { field: string }) => v.field)).toContain(field)
        expect((await call(owner.token, 'GET', '/servers')).body).toEqual([])
      })

    it('needs both api_key_header and api_key_value for api_key', async () => {
      for (const partial of [{ api_key_header: 'X-Api-Key' }, { api_key_value: SECRETS[0] }]) {
        const response = await create({ ...BASE, auth_type: 'api_key', ...partial })
        expect(response.status).toBe(400)
        expect(response.body.message).toBe('The api_key auth type needs both api_key_header and api_key_value')
      }
    })

    it('needs at least one header for custom_headers', async () => {
      const response = await create({ ...BASE, auth_type: 'custom_headers', custom_headers: {} })
      expect(response.status).toBe(400)
      expect(response.body.message).toBe('The custom_headers auth type needs at least one header in custom_headers')
    })

    it('refuses header values with line breaks and reserved header names', async () => {
      const injected = await create({
        ...BASE,
        auth_type: 'custom_headers',
        custom_headers: { 'X-Team': 'a\r\nX-Admin: yes' },
      })
      expect(injected.status).toBe(422)
      expect(injected.body.validations[0]).toMatchObject({ field: 'custom_headers.X-Team' })
      for (const name of ['Host', 'Connection', 'Transfer-Encoding', 'Mcp-Session-Id', 'bad header'])
        expect((await create({ ...BASE, auth_type: 'custom_headers', custom_headers: { [name]: 'x' } })).status).toBe(
          422,
        )
      expect(
        (await create({ ...BASE, auth_type: 'api_key', api_key_header: 'X-Key', api_key_value: 'a\nb' })).status,
      ).toBe(422)
    })

    /** Values no HTTP header can carry (RFC 9110 field-value: HTAB, SP, VCHAR, obs-text 0x80-0xFF). */
    const UNSENDABLE: [string, string][] = [
      ['a snowman', '\u2603 snowman'],
      ['text beyond Latin-1', 'caf\u00e9\u2603'],
      ['an emoji', 'key-\u{1f511}'],
      ['a control character', 'a\u0001b'],
      ['DEL', 'a\u007fb'],
      ['an escape character', '\u001b[31mred'],
    ]
    for (const [what, value] of UNSENDABLE) {
      it(`refuses an api_key_value with ${what} with 422 naming it, and creates nothing`, async () => {
        const response = await create({ ...BASE, auth_type: 'api_key', api_key_header: 'X-Key', api_key_value: value })
        expect(response.status).toBe(422)
        expect(response.body.validations).toEqual([
          { field: 'api_key_value', detail: expect.stringContaining('header') },
        ])
        expect((await call(owner.token, 'GET', '/servers')).body).toEqual([])
      })

      it(`refuses a custom header value with ${what} with 422 naming the header, and creates nothing`, async () => {
        const response = await create({
          ...BASE,
          auth_type: 'custom_headers',
          custom_headers: { 'X-Fine': 'plain', 'X-Team': value },
        })
        expect(response.status).toBe(422)
        expect(response.body.validations).toEqual([
          { field: 'custom_headers.X-Team', detail: expect.stringContaining('header') },
        ])
        expect((await call(owner.token, 'GET', '/servers')).body).toEqual([])
      })
    }

    it('refuses such values in a PATCH and leaves the server as it was', async () => {
      const { body: keyed } = await create({
        ...BASE,
        auth_type: 'api_key',
        api_key_header: 'X-Key',
        api_key_value: SECRETS[0],
      })
      const { body: headed } = await create({
        ...BASE,
        slug: 'headed',
        auth_type: 'custom_headers',
        custom_headers: { 'X-Team': SECRETS[1] },
      })
      const rowsBefore = await ctx.db.selectFrom('mcp_servers').selectAll().orderBy('id').execute()
      const patchedKey = await call(owner.token, 'PATCH', `/servers/${keyed.id}`, {
        display_name: 'Renamed',
        api_key_value: '\u2603',
      })
      expect(patchedKey.status).toBe(422)
      expect(patchedKey.body.validations.map((v: { field: string }) => v.field)).toEqual(['api_key_value'])
      const patchedHeaders = await call(owner.token, 'PATCH', `/servers/${headed.id}`, {
        display_name: 'Renamed',
        custom_headers: { 'X-Team': 'caf\u00e9\u2603' },
      })
      expect(patchedHeaders.status).toBe(422)
      expect(patchedHeaders.body.validations.map((v: { field: string }) => v.field)).toEqual(['custom_headers.X-Team'])
      expect((await call(owner.token, 'GET', `/servers/${keyed.id}`)).body).toEqual(keyed)
      expect((await call(owner.token, 'GET', `/servers/${headed.id}`)).body).toEqual(headed)
      expect(await ctx.db.selectFrom('mcp_servers').selectAll().orderBy('id').execute()).toEqual(rowsBefore)
    })

    it('accepts header values with tabs, spaces and Latin-1 letters', async () => {
      const response = await create({
        ...BASE,
        auth_type: 'custom_headers',
        custom_headers: { 'X-Team': 'caf\u00e9\tna\u00efve ~!' },
      })
      expect(response.status).toBe(201)
      expect(response.body.has_custom_headers).toBe(true)
    })

    it('allows Authorization among custom headers only for the custom_headers type', async () => {
      const withOauth = await create({
        ...BASE,
        auth_type: 'oauth2',
        oauth2_client_id: 'id',
        oauth2_auth_url: 'https://as.example/authorize',
        oauth2_token_url: 'https://as.example/token',
        custom_headers: { Authorization: 'Bearer x' },
      })
      expect(withOauth.status).toBe(422)
      const asType = await create({
        ...BASE,
        auth_type: 'custom_headers',
        custom_headers: { Authorization: `Bearer ${SECRETS[1]}` },
      })
      expect(asType.status).toBe(201)
      expect(asType.body.has_custom_headers).toBe(true)
    })

    it('explains both options when an oauth2 configuration is partly manual', async () => {
      const response = await create({ ...BASE, auth_type: 'oauth2', oauth2_client_id: 'abc' })
      expect(response.status).toBe(400)
      expect(response.body.message).toContain('all of oauth2_client_id, oauth2_auth_url and oauth2_token_url')
      expect(response.body.message).toContain('none of them (automatic discovery and registration)')
      expect((await call(owner.token, 'GET', '/servers')).body).toEqual([])
    })
  })

  describe('secrets', () => {
    it('stores each secret sealed and says only that it is set', async () => {
      const created = await create({
        ...BASE,
        auth_type: 'oauth2',
        oauth2_client_id: 'client-1',
        oauth2_client_secret: SECRETS[2],
        oauth2_auth_url: 'https://as.example/authorize',
        oauth2_token_url: 'https://as.example/token',
        oauth2_scopes: ' read   write ',
      })
      expect(created.status).toBe(201)
      expect(created.body).toMatchObject({
        has_oauth2_secret: true,
        oauth2_scopes: 'read write',
        oauth2_registration: 'manual',
      })
      const row = await ctx.db
        .selectFrom('mcp_servers')
        .selectAll()
        .where('id', '=', created.body.id)
        .executeTakeFirstOrThrow()
      expect(row.oauth2_client_secret).toStartWith('test1:')
      expect(JSON.stringify(row)).not.toContain(SECRETS[2])
    })

    it('clears the previous type’s settings and secrets when auth_type changes', async () => {
      const { body: server } = await create({
        ...BASE,
        auth_type: 'api_key',
        api_key_header: 'X-Api-Key',
        api_key_value: SECRETS[0],
      })
      expect(server.has_api_key).toBe(true)
      const changed = await call(owner.token, 'PATCH', `/servers/${server.id}`, { auth_type: 'none' })
      expect(changed.status).toBe(200)
      expect(changed.body).toMatchObject({ auth_type: 'none', has_api_key: false, api_key_header: '' })
      const row = await ctx.db
        .selectFrom('mcp_servers')
        .selectAll()
        .where('id', '=', server.id)
        .executeTakeFirstOrThrow()
      expect(row.api_key_value).toBeNull()
    })

    it('keeps a secret that a PATCH does not mention', async () => {
      const { body: server } = await create({
        ...BASE,
        auth_type: 'api_key',
        api_key_header: 'X-Api-Key',
        api_key_value: SECRETS[0],
      })
      const patched = await call(owner.token, 'PATCH', `/servers/${server.id}`, { api_key_header: 'X-Other-Key' })
      expect(patched.body).toMatchObject({ has_api_key: true, api_key_header: 'X-Other-Key' })
    })

    /** The stored row, as the next request to the upstream would read it. */
    const rowOf = (id: string) =>
      ctx.db.selectFrom('mcp_servers').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
    const fieldsOf = (body: { validations?: { field: string }[] }) => body.validations?.map((v) => v.field)

    it('asks for the API key again when the URL changes, and changes nothing until it comes', async () => {
      const { body: server } = await create({
        ...BASE,
        auth_type: 'api_key',
        api_key_header: 'X-Api-Key',
        api_key_value: SECRETS[0],
      })
      const before = await rowOf(server.id)
      const moved = await call(owner.token, 'PATCH', `/servers/${server.id}`, { url: 'https://elsewhere.example/mcp' })
      expect(moved.status).toBe(422)
      expect(moved.body.message).toBe('api_key_value must be sent again along with the new url')
      expect(fieldsOf(moved.body)).toEqual(['api_key_value'])
      expect(await rowOf(server.id)).toEqual(before)
      // The same URL again is no change of address.
      const same = await call(owner.token, 'PATCH', `/servers/${server.id}`, { url: ` ${BASE.url} `, enabled: true })
      expect(same.status).toBe(200)
      const resent = await call(owner.token, 'PATCH', `/servers/${server.id}`, {
        url: 'https://elsewhere.example/mcp',
        api_key_value: 'sk-live-api-key-0123456789-2',
      })
      expect(resent.status).toBe(200)
      expect(resent.body).toMatchObject({ url: 'https://elsewhere.example/mcp', has_api_key: true })
    })

    it('asks for the custom headers again when the URL changes', async () => {
      const { body: server } = await create({
        ...BASE,
        auth_type: 'custom_headers',
        custom_headers: { 'X-Team': SECRETS[1] },
      })
      const moved = await call(owner.token, 'PATCH', `/servers/${server.id}`, { url: 'https://elsewhere.example/mcp' })
      expect(moved.status).toBe(422)
      expect(fieldsOf(moved.body)).toEqual(['custom_headers'])
      expect((await rowOf(server.id)).url).toBe(BASE.url)
      const resent = await call(owner.token, 'PATCH', `/servers/${server.id}`, {
        url: 'https://elsewhere.example/mcp',
        custom_headers: { 'X-Team': 'header-secret-value-9876-2' },
      })
      expect(resent.status).toBe(200)
      expect(resent.body.has_custom_headers).toBe(true)
    })

    it('asks for the client secret again when the URL or an OAuth endpoint changes', async () => {
      const { body: server } = await create({
        ...BASE,
        auth_type: 'oauth2',
        oauth2_client_id: 'client-1',
        oauth2_client_secret: SECRETS[2],
        oauth2_auth_url: 'https://as.example/authorize',
        oauth2_token_url: 'https://as.example/token',
      })
      const before = await rowOf(server.id)
      for (const change of [
        { oauth2_token_url: 'https://steal.example/token' },
        { oauth2_auth_url: 'https://steal.example/authorize' },
        { url: 'https://steal.example/mcp' },
      ]) {
        const refused = await call(owner.token, 'PATCH', `/servers/${server.id}`, change)
        expect(refused.status).toBe(422)
        expect(refused.body.message).toBe(
          `oauth2_client_secret must be sent again along with the new ${Object.keys(change)[0]}`,
        )
        expect(fieldsOf(refused.body)).toEqual(['oauth2_client_secret'])
      }
      expect(await rowOf(server.id)).toEqual(before)
      const resent = await call(owner.token, 'PATCH', `/servers/${server.id}`, {
        oauth2_token_url: 'https://as2.example/token',
        oauth2_client_secret: 'oauth-client-secret-abcdef-2',
      })
      expect(resent.status).toBe(200)
      expect(resent.body).toMatchObject({ oauth2_token_url: 'https://as2.example/token', has_oauth2_secret: true })
      // An empty secret says the client has none.
      const publicClient = await call(owner.token, 'PATCH', `/servers/${server.id}`, {
        oauth2_token_url: 'https://as3.example/token',
        oauth2_client_secret: '',
      })
      expect(publicClient.status).toBe(200)
      expect(publicClient.body.has_oauth2_secret).toBe(false)
      // Without a stored secret there is nothing to send again.
      const free = await call(owner.token, 'PATCH', `/servers/${server.id}`, {
        oauth2_token_url: 'https://as4.example/token',
      })
      expect(free.status).toBe(200)
    })

    it('drops every user’s tokens when a server leaves oauth2, and when it is deleted', async () => {
      const { body: server } = await create({
        ...BASE,
        auth_type: 'oauth2',
        oauth2_client_id: 'client-1',
        oauth2_auth_url: 'https://as.example/authorize',
        oauth2_token_url: 'https://as.example/token',
      })
      const insertToken = () =>
        ctx.db
          .insertInto('mcp_server_user_tokens')
          .values({ server_id: server.id, user_id: member.id, access_token: 'test1:x', created_at: 0, updated_at: 0 })
          .execute()
      const tokens = () =>
        ctx.db.selectFrom('mcp_server_user_tokens').selectAll().where('server_id', '=', server.id).execute()
      await insertToken()
      await call(owner.token, 'PATCH', `/servers/${server.id}`, { auth_type: 'none' })
      expect(await tokens()).toEqual([])
      await call(owner.token, 'PATCH', `/servers/${server.id}`, {
        auth_type: 'oauth2',
        oauth2_client_id: 'client-1',
        oauth2_auth_url: 'https://as.example/authorize',
        oauth2_token_url: 'https://as.example/token',
      })
      await insertToken()
      expect(await tokens()).toHaveLength(1)
      await call(owner.token, 'DELETE', `/servers/${server.id}`)
      expect(await tokens()).toEqual([])
    })
  })

  describe('who sees what', () => {
    it('shows members only enabled servers, in the redacted view, and 404 for a disabled one', async () => {
      const { body: on } = await create({
        ...BASE,
        enabled: true,
        auth_type: 'api_key',
        api_key_header: 'X-Api-Key',
        api_key_value: SECRETS[0],
        oauth2_scopes: '',
      })
      const { body: off } = await create({ ...BASE, slug: 'github', display_name: 'GitHub' })
      const list = await call(member.token, 'GET', '/servers')
      expect(list.body.map((s: { id: string }) => s.id)).toEqual([on.id])
      expect(list.body[0]).toMatchObject({
        display_name: 'Linear',
        url: '',
        transport: '',
        api_key_header: '',
        oauth2_client_id: '',
        has_api_key: true,
        auth_connected: true,
      })
      expect((await call(member.token, 'GET', `/servers/${off.id}`)).status).toBe(404)
      expect((await call(member.token, 'GET', `/servers/${on.id}`)).body.url).toBe('')
    })

    it('shows organization admins the full view, disabled servers included', async () => {
      await create(BASE)
      const list = await call(owner.token, 'GET', '/servers')
      expect(list.body[0]).toMatchObject({ url: BASE.url, transport: 'streamable_http', enabled: false })
    })

    it('refuses members changes with 403 and creation with 403', async () => {
      const { body: server } = await create({ ...BASE, enabled: true })
      expect((await call(member.token, 'PATCH', `/servers/${server.id}`, { enabled: false })).status).toBe(403)
      expect((await call(member.token, 'DELETE', `/servers/${server.id}`)).status).toBe(403)
      expect((await create({ ...BASE, slug: 'mine' }, member.token)).status).toBe(403)
    })

    it("answers 404 for another organization's server, whatever the caller does with it", async () => {
      const org = await ctx.api(owner.token).api.v1.organizations.post({ name: 'acme' })
      const orgId = org.data!.id
      const outsider = await createUserAndLogin(ctx, owner.token, `outsider${crypto.randomUUID().slice(0, 6)}`)
      await ctx.api(owner.token).api.v1.organizations({ id: defaultOrgId }).members({ userId: outsider.id }).delete()
      await ctx
        .api(owner.token)
        .api.v1.organizations({ id: orgId })
        .members({ userId: outsider.id })
        .put({ role: 'admin' })
      const { body: server } = await create({ ...BASE, enabled: true })
      for (const [method, body] of [
        ['GET', undefined],
        ['PATCH', { enabled: false }],
        ['DELETE', undefined],
      ] as const)
        expect((await call(outsider.token, method, `/servers/${server.id}`, body)).status).toBe(404)
      expect((await call(outsider.token, 'GET', '/servers')).body).toEqual([])
      const own = await create({ ...BASE, slug: 'acme-tool', organization_id: orgId }, outsider.token)
      expect(own.status).toBe(201)
      expect(own.body.organization_id).toBe(orgId)
      expect((await create({ ...BASE, slug: 'intruder', organization_id: defaultOrgId }, outsider.token)).status).toBe(
        404,
      )
    })
  })
})
