import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import { openServerSecrets } from '../../src/upstreams/server-secrets.ts'
import {
  startOAuthServer,
  startOidcProvider,
  startV1SessionMcpServer,
  startV2McpServer,
} from '../fixtures/upstreams.ts'
import { bootstrapOwner, setup, type TestContext } from '../setup.ts'

/**
 * Creating an oauth2 server without client settings through the API: Gatehouse discovers the
 * upstream's authorization server and registers itself, against real servers on loopback (the
 * outbound guard opened for loopback only, as an operator would with ALLOW_PRIVATE).
 */
describe('registering an oauth2 server by discovery', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  const bodies: string[] = []
  const started: { close: () => Promise<void> }[] = []
  const track = async <T extends { close: () => Promise<void> }>(server: Promise<T>) => {
    const value = await server
    started.push(value)
    return value
  }

  beforeAll(async () => {
    ctx = await setup({ outboundAllowPrivate: true, publicUrl: 'http://localhost:3000' })
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await Promise.all(started.splice(0).map((server) => server.close()))
    await ctx.db.deleteFrom('mcp_servers').execute()
    await ctx.db.deleteFrom('upstream_oauth_clients').execute()
  })
  afterAll(async () => {
    await ctx.close()
  })

  async function call(method: string, path: string, body?: unknown) {
    const response = await ctx.app.handle(
      new Request(`http://localhost/api/v1/mcp${path}`, {
        method,
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    )
    const text = await response.text()
    bodies.push(text)
    return { status: response.status, body: text ? JSON.parse(text) : undefined }
  }
  const create = (url: string, extra: Record<string, unknown> = {}) =>
    call('POST', '/servers', { display_name: 'Upstream', slug: 'upstream', url, auth_type: 'oauth2', ...extra })
  const rows = () => ctx.db.selectFrom('mcp_servers').selectAll().execute()

  it('registers with the real callback URL and stores the discovered endpoints and a sealed secret', async () => {
    const as = await track(startOAuthServer({ scopes: ['mcp:tools', 'mcp:read'] }))
    const upstream = await track(startV2McpServer({ protectedBy: as.protect() }))
    const created = await create(upstream.url)
    expect(created.status).toBe(201)
    const server = created.body
    expect(server).toMatchObject({
      auth_type: 'oauth2',
      oauth2_registration: 'dynamic',
      oauth2_auth_url: `${as.issuer}authorize`,
      oauth2_token_url: `${as.issuer}token`,
      oauth2_scopes: 'mcp:tools mcp:read',
      has_oauth2_secret: true,
      auth_connected: false,
      connection: { status: 'not_connected', expires_at: null, scopes: [] },
    })
    const registered = as.clients.get(server.oauth2_client_id)!
    expect(registered.redirect_uris).toEqual([`http://localhost:3000/api/v1/mcp/servers/${server.id}/oauth2/callback`])
    // The secret the AS issued is stored sealed, opens to that value, and no response carries it.
    const [row] = await rows()
    expect(row.oauth2_client_secret).toStartWith('test1:')
    expect((await openServerSecrets(ctx.deps.keyring, row)).oauth2ClientSecret).toBe(registered.client_secret)
    for (const body of bodies) expect(body).not.toContain(registered.client_secret!)
    expect(row).toMatchObject({ oauth2_issuer: as.issuer, oauth2_resource: upstream.url })
  })

  it('finds a 2025-era sessionful server at /mcp/ with a trailing slash', async () => {
    const as = await track(startOAuthServer())
    const upstream = await track(startV1SessionMcpServer({ path: '/mcp/', protectedBy: as.protect() }))
    expect(upstream.url).toEndWith('/mcp/')
    const created = await create(upstream.url)
    expect(created.status).toBe(201)
    expect(created.body.oauth2_token_url).toBe(`${as.issuer}token`)
  })

  it('follows the 401 challenge when the metadata is not at the well-known path', async () => {
    const as = await track(startOAuthServer())
    const upstream = await track(
      startV2McpServer({ protectedBy: as.protect(), metadataPath: '/meta/prm.json', challenge: '/meta/prm.json' }),
    )
    const created = await create(upstream.url)
    expect(created.status).toBe(201)
    expect(created.body.oauth2_registration).toBe('dynamic')
  })

  it('keeps the requested scopes over the advertised ones', async () => {
    const as = await track(startOAuthServer({ scopes: ['mcp:tools', 'mcp:admin'] }))
    const upstream = await track(startV2McpServer({ protectedBy: as.protect() }))
    const created = await create(upstream.url, { oauth2_scopes: 'mcp:tools' })
    expect(created.body.oauth2_scopes).toBe('mcp:tools')
  })

  it('answers 400 naming the step and leaves no server when the AS has no registration endpoint', async () => {
    const as = await track(startOAuthServer({ registration: false }))
    const upstream = await track(startV2McpServer({ protectedBy: as.protect() }))
    const created = await create(upstream.url)
    expect(created.status).toBe(400)
    expect(created.body.message).toBe(
      `OAuth2 discovery failed: authorization server ${as.issuer} has no registration endpoint`,
    )
    expect(created.body.detail).toContain('oauth2_client_id, oauth2_auth_url and oauth2_token_url')
    expect(await rows()).toEqual([])
  })

  it('answers 400 with the refusal code only and leaves no server when registration is refused', async () => {
    const as = await track(startOAuthServer({ refuseRegistration: true }))
    const upstream = await track(startV2McpServer({ protectedBy: as.protect() }))
    const created = await create(upstream.url)
    expect(created.status).toBe(400)
    expect(created.body.message).toBe('OAuth2 discovery failed: registration refused: 400 invalid_redirect_uri')
    expect(await rows()).toEqual([])
  })

  it('answers 400 when the upstream publishes no protected resource metadata, leaving no server', async () => {
    const upstream = await track(startV2McpServer())
    const created = await create(upstream.url)
    expect(created.status).toBe(400)
    expect(created.body.message).toStartWith('OAuth2 discovery failed: protected resource metadata not found')
    expect(await rows()).toEqual([])
  })

  it('refuses a discovered endpoint on the cloud metadata address', async () => {
    const as = await track(startOAuthServer())
    const upstream = await track(
      startV2McpServer({ protectedBy: as.protect(), challenge: 'http://169.254.169.254/latest/meta-data' }),
    )
    const created = await create(upstream.url)
    expect(created.status).toBe(400)
    expect(created.body.message).toContain('169.254.169.254 is not an allowed destination')
    expect(await rows()).toEqual([])
  })

  it('discovers when a server is switched to oauth2 without settings, and changes nothing when that fails', async () => {
    const as = await track(startOAuthServer())
    const upstream = await track(startV2McpServer({ protectedBy: as.protect() }))
    const plain = await call('POST', '/servers', { display_name: 'Upstream', slug: 'upstream', url: upstream.url })
    const switched = await call('PATCH', `/servers/${plain.body.id}`, { auth_type: 'oauth2' })
    expect(switched.status).toBe(200)
    expect(switched.body).toMatchObject({
      auth_type: 'oauth2',
      oauth2_registration: 'dynamic',
      has_oauth2_secret: true,
    })

    const bare = await track(startV2McpServer())
    const other = await call('POST', '/servers', { display_name: 'Bare', slug: 'bare', url: bare.url })
    const failed = await call('PATCH', `/servers/${other.body.id}`, { auth_type: 'oauth2' })
    expect(failed.status).toBe(400)
    expect((await call('GET', `/servers/${other.body.id}`)).body.auth_type).toBe('none')
  })

  it('rediscovers an existing server, reusing the registration, and drops the users’ tokens', async () => {
    const as = await track(startOAuthServer())
    const upstream = await track(startV2McpServer({ protectedBy: as.protect() }))
    const { body: server } = await create(upstream.url)
    await ctx.db
      .insertInto('mcp_server_user_tokens')
      .values({ server_id: server.id, user_id: owner.id, access_token: 'test1:x', created_at: 0, updated_at: 0 })
      .execute()
    const registrationsBefore = as.registrations.length
    const again = await call('POST', `/servers/${server.id}/oauth2/rediscover`)
    expect(again.status).toBe(200)
    expect(again.body.oauth2_client_id).toBe(server.oauth2_client_id)
    expect(as.registrations.length).toBe(registrationsBefore)
    expect(await ctx.db.selectFrom('mcp_server_user_tokens').selectAll().execute()).toEqual([])
  })

  it('never carries the registered secret over to client settings set by hand', async () => {
    const as = await track(startOAuthServer())
    const upstream = await track(startV2McpServer({ protectedBy: as.protect() }))
    const { body: server } = await create(upstream.url)
    const [before] = await rows()
    for (const change of [{ oauth2_token_url: `${as.issuer}steal` }, { oauth2_client_id: 'chosen-by-hand' }]) {
      const refused = await call('PATCH', `/servers/${server.id}`, change)
      expect(refused.status).toBe(422)
      expect(refused.body.message).toBe(
        `oauth2_client_secret must be sent along with the new ${Object.keys(change)[0]}`,
      )
      expect(refused.body.validations.map((v: { field: string }) => v.field)).toEqual(['oauth2_client_secret'])
    }
    expect(await rows()).toEqual([before])
    const byHand = await call('PATCH', `/servers/${server.id}`, {
      oauth2_client_id: 'chosen-by-hand',
      oauth2_client_secret: 'secret-chosen-by-hand',
    })
    expect(byHand.status).toBe(200)
    expect(byHand.body).toMatchObject({ oauth2_registration: 'manual', has_oauth2_secret: true })
    const [row] = await rows()
    expect((await openServerSecrets(ctx.deps.keyring, row)).oauth2ClientSecret).toBe('secret-chosen-by-hand')
  })

  it('discovers and registers again when a discovered server’s URL changes, and changes nothing when that fails', async () => {
    const first = await track(startOAuthServer())
    const firstUpstream = await track(startV2McpServer({ protectedBy: first.protect() }))
    const { body: server } = await create(firstUpstream.url)
    await ctx.db
      .insertInto('mcp_server_user_tokens')
      .values({ server_id: server.id, user_id: owner.id, access_token: 'test1:x', created_at: 0, updated_at: 0 })
      .execute()
    const second = await track(startOAuthServer())
    const secondUpstream = await track(startV2McpServer({ protectedBy: second.protect() }))
    const moved = await call('PATCH', `/servers/${server.id}`, { url: secondUpstream.url })
    expect(moved.status).toBe(200)
    expect(moved.body).toMatchObject({
      url: secondUpstream.url,
      oauth2_registration: 'dynamic',
      oauth2_token_url: `${second.issuer}token`,
      has_oauth2_secret: true,
    })
    const registered = second.clients.get(moved.body.oauth2_client_id)!
    expect(registered).toBeDefined()
    const [row] = await rows()
    expect(row).toMatchObject({ oauth2_issuer: second.issuer, oauth2_resource: secondUpstream.url })
    expect((await openServerSecrets(ctx.deps.keyring, row)).oauth2ClientSecret).toBe(registered.client_secret)
    expect(await ctx.db.selectFrom('mcp_server_user_tokens').selectAll().execute()).toEqual([])

    const bare = await track(startV2McpServer())
    const failed = await call('PATCH', `/servers/${server.id}`, { url: bare.url })
    expect(failed.status).toBe(400)
    expect(failed.body.message).toStartWith('OAuth2 discovery failed:')
    expect(await rows()).toEqual([row])
  })

  it('refuses to rediscover a server that is not oauth2', async () => {
    const plain = await call('POST', '/servers', { display_name: 'P', slug: 'plain', url: 'https://mcp.example/mcp' })
    const again = await call('POST', `/servers/${plain.body.id}/oauth2/rediscover`)
    expect(again.status).toBe(400)
  })
})

describe('registrations at one authorization server, across organizations', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  let side: string
  const bodies: string[] = []
  const started: { close: () => Promise<void> }[] = []

  beforeAll(async () => {
    ctx = await setup({ outboundAllowPrivate: true, publicUrl: 'http://localhost:3000' })
    owner = await bootstrapOwner(ctx)
    side = (await call('POST', '/api/v1/organizations', { name: 'side' })).body.id
  })
  afterAll(async () => {
    await Promise.all(started.map((server) => server.close()))
    await ctx.close()
  })

  async function call(method: string, path: string, body?: unknown) {
    const response = await ctx.app.handle(
      new Request(`http://localhost${path}`, {
        method,
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    )
    const text = await response.text()
    bodies.push(text)
    return { status: response.status, body: text ? JSON.parse(text) : undefined }
  }

  /** An oauth2 server registered by discovery in the organization (the default one without). */
  async function createIn(slug: string, url: string, organizationId?: string) {
    const created = await call('POST', '/api/v1/mcp/servers', {
      display_name: slug,
      slug,
      url,
      auth_type: 'oauth2',
      ...(organizationId ? { organization_id: organizationId } : {}),
    })
    if (created.status !== 201) throw new Error(`create ${slug}: ${created.status} ${JSON.stringify(created.body)}`)
    return created.body as { id: string; oauth2_client_id: string }
  }
  const callback = (serverId: string) => `http://localhost:3000/api/v1/mcp/servers/${serverId}/oauth2/callback`

  it('gives each organization its own client, shared only by the servers of one organization', async () => {
    // oidc-provider takes RFC 7592, so servers of one organization can share a client.
    const as = await startOidcProvider()
    started.push(as)
    const upstreams = await Promise.all([1, 2, 3].map(() => startV2McpServer({ protectedBy: as.protect() })))
    started.push(...upstreams)
    const one = await createIn('home-one', upstreams[0].url)
    const two = await createIn('home-two', upstreams[1].url)
    const other = await createIn('side-one', upstreams[2].url, side)

    expect(two.oauth2_client_id).toBe(one.oauth2_client_id)
    expect(other.oauth2_client_id).not.toBe(one.oauth2_client_id)
    // The other organization's callback was added to a client of its own, never to the default one's.
    expect(((await as.findClient(one.oauth2_client_id))?.redirect_uris as string[]).sort()).toEqual(
      [callback(one.id), callback(two.id)].sort(),
    )
    expect((await as.findClient(other.oauth2_client_id))?.redirect_uris).toEqual([callback(other.id)])
    const servers = await ctx.db.selectFrom('mcp_servers').selectAll().execute()
    const secretOf = async (id: string) =>
      (await openServerSecrets(ctx.deps.keyring, servers.find((row) => row.id === id)!)).oauth2ClientSecret
    expect(await secretOf(other.id)).not.toBe(await secretOf(one.id))
    const kept = await ctx.db
      .selectFrom('upstream_oauth_clients')
      .select(['organization_id', 'client_id'])
      .orderBy('client_id')
      .execute()
    const defaultOrg = servers.find((row) => row.id === one.id)!.organization_id
    expect(kept).toEqual(
      [
        { organization_id: defaultOrg, client_id: one.oauth2_client_id },
        { organization_id: side, client_id: other.oauth2_client_id },
      ].sort((a, b) => (a.client_id < b.client_id ? -1 : 1)),
    )
    // No answer to the other organization's admin carried the default organization's secret.
    const defaultSecret = (await secretOf(one.id))!
    for (const body of bodies) expect(body).not.toContain(defaultSecret)
  })
})

describe("Gatehouse's client metadata document", () => {
  it('lists the callbacks of the servers registered through it, behind an https public URL', async () => {
    const ctx = await setup({ publicUrl: 'https://gatehouse.example.com' })
    try {
      const organization = await ctx.db.selectFrom('organizations').select('id').executeTakeFirstOrThrow()
      await ctx.db
        .insertInto('mcp_servers')
        .values({
          id: 'srv-1',
          organization_id: organization.id,
          display_name: 'Via document',
          slug: 'via-document',
          transport: 'streamable_http',
          url: 'https://mcp.example/mcp',
          auth_type: 'oauth2',
          oauth2_registration: 'metadata_document',
          availability: 'default_on',
          created_at: 0,
          updated_at: 0,
        })
        .execute()
      const response = await ctx.app.handle(new Request('https://gatehouse.example.com/api/v1/mcp/client-metadata'))
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({
        client_id: 'https://gatehouse.example.com/api/v1/mcp/client-metadata',
        client_name: 'Gatehouse (gatehouse.example.com)',
        client_uri: 'https://gatehouse.example.com',
        redirect_uris: ['https://gatehouse.example.com/api/v1/mcp/servers/srv-1/oauth2/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        application_type: 'web',
      })
    } finally {
      await ctx.close()
    }
  })

  it('is not served behind an http public URL, where no authorization server could fetch it', async () => {
    const ctx = await setup()
    try {
      const response = await ctx.app.handle(new Request('http://localhost/api/v1/mcp/client-metadata'))
      expect(response.status).toBe(404)
    } finally {
      await ctx.close()
    }
  })
})
