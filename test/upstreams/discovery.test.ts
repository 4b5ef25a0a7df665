import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import { exchangeAuthorization, startAuthorization } from '@modelcontextprotocol/client'
import { createOutboundFetch, type OutboundFetch, type OutboundPolicy } from '../../src/http/outbound.ts'
import { DiscoveryError, discoverAndRegister, type DiscoveryInput } from '../../src/upstreams/discovery.ts'
import { createRegistrationStore, findUpstreamOAuthClient } from '../../src/upstreams/registration.repository.ts'
import {
  type GatehouseAuthorizationServer,
  REFUSAL_DESCRIPTION_MARKER,
  startGatehouseAuthorizationServer,
  startOidcProvider,
  startOAuthServer,
  startV1SessionMcpServer,
  startV2McpServer,
  type UpstreamAuthorizationServer,
} from '../fixtures/upstreams.ts'
import { setup, TEST_KEY, type TestContext } from '../setup.ts'

/**
 * OAuth auto-discovery and registration against real servers on loopback: MCP servers of both
 * SDK majors, the v1 SDK's authorization server, oidc-provider, and a second Gatehouse. Every
 * request goes through the real outbound guard, opened for loopback only, so link-local and
 * metadata addresses stay refused. The registration cache is the real store on this run's database.
 */

let ctx: TestContext
let defaultOrganizationId: string
beforeAll(async () => {
  ctx = await setup()
  defaultOrganizationId = (await ctx.db.selectFrom('organizations').select('id').executeTakeFirstOrThrow()).id
})
afterAll(async () => {
  await ctx.close()
})

/** Servers a test started; closed after it, whatever happened. */
const started: { close: () => Promise<void> }[] = []
async function track<T extends { close: () => Promise<void> }>(server: Promise<T>): Promise<T> {
  const value = await server
  started.push(value)
  return value
}
afterEach(async () => {
  await Promise.all(started.splice(0).map((server) => server.close()))
})

interface Exchange {
  method: string
  url: string
  status?: number
}

/** The outbound guard (loopback allowed, link-local never), recording every exchange it made. */
function recordingGuard(policy: Partial<OutboundPolicy> = {}): { fetch: OutboundFetch; log: Exchange[] } {
  const guard = createOutboundFetch(
    { allowPrivate: true, ...policy },
    { connectTimeoutMs: 5_000, totalTimeoutMs: 10_000 },
  )
  const log: Exchange[] = []
  const fetch: OutboundFetch = async (input, init) => {
    const exchange: Exchange = {
      method: init?.method ?? (input instanceof Request ? input.method : 'GET'),
      url: input instanceof Request ? input.url : String(input),
    }
    log.push(exchange)
    const response = await guard(input, init)
    exchange.status = response.status
    return response
  }
  return { fetch, log }
}

/**
 * One Gatehouse deployment of a test: its own origin, so registrations kept by other tests are not
 * seen, and the organization whose registrations it keeps (the default one unless given).
 */
function gatehouseSide(
  origin = `https://gh-${crypto.randomUUID().slice(0, 8)}.example.com`,
  organizationId = defaultOrganizationId,
) {
  return {
    origin,
    organizationId,
    callback: (serverId: string) => `${origin}/api/v1/mcp/servers/${serverId}/oauth2/callback`,
    metadataDocumentUrl: `${origin}/api/v1/mcp/client-metadata`,
    clientName: `Gatehouse (${new URL(origin).host})`,
    registrations: createRegistrationStore(ctx.db, ctx.deps.keyring, { organizationId, gatehouseOrigin: origin }),
  }
}

/** Another organization in this run's database, whose servers must not share the default one's clients. */
async function createOrganization(): Promise<string> {
  const id = crypto.randomUUID()
  await ctx.db
    .insertInto('organizations')
    .values({ id, name: `org-${id.slice(0, 8)}`, display_name: '', is_default: 0, created_at: 0, updated_at: 0 })
    .execute()
  return id
}

function inputFor(
  side: ReturnType<typeof gatehouseSide>,
  serverUrl: string,
  fetch: OutboundFetch,
  overrides: Partial<DiscoveryInput> = {},
): DiscoveryInput {
  return {
    serverUrl,
    callbackUrl: side.callback('server-1'),
    fetch,
    clientName: side.clientName,
    registrations: side.registrations,
    ...overrides,
  }
}

/** The DiscoveryError a discovery fails with. */
async function discoveryFailure(input: DiscoveryInput): Promise<DiscoveryError> {
  const error = await discoverAndRegister(input).then(
    () => undefined,
    (failure: unknown) => failure,
  )
  if (!(error instanceof DiscoveryError)) throw new Error(`expected a DiscoveryError, got ${String(error)}`)
  return error
}

describe('discovery', () => {
  it('discovers an MCP server behind the SDK authorization server and registers the exact callback', async () => {
    const as = await track(startOAuthServer({ scopes: ['mcp:tools', 'offline_access'] }))
    const mcp = await track(startV2McpServer({ protectedBy: as.protect({ scopes: ['mcp:tools', 'mcp:read'] }) }))
    const side = gatehouseSide()
    const { fetch } = recordingGuard()

    const result = await discoverAndRegister(inputFor(side, mcp.url, fetch))

    expect(result).toMatchObject({
      issuer: as.issuer,
      authorizationEndpoint: `${as.issuer}authorize`,
      tokenEndpoint: `${as.issuer}token`,
      revocationEndpoint: `${as.issuer}revoke`,
      resource: mcp.resource,
      scopes: 'mcp:tools mcp:read offline_access',
      registration: 'dynamic',
      tokenEndpointAuthMethod: 'client_secret_post',
      issParameterSupported: false,
    })
    expect(result.clientSecret).toBeString()
    const registered = as.clients.get(result.clientId)
    expect(registered).toMatchObject({
      redirect_uris: [side.callback('server-1')],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
      client_name: side.clientName,
      scope: 'mcp:tools mcp:read offline_access',
    })
    expect(await side.registrations.find(as.issuer)).toMatchObject({
      clientId: result.clientId,
      clientSecret: result.clientSecret,
      redirectUris: [side.callback('server-1')],
    })
  })

  it('asks for the requested scopes instead of the advertised ones', async () => {
    const as = await track(startOAuthServer())
    const mcp = await track(startV2McpServer({ protectedBy: as.protect() }))
    const result = await discoverAndRegister(
      inputFor(gatehouseSide(), mcp.url, recordingGuard().fetch, { scopes: ' mcp:tools  offline_access ' }),
    )
    expect(result.scopes).toBe('mcp:tools offline_access')
    expect(as.clients.get(result.clientId)?.scope).toBe('mcp:tools offline_access')
  })

  it('falls back to OpenID Connect discovery and to the scopes the authorization server supports', async () => {
    const as = await track(startOidcProvider({ basePath: '/realms/test' }))
    const { origin } = new URL(as.issuer)
    const mcp = await track(startV2McpServer({ protectedBy: as.protect({ scopes: undefined }) }))
    const side = gatehouseSide()
    const { fetch, log } = recordingGuard()

    const result = await discoverAndRegister(inputFor(side, mcp.url, fetch))

    expect(log.filter(({ url }) => url.startsWith(origin)).map(({ url, status }) => `${url} ${status}`)).toEqual([
      `${origin}/.well-known/oauth-authorization-server/realms/test 404`,
      `${origin}/.well-known/openid-configuration/realms/test 404`,
      `${as.issuer}/.well-known/openid-configuration 200`,
      `${as.issuer}/reg 201`,
    ])
    expect(result).toMatchObject({
      issuer: as.issuer,
      authorizationEndpoint: `${as.issuer}/auth`,
      tokenEndpoint: `${as.issuer}/token`,
      revocationEndpoint: `${as.issuer}/token/revocation`,
      tokenEndpointAuthMethod: 'client_secret_basic',
      issParameterSupported: true,
    })
    expect(result.scopes.split(' ').sort()).toEqual(['email', 'mcp:tools', 'offline_access', 'openid'])
    expect(await as.findClient(result.clientId)).toMatchObject({
      redirect_uris: [side.callback('server-1')],
      token_endpoint_auth_method: 'client_secret_basic',
      application_type: 'web',
    })
  })

  it('returns what a real authorization needs: the flow completes and the upstream accepts the token', async () => {
    const as = await track(startOidcProvider())
    const mcp = await track(startV1SessionMcpServer({ protectedBy: as.protect() }))
    const side = gatehouseSide()
    const { fetch } = recordingGuard()
    const result = await discoverAndRegister(inputFor(side, mcp.url, fetch, { scopes: 'mcp:tools offline_access' }))

    const clientInformation = {
      client_id: result.clientId,
      client_secret: result.clientSecret,
      token_endpoint_auth_method: result.tokenEndpointAuthMethod,
      redirect_uris: [side.callback('server-1')],
    }
    const metadata = {
      issuer: result.issuer,
      authorization_endpoint: result.authorizationEndpoint,
      token_endpoint: result.tokenEndpoint,
      response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
      authorization_response_iss_parameter_supported: result.issParameterSupported,
    }
    const { authorizationUrl, codeVerifier } = await startAuthorization(result.issuer, {
      metadata,
      clientInformation,
      redirectUrl: side.callback('server-1'),
      scope: result.scopes,
      state: 'state-1',
      resource: new URL(result.resource),
    })
    const back = await as.approve(authorizationUrl)
    expect(`${back.origin}${back.pathname}`).toBe(side.callback('server-1'))
    const tokens = await exchangeAuthorization(result.issuer, {
      metadata,
      clientInformation,
      authorizationCode: back.searchParams.get('code')!,
      iss: back.searchParams.get('iss') ?? undefined,
      codeVerifier,
      redirectUri: side.callback('server-1'),
      resource: new URL(result.resource),
      fetchFn: fetch,
    })
    expect(tokens.refresh_token).toBeString()
    expect(await as.verifyAccessToken(tokens.access_token)).toMatchObject({ resource: mcp.resource })

    const initialize = await fetch(mcp.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokens.access_token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'test', version: '1' } },
      }),
    })
    await initialize.text()
    expect(initialize.status).toBe(200)
    expect(initialize.headers.get('mcp-session-id')).toBeString()
    expect(mcp.authorizations.at(-1)).toBe(`Bearer ${tokens.access_token}`)
  })

  it('follows the 401 challenge to metadata that is not at a well-known path', async () => {
    const as = await track(startOAuthServer())
    const mcp = await track(startV2McpServer({ protectedBy: as.protect(), metadataPath: '/meta/resource.json' }))
    const { fetch, log } = recordingGuard()

    const result = await discoverAndRegister(inputFor(gatehouseSide(), mcp.url, fetch))

    expect(result.resource).toBe(mcp.resource)
    expect(log.filter(({ url }) => url.startsWith(mcp.origin)).map(({ method, url }) => `${method} ${url}`)).toEqual([
      `POST ${mcp.url}`,
      `GET ${mcp.origin}/meta/resource.json`,
    ])
  })

  it('retries path-aware then at the root when the challenge names metadata that is not there', async () => {
    const as = await track(startOAuthServer())
    const mcp = await track(startV2McpServer({ protectedBy: as.protect(), challenge: '/moved-away' }))
    const { fetch, log } = recordingGuard()

    const result = await discoverAndRegister(inputFor(gatehouseSide(), mcp.url, fetch))

    expect(result.issuer).toBe(as.issuer)
    expect(log.filter(({ url }) => url.startsWith(mcp.origin)).map(({ url, status }) => `${url} ${status}`)).toEqual([
      `${mcp.url} 401`,
      `${mcp.origin}/moved-away 404`,
      `${mcp.origin}/.well-known/oauth-protected-resource/mcp 200`,
    ])
  })

  it('finds path-aware metadata for a server at /mcp/ with a trailing slash, as GitHub Copilot serves it', async () => {
    const as = await track(startOAuthServer())
    const mcp = await track(startV2McpServer({ path: '/mcp/', protectedBy: as.protect(), challenge: false }))
    const { fetch, log } = recordingGuard()

    const result = await discoverAndRegister(inputFor(gatehouseSide(), mcp.url, fetch))

    expect(mcp.url).toEndWith('/mcp/')
    expect(result.resource).toBe(`${mcp.origin}/mcp`)
    expect(log.map(({ url, status }) => `${url} ${status}`)).toContain(
      `${mcp.origin}/.well-known/oauth-protected-resource/mcp 200`,
    )
  })

  it('refuses metadata whose resource names another server, before any registration', async () => {
    const as = await track(startOAuthServer())
    const mcp = await track(startV2McpServer({ protectedBy: as.protect({ resource: 'http://127.0.0.1:9/other' }) }))

    const error = await discoveryFailure(inputFor(gatehouseSide(), mcp.url, recordingGuard().fetch))

    expect(error.step).toBe('protected_resource')
    expect(error.message).toBe(`the protected resource metadata names http://127.0.0.1:9/other, not ${mcp.url}`)
    expect(as.registrations).toHaveLength(0)
  })

  it('names every URL it tried when the server publishes no protected resource metadata', async () => {
    const mcp = await track(startV2McpServer())

    const error = await discoveryFailure(inputFor(gatehouseSide(), mcp.url, recordingGuard().fetch))

    expect(error.step).toBe('protected_resource')
    expect(error.message).toBe(
      `protected resource metadata not found at ${mcp.origin}/.well-known/oauth-protected-resource/mcp (404), ${mcp.origin}/.well-known/oauth-protected-resource (404)`,
    )
  })

  it('fails at the authorization server step when the named server publishes no metadata', async () => {
    const nowhere = await track(startV2McpServer())
    const mcp = await track(startV2McpServer({ protectedBy: { issuer: nowhere.origin } }))

    const error = await discoveryFailure(inputFor(gatehouseSide(), mcp.url, recordingGuard().fetch))

    expect(error.step).toBe('authorization_server')
    expect(error.message).toStartWith(`authorization server ${nowhere.origin} metadata not found at `)
    expect(error.message).toContain(`${nowhere.origin}/.well-known/openid-configuration (404)`)
  })

  it('refuses authorization server metadata that names another issuer (RFC 8414 §3.3)', async () => {
    const as = await track(startOAuthServer())
    const alias = `http://as-alias.test:${new URL(as.issuer).port}/`
    const mcp = await track(startV2McpServer({ protectedBy: as.protect({ issuer: alias }) }))
    const resolve = async (hostname: string) => (hostname === 'as-alias.test' ? ['127.0.0.1'] : [])

    const error = await discoveryFailure(inputFor(gatehouseSide(), mcp.url, recordingGuard({ resolve }).fetch))

    expect(error.step).toBe('authorization_server')
    expect(error.message).toBe(`the metadata of authorization server ${alias} names the issuer "${as.issuer}"`)
  })

  it.each<[string, () => Promise<UpstreamAuthorizationServer>]>([
    ['oidc-provider', () => startOidcProvider({ registration: false })],
    ['the SDK authorization server', () => startOAuthServer({ registration: false })],
  ])('fails at the registration step when %s has no registration endpoint', async (_name, start) => {
    const as = await track(start())
    const mcp = await track(startV2McpServer({ protectedBy: as.protect() }))

    const error = await discoveryFailure(inputFor(gatehouseSide(), mcp.url, recordingGuard().fetch))

    expect(error.step).toBe('registration')
    expect(error.message).toBe(`authorization server ${as.issuer} has no registration endpoint`)
  })

  it.each<[string, () => Promise<UpstreamAuthorizationServer>]>([
    ['oidc-provider', () => startOidcProvider({ refuseRegistration: true })],
    ['the SDK authorization server', () => startOAuthServer({ refuseRegistration: true })],
  ])('reports a registration %s refuses by its error code only', async (_name, start) => {
    const as = await track(start())
    const mcp = await track(startV2McpServer({ protectedBy: as.protect() }))
    const side = gatehouseSide()

    const error = await discoveryFailure(inputFor(side, mcp.url, recordingGuard().fetch))

    expect(error.step).toBe('registration')
    expect(error.message).toBe('registration refused: 400 invalid_redirect_uri')
    expect(error.message).not.toContain(REFUSAL_DESCRIPTION_MARKER)
    expect(await side.registrations.find(as.issuer)).toBeUndefined()
  })

  it('registers a new client for a second server when the authorization server has no RFC 7592', async () => {
    const as = await track(startOAuthServer())
    const first = await track(startV2McpServer({ protectedBy: as.protect() }))
    const second = await track(startV1SessionMcpServer({ protectedBy: as.protect() }))
    const side = gatehouseSide()
    const { fetch } = recordingGuard()

    const one = await discoverAndRegister(inputFor(side, first.url, fetch, { callbackUrl: side.callback('a') }))
    const two = await discoverAndRegister(inputFor(side, second.url, fetch, { callbackUrl: side.callback('b') }))

    expect(two.clientId).not.toBe(one.clientId)
    expect(as.clients.get(two.clientId)?.redirect_uris).toEqual([side.callback('b')])
    expect((await side.registrations.find(as.issuer))?.clientId).toBe(two.clientId)
  })

  it('reuses the kept client without asking the registration endpoint when a server is discovered again', async () => {
    const as = await track(startOAuthServer())
    const mcp = await track(startV2McpServer({ protectedBy: as.protect() }))
    const side = gatehouseSide()
    const { fetch, log } = recordingGuard()

    const first = await discoverAndRegister(inputFor(side, mcp.url, fetch))
    log.length = 0
    const again = await discoverAndRegister(inputFor(side, mcp.url, fetch))

    expect(again.clientId).toBe(first.clientId)
    expect(again.clientSecret).toBe(first.clientSecret)
    expect(log.filter(({ url }) => url.startsWith(`${as.issuer}register`))).toEqual([])
    expect(as.registrations).toHaveLength(1)
  })

  it('refuses an upstream on a link-local address', async () => {
    const error = await discoveryFailure(
      inputFor(gatehouseSide(), 'http://169.254.169.254/mcp', recordingGuard().fetch),
    )
    expect(error.step).toBe('protected_resource')
    expect(error.message).toBe('169.254.169.254 is not an allowed destination')
  })

  it('refuses a challenge that points at the metadata address instead of trying elsewhere', async () => {
    const mcp = await track(
      startV2McpServer({ protectedBy: { issuer: 'http://127.0.0.1:9/' }, challenge: 'http://169.254.169.254/latest' }),
    )
    const { fetch, log } = recordingGuard()

    const error = await discoveryFailure(inputFor(gatehouseSide(), mcp.url, fetch))

    expect(error).toMatchObject({
      step: 'protected_resource',
      message: '169.254.169.254 is not an allowed destination',
    })
    expect(log.map(({ url }) => url)).toEqual([mcp.url, 'http://169.254.169.254/latest'])
  })

  it('refuses a discovered authorization server on the metadata address', async () => {
    const mcp = await track(startV2McpServer({ protectedBy: { issuer: 'http://169.254.169.254/' } }))

    const error = await discoveryFailure(inputFor(gatehouseSide(), mcp.url, recordingGuard().fetch))

    expect(error).toMatchObject({
      step: 'authorization_server',
      message: '169.254.169.254 is not an allowed destination',
    })
  })

  it('refuses a discovered authorization server whose host name resolves to a link-local address', async () => {
    const mcp = await track(startV2McpServer({ protectedBy: { issuer: 'http://metadata.internal/' } }))
    const resolve = async (hostname: string) => (hostname === 'metadata.internal' ? ['169.254.169.254'] : [])

    const error = await discoveryFailure(inputFor(gatehouseSide(), mcp.url, recordingGuard({ resolve }).fetch))

    expect(error).toMatchObject({
      step: 'authorization_server',
      message: 'metadata.internal is not an allowed destination',
    })
  })
})

describe('discovery against a second Gatehouse', () => {
  let gatehouse: GatehouseAuthorizationServer
  beforeAll(async () => {
    gatehouse = await startGatehouseAuthorizationServer()
  })
  afterAll(async () => {
    await gatehouse.close()
  })

  it('uses a client ID metadata document when the authorization server takes one, registering nothing', async () => {
    const side = gatehouseSide()
    const { fetch, log } = recordingGuard()

    const result = await discoverAndRegister(
      inputFor(side, gatehouse.mcpUrl, fetch, { clientMetadataUrl: side.metadataDocumentUrl }),
    )

    expect(result).toMatchObject({
      issuer: gatehouse.issuer,
      resource: gatehouse.mcpUrl,
      clientId: side.metadataDocumentUrl,
      tokenEndpointAuthMethod: 'none',
      registration: 'metadata_document',
      scopes: 'mcp mcp:admin offline_access',
      issParameterSupported: true,
    })
    expect(result.clientSecret).toBeUndefined()
    expect(log.filter(({ url }) => url.includes('/oauth2/register'))).toEqual([])
    expect(await side.registrations.find(gatehouse.issuer)).toBeUndefined()
  })

  it('registers dynamically when Gatehouse has no https metadata document URL', async () => {
    const side = gatehouseSide()
    const result = await discoverAndRegister(inputFor(side, gatehouse.mcpUrl, recordingGuard().fetch))

    expect(result).toMatchObject({ registration: 'dynamic', tokenEndpointAuthMethod: 'client_secret_basic' })
    const client = await gatehouse.findClient(result.clientId)
    expect(JSON.parse(client!.redirect_uris)).toEqual([side.callback('server-1')])
    expect(client!.name).toBe(side.clientName)
  })

  it('adds the callback of a second server behind the same issuer to the kept client (RFC 7592)', async () => {
    const behindSameIssuer = await track(startV2McpServer({ protectedBy: gatehouse.protect({ scopes: ['mcp'] }) }))
    const side = gatehouseSide()
    const { fetch, log } = recordingGuard()

    const one = await discoverAndRegister(inputFor(side, gatehouse.mcpUrl, fetch, { callbackUrl: side.callback('a') }))
    const two = await discoverAndRegister(
      inputFor(side, behindSameIssuer.url, fetch, { callbackUrl: side.callback('b') }),
    )

    expect(two.clientId).toBe(one.clientId)
    expect(two.clientSecret).toBe(one.clientSecret)
    const registrationRequests = log.filter(({ url }) => url.includes('/oauth2/register'))
    expect(registrationRequests.map(({ method, status }) => `${method} ${status}`)).toEqual([
      'POST 201',
      'GET 200',
      'PUT 200',
    ])
    const client = await gatehouse.findClient(one.clientId)
    expect(JSON.parse(client!.redirect_uris).sort()).toEqual([side.callback('a'), side.callback('b')].sort())
    expect((await side.registrations.find(gatehouse.issuer))?.redirectUris.sort()).toEqual(
      [side.callback('a'), side.callback('b')].sort(),
    )

    log.length = 0
    const three = await discoverAndRegister(
      inputFor(side, gatehouse.mcpUrl, fetch, { callbackUrl: side.callback('a') }),
    )
    expect(three.clientId).toBe(one.clientId)
    expect(log.filter(({ url }) => url.includes('/oauth2/register'))).toEqual([])
  })

  it('registers a client of its own for another organization behind the same issuer, leaving the first untouched', async () => {
    const home = gatehouseSide()
    const other = gatehouseSide(home.origin, await createOrganization())
    const { fetch, log } = recordingGuard()

    const one = await discoverAndRegister(inputFor(home, gatehouse.mcpUrl, fetch, { callbackUrl: home.callback('a') }))
    log.length = 0
    const two = await discoverAndRegister(
      inputFor(other, gatehouse.mcpUrl, fetch, { callbackUrl: other.callback('b') }),
    )

    expect(two.clientId).not.toBe(one.clientId)
    expect(two.clientSecret).not.toBe(one.clientSecret)
    // A registration of its own (RFC 7591), never an RFC 7592 read or update of the first one.
    expect(
      log.filter(({ url }) => url.includes('/oauth2/register')).map(({ method, status }) => `${method} ${status}`),
    ).toEqual(['POST 201'])
    expect(JSON.parse((await gatehouse.findClient(one.clientId))!.redirect_uris)).toEqual([home.callback('a')])
    expect((await home.registrations.find(gatehouse.issuer))?.clientId).toBe(one.clientId)
    expect((await other.registrations.find(gatehouse.issuer))?.clientId).toBe(two.clientId)
  })

  it('registers anew when the authorization server no longer takes the kept registration access token', async () => {
    const side = gatehouseSide()
    const { fetch, log } = recordingGuard()
    const one = await discoverAndRegister(inputFor(side, gatehouse.mcpUrl, fetch, { callbackUrl: side.callback('a') }))
    const kept = await side.registrations.find(gatehouse.issuer)
    await side.registrations.save({ ...kept!, registrationAccessToken: 'no-longer-valid' })
    log.length = 0

    const two = await discoverAndRegister(inputFor(side, gatehouse.mcpUrl, fetch, { callbackUrl: side.callback('b') }))

    expect(two.clientId).not.toBe(one.clientId)
    expect(
      log.filter(({ url }) => url.includes('/oauth2/register')).map(({ method, status }) => `${method} ${status}`),
    ).toEqual(['GET 401', 'POST 201'])
    expect(await side.registrations.find(gatehouse.issuer)).toMatchObject({
      clientId: two.clientId,
      redirectUris: [side.callback('b')],
    })
  })

  it('reports the refusal of a callback the authorization server does not accept, without its description', async () => {
    const side = gatehouseSide()
    const error = await discoveryFailure(
      inputFor(side, gatehouse.mcpUrl, recordingGuard().fetch, {
        callbackUrl: 'http://gatehouse.internal/api/v1/mcp/servers/x/oauth2/callback',
      }),
    )
    expect(error).toMatchObject({ step: 'registration', message: 'registration refused: 400 invalid_redirect_uri' })
  })
})

describe('discovery against oidc-provider registration management', () => {
  it('adds the callback of a second server to the kept client (RFC 7592)', async () => {
    const as = await track(startOidcProvider())
    const first = await track(startV2McpServer({ protectedBy: as.protect() }))
    const second = await track(startV1SessionMcpServer({ protectedBy: as.protect() }))
    const side = gatehouseSide()
    const { fetch, log } = recordingGuard()

    const one = await discoverAndRegister(inputFor(side, first.url, fetch, { callbackUrl: side.callback('a') }))
    const two = await discoverAndRegister(inputFor(side, second.url, fetch, { callbackUrl: side.callback('b') }))

    expect(two.clientId).toBe(one.clientId)
    expect(two.clientSecret).toBe(one.clientSecret)
    expect(log.filter(({ url }) => url.startsWith(`${as.issuer}/reg`)).map(({ method }) => method)).toEqual([
      'POST',
      'GET',
      'PUT',
    ])
    expect(((await as.findClient(one.clientId))?.redirect_uris as string[]).sort()).toEqual(
      [side.callback('a'), side.callback('b')].sort(),
    )
  })
})

describe('registration store', () => {
  const keyOf = (side: ReturnType<typeof gatehouseSide>, issuer: string) => ({
    organizationId: side.organizationId,
    issuer,
    gatehouseOrigin: side.origin,
  })
  const registration = {
    issuer: 'https://as.example.com',
    clientId: 'client-1',
    clientSecret: 'secret-value-1',
    tokenEndpointAuthMethod: 'client_secret_basic',
    redirectUris: ['https://gatehouse.example.com/api/v1/mcp/servers/1/oauth2/callback'],
    registrationClientUri: 'https://as.example.com/register/client-1',
    registrationAccessToken: 'registration-token-1',
    clientSecretExpiresAt: 0,
  }

  it('keeps a registration with its secrets sealed at rest', async () => {
    const side = gatehouseSide()
    await side.registrations.save(registration)

    expect(await side.registrations.find(registration.issuer)).toEqual(registration)
    const row = await findUpstreamOAuthClient(ctx.db, keyOf(side, registration.issuer))
    expect(row?.client_secret).toStartWith(`${TEST_KEY.id}:`)
    expect(row?.client_secret).not.toContain('secret-value-1')
    expect(row?.registration_access_token).toStartWith(`${TEST_KEY.id}:`)
    expect(row?.registration_access_token).not.toContain('registration-token-1')
  })

  it('keeps a public client without secrets', async () => {
    const side = gatehouseSide()
    const publicClient = {
      issuer: 'https://as.example.com',
      clientId: 'public-1',
      tokenEndpointAuthMethod: 'none',
      redirectUris: ['https://gatehouse.example.com/cb'],
    }
    await side.registrations.save(publicClient)
    expect(await side.registrations.find(publicClient.issuer)).toEqual(publicClient)
  })

  it('replaces the registration of an issuer in the row it already has', async () => {
    const side = gatehouseSide()
    await side.registrations.save(registration)
    const before = await findUpstreamOAuthClient(ctx.db, keyOf(side, registration.issuer))
    const replacement = { ...registration, clientId: 'client-2', clientSecret: 'secret-value-2' }

    await side.registrations.save(replacement)

    expect(await side.registrations.find(registration.issuer)).toEqual(replacement)
    expect((await findUpstreamOAuthClient(ctx.db, keyOf(side, registration.issuer)))?.id).toBe(before!.id)
  })

  it('keeps the registrations of different organizations apart', async () => {
    const one = gatehouseSide()
    const two = gatehouseSide(one.origin, await createOrganization())
    await one.registrations.save(registration)
    expect(await two.registrations.find(registration.issuer)).toBeUndefined()
    await two.registrations.save({ ...registration, clientId: 'client-2', clientSecret: 'secret-value-2' })
    expect(await one.registrations.find(registration.issuer)).toEqual(registration)
    expect((await two.registrations.find(registration.issuer))?.clientId).toBe('client-2')
  })

  it('keeps the registrations of different Gatehouse origins apart', async () => {
    const one = gatehouseSide()
    const two = gatehouseSide()
    await one.registrations.save(registration)
    expect(await two.registrations.find(registration.issuer)).toBeUndefined()
  })

  it('opens what concurrent first saves of one issuer leave behind', async () => {
    const side = gatehouseSide()
    await Promise.all(
      [1, 2, 3].map((n) =>
        side.registrations.save({ ...registration, clientId: `client-${n}`, clientSecret: `s-${n}` }),
      ),
    )
    const kept = await side.registrations.find(registration.issuer)
    expect(kept?.clientSecret).toBe(`s-${kept?.clientId.slice('client-'.length)}`)
  })
})
