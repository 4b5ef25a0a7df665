import { sql, type Kysely } from 'kysely'
import type { EventBus } from '../events/bus.ts'
import { generateToken, hashToken } from '../auth/token.ts'
import { nowSeconds } from '../db/index.ts'
import type { Database, OAuthClientRow, OAuthGrantRow } from '../db/schema.ts'
import type { Config } from '../config.ts'
import { touchClient } from './client.repository.ts'
import { scopeLimitOf } from './client.service.ts'
import { OAuthError } from './errors.ts'
import {
  claimAuthorizationCode,
  claimRefreshToken,
  deleteAccessTokensOfGrant,
  findAuthorizationCode,
  findGrant,
  findRefreshToken,
  findRefreshTokenSuccessors,
  insertAccessToken,
  insertGrant,
  insertRefreshToken,
  revokeGrant,
  supersedeUnusedRefreshTokens,
} from './grant.repository.ts'
import { isValidCodeVerifier, verifyS256Challenge } from './pkce.ts'
import { redirectUriMatches } from './redirect-uri.ts'
import { resolveResource } from './resource.ts'
import { findUserById } from '../users/user.repository.ts'
import { formatScope, narrowScopes, parseScope } from './scope.ts'

export interface TokenDeps {
  db: Kysely<Database>
  config: Config
  /** Told when a replayed code or refresh token revokes what it issued. */
  events: EventBus
}

export interface TokenResponse {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
  scope: string
  refresh_token?: string
}

type Form = Record<string, string | undefined>

/** How stale a client's `last_used_at` may get before an exchange writes it again. */
const TOUCH_INTERVAL_SECONDS = 60

function clientGetsRefreshTokens(client: OAuthClientRow, scopes: string[]): boolean {
  return (JSON.parse(client.grant_types) as string[]).includes('refresh_token') || scopes.includes('offline_access')
}

/**
 * Takes the grant's row lock (Postgres) or the database write lock (SQLite) before touching
 * its tokens, so two processes refreshing one grant at once are serialised.
 */
async function lockGrant(trx: Kysely<Database>, grantId: string): Promise<OAuthGrantRow | undefined> {
  await sql`UPDATE oauth_grants SET revoked_at = revoked_at WHERE id = ${grantId}`.execute(trx)
  return findGrant(trx, grantId)
}

async function issueTokens(
  trx: Kysely<Database>,
  config: Config,
  grant: OAuthGrantRow,
  client: OAuthClientRow,
  scopes: string[],
  now: number,
  parentHash: string | null = null,
): Promise<TokenResponse> {
  const accessToken = generateToken('oauthAccess')
  await insertAccessToken(trx, {
    token_hash: hashToken(accessToken),
    grant_id: grant.id,
    client_id: client.id,
    user_id: grant.user_id,
    scope: formatScope(scopes),
    audience: grant.resource,
    created_at: now,
    expires_at: now + config.accessTokenTtlSeconds,
  })
  const response: TokenResponse = {
    access_token: accessToken,
    token_type: 'Bearer',
    expires_in: config.accessTokenTtlSeconds,
    scope: formatScope(scopes),
  }
  if (clientGetsRefreshTokens(client, parseScope(grant.scope))) {
    const refreshToken = generateToken('oauthRefresh')
    await insertRefreshToken(trx, {
      token_hash: hashToken(refreshToken),
      grant_id: grant.id,
      created_at: now,
      expires_at: now + config.refreshTokenTtlSeconds,
      used_at: null,
      parent_hash: parentHash,
      superseded_at: null,
    })
    response.refresh_token = refreshToken
  }
  return response
}

/**
 * RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6) and resource binding (RFC 8707). A code works once:
 * a second redemption, even a concurrent one on another process, revokes what the first issued
 * (OAuth 2.1 §4.1.3).
 */
/** Revokes a grant (its tokens stop working) and tells every cache that resolved them. */
async function revokeGrantAndTell(deps: TokenDeps, grantId: string, now: number): Promise<void> {
  await deps.db.transaction().execute((trx) => revokeGrant(trx, grantId, now))
  deps.events.publish({ kind: 'credentials_revoked' })
}

export async function exchangeAuthorizationCode(
  deps: TokenDeps,
  client: OAuthClientRow,
  form: Form,
): Promise<TokenResponse> {
  const { db, config } = deps
  if (!form.code) throw new OAuthError('invalid_request', 'code is required')
  if (!form.code_verifier) throw new OAuthError('invalid_request', 'code_verifier is required (PKCE)')
  if (!isValidCodeVerifier(form.code_verifier))
    throw new OAuthError(
      'invalid_request',
      'code_verifier must be 43-128 characters of A-Z, a-z, 0-9, "-", ".", "_", "~"',
    )

  const now = nowSeconds()
  const codeHash = hashToken(form.code)
  const code = await findAuthorizationCode(db, codeHash)
  if (!code || code.client_id !== client.id) throw new OAuthError('invalid_grant', 'the authorization code is invalid')
  if (code.used_at !== null) {
    if (code.grant_id) await revokeGrantAndTell(deps, code.grant_id, now)
    throw new OAuthError('invalid_grant', 'the authorization code was already used; the tokens it issued are revoked')
  }
  if (code.expires_at <= now) throw new OAuthError('invalid_grant', 'the authorization code has expired')
  if (form.redirect_uri !== undefined && !redirectUriMatches(code.redirect_uri, form.redirect_uri))
    throw new OAuthError('invalid_grant', 'redirect_uri does not match the one used in the authorization request')
  if (form.resource !== undefined && resolveResource(config.publicUrl, form.resource) !== code.resource)
    throw new OAuthError('invalid_target', 'resource does not match the one authorized')
  if (!verifyS256Challenge(form.code_verifier, code.code_challenge))
    throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge')
  const user = await findUserById(db, code.user_id)
  if (!user || user.status !== 'active')
    throw new OAuthError('invalid_grant', 'the user who authorized this code is suspended')

  const grant: OAuthGrantRow = {
    id: crypto.randomUUID(),
    client_id: client.id,
    user_id: code.user_id,
    scope: code.scope,
    resource: code.resource,
    created_at: now,
    revoked_at: null,
  }
  const lostRace = new Error('code claimed by another redemption')
  try {
    const response = await db.transaction().execute(async (trx) => {
      await insertGrant(trx, grant)
      // Throwing rolls the new grant back, so a lost race leaves nothing behind.
      if (!(await claimAuthorizationCode(trx, codeHash, grant.id, now))) throw lostRace
      return issueTokens(trx, config, grant, client, parseScope(code.scope), now)
    })
    if ((client.last_used_at ?? 0) < now - TOUCH_INTERVAL_SECONDS) touchClient(db, client.id, now).catch(() => {})
    return response
  } catch (error) {
    if (error !== lostRace) throw error
    // Lost a race with another redemption of the same code: that one is a replay too.
    const used = await findAuthorizationCode(db, codeHash)
    if (used?.grant_id) await revokeGrantAndTell(deps, used.grant_id, now)
    throw new OAuthError('invalid_grant', 'the authorization code was already used; the tokens it issued are revoked')
  }
}

/**
 * True when a refresh token that could not be claimed is a lost-response retry: used within
 * the grace window, not superseded, and nothing issued for it has been used or superseded.
 */
async function isRetryWithinGrace(
  trx: Kysely<Database>,
  grantId: string,
  tokenHash: string,
  now: number,
  graceSeconds: number,
): Promise<boolean> {
  const token = await findRefreshToken(trx, tokenHash)
  if (!token || token.used_at === null || token.superseded_at !== null || now - token.used_at > graceSeconds)
    return false
  const successors = await findRefreshTokenSuccessors(trx, grantId, tokenHash)
  return successors.every((successor) => successor.used_at === null)
}

/**
 * RFC 6749 §6 with rotation (OAuth 2.1 §4.3.1). The refresh token is claimed with one
 * conditional UPDATE under the grant's lock, and each new token records the one it was issued
 * for. A client that lost the response may present a just-used token again within the grace
 * window, but only while the token issued for it is still unused: it then gets a fresh pair and
 * the unused one is marked superseded. Anything else is reuse and revokes the whole grant: a
 * token whose successor has been used, a superseded token, or a used one after the window
 * (OAuth 2.0 Security BCP §4.14.2). So a replayer racing the client cannot keep the grant.
 */
export async function refreshTokens(deps: TokenDeps, client: OAuthClientRow, form: Form): Promise<TokenResponse> {
  const { db, config } = deps
  if (!form.refresh_token) throw new OAuthError('invalid_request', 'refresh_token is required')
  const now = nowSeconds()
  const tokenHash = hashToken(form.refresh_token)
  const token = await findRefreshToken(db, tokenHash)
  const grant = token ? await findGrant(db, token.grant_id) : undefined
  if (!token || !grant || grant.client_id !== client.id || grant.revoked_at !== null)
    throw new OAuthError('invalid_grant', 'the refresh token is invalid or revoked')
  if (token.expires_at <= now) throw new OAuthError('invalid_grant', 'the refresh token has expired')

  const user = await findUserById(db, grant.user_id)
  if (!user || user.status !== 'active') throw new OAuthError('invalid_grant', 'the user of this grant is suspended')

  const granted = parseScope(grant.scope)
  const requested = form.scope !== undefined ? parseScope(form.scope) : granted
  const extra = requested.filter((scope) => !granted.includes(scope))
  if (extra.length > 0) throw new OAuthError('invalid_scope', `scope exceeds the original grant: ${extra.join(' ')}`)
  // A scope never outlives the role that allowed it: a demoted admin's refresh loses mcp:admin.
  const scopes = narrowScopes(requested.length > 0 ? requested : granted, {
    role: user.role,
    clientScopes: scopeLimitOf(client),
  })
  if (scopes.length === 0) throw new OAuthError('invalid_scope', 'none of the granted scopes is allowed any more')
  if (form.resource !== undefined && resolveResource(config.publicUrl, form.resource) !== grant.resource)
    throw new OAuthError('invalid_target', 'resource does not match the one authorized')

  let revokedAccessTokens = false
  return db
    .transaction()
    .execute(async (trx) => {
      const locked = await lockGrant(trx, grant.id)
      if (!locked || locked.revoked_at !== null)
        throw new OAuthError('invalid_grant', 'the refresh token is invalid or revoked')
      if (!(await claimRefreshToken(trx, tokenHash, now))) {
        if (!(await isRetryWithinGrace(trx, grant.id, tokenHash, now, config.refreshGraceSeconds))) {
          await revokeGrant(trx, grant.id, now)
          revokedAccessTokens = true
          return 'reused' as const
        }
        // The client lost the first answer: the access token it never received goes too.
        await deleteAccessTokensOfGrant(trx, grant.id)
        revokedAccessTokens = true
      }
      await supersedeUnusedRefreshTokens(trx, grant.id, now)
      return issueTokens(trx, config, locked, client, scopes, now, tokenHash)
    })
    .then((result) => {
      if (revokedAccessTokens) deps.events.publish({ kind: 'credentials_revoked' })
      if (result === 'reused')
        throw new OAuthError('invalid_grant', 'the refresh token was already used; the grant is revoked')
      return result
    })
}
