import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import { cookieNamesFor } from '../../src/auth/cookies.ts'
import { sealValue } from '../../src/secrets/sealed-column.ts'
import {
  type Account,
  type AggregateGatehouse,
  refusalOf,
  startAggregateGatehouse,
  startV2Upstream,
  textOf,
  upstreamToolNames,
  type V2Upstream,
} from '../fixtures/aggregate.ts'
import { OWNER } from '../setup.ts'

/**
 * Servers are used by the members of their organization only (DESIGN.md, "Serving upstreams":
 * "in one of the user's orgs"). The owner manages every organization's servers but uses only
 * those of the organizations they belong to: carol is the only admin of `side`, and her servers
 * there (one forwarding the caller's identity headers, one sending the caller's identity-provider
 * token) never see the owner, whatever route the owner takes, until the owner joins `side`.
 */

/** The owner's identity-provider access token, as a sign-in through OIDC would have stored it. */
const OWNER_IDP_TOKEN = 'IDP-ACCESS-TOKEN-owner-sub'

/**
 * An upstream behind a recorder that keeps the headers of every HTTP request it gets (initialize,
 * tools/list, calls, everything), then passes the request on unchanged.
 */
async function startRecordedUpstream() {
  const upstream = await startV2Upstream()
  const seen: Headers[] = []
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(request) {
      seen.push(new Headers(request.headers))
      const headers = new Headers(request.headers)
      headers.delete('host')
      const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : await request.arrayBuffer()
      return fetch(`${upstream.url}${new URL(request.url).search}`, { method: request.method, headers, body })
    },
  })
  return {
    url: `http://127.0.0.1:${server.port}/mcp`,
    seen,
    async close() {
      server.stop(true)
      await upstream.close()
    },
  }
}

let gatehouse: AggregateGatehouse
let recorded: Awaited<ReturnType<typeof startRecordedUpstream>>
let home: V2Upstream
let carol: Account
let side: string
let sidecar: { id: string }
let sideOidc: { id: string }
let sideOauth: { id: string }

/** Whether a request the upstream got carried anything that names or authenticates the owner. */
function carriesOwner(headers: Headers): boolean {
  return (
    headers.get('x-gatehouse-user-id') === gatehouse.owner.id ||
    headers.get('x-gatehouse-user-email') === OWNER.email ||
    headers.get('x-gatehouse-username') === OWNER.username ||
    (headers.get('authorization') ?? '').includes(OWNER_IDP_TOKEN)
  )
}

/** The slugs of the servers whose tools the account's `/mcp` lists, sorted. */
async function slugsOf(account: Account): Promise<string[]> {
  const names = await upstreamToolNames(await gatehouse.mcp(account.token))
  return [...new Set(names.map((name) => name.slice(0, name.indexOf('__'))))].sort()
}

function passthrough(slug: string, token: string) {
  return fetch(`${gatehouse.url}/mcp/servers/${slug}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'membership-test', version: '1' },
      },
    }),
    signal: AbortSignal.timeout(10_000),
  })
}

beforeAll(async () => {
  gatehouse = await startAggregateGatehouse()
  recorded = await startRecordedUpstream()
  home = await startV2Upstream()
  carol = await gatehouse.createUser('carol')
  side = await gatehouse.createOrganization('side')
  await gatehouse.addMember(side, carol.id, 'admin')
  // The owner signed in through the identity provider once: a live link, as user_oidc sends it.
  const now = Math.floor(Date.now() / 1000)
  const rowKey = `${gatehouse.owner.id}/oidc`
  await gatehouse.deps.db
    .insertInto('user_links')
    .values({
      user_id: gatehouse.owner.id,
      provider: 'oidc',
      subject: 'owner-sub',
      email: OWNER.email,
      access_token: await sealValue(
        gatehouse.deps.keyring,
        { table: 'user_links', column: 'access_token', rowKey },
        OWNER_IDP_TOKEN,
      ),
      issued_at: now,
      created_at: now,
      updated_at: now,
    })
    .execute()
  await gatehouse.register('home', { url: home.url, availability: 'default_on' })
  const inSide = { organization_id: side, availability: 'force_on' }
  sidecar = await gatehouse.register(
    'sidecar',
    { ...inSide, url: recorded.url, forward_identity_headers: true },
    carol.token,
  )
  sideOidc = await gatehouse.register(
    'side-oidc',
    { ...inSide, url: recorded.url, auth_type: 'user_oidc' },
    carol.token,
  )
  sideOauth = await gatehouse.register(
    'side-oauth',
    {
      ...inSide,
      url: recorded.url,
      auth_type: 'oauth2',
      oauth2_client_id: 'side-client',
      oauth2_auth_url: 'https://auth.side.example/authorize',
      oauth2_token_url: 'https://auth.side.example/token',
    },
    carol.token,
  )
})

afterEach(() => gatehouse.closeClients())

afterAll(async () => {
  await gatehouse?.close()
  await recorded?.close()
  await home?.close()
})

describe('an organization the owner is not a member of', () => {
  it('stays out of the owner’s /mcp, while its members get its servers', async () => {
    expect(await slugsOf(gatehouse.owner)).toEqual(['home'])
    expect(await slugsOf(carol)).toEqual(['home', 'side-oauth', 'side-oidc', 'sidecar'])
    const client = await gatehouse.mcp(gatehouse.owner.token)
    const refusal = await refusalOf(client.callTool({ name: 'sidecar__whoami', arguments: {} }))
    expect(refusal).toContain('sidecar__whoami')
    expect(recorded.seen.length).toBeGreaterThan(0)
    expect(recorded.seen.filter(carriesOwner)).toEqual([])
  })

  it('answers the owner 404 on its servers’ passthrough, and serves its members', async () => {
    for (const slug of ['sidecar', 'side-oidc']) {
      const refused = await passthrough(slug, gatehouse.owner.token)
      expect(refused.status).toBe(404)
      expect((await refused.json()).error.message).toBe(`There is no MCP server "${slug}" for you here`)
    }
    const served = await passthrough('sidecar', carol.token)
    expect(served.status).toBe(200)
    await served.body?.cancel()
    expect(recorded.seen.filter(carriesOwner)).toEqual([])
  })

  it('refuses the owner connecting or selecting its servers with 403 naming the membership', async () => {
    const connect = await gatehouse.api('GET', `/api/v1/mcp/servers/${sideOauth.id}/oauth2/connect`)
    expect(connect.status).toBe(403)
    expect(connect.body.message).toBe('Using side-oauth requires membership of its organization')
    const selection = await gatehouse.api('PUT', `/api/v1/mcp/servers/${sidecar.id}/selection`, { selected: true })
    expect(selection.status).toBe(403)
    expect(selection.body.message).toBe('Using sidecar requires membership of its organization')
    const stored = await gatehouse.deps.db.selectFrom('mcp_server_selections').selectAll().execute()
    expect(stored).toEqual([])
  })

  it('leaves its servers off the owner’s connections page and list_connections', async () => {
    const page = await fetch(`${gatehouse.url}/connections`, {
      headers: { cookie: `${cookieNamesFor(gatehouse.deps.config.publicUrl).session}=${gatehouse.owner.token}` },
      signal: AbortSignal.timeout(10_000),
    })
    expect(page.status).toBe(200)
    const html = await page.text()
    expect(html).toContain('home')
    for (const slug of ['sidecar', 'side-oidc', 'side-oauth']) expect(html).not.toContain(slug)
    const connect = await fetch(`${gatehouse.url}/connections?connect=${sideOauth.id}`, {
      headers: { cookie: `${cookieNamesFor(gatehouse.deps.config.publicUrl).session}=${gatehouse.owner.token}` },
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
    })
    expect(connect.status).toBe(404)
    await connect.body?.cancel()
    const client = await gatehouse.mcp(gatehouse.owner.token)
    const listed = JSON.parse(textOf(await client.callTool({ name: 'list_connections', arguments: {} })))
    expect(listed.servers.map((server: { slug: string }) => server.slug)).toEqual(['home'])
  })

  it('still lets the owner manage its servers: listed in full but not selected, read, changed', async () => {
    const list = await gatehouse.api('GET', '/api/v1/mcp/servers')
    const listed = list.body.find((server: { id: string }) => server.id === sidecar.id)
    expect(listed).toMatchObject({
      url: recorded.url,
      organization_id: side,
      availability: 'force_on',
      selected: false,
    })
    expect(list.body.find((server: { id: string }) => server.id === sideOidc.id)).toMatchObject({
      auth_type: 'user_oidc',
      selected: false,
      connection: { status: 'not_connected' },
    })
    const read = await gatehouse.api('GET', `/api/v1/mcp/servers/${sidecar.id}`)
    expect(read.status).toBe(200)
    expect(read.body).toMatchObject({ url: recorded.url, selected: false })
    const patched = await gatehouse.api('PATCH', `/api/v1/mcp/servers/${sidecar.id}`, {
      description: 'Checked by the owner',
    })
    expect(patched.status).toBe(200)
    expect(patched.body).toMatchObject({ description: 'Checked by the owner', selected: false })
    // The tools preview asks with the caller's credential: the owner's identity stays home.
    for (const server of [sidecar, sideOidc]) {
      const preview = await gatehouse.api('GET', `/api/v1/mcp/servers/${server.id}/tools`)
      expect(preview.status).toBe(403)
      expect(preview.body.message).toContain('requires membership of its organization')
    }
    expect(await slugsOf(gatehouse.owner)).toEqual(['home'])
    expect(recorded.seen.filter(carriesOwner)).toEqual([])
  })

  it('comes into the owner’s /mcp once the owner joins the organization', async () => {
    await gatehouse.addMember(side, gatehouse.owner.id)
    expect(await slugsOf(gatehouse.owner)).toEqual(['home', 'side-oauth', 'side-oidc', 'sidecar'])
    const list = await gatehouse.api('GET', '/api/v1/mcp/servers')
    expect(list.body.find((server: { id: string }) => server.id === sidecar.id).selected).toBe(true)
    expect((await passthrough('sidecar', gatehouse.owner.token)).status).toBe(200)
    // Joined, the owner is sent upstream as themselves, as every member is.
    expect(recorded.seen.some(carriesOwner)).toBe(true)
  })
})
