import type {
  AuthorizationServerMetadata,
  OAuthClientInformationMixed,
  OAuthTokens,
} from '@modelcontextprotocol/client'
import type { McpServerRow } from '../db/schema.ts'
import type { OutboundFetch } from '../http/outbound.ts'

/**
 * Gatehouse as an OAuth client of one upstream's authorization server, through the MCP SDK
 * client's token functions (`startAuthorization`, `exchangeAuthorization`, `refreshAuthorization`)
 * with the outbound guard as their fetch. The server row holds what discovery found or the admin
 * entered; this turns it into the metadata and client information the SDK takes.
 */
export interface UpstreamClient {
  issuer: string
  metadata: AuthorizationServerMetadata
  clientInformation: OAuthClientInformationMixed
  /** RFC 8707: what the tokens are for, the upstream's protected resource. */
  resource: string
  scopes: string
  revocationEndpoint?: string
}

/** The SDK loads on first use, off the start-up path. */
const sdk = () => import('@modelcontextprotocol/client')

function authMethodOf(row: McpServerRow, hasSecret: boolean): string {
  if (row.oauth2_token_auth_method) return row.oauth2_token_auth_method
  return hasSecret ? 'client_secret_basic' : 'none'
}

/** The canonical resource of a server without discovered metadata: its URL, without a fragment or trailing slash. */
function canonicalUrlOf(url: string): string {
  const parsed = new URL(url)
  parsed.hash = ''
  return parsed.href.replace(/\/+$/, '')
}

export function upstreamClientOf(row: McpServerRow, clientSecret: string | undefined): UpstreamClient {
  const method = authMethodOf(row, clientSecret !== undefined)
  const issuer = row.oauth2_issuer || new URL(row.oauth2_auth_url).origin
  return {
    issuer,
    metadata: {
      issuer,
      authorization_endpoint: row.oauth2_auth_url,
      token_endpoint: row.oauth2_token_url,
      response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: [method],
      ...(row.oauth2_revocation_url ? { revocation_endpoint: row.oauth2_revocation_url } : {}),
      ...(row.oauth2_iss_required === 1 ? { authorization_response_iss_parameter_supported: true } : {}),
    } as AuthorizationServerMetadata,
    clientInformation: {
      client_id: row.oauth2_client_id,
      ...(clientSecret !== undefined && method !== 'none' ? { client_secret: clientSecret } : {}),
      token_endpoint_auth_method: method,
    } as OAuthClientInformationMixed,
    resource: row.oauth2_resource || canonicalUrlOf(row.url),
    scopes: row.oauth2_scopes,
    ...(row.oauth2_revocation_url ? { revocationEndpoint: row.oauth2_revocation_url } : {}),
  }
}

/** The authorization URL (PKCE S256, `state`, `resource`, scopes) and the verifier to keep for the callback. */
export async function startUpstreamAuthorization(
  client: UpstreamClient,
  options: { redirectUrl: string; state: string },
): Promise<{ authorizationUrl: URL; codeVerifier: string }> {
  const { startAuthorization } = await sdk()
  return startAuthorization(client.issuer, {
    metadata: client.metadata,
    clientInformation: client.clientInformation,
    redirectUrl: options.redirectUrl,
    state: options.state,
    resource: client.resource,
    ...(client.scopes ? { scope: client.scopes } : {}),
  })
}

export async function exchangeUpstreamCode(
  client: UpstreamClient,
  fetch: OutboundFetch,
  options: { code: string; codeVerifier: string; redirectUri: string; iss?: string },
): Promise<OAuthTokens> {
  const { exchangeAuthorization } = await sdk()
  return exchangeAuthorization(client.issuer, {
    metadata: client.metadata,
    clientInformation: client.clientInformation,
    authorizationCode: options.code,
    codeVerifier: options.codeVerifier,
    redirectUri: options.redirectUri,
    resource: client.resource,
    fetchFn: fetch,
    ...(options.iss !== undefined ? { iss: options.iss } : {}),
  })
}

/** A refresh; the SDK keeps the old refresh token when the server rotates none (RFC 6749 §6). */
export async function refreshUpstreamTokens(
  client: UpstreamClient,
  fetch: OutboundFetch,
  refreshToken: string,
): Promise<OAuthTokens> {
  const { refreshAuthorization } = await sdk()
  return refreshAuthorization(client.issuer, {
    metadata: client.metadata,
    clientInformation: client.clientInformation,
    refreshToken,
    resource: client.resource,
    fetchFn: fetch,
  })
}

/** True for the SDK's OAuth error `invalid_grant`: the grant is gone and only the user can renew it. */
export async function isInvalidGrant(error: unknown): Promise<boolean> {
  const { OAuthError } = await sdk()
  return error instanceof OAuthError && (error as { code?: string }).code === 'invalid_grant'
}

/**
 * RFC 7009 revocation of a token, best effort: the caller has already forgotten it, so a failure
 * here only means the upstream keeps a token nobody holds until it expires.
 */
export async function revokeUpstreamToken(
  client: UpstreamClient,
  fetch: OutboundFetch,
  token: string,
  hint: 'access_token' | 'refresh_token',
): Promise<void> {
  if (!client.revocationEndpoint) return
  const body = new URLSearchParams({ token, token_type_hint: hint })
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
  const { client_id, client_secret } = client.clientInformation as { client_id: string; client_secret?: string }
  const method = (client.clientInformation as { token_endpoint_auth_method?: string }).token_endpoint_auth_method
  if (client_secret && method === 'client_secret_basic')
    headers.authorization = `Basic ${btoa(`${encodeURIComponent(client_id)}:${encodeURIComponent(client_secret)}`)}`
  else {
    body.set('client_id', client_id)
    if (client_secret) body.set('client_secret', client_secret)
  }
  const response = await fetch(client.revocationEndpoint, { method: 'POST', headers, body, redirect: 'error' })
  await response.body?.cancel().catch(() => {})
}
