import { basePathOf, type Config } from '../config.ts'
import { SUPPORTED_AUTH_METHODS } from './client-metadata.ts'
import { ALL_SCOPES } from './scope.ts'

/** The path-aware well-known paths (RFC 8414 §3.1) this issuer is discoverable at. */
export function metadataPaths(publicUrl: string): string[] {
  const issuerPath = basePathOf(publicUrl)
  const root = '/.well-known/oauth-authorization-server'
  return issuerPath ? [root, `${root}${issuerPath}`] : [root]
}

/**
 * RFC 8414 authorization server metadata. The issuer is the public URL, byte for byte.
 * `metadataDocuments` follows the dynamic registration switch, which covers client ID metadata
 * documents as well, so clients are not told to use what the server will refuse.
 */
export function authorizationServerMetadata(config: Config, { metadataDocuments = true } = {}) {
  const issuer = config.publicUrl
  return {
    issuer,
    authorization_endpoint: `${issuer}/oauth2/authorize`,
    token_endpoint: `${issuer}/oauth2/token`,
    registration_endpoint: `${issuer}/oauth2/register`,
    revocation_endpoint: `${issuer}/oauth2/revoke`,
    introspection_endpoint: `${issuer}/oauth2/introspect`,
    scopes_supported: ALL_SCOPES,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: SUPPORTED_AUTH_METHODS,
    revocation_endpoint_auth_methods_supported: SUPPORTED_AUTH_METHODS,
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    client_id_metadata_document_supported: metadataDocuments,
    authorization_response_iss_parameter_supported: true,
  }
}
