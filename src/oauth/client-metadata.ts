import { OAuthError } from './errors.ts'
import { checkRedirectUri } from './redirect-uri.ts'
import { ALL_SCOPES, parseScope } from './scope.ts'

export type TokenEndpointAuthMethod = 'none' | 'client_secret_basic' | 'client_secret_post'

export const SUPPORTED_AUTH_METHODS: TokenEndpointAuthMethod[] = ['none', 'client_secret_basic', 'client_secret_post']
export const SUPPORTED_GRANT_TYPES = ['authorization_code', 'refresh_token'] as const

/** Client metadata after validation and normalisation (RFC 7591 §2). */
export interface ClientMetadata {
  name: string
  redirectUris: string[]
  grantTypes: string[]
  tokenEndpointAuthMethod: TokenEndpointAuthMethod
  scope: string
  clientUri: string | null
  logoUri: string | null
  softwareId: string | null
  softwareVersion: string | null
}

function optionalString(body: Record<string, unknown>, field: string, max = 2000): string | null {
  const value = body[field]
  if (value === undefined || value === null || value === '') return null
  if (typeof value !== 'string' || value.length > max)
    throw new OAuthError('invalid_client_metadata', `${field} must be a string of at most ${max} characters`)
  return value
}

function optionalHttpsUrl(body: Record<string, unknown>, field: string): string | null {
  const value = optionalString(body, field)
  if (value === null) return null
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new OAuthError('invalid_client_metadata', `${field} must be an absolute URL`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new OAuthError('invalid_client_metadata', `${field} must be an http(s) URL`)
  return value
}

/**
 * Validates registration metadata the way real clients send it: unknown grant types (VS Code
 * sends `urn:ietf:params:oauth:grant-type:device_code`) are dropped rather than refused,
 * unknown scopes narrowed, and a missing auth method defaults to `client_secret_basic` as
 * RFC 7591 §2 says. Redirect URIs follow `checkRedirectUri`.
 */
export function parseClientMetadata(body: unknown): ClientMetadata {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new OAuthError('invalid_client_metadata', 'the body must be a JSON object')
  const input = body as Record<string, unknown>

  const method = input.token_endpoint_auth_method ?? 'client_secret_basic'
  if (typeof method !== 'string' || !SUPPORTED_AUTH_METHODS.includes(method as TokenEndpointAuthMethod))
    throw new OAuthError(
      'invalid_client_metadata',
      `token_endpoint_auth_method must be one of ${SUPPORTED_AUTH_METHODS.join(', ')}`,
    )
  const tokenEndpointAuthMethod = method as TokenEndpointAuthMethod

  const redirectUris = input.redirect_uris
  if (!Array.isArray(redirectUris) || redirectUris.length === 0 || redirectUris.some((uri) => typeof uri !== 'string'))
    throw new OAuthError('invalid_redirect_uri', 'redirect_uris must be a non-empty array of strings')
  if (redirectUris.length > 20) throw new OAuthError('invalid_redirect_uri', 'at most 20 redirect_uris are allowed')
  for (const uri of redirectUris as string[]) {
    const problem = checkRedirectUri(uri, { publicClient: tokenEndpointAuthMethod === 'none' })
    if (problem)
      throw new OAuthError('invalid_redirect_uri', `redirect_uri ${JSON.stringify(uri.slice(0, 200))} ${problem}`)
  }

  const requestedGrants = input.grant_types ?? ['authorization_code']
  if (!Array.isArray(requestedGrants) || requestedGrants.some((grant) => typeof grant !== 'string'))
    throw new OAuthError('invalid_client_metadata', 'grant_types must be an array of strings')
  const grantTypes = SUPPORTED_GRANT_TYPES.filter((grant) => requestedGrants.includes(grant))
  if (!grantTypes.includes('authorization_code'))
    throw new OAuthError('invalid_client_metadata', 'grant_types must include authorization_code')

  const responseTypes = input.response_types ?? ['code']
  if (!Array.isArray(responseTypes) || !responseTypes.includes('code'))
    throw new OAuthError('invalid_client_metadata', 'response_types must include code')

  const scope =
    typeof input.scope === 'string' ? parseScope(input.scope).filter((s) => (ALL_SCOPES as string[]).includes(s)) : []

  const name = optionalString(input, 'client_name', 200)
  return {
    name: name ?? 'Unnamed client',
    redirectUris: [...new Set(redirectUris as string[])],
    grantTypes: [...grantTypes],
    tokenEndpointAuthMethod,
    scope: scope.join(' '),
    clientUri: optionalHttpsUrl(input, 'client_uri'),
    logoUri: optionalHttpsUrl(input, 'logo_uri'),
    softwareId: optionalString(input, 'software_id', 200),
    softwareVersion: optionalString(input, 'software_version', 200),
  }
}
