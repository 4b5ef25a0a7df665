import {
  type AuthorizationServerMetadata,
  checkResourceAllowed,
  discoverAuthorizationServerMetadata,
  discoverOAuthProtectedResourceMetadata,
  extractWWWAuthenticateParams,
  type FetchLike,
  IssuerMismatchError,
  isHttpsUrl,
  type OAuthProtectedResourceMetadata,
  RegistrationRejectedError,
  registerClient,
  resourceUrlFromServerUrl,
} from '@modelcontextprotocol/client'
import { OutboundError, type OutboundFetch } from '../http/outbound.ts'

/**
 * OAuth auto-discovery and client registration for an upstream MCP server (DESIGN.md, "OAuth
 * auto-discovery"), following the MCP authorization spec: the upstream's 401 challenge names its
 * protected resource metadata (RFC 9728 §5.1), that names the authorization server, whose
 * metadata (RFC 8414, or OpenID Connect Discovery) says how Gatehouse gets a client there: a
 * Client ID Metadata Document, or dynamic registration (RFC 7591), kept per organization and
 * issuer and updated with RFC 7592 when another of the organization's servers behind the same
 * issuer needs its callback added.
 *
 * The MCP SDK client's functions do the discovery and the registration. What they lack is written
 * here: the retry without a failing challenge URL, the `resource` check, the CIMD branch, the
 * registration cache and RFC 7592, and errors that name the step and never carry a secret.
 * Every request goes through the caller's `fetch`, the outbound guard.
 */

/**
 * Clients Gatehouse registered at upstream authorization servers, one per issuer, for the servers
 * of one organization: what a store finds, and the client RFC 7592 updates, is never another
 * organization's.
 */
export interface RegistrationStore {
  find(issuer: string): Promise<StoredRegistration | undefined>
  /** Inserts or replaces the registration of `registration.issuer`. */
  save(registration: StoredRegistration): Promise<void>
}

export interface StoredRegistration {
  issuer: string
  clientId: string
  clientSecret?: string
  tokenEndpointAuthMethod: string
  redirectUris: string[]
  /** RFC 7592 §3: where the registration is read and updated. */
  registrationClientUri?: string
  registrationAccessToken?: string
  /** RFC 7591 §3.2.1: unix seconds, 0 or absent for never. */
  clientSecretExpiresAt?: number
}

export interface DiscoveryInput {
  /** The upstream MCP endpoint URL as configured. */
  serverUrl: string
  /** `<public>/api/v1/mcp/servers/<id>/oauth2/callback`, with the server's real ID. */
  callbackUrl: string
  /** Space-separated; empty or absent means the metadata's `scopes_supported` (the PRM's first, then the AS's). */
  scopes?: string
  /** The outbound guard; every request is made with it. */
  fetch: OutboundFetch
  /** Gatehouse's own Client ID Metadata Document URL; set only when the public URL is https. */
  clientMetadataUrl?: string
  clientName: string
  registrations: RegistrationStore
}

export type TokenEndpointAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'none'

export interface DiscoveryResult {
  issuer: string
  authorizationEndpoint: string
  tokenEndpoint: string
  revocationEndpoint?: string
  /** The PRM's `resource`, to send as the RFC 8707 `resource` parameter. */
  resource: string
  clientId: string
  clientSecret?: string
  tokenEndpointAuthMethod: TokenEndpointAuthMethod
  scopes: string
  registration: 'metadata_document' | 'dynamic'
  /** RFC 9207: the authorization server sends `iss` on its redirects, so the callback must check it. */
  issParameterSupported: boolean
}

export type DiscoveryStep = 'protected_resource' | 'authorization_server' | 'registration'

/** A discovery that failed; the message names what failed and never carries a secret or token. */
export class DiscoveryError extends Error {
  constructor(
    readonly step: DiscoveryStep,
    message: string,
  ) {
    super(message)
    this.name = 'DiscoveryError'
  }
}

/** In order of preference: a secret sent in the Authorization header keeps it out of request bodies and logs. */
const AUTH_METHOD_PREFERENCE: TokenEndpointAuthMethod[] = ['client_secret_basic', 'client_secret_post', 'none']
const GRANT_TYPES = ['authorization_code', 'refresh_token']
/** RFC 7592 §2.2: fields a client must not send in an update. */
const READ_ONLY_REGISTRATION_FIELDS = [
  'registration_access_token',
  'registration_client_uri',
  'client_secret_expires_at',
  'client_id_issued_at',
  'client_secret',
]
/** A secret that expires within this margin is treated as expired, so a flow does not start with it. */
const SECRET_EXPIRY_MARGIN_SECONDS = 60

/**
 * Discovers how to authorize Gatehouse at an upstream MCP server and obtains a client there.
 * Throws `DiscoveryError` naming the step that failed; any other error is Gatehouse's own (the store).
 */
export async function discoverAndRegister(input: DiscoveryInput): Promise<DiscoveryResult> {
  const prm = await discoverProtectedResource(input.serverUrl, input.fetch)
  const authorizationServer = prm.authorization_servers?.[0]
  if (!authorizationServer)
    throw new DiscoveryError(
      'protected_resource',
      `the protected resource metadata of ${input.serverUrl} names no authorization server`,
    )
  const metadata = await discoverAuthorizationServer(authorizationServer, input.fetch)
  // Without scopes of the admin's, the advertised ones, plus offline_access where the server
  // offers it (as the SDK's own flow does): without it, OpenID-style servers issue no refresh
  // token and every user would have to reconnect at each expiry.
  const offline = metadata.scopes_supported?.includes('offline_access') ? 'offline_access' : undefined
  const scopes =
    joinScopes(input.scopes) || joinScopes(...(prm.scopes_supported ?? metadata.scopes_supported ?? []), offline)
  const client = await obtainClient(input, metadata, scopes)
  return {
    issuer: metadata.issuer,
    authorizationEndpoint: metadata.authorization_endpoint,
    tokenEndpoint: metadata.token_endpoint,
    ...(metadata.revocation_endpoint ? { revocationEndpoint: metadata.revocation_endpoint } : {}),
    resource: canonicalResource(prm.resource),
    ...client,
    scopes,
    issParameterSupported: metadata.authorization_response_iss_parameter_supported === true,
  }
}

interface Exchange {
  url: string
  status: number
}

/** The caller's fetch, keeping the URL and status of every answer, so errors can say what was tried. */
function recordExchanges(fetch: OutboundFetch): { fetch: FetchLike; exchanges: Exchange[] } {
  const exchanges: Exchange[] = []
  const recording: FetchLike = async (url, init) => {
    const response = await fetch(url, init)
    exchanges.push({ url: String(url), status: response.status })
    return response
  }
  return { fetch: recording, exchanges }
}

function describeExchanges(exchanges: Exchange[]): string {
  return exchanges.map(({ url, status }) => `${url} (${status})`).join(', ')
}

/** A step's failure: the guard's refusals keep their message; anything else gets `describe`'s. */
function stepError(step: DiscoveryStep, error: unknown, describe: () => string): DiscoveryError {
  if (error instanceof DiscoveryError) return error
  if (error instanceof OutboundError) return new DiscoveryError(step, error.message)
  return new DiscoveryError(step, describe())
}

/**
 * RFC 9728 §5.1: an unauthenticated request draws the 401 whose `resource_metadata` names the
 * metadata. A `ping` is sent because it is harmless everywhere: it opens no session on a
 * 2025-era server that turns out not to be protected.
 */
async function probeChallenge(serverUrl: string, fetch: OutboundFetch): Promise<URL | undefined> {
  let response: Response
  try {
    response = await fetch(serverUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'ping' }),
      redirect: 'manual',
    })
  } catch (error) {
    throw stepError('protected_resource', error, () => `${serverUrl} could not be reached`)
  }
  await response.body?.cancel().catch(() => {})
  return extractWWWAuthenticateParams(response).resourceMetadataUrl
}

/**
 * The upstream's protected resource metadata: at the challenge's URL, else (that URL failing)
 * path-aware then at the root (RFC 9728 §3.1), and then its `resource` checked against the
 * server URL (§3.3) so a server cannot send Gatehouse's users to another resource's tokens.
 * `checkResourceAllowed` accepts a server URL below the resource, as GitHub's `/mcp/` under `/mcp`.
 */
async function discoverProtectedResource(
  serverUrl: string,
  fetch: OutboundFetch,
): Promise<OAuthProtectedResourceMetadata> {
  const challengeUrl = await probeChallenge(serverUrl, fetch)
  const recorder = recordExchanges(fetch)
  let prm: OAuthProtectedResourceMetadata | undefined
  let failure: unknown
  for (const resourceMetadataUrl of challengeUrl ? [challengeUrl, undefined] : [undefined]) {
    try {
      prm = await discoverOAuthProtectedResourceMetadata(serverUrl, { resourceMetadataUrl }, recorder.fetch)
      break
    } catch (error) {
      if (error instanceof OutboundError) throw stepError('protected_resource', error, () => '')
      failure = error
    }
  }
  if (!prm)
    throw stepError('protected_resource', failure, () => {
      const last = recorder.exchanges.at(-1)
      if (last && last.status >= 200 && last.status < 300)
        return `the protected resource metadata at ${last.url} is not valid RFC 9728 metadata`
      return `protected resource metadata not found at ${describeExchanges(recorder.exchanges) || serverUrl}`
    })
  let allowed: boolean
  try {
    allowed = checkResourceAllowed({
      requestedResource: resourceUrlFromServerUrl(serverUrl),
      configuredResource: prm.resource,
    })
  } catch {
    allowed = false
  }
  if (!allowed)
    throw new DiscoveryError(
      'protected_resource',
      `the protected resource metadata names ${prm.resource}, not ${serverUrl}`,
    )
  return prm
}

type ServerMetadata = AuthorizationServerMetadata & { revocation_endpoint?: string }

/** RFC 7009's endpoint from the document as served: the SDK's OIDC schema drops it, though OpenID providers publish it. */
async function revocationEndpointOf(document: Response | undefined): Promise<string | undefined> {
  const body = (await document?.json().catch(() => undefined)) as { revocation_endpoint?: unknown } | undefined
  const endpoint = optionalString(body?.revocation_endpoint)
  return endpoint && /^https?:\/\//.test(endpoint) ? endpoint : undefined
}

/**
 * RFC 8414 metadata, path-aware, then OpenID Connect Discovery; the SDK checks that the metadata
 * names the issuer it was fetched for (RFC 8414 §3.3), which stops a mix-up of servers.
 */
async function discoverAuthorizationServer(issuer: string, fetch: OutboundFetch): Promise<ServerMetadata> {
  const recorder = recordExchanges(fetch)
  let document: Response | undefined
  const keeping: FetchLike = async (url, init) => {
    const response = await recorder.fetch(url, init)
    if (response.ok) document = response.clone()
    return response
  }
  let metadata: ServerMetadata | undefined
  try {
    metadata = await discoverAuthorizationServerMetadata(issuer, { fetchFn: keeping })
  } catch (error) {
    throw stepError('authorization_server', error, () => {
      if (error instanceof IssuerMismatchError)
        return `the metadata of authorization server ${issuer} names the issuer ${JSON.stringify(error.received)}`
      const last = recorder.exchanges.at(-1)
      if (last && last.status >= 200 && last.status < 300)
        return `the metadata of authorization server ${issuer} at ${last.url} is not valid`
      return `authorization server ${issuer} metadata could not be read: ${describeExchanges(recorder.exchanges)}`
    })
  }
  if (!metadata)
    throw new DiscoveryError(
      'authorization_server',
      `authorization server ${issuer} metadata not found at ${describeExchanges(recorder.exchanges)}`,
    )
  const methods = metadata.code_challenge_methods_supported
  if (methods && !methods.includes('S256'))
    throw new DiscoveryError('authorization_server', `authorization server ${issuer} does not support PKCE with S256`)
  const revocationEndpoint = metadata.revocation_endpoint ?? (await revocationEndpointOf(document))
  return { ...metadata, ...(revocationEndpoint ? { revocation_endpoint: revocationEndpoint } : {}) }
}

type ObtainedClient = Pick<DiscoveryResult, 'clientId' | 'clientSecret' | 'tokenEndpointAuthMethod' | 'registration'>

/**
 * A client at the authorization server: Gatehouse's metadata document URL when the server takes
 * one (no registration, nothing stored), else the organization's registration kept for this
 * issuer when it already lists the callback, else that registration updated (RFC 7592), else a
 * new one. Only a new one needs the registration endpoint, so a kept client outlives a server
 * closing registration.
 */
async function obtainClient(input: DiscoveryInput, metadata: ServerMetadata, scopes: string): Promise<ObtainedClient> {
  const acceptsDocuments = metadata.client_id_metadata_document_supported === true
  if (acceptsDocuments && input.clientMetadataUrl && isHttpsUrl(input.clientMetadataUrl))
    return { clientId: input.clientMetadataUrl, tokenEndpointAuthMethod: 'none', registration: 'metadata_document' }
  const cached = await input.registrations.find(metadata.issuer)
  let registration = cached && isUsable(cached) ? cached : undefined
  if (registration && !registration.redirectUris.includes(input.callbackUrl))
    registration = await updateRegistration(input, registration, scopes)
  if (!registration) {
    if (!metadata.registration_endpoint)
      throw new DiscoveryError(
        'registration',
        acceptsDocuments
          ? `authorization server ${metadata.issuer} has no registration endpoint; it accepts client ID metadata documents, which need Gatehouse on an https public URL`
          : `authorization server ${metadata.issuer} has no registration endpoint`,
      )
    registration = await registerDynamically(input, metadata, scopes)
    await input.registrations.save(registration)
  }
  return {
    clientId: registration.clientId,
    ...(registration.clientSecret ? { clientSecret: registration.clientSecret } : {}),
    tokenEndpointAuthMethod: registration.tokenEndpointAuthMethod as TokenEndpointAuthMethod,
    registration: 'dynamic',
  }
}

function isUsable(registration: StoredRegistration): boolean {
  if (!AUTH_METHOD_PREFERENCE.includes(registration.tokenEndpointAuthMethod as TokenEndpointAuthMethod)) return false
  const expiresAt = registration.clientSecretExpiresAt
  return !expiresAt || expiresAt > Date.now() / 1000 + SECRET_EXPIRY_MARGIN_SECONDS
}

/** RFC 8414 §2: an authorization server that lists no methods supports `client_secret_basic`. */
function pickAuthMethod(metadata: AuthorizationServerMetadata): TokenEndpointAuthMethod {
  const supported = metadata.token_endpoint_auth_methods_supported ?? ['client_secret_basic']
  const method = AUTH_METHOD_PREFERENCE.find((candidate) => supported.includes(candidate))
  if (!method)
    throw new DiscoveryError(
      'registration',
      `authorization server ${metadata.issuer} supports none of ${AUTH_METHOD_PREFERENCE.join(', ')} at its token endpoint`,
    )
  return method
}

/** The RFC 6749 §5.2 error code of an error body, if it is one; never its description, which may echo what was sent. */
function errorCodeOf(body: string): string | undefined {
  try {
    const code = (JSON.parse(body) as { error?: unknown }).error
    return typeof code === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(code) ? code : undefined
  } catch {
    return undefined
  }
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

/** The registration a response describes, with what the response leaves out kept from `previous`. */
function registrationOf(
  issuer: string,
  body: Record<string, unknown>,
  previous: Partial<StoredRegistration>,
): StoredRegistration {
  const method = optionalString(body.token_endpoint_auth_method) ?? previous.tokenEndpointAuthMethod
  if (!method || !AUTH_METHOD_PREFERENCE.includes(method as TokenEndpointAuthMethod))
    throw new DiscoveryError(
      'registration',
      `authorization server ${issuer} registered the client for token_endpoint_auth_method ${method}, which Gatehouse does not support`,
    )
  const clientSecret = optionalString(body.client_secret) ?? previous.clientSecret
  if (method !== 'none' && !clientSecret)
    throw new DiscoveryError(
      'registration',
      `authorization server ${issuer} registered a client for ${method} without a secret`,
    )
  const redirectUris = Array.isArray(body.redirect_uris)
    ? body.redirect_uris.filter((uri): uri is string => typeof uri === 'string')
    : (previous.redirectUris ?? [])
  const expiresAt = typeof body.client_secret_expires_at === 'number' ? body.client_secret_expires_at : undefined
  const registration: StoredRegistration = {
    issuer,
    clientId: optionalString(body.client_id) ?? previous.clientId ?? '',
    tokenEndpointAuthMethod: method,
    redirectUris,
  }
  if (clientSecret) registration.clientSecret = clientSecret
  const registrationClientUri = optionalString(body.registration_client_uri) ?? previous.registrationClientUri
  if (registrationClientUri) registration.registrationClientUri = registrationClientUri
  const registrationAccessToken = optionalString(body.registration_access_token) ?? previous.registrationAccessToken
  if (registrationAccessToken) registration.registrationAccessToken = registrationAccessToken
  const clientSecretExpiresAt = expiresAt ?? previous.clientSecretExpiresAt
  if (clientSecretExpiresAt !== undefined) registration.clientSecretExpiresAt = clientSecretExpiresAt
  return registration
}

/**
 * RFC 7591 through the SDK's `registerClient`. Its result drops `registration_client_uri` and
 * `registration_access_token` (RFC 7592 §3), so the raw answer is read from a copy of the response.
 */
async function registerDynamically(
  input: DiscoveryInput,
  metadata: AuthorizationServerMetadata,
  scopes: string,
): Promise<StoredRegistration> {
  const method = pickAuthMethod(metadata)
  let answer: Response | undefined
  const capturing: FetchLike = async (url, init) => {
    const response = await input.fetch(url, init)
    if (init?.method === 'POST') answer = response.clone()
    return response
  }
  try {
    const client = await registerClient(metadata.issuer, {
      metadata,
      clientMetadata: {
        application_type: 'web',
        client_name: input.clientName,
        redirect_uris: [input.callbackUrl],
        grant_types: GRANT_TYPES,
        response_types: ['code'],
        token_endpoint_auth_method: method,
      },
      ...(scopes ? { scope: scopes } : {}),
      fetchFn: capturing,
    })
    const raw = ((await answer?.json().catch(() => undefined)) ?? {}) as Record<string, unknown>
    return registrationOf(metadata.issuer, { ...raw, ...client }, { tokenEndpointAuthMethod: method })
  } catch (error) {
    throw stepError('registration', error, () => {
      if (error instanceof RegistrationRejectedError) {
        const code = errorCodeOf(error.body)
        return `registration refused: ${error.status}${code ? ` ${code}` : ''}`
      }
      return `authorization server ${metadata.issuer} answered the registration with an invalid client information response`
    })
  }
}

/** A JSON request to the RFC 7592 client configuration endpoint, authenticated with the registration access token. */
async function requestRegistration(
  fetch: OutboundFetch,
  registration: StoredRegistration,
  method: 'GET' | 'PUT',
  body?: Record<string, unknown>,
): Promise<Record<string, unknown> | undefined> {
  const response = await fetch(registration.registrationClientUri!, {
    method,
    headers: {
      authorization: `Bearer ${registration.registrationAccessToken}`,
      accept: 'application/json',
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
    redirect: 'manual',
  })
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => {})
    return undefined
  }
  const parsed = await response.json().catch(() => undefined)
  return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
    ? (parsed as Record<string, unknown>)
    : undefined
}

/** The distinct scopes of space-separated lists, in order, space-separated. */
function joinScopes(...lists: (string | undefined)[]): string {
  return [...new Set(lists.flatMap((list) => list?.split(/\s+/) ?? []).filter(Boolean))].join(' ')
}

/**
 * RFC 7592 §2.2: adds the callback to a kept registration. An update replaces the whole
 * registration, so the current one is read first (§2.1) and sent back with the callback and the
 * requested scopes added. An authorization server that refuses or no longer knows the client
 * gets a new registration instead (undefined); only the outbound guard's refusals stop here.
 */
async function updateRegistration(
  input: DiscoveryInput,
  registration: StoredRegistration,
  scopes: string,
): Promise<StoredRegistration | undefined> {
  if (!registration.registrationClientUri || !registration.registrationAccessToken) return undefined
  let updated: StoredRegistration | undefined
  try {
    updated = await putRegistrationWithCallback(input, registration, scopes)
  } catch (error) {
    if (error instanceof OutboundError) throw stepError('registration', error, () => '')
    return undefined
  }
  if (updated) await input.registrations.save(updated)
  return updated
}

async function putRegistrationWithCallback(
  input: DiscoveryInput,
  registration: StoredRegistration,
  scopes: string,
): Promise<StoredRegistration | undefined> {
  const current = await requestRegistration(input.fetch, registration, 'GET')
  if (!current || current.client_id !== registration.clientId) return undefined
  const update: Record<string, unknown> = { ...current }
  for (const field of READ_ONLY_REGISTRATION_FIELDS) delete update[field]
  const currentUris = Array.isArray(current.redirect_uris) ? (current.redirect_uris as string[]) : []
  update.redirect_uris = [...new Set([...currentUris, ...registration.redirectUris, input.callbackUrl])]
  const scope = joinScopes(optionalString(current.scope), scopes)
  if (scope) update.scope = scope
  const answer = await requestRegistration(input.fetch, registration, 'PUT', update)
  if (!answer || answer.client_id !== registration.clientId) return undefined
  const updated = registrationOf(registration.issuer, answer, registration)
  return updated.redirectUris.includes(input.callbackUrl) ? updated : undefined
}

/**
 * The resource as published, with what URL parsing normalises (scheme and host case, default
 * port) and without a fragment (RFC 8707 §2). A path-less resource keeps or lacks its trailing
 * slash as published, because authorization servers compare `resource` as a string.
 */
function canonicalResource(resource: string): string {
  const url = new URL(resource)
  url.hash = ''
  const publishedWithoutSlash = url.pathname === '/' && !/^[^:]+:\/\/[^/?#]*\//.test(resource)
  return publishedWithoutSlash && !url.search ? url.href.slice(0, -1) : url.href
}
