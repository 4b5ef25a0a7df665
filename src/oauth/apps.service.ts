import type { OAuthClientRow, OAuthClientSecretRow } from '../db/schema.ts'
import { ApiError } from '../http/errors.ts'
import { toIsoTime, toIsoTimeOrNull } from '../http/time.ts'
import type { GrantSummaryRow } from './grant.repository.ts'
import { parseClientMetadata, type ClientMetadata } from './client-metadata.ts'
import { grantTypesOf, redirectUrisOf } from './client.service.ts'
import { OAuthError } from './errors.ts'

export function rowToApp(row: OAuthClientRow) {
  return {
    id: row.id,
    organization_id: row.organization_id,
    name: row.name,
    kind: row.kind,
    redirect_uris: redirectUrisOf(row),
    grant_types: grantTypesOf(row),
    token_endpoint_auth_method: row.token_endpoint_auth_method,
    scope: row.scope,
    client_uri: row.client_uri,
    logo_uri: row.logo_uri,
    created_at: toIsoTime(row.created_at),
    updated_at: toIsoTime(row.updated_at),
    last_used_at: toIsoTimeOrNull(row.last_used_at),
  }
}

export function rowToSecret(row: OAuthClientSecretRow) {
  return {
    id: row.id,
    prefix: row.secret_prefix,
    created_at: toIsoTime(row.created_at),
    last_used_at: toIsoTimeOrNull(row.last_used_at),
  }
}

export function rowToGrant(row: GrantSummaryRow) {
  return {
    client_id: row.client_id,
    client_name: row.client_name,
    user_id: row.user_id,
    username: row.username,
    scope: row.scope,
    created_at: toIsoTime(Number(row.created_at)),
  }
}

/** The same metadata rules as dynamic registration, reported as a management API error. */
export function validateAppMetadata(input: Record<string, unknown>): ClientMetadata {
  try {
    return parseClientMetadata(input)
  } catch (error) {
    if (error instanceof OAuthError) throw new ApiError(400, 'Invalid OAuth app', error.description)
    throw error
  }
}
