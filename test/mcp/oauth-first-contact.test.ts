import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import {
  Client,
  StreamableHTTPClientTransport,
  UnauthorizedError,
  type ClientOptions,
  type StoredOAuthTokens,
} from '@modelcontextprotocol/client'
import { createPkce } from '../oauth/helpers.ts'
import { OWNER, startTestServer } from '../setup.ts'
import { findFreePort } from '../fixtures/cli-process.ts'
import { decideAsUser, signUpOwner } from '../fixtures/http.ts'
import {
  recordingFetch,
  REDIRECT_URL,
  ScriptedOAuthProvider,
  TIMEOUT_MS,
  type RecordedExchange,
} from './support-oauth-provider.ts'

// The official MCP SDK client (v2) meeting Gatehouse for the first time, over real HTTP: the 401
// challenge, RFC 9728 and RFC 8414 discovery, dynamic registration, PKCE, the owner's consent, the
// code exchange, and the reconnect that finally lists and calls tools. Then two things a gateway
// must get right: a token for another audience is refused, and a tool that needs more scope makes
// the client step up.

const CLIENT_INFO = { name: 'gatehouse-first-contact-test', version: '1.0.0' }

let server: Awaited<ReturnType<typeof startTestServer>>
let publicUrl: string
let mcpUrl: URL
let sessionToken: string

beforeAll(async () => {
  const port = await findFreePort()
  publicUrl = `http://127.0.0.1:${port}`
  server = await startTestServer({ port, publicUrl })
  mcpUrl = new URL(`${publicUrl}/mcp`)
  sessionToken = await signUpOwner(publicUrl)
})

afterAll(async () => {
  await server?.close()
})

/** What a connect attempt threw, or undefined when it connected. */
async function connectError(client: Client, transport: StreamableHTTPClientTransport): Promise<unknown> {
  return client.connect(transport).then(
    () => undefined,
    (error: unknown) => error,
  )
}

function scopesOf(value: string | null | undefined): string[] {
  return (value ?? '').split(' ').filter(Boolean)
}

/** The path of each recorded request, as "METHOD /path status". */
function trace(log: RecordedExchange[]): string[] {
  return log.map((entry) => `${entry.method} ${new URL(entry.url).pathname} ${entry.status}`)
}

interface FirstContact {
  provider: ScriptedOAuthProvider
  log: RecordedExchange[]
  firstError: unknown
  client: Client
  tools: string[]
  whoami: Awaited<ReturnType<Client['callTool']>>
}

/**
 * The whole first contact as an app drives it: connect (refused, the provider "redirects"),
 * `finishAuth` with the callback's parameters, then a new transport and client with the same
 * provider, which lists the tools and calls `get_authenticated_user`.
 */
async function firstContact(clientOptions: ClientOptions): Promise<FirstContact> {
  const provider = new ScriptedOAuthProvider({ sessionToken })
  const { fetch, log } = recordingFetch()

  const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch })
  const firstError = await connectError(new Client(CLIENT_INFO, clientOptions), transport)
  if (!UnauthorizedError.isInstance(firstError))
    throw new Error(`the first connect did not ask for authorization: ${String(firstError)}`)
  await transport.finishAuth(provider.lastCallback)
  await transport.close()

  const client = new Client(CLIENT_INFO, clientOptions)
  await client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch }))
  const tools = (await client.listTools()).tools.map((tool) => tool.name)
  const whoami = await client.callTool({ name: 'get_authenticated_user', arguments: {} })
  return { provider, log, firstError, client, tools, whoami }
}

const REVISIONS: [string, ClientOptions][] = [
  ['the default revision', {}],
  ['the 2026-07-28 revision', { versionNegotiation: { mode: { pin: '2026-07-28' } } }],
]

describe.each(REVISIONS)('first contact of an unauthenticated SDK client on %s', (_revision, clientOptions) => {
  let contact: FirstContact
  let authorizationUrl: URL
  let tokens: StoredOAuthTokens

  beforeAll(async () => {
    contact = await firstContact(clientOptions)
    authorizationUrl = contact.provider.authorizationUrls[0]
    tokens = contact.provider.savedTokens.at(-1)!
  })

  afterAll(async () => {
    await contact?.client.close()
  })

  it('is refused with a 401 whose challenge names the resource metadata and the mcp scope', () => {
    expect(UnauthorizedError.isInstance(contact.firstError)).toBe(true)
    const challenge = contact.log.find((entry) => entry.method === 'POST' && entry.url === mcpUrl.href)
    expect(challenge?.status).toBe(401)
    expect(challenge?.wwwAuthenticate).toContain(
      `resource_metadata="${publicUrl}/.well-known/oauth-protected-resource/mcp"`,
    )
    expect(challenge?.wwwAuthenticate).toContain('scope="mcp"')
  })

  it('reads the protected resource metadata, discovers the authorization server and registers, in that order', () => {
    const steps = trace(contact.log)
    const prm = steps.indexOf('GET /.well-known/oauth-protected-resource/mcp 200')
    const as = steps.indexOf('GET /.well-known/oauth-authorization-server 200')
    const register = steps.indexOf('POST /oauth2/register 201')
    expect(prm).toBeGreaterThan(0)
    expect(as).toBeGreaterThan(prm)
    expect(register).toBeGreaterThan(as)
    expect(steps).toContain('POST /oauth2/token 200')
  })

  it('sends the owner to an authorization URL with S256 PKCE, the /mcp resource and the mcp scope', () => {
    expect(contact.provider.authorizationUrls).toHaveLength(1)
    const params = authorizationUrl.searchParams
    expect(`${authorizationUrl.origin}${authorizationUrl.pathname}`).toBe(`${publicUrl}/oauth2/authorize`)
    expect(params.get('response_type')).toBe('code')
    expect(params.get('code_challenge_method')).toBe('S256')
    expect(params.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(params.get('resource')).toBe(`${publicUrl}/mcp`)
    expect(params.get('redirect_uri')).toBe(REDIRECT_URL)
    expect(scopesOf(params.get('scope'))).toContain('mcp')
  })

  it('comes back to the redirect URI with a code, the same state and the issuer', () => {
    const callback = contact.provider.callbacks[0]
    expect(callback.get('code')).toStartWith('gth_code_')
    expect(callback.get('state')).toBe(authorizationUrl.searchParams.get('state'))
    expect(callback.get('iss')).toBe(publicUrl)
  })

  it('saves a Bearer gth_oat_ access token, with a refresh token when offline_access was asked for', () => {
    expect(tokens.token_type.toLowerCase()).toBe('bearer')
    expect(tokens.access_token).toStartWith('gth_oat_')
    expect(scopesOf(tokens.scope)).toContain('mcp')
    if (scopesOf(authorizationUrl.searchParams.get('scope')).includes('offline_access'))
      expect(tokens.refresh_token).toStartWith('gth_ort_')
  })

  it('lists the tools and calls get_authenticated_user as the owner after reconnecting', () => {
    expect(contact.tools).toContain('get_authenticated_user')
    expect(contact.whoami.isError).toBeFalsy()
    expect(contact.whoami.structuredContent).toMatchObject({
      username: OWNER.username,
      email: OWNER.email,
      roles: ['owner'],
    })
  })
})

describe('a token issued for another resource', () => {
  let apiToken: string

  beforeAll(async () => {
    // The same flow by hand, for the management API as the audience.
    const registered = await fetch(`${publicUrl}/oauth2/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'API frontend',
        redirect_uris: [REDIRECT_URL],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'none',
      }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    if (registered.status !== 201) throw new Error(`register: ${registered.status} ${await registered.text()}`)
    const { client_id: clientId } = await registered.json()
    const pkce = createPkce()
    const authorize = new URL(`${publicUrl}/oauth2/authorize`)
    authorize.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT_URL,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      state: 'api-state',
      scope: 'api',
      resource: `${publicUrl}/api`,
    }).toString()
    const code = (await decideAsUser(authorize, sessionToken)).searchParams.get('code')
    if (!code) throw new Error('no code for the API authorization')
    const exchanged = await fetch(`${publicUrl}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT_URL,
        code_verifier: pkce.verifier,
        client_id: clientId,
        resource: `${publicUrl}/api`,
      }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    if (exchanged.status !== 200) throw new Error(`token: ${exchanged.status} ${await exchanged.text()}`)
    const body = await exchanged.json()
    expect(body.scope).toBe('api')
    apiToken = body.access_token
  })

  it('works on the management API it was issued for', async () => {
    const response = await fetch(`${publicUrl}/api/v1/users/me`, {
      headers: { authorization: `Bearer ${apiToken}` },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    expect(response.status).toBe(200)
  })

  it('keeps an SDK client that presents it from connecting to /mcp', async () => {
    const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: { token: async () => apiToken } })
    const error = await connectError(new Client(CLIENT_INFO), transport)
    expect(UnauthorizedError.isInstance(error)).toBe(true)
  })

  it('gets a raw POST to /mcp a 401 invalid_token naming the audience', async () => {
    const response = await fetch(mcpUrl, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${apiToken}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    expect(response.status).toBe(401)
    const challenge = response.headers.get('www-authenticate')
    expect(challenge).toContain('error="invalid_token"')
    expect(challenge).toContain(`resource_metadata="${publicUrl}/.well-known/oauth-protected-resource/mcp"`)
    expect(challenge).toContain(`${publicUrl}/api`)
    expect((await response.json()).error.code).toBe(-32001)
  })
})

describe('step-up from mcp to mcp:admin', () => {
  // No refresh_token grant, so the SDK asks for exactly the challenge's scope: mcp.
  let provider: ScriptedOAuthProvider
  let recorder: ReturnType<typeof recordingFetch>
  let transport: StreamableHTTPClientTransport
  let client: Client
  let firstTokens: StoredOAuthTokens

  beforeAll(async () => {
    provider = new ScriptedOAuthProvider({
      sessionToken,
      grantTypes: ['authorization_code'],
      clientName: 'Step-up client',
    })
    recorder = recordingFetch()
    const first = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recorder.fetch })
    const error = await connectError(new Client(CLIENT_INFO), first)
    if (!UnauthorizedError.isInstance(error))
      throw new Error(`the first connect did not ask for authorization: ${String(error)}`)
    await first.finishAuth(provider.lastCallback)
    await first.close()
    firstTokens = provider.savedTokens.at(-1)!

    transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recorder.fetch })
    client = new Client(CLIENT_INFO)
    await client.connect(transport)
  })

  afterAll(async () => {
    await client?.close()
  })

  it('first authorizes only the mcp scope the 401 challenge asked for', () => {
    expect(scopesOf(provider.authorizationUrls[0].searchParams.get('scope'))).toEqual(['mcp'])
    expect(scopesOf(firstTokens.scope)).toEqual(['mcp'])
  })

  it('answers list_users with a 403 insufficient_scope naming mcp and mcp:admin', async () => {
    const response = await fetch(mcpUrl, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${firstTokens.access_token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'list_users', arguments: {} },
      }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    expect(response.status).toBe(403)
    const challenge = response.headers.get('www-authenticate')
    expect(challenge).toContain('error="insufficient_scope"')
    expect(challenge).toContain('scope="mcp mcp:admin"')
  })

  it('steps up through a second authorization, after which list_users succeeds', async () => {
    const refused = await client.callTool({ name: 'list_users', arguments: {} }).then(
      () => undefined,
      (error: unknown) => error,
    )
    // The transport met the 403, re-authorized with the union of scopes and left the callback to the app.
    expect(trace(recorder.log)).toContain('POST /mcp 403')
    expect(UnauthorizedError.isInstance(refused)).toBe(true)
    expect(provider.authorizationUrls).toHaveLength(2)
    const stepUp = provider.authorizationUrls[1].searchParams
    expect(scopesOf(stepUp.get('scope'))).toEqual(expect.arrayContaining(['mcp', 'mcp:admin']))
    expect(stepUp.get('resource')).toBe(`${publicUrl}/mcp`)

    await transport.finishAuth(provider.lastCallback)
    const tokens = provider.savedTokens.at(-1)!
    expect(tokens.access_token).not.toBe(firstTokens.access_token)
    expect(scopesOf(tokens.scope)).toEqual(expect.arrayContaining(['mcp', 'mcp:admin']))

    const result = await client.callTool({ name: 'list_users', arguments: {} })
    expect(result.isError).toBeFalsy()
    expect(result.structuredContent).toMatchObject({ users: [expect.objectContaining({ username: OWNER.username })] })
  })
})
