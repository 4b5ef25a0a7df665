import { hmac } from '@oslojs/crypto/hmac'
import { SHA256 } from '@oslojs/crypto/sha2'
import { encodeHexLowerCase } from '@oslojs/encoding'
import type { Kysely } from 'kysely'
import { generateToken, hashToken } from '../auth/token.ts'
import type { Config } from '../config.ts'
import { nowSeconds } from '../db/index.ts'
import type { Database, OAuthClientRow, UserRow } from '../db/schema.ts'
import { findClientById } from './client.repository.ts'
import { redirectUrisOf, scopeLimitOf } from './client.service.ts'
import { OAuthError } from './errors.ts'
import { findConsent, insertAuthorizationCode, upsertConsent } from './grant.repository.ts'
import { isMetadataDocumentClientId, type MetadataDocumentResolver } from './metadata-document.ts'
import { isValidS256Challenge } from './pkce.ts'
import { findMatchingRedirectUri, isLoopbackRedirect } from './redirect-uri.ts'
import { resolveResource } from './resource.ts'
import { formatScope, narrowScopes, parseScope, type Scope } from './scope.ts'

const CODE_TTL_SECONDS = 300

export interface AuthorizeDeps {
  db: Kysely<Database>
  config: Config
  metadataDocuments: MetadataDocumentResolver
}

/** An error that must not be sent to the redirect URI because it is not trusted (yet): shown as a page. */
export class AuthorizePageError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
    this.name = 'AuthorizePageError'
  }
}

/** An error the client hears about through its (validated) redirect URI. */
export class AuthorizeRedirectError extends Error {
  constructor(
    readonly redirectUri: string,
    readonly error: string,
    readonly description: string,
    readonly state: string | undefined,
  ) {
    super(description)
    this.name = 'AuthorizeRedirectError'
  }
}

export interface AuthorizeRequest {
  client: OAuthClientRow
  /** The redirect URI as presented (a loopback one may differ from the registered one in port). */
  redirectUri: string
  /** The registered redirect URI it matched; consent is remembered against this one. */
  registeredRedirectUri: string
  state: string | undefined
  requestedScopes: string[]
  resource: string
  codeChallenge: string
}

type Params = Record<string, string | undefined>

/**
 * Finds a registered client, or one named by its metadata document URL (fetched, checked and
 * stored by the resolver). A refused document is a page: its redirect URIs are not trusted.
 */
async function resolveClient(deps: AuthorizeDeps, clientId: string): Promise<OAuthClientRow | undefined> {
  if (!isMetadataDocumentClientId(clientId)) return findClientById(deps.db, clientId)
  try {
    return await deps.metadataDocuments.resolveClient(clientId)
  } catch (error) {
    if (error instanceof OAuthError)
      throw new AuthorizePageError(error.status === 403 || error.status === 429 ? error.status : 400, error.description)
    throw error
  }
}

/**
 * Validates an authorization request in the order OAuth 2.1 §4.1.2.1 requires: the client and
 * its redirect URI first, and until both are trusted every error is a page, never a redirect
 * (an open redirector otherwise). After that, errors go back to the client with its `state`.
 */
export async function validateAuthorizeRequest(
  deps: AuthorizeDeps,
  params: Params,
  repeated: string[] = [],
): Promise<AuthorizeRequest> {
  // RFC 6749 §3.1: parameters must not repeat. Until client and redirect URI are settled the
  // answer is a page; a repeat of anything else goes back to the client below.
  for (const name of ['client_id', 'redirect_uri'])
    if (repeated.includes(name)) throw new AuthorizePageError(400, `The request gives ${name} more than once.`)
  const clientId = params.client_id
  if (!clientId) throw new AuthorizePageError(400, 'The request has no client_id.')
  const client = await resolveClient(deps, clientId)
  if (!client) throw new AuthorizePageError(400, 'The application (client_id) is not registered with this server.')

  const registered = redirectUrisOf(client)
  let redirectUri = params.redirect_uri
  let registeredRedirectUri: string | undefined
  if (redirectUri === undefined || redirectUri === '') {
    if (registered.length !== 1)
      throw new AuthorizePageError(
        400,
        'The request has no redirect_uri, and the application registered more than one.',
      )
    redirectUri = registeredRedirectUri = registered[0]
  } else {
    registeredRedirectUri = findMatchingRedirectUri(registered, redirectUri)
    if (!registeredRedirectUri)
      throw new AuthorizePageError(
        400,
        'The redirect_uri does not match any redirect URI registered for this application.',
      )
  }

  const state = params.state
  const fail = (error: string, description: string) =>
    new AuthorizeRedirectError(redirectUri!, error, description, state)
  if (repeated.length > 0) throw fail('invalid_request', `parameters must not repeat: ${repeated.join(', ')}`)
  if (params.response_type !== 'code') throw fail('unsupported_response_type', 'response_type must be code')
  if (!params.code_challenge) throw fail('invalid_request', 'code_challenge is required (PKCE with S256)')
  if (params.code_challenge_method !== 'S256')
    throw fail('invalid_request', 'code_challenge_method must be S256; plain is not supported')
  if (!isValidS256Challenge(params.code_challenge))
    throw fail('invalid_request', 'code_challenge must be 43 base64url characters (an S256 hash)')
  let resource: string
  try {
    resource = resolveResource(deps.config.publicUrl, params.resource)
  } catch (error) {
    if (error instanceof OAuthError) throw fail(error.error, error.description)
    throw error
  }
  return {
    client,
    redirectUri,
    registeredRedirectUri,
    state,
    requestedScopes: parseScope(params.scope),
    resource,
    codeChallenge: params.code_challenge,
  }
}

/** The scopes this user may grant this client for the request; none at all is `invalid_scope`. */
export function scopesFor(request: AuthorizeRequest, user: UserRow): Scope[] {
  const scopes = narrowScopes(request.requestedScopes, { role: user.role, clientScopes: scopeLimitOf(request.client) })
  if (scopes.length === 0)
    throw new AuthorizeRedirectError(
      request.redirectUri,
      'invalid_scope',
      'none of the requested scopes can be granted',
      request.state,
    )
  return scopes
}

/**
 * Whether an earlier consent may approve this request without showing the page. Never for a
 * public client redirecting to loopback: any local program can claim such a client's ID and
 * listen on a port of its own, so the user must see what asks (RFC 8252 §8.6).
 */
export async function hasConsent(
  db: Kysely<Database>,
  request: AuthorizeRequest,
  user: UserRow,
  scopes: Scope[],
): Promise<boolean> {
  if (request.client.token_endpoint_auth_method === 'none' && isLoopbackRedirect(new URL(request.redirectUri)))
    return false
  const consent = await findConsent(db, user.id, request.client.id, request.registeredRedirectUri)
  if (!consent) return false
  const consented = parseScope(consent.scope)
  return scopes.every((scope) => consented.includes(scope))
}

/**
 * The value the consent form carries: an HMAC, keyed by the session token, of exactly the
 * request the page showed (client, redirect URI, scopes, resource, PKCE challenge, state). A form
 * taken from one client's page cannot approve another client's parameters, and it dies with the
 * session. Needs no storage, so any replica checks it.
 */
export function consentTokenFor(sessionToken: string, request: AuthorizeRequest, scopes: Scope[]): string {
  const shown = [
    request.client.id,
    request.redirectUri,
    formatScope(scopes),
    request.resource,
    request.codeChallenge,
    request.state ?? '',
  ]
  const encoder = new TextEncoder()
  return encodeHexLowerCase(
    hmac(SHA256, encoder.encode(`consent:${sessionToken}`), encoder.encode(JSON.stringify(shown))),
  )
}

/** Records consent (widened to include earlier scopes) and issues a single-use code. Returns the redirect. */
export async function approve(
  deps: AuthorizeDeps,
  request: AuthorizeRequest,
  user: UserRow,
  scopes: Scope[],
): Promise<string> {
  const now = nowSeconds()
  const code = generateToken('oauthCode')
  const previous = await findConsent(deps.db, user.id, request.client.id, request.registeredRedirectUri)
  const consented = [...new Set([...parseScope(previous?.scope), ...scopes])]
  await deps.db.transaction().execute(async (trx) => {
    await upsertConsent(trx, {
      user_id: user.id,
      client_id: request.client.id,
      redirect_uri: request.registeredRedirectUri,
      scope: formatScope(consented),
      created_at: now,
    })
    await insertAuthorizationCode(trx, {
      code_hash: hashToken(code),
      client_id: request.client.id,
      user_id: user.id,
      redirect_uri: request.redirectUri,
      scope: formatScope(scopes),
      resource: request.resource,
      code_challenge: request.codeChallenge,
      created_at: now,
      expires_at: now + CODE_TTL_SECONDS,
      used_at: null,
      grant_id: null,
    })
  })
  return authorizationRedirect(deps.config, request.redirectUri, { code, state: request.state })
}

/** The redirect back to the client, with `iss` (RFC 9207) on successes and errors alike. */
export function authorizationRedirect(
  config: Config,
  redirectUri: string,
  params: Record<string, string | undefined>,
): string {
  const url = new URL(redirectUri)
  for (const [name, value] of Object.entries({ ...params, iss: config.publicUrl }))
    if (value !== undefined) url.searchParams.set(name, value)
  return url.href
}
