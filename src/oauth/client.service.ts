import type { Kysely } from 'kysely'
import { displayPrefix, generateToken, hashToken } from '../auth/token.ts'
import { nowSeconds } from '../db/index.ts'
import type { Database, OAuthClientRow } from '../db/schema.ts'
import type { ClientMetadata } from './client-metadata.ts'
import {
  findClientById,
  findClientSecret,
  insertClient,
  insertClientSecret,
  touchClientSecret,
} from './client.repository.ts'
import { invalidClient, OAuthError } from './errors.ts'
import { parseScope } from './scope.ts'

export function isPublicClient(client: OAuthClientRow): boolean {
  return client.token_endpoint_auth_method === 'none'
}

/**
 * The scopes a client is limited to. Only an admin-managed app's scope is a limit: a client that
 * registered itself could as well register again asking for more, and MCP clients register with
 * the scope of their first request, which would otherwise make step-up impossible. Consent and the
 * user's role still bound what any client gets.
 */
export function scopeLimitOf(client: OAuthClientRow): string[] | undefined {
  return client.kind === 'managed' ? parseScope(client.scope) : undefined
}

export function redirectUrisOf(client: OAuthClientRow): string[] {
  return JSON.parse(client.redirect_uris) as string[]
}

export function grantTypesOf(client: OAuthClientRow): string[] {
  return JSON.parse(client.grant_types) as string[]
}

/** The columns client metadata is stored in (registration, RFC 7592 updates, managed apps). */
export function metadataColumns(metadata: ClientMetadata) {
  return {
    name: metadata.name,
    redirect_uris: JSON.stringify(metadata.redirectUris),
    grant_types: JSON.stringify(metadata.grantTypes),
    token_endpoint_auth_method: metadata.tokenEndpointAuthMethod,
    scope: metadata.scope,
    client_uri: metadata.clientUri,
    logo_uri: metadata.logoUri,
    software_id: metadata.softwareId,
    software_version: metadata.softwareVersion,
  }
}

export function metadataToRow(
  metadata: ClientMetadata,
  fields: { id: string; organizationId: string; kind: OAuthClientRow['kind']; createdBy: string | null; now: number },
): OAuthClientRow {
  return {
    id: fields.id,
    organization_id: fields.organizationId,
    kind: fields.kind,
    ...metadataColumns(metadata),
    registration_token_hash: null,
    created_by: fields.createdBy,
    created_at: fields.now,
    updated_at: fields.now,
    last_used_at: null,
  }
}

/** Creates a client secret; the plaintext is returned once and only its hash is kept. */
export async function createClientSecret(db: Kysely<Database>, clientId: string) {
  const secret = generateToken('clientSecret')
  const row = {
    id: crypto.randomUUID(),
    client_id: clientId,
    secret_hash: hashToken(secret),
    secret_prefix: displayPrefix(secret),
    created_at: nowSeconds(),
    last_used_at: null,
  }
  await insertClientSecret(db, row)
  return { secret, row }
}

export interface RegisteredClient {
  client: OAuthClientRow
  secret: string | undefined
  registrationToken: string
}

/**
 * RFC 7591 dynamic registration: a new client in the default organization, a secret for
 * confidential clients only, and a registration access token for RFC 7592 management.
 */
export async function registerClient(
  db: Kysely<Database>,
  metadata: ClientMetadata,
  organizationId: string,
): Promise<RegisteredClient> {
  const registrationToken = generateToken('registration')
  const client = {
    ...metadataToRow(metadata, {
      id: crypto.randomUUID(),
      organizationId,
      kind: 'dynamic',
      createdBy: null,
      now: nowSeconds(),
    }),
    registration_token_hash: hashToken(registrationToken),
  }
  const secret = await db.transaction().execute(async (trx) => {
    await insertClient(trx, client)
    if (metadata.tokenEndpointAuthMethod === 'none') return undefined
    return (await createClientSecret(trx, client.id)).secret
  })
  return { client, secret, registrationToken }
}

/** RFC 6749 §2.3.1: the Basic credentials are form-urlencoded before base64. */
function parseBasicAuthorization(header: string | undefined): { id: string; secret: string } | undefined {
  if (!header) return undefined
  const [scheme, value] = header.trim().split(/\s+/, 2)
  if (scheme?.toLowerCase() !== 'basic' || !value) return undefined
  let decoded: string
  try {
    decoded = atob(value)
  } catch {
    throw new OAuthError('invalid_request', 'the Basic authorization header is not valid base64')
  }
  const separator = decoded.indexOf(':')
  if (separator < 0) throw new OAuthError('invalid_request', 'the Basic authorization header has no client secret')
  try {
    return {
      id: decodeURIComponent(decoded.slice(0, separator).replaceAll('+', ' ')),
      secret: decodeURIComponent(decoded.slice(separator + 1).replaceAll('+', ' ')),
    }
  } catch {
    throw new OAuthError('invalid_request', 'the Basic authorization header is not form-urlencoded')
  }
}

/**
 * Authenticates the client at the token, revocation and introspection endpoints. Confidential
 * clients prove a secret, by Basic or in the body (both are accepted: the secret is what
 * matters); public clients only name themselves and must not send a secret.
 */
export async function authenticateClient(
  db: Kysely<Database>,
  form: Record<string, string | undefined>,
  authorization: string | undefined,
): Promise<OAuthClientRow> {
  const basic = parseBasicAuthorization(authorization)
  if (basic && form.client_id && form.client_id !== basic.id)
    throw new OAuthError('invalid_request', 'client_id in the body differs from the one in the Authorization header')
  if (basic && form.client_secret)
    throw new OAuthError('invalid_request', 'use one client authentication method, not two')
  const clientId = basic?.id ?? form.client_id
  if (!clientId) throw invalidClient('client authentication is required (client_id)', false)
  const client = await findClientById(db, clientId)
  if (!client) throw invalidClient('unknown client', Boolean(basic))
  const secret = basic?.secret ?? form.client_secret
  if (isPublicClient(client)) {
    if (secret) throw invalidClient('this is a public client: it has no secret', Boolean(basic))
    return client
  }
  if (!secret) throw invalidClient('this client must authenticate with its client secret', false)
  const found = await findClientSecret(db, client.id, hashToken(secret))
  if (!found) throw invalidClient('client authentication failed', Boolean(basic))
  const now = nowSeconds()
  if ((found.last_used_at ?? 0) < now - 60) touchClientSecret(db, found.id, now).catch(() => {})
  return client
}
