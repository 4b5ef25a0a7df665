import type { LoginProvider, ProviderId } from '../auth/identity-providers.ts'
import { identityProviderAccessToken } from '../auth/idp.service.ts'
import type { McpServerRow, UserRow } from '../db/schema.ts'
import { openServerSecrets, type UpstreamDeps } from './server-secrets.ts'
import { upstreamAccessToken } from './upstream-tokens.ts'

export interface CredentialDeps extends UpstreamDeps {
  identityProviders: Map<ProviderId, LoginProvider>
}

/**
 * The headers that carry a user's credential to an upstream, for every `auth_type` (DESIGN.md,
 * "Credentials sent upstream"): the user's own OAuth token (`oauth2`, refreshed as needed; throws
 * `UpstreamTokenError` when the user must connect first), the API key, the custom headers, the
 * user's identity-provider token (`user_oidc`; none when there is no link or it cannot be renewed),
 * and the identity headers when the server asks for them. Never the MCP client's own token.
 */
export async function upstreamHeaders(
  deps: CredentialDeps,
  server: McpServerRow,
  user: Pick<UserRow, 'id' | 'email' | 'username'>,
): Promise<Record<string, string>> {
  const secrets = await openServerSecrets(deps.keyring, server)
  const headers: Record<string, string> = { ...secrets.customHeaders }
  if (server.auth_type === 'oauth2')
    headers.authorization = `Bearer ${await upstreamAccessToken(deps, server, user.id)}`
  if (server.auth_type === 'api_key' && secrets.apiKeyValue !== undefined)
    headers[server.api_key_header] = secrets.apiKeyValue
  if (server.auth_type === 'user_oidc') {
    const token = await identityProviderAccessToken(deps, user.id)
    if (token) headers.authorization = `Bearer ${token}`
  }
  if (server.forward_identity_headers === 1) {
    headers['x-gatehouse-user-id'] = user.id
    headers['x-gatehouse-user-email'] = user.email
    headers['x-gatehouse-username'] = user.username
  }
  return headers
}
