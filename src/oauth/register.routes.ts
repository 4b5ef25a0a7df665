import { Elysia } from 'elysia'
import { bearerToken } from '../auth/auth.service.ts'
import { hashToken } from '../auth/token.ts'
import { nowSeconds } from '../db/index.ts'
import type { OAuthClientRow } from '../db/schema.ts'
import type { AppDeps } from '../deps.ts'
import { RateLimiter } from '../http/rate-limit.ts'
import { currentRequestContext } from '../ops/request-context.ts'
import { findDefaultOrganization } from '../orgs/org.repository.ts'
import { findSetting } from '../settings/settings.repository.ts'
import { parseClientMetadata } from './client-metadata.ts'
import { deleteClient, findClientByRegistrationToken, listClientSecrets, updateClient } from './client.repository.ts'
import { createClientSecret, grantTypesOf, metadataColumns, redirectUrisOf, registerClient } from './client.service.ts'
import { OAuthError } from './errors.ts'
import { CORS_HEADERS, handleOAuth, oauthJson, preflight, withHeaders } from './http.ts'

export const DYNAMIC_REGISTRATION_SETTING = 'oauth.dynamic_registration'
const MAX_REGISTRATION_BYTES = 16 * 1024

export async function isDynamicRegistrationEnabled(deps: Pick<AppDeps, 'db'>): Promise<boolean> {
  return (await findSetting(deps.db, DYNAMIC_REGISTRATION_SETTING)) !== 'disabled'
}

/** RFC 7591 §3.2.1 / RFC 7592 §3: the client's metadata as registered. */
function registrationResponse(config: AppDeps['config'], client: OAuthClientRow, extra: Record<string, unknown> = {}) {
  return {
    client_id: client.id,
    client_id_issued_at: client.created_at,
    client_name: client.name,
    redirect_uris: redirectUrisOf(client),
    grant_types: grantTypesOf(client),
    response_types: ['code'],
    token_endpoint_auth_method: client.token_endpoint_auth_method,
    ...(client.scope ? { scope: client.scope } : {}),
    ...(client.client_uri ? { client_uri: client.client_uri } : {}),
    ...(client.logo_uri ? { logo_uri: client.logo_uri } : {}),
    ...(client.software_id ? { software_id: client.software_id } : {}),
    ...(client.software_version ? { software_version: client.software_version } : {}),
    registration_client_uri: `${config.publicUrl}/oauth2/register/${encodeURIComponent(client.id)}`,
    ...extra,
  }
}

function checkBodySize(request: Request): void {
  if (Number(request.headers.get('content-length') ?? 0) > MAX_REGISTRATION_BYTES)
    throw new OAuthError(
      'invalid_client_metadata',
      `client metadata must be at most ${MAX_REGISTRATION_BYTES} bytes`,
      413,
    )
}

/** RFC 7592: the registration access token names the client it manages. */
async function clientOfRegistrationToken(deps: AppDeps, authorization: string | undefined, clientId: string) {
  const token = bearerToken(authorization)
  const client = token ? await findClientByRegistrationToken(deps.db, hashToken(token)) : undefined
  if (!client || client.id !== clientId)
    throw new OAuthError('invalid_token', 'a valid registration access token for this client is required', 401, {
      'www-authenticate': 'Bearer realm="gatehouse", error="invalid_token"',
    })
  return client
}

/** Dynamic client registration (RFC 7591) and its management (RFC 7592) at /oauth2/register. */
export const registerRoutes = (deps: AppDeps) => {
  const limiter = new RateLimiter(deps.config.registrationRateLimit, 3600_000)
  return new Elysia({ name: 'oauth.register', detail: { tags: ['oauth'] } })
    .options('/oauth2/register', preflight, { detail: { hide: true } })
    .options('/oauth2/register/:clientId', preflight, { detail: { hide: true } })
    .post(
      '/oauth2/register',
      ({ body, request }) =>
        handleOAuth(async () => {
          checkBodySize(request)
          if (!(await isDynamicRegistrationEnabled(deps)))
            throw new OAuthError(
              'access_denied',
              'dynamic client registration is turned off on this server; ask an admin to register the application',
              403,
            )
          const taken = limiter.take(currentRequestContext()?.clientIp ?? 'unknown')
          if (!taken.allowed)
            throw new OAuthError(
              'temporarily_unavailable',
              'too many registrations from this address; try again later',
              429,
              {
                'retry-after': String(taken.retryAfterSeconds),
              },
            )
          const metadata = parseClientMetadata(body)
          const organization = await findDefaultOrganization(deps.db)
          const { client, secret, registrationToken } = await registerClient(deps.db, metadata, organization.id)
          deps.logger.info('registered OAuth client', { client_id: client.id, client_name: client.name })
          return oauthJson(
            registrationResponse(deps.config, client, {
              registration_access_token: registrationToken,
              ...(secret ? { client_secret: secret, client_secret_expires_at: 0 } : {}),
            }),
            { status: 201, cors: true },
          )
        }, true),
      { detail: { summary: 'Register a client (RFC 7591); open unless an admin turned it off', security: [] } },
    )
    .get(
      '/oauth2/register/:clientId',
      ({ params, headers }) =>
        handleOAuth(async () => {
          const client = await clientOfRegistrationToken(deps, headers.authorization, params.clientId)
          return oauthJson(registrationResponse(deps.config, client), { cors: true })
        }, true),
      { detail: { summary: 'Read a registration (RFC 7592)', security: [] } },
    )
    .put(
      '/oauth2/register/:clientId',
      ({ params, headers, body, request }) =>
        handleOAuth(async () => {
          checkBodySize(request)
          const client = await clientOfRegistrationToken(deps, headers.authorization, params.clientId)
          const input = body as Record<string, unknown> | undefined
          if (input?.client_id !== undefined && input.client_id !== client.id)
            throw new OAuthError('invalid_client_metadata', 'client_id in the body does not match the URL')
          const metadata = parseClientMetadata(body)
          // One transaction: the update and the secret a newly confidential client needs land together.
          const { updated, secret } = await deps.db.transaction().execute(async (trx) => {
            const row = await updateClient(trx, client.id, { ...metadataColumns(metadata), updated_at: nowSeconds() })
            if (!row) return { updated: undefined, secret: undefined }
            // A client that became confidential needs a secret; it is returned this once.
            const needsSecret =
              metadata.tokenEndpointAuthMethod !== 'none' && (await listClientSecrets(trx, client.id)).length === 0
            return { updated: row, secret: needsSecret ? (await createClientSecret(trx, client.id)).secret : undefined }
          })
          if (!updated) throw new OAuthError('invalid_token', 'the client was deleted', 401)
          return oauthJson(
            registrationResponse(
              deps.config,
              updated,
              secret ? { client_secret: secret, client_secret_expires_at: 0 } : {},
            ),
            {
              cors: true,
            },
          )
        }, true),
      { detail: { summary: 'Update a registration (RFC 7592)', security: [] } },
    )
    .delete(
      '/oauth2/register/:clientId',
      ({ params, headers }) =>
        handleOAuth(async () => {
          const client = await clientOfRegistrationToken(deps, headers.authorization, params.clientId)
          await deleteClient(deps.db, client.id)
          deps.events.publish({ kind: 'credentials_revoked' })
          return withHeaders(new Response(null, { status: 204 }), { ...CORS_HEADERS, 'cache-control': 'no-store' })
        }, true),
      { detail: { summary: 'Delete a registration and everything it was granted (RFC 7592)', security: [] } },
    )
}
