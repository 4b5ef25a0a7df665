import type { Kysely } from 'kysely'
import type { Config } from '../config.ts'
import { nowSeconds } from '../db/index.ts'
import type { Database, UserRow } from '../db/schema.ts'
import { ApiError } from '../http/errors.ts'
import type { Logger } from '../ops/logger.ts'
import { verifyDummyPassword, verifyPassword } from '../runtime/password.ts'
import { findLiveAccessToken } from '../oauth/grant.repository.ts'
import { parseScope } from '../oauth/scope.ts'
import { findApiTokenUser, touchApiToken } from '../tokens/api-token.repository.ts'
import { updateUser } from '../users/user.repository.ts'
import { findUserByLogin } from '../users/user.repository.ts'
import {
  type AttemptCount,
  clearLoginFailures,
  releaseLoginAttempt,
  reserveLoginAttempt,
} from './login-throttle.repository.ts'
import { deleteSession, findSessionUser, insertSession, touchSession } from './session.repository.ts'
import type { EventBus } from '../events/bus.ts'
import type { PrincipalCache } from './principal-cache.ts'
import { generateToken, hashToken, tokenKindOf } from './token.ts'

export const CSRF_HEADER = 'x-csrf-token'

/** How stale `last_used_at` / `last_seen_at` may get before a request writes them again. */
const TOUCH_INTERVAL_SECONDS = 60

export interface Principal {
  user: UserRow
  via: 'session' | 'api_token' | 'oauth'
  /** The session's token hash, the API token's ID or the OAuth access token's hash. */
  credentialId: string
  /** When the credential expires (unix seconds), or null when it does not. */
  expiresAt: number | null
  /** For OAuth access tokens only: what the token may do, where, and for which client. */
  oauth?: { scopes: string[]; audience: string; clientId: string }
}

export interface AuthDeps {
  db: Kysely<Database>
  config: Config
  logger: Logger
}

/**
 * Resolves a presented session or API token to its user. Every call reads the database, so a
 * suspension, logout or revocation takes effect on the very next request.
 */
export async function authenticateToken(deps: AuthDeps, token: string): Promise<Principal | undefined> {
  const now = nowSeconds()
  const tokenHash = hashToken(token)
  const kind = tokenKindOf(token)
  if (kind === 'session') {
    const found = await findSessionUser(deps.db, tokenHash, now)
    if (!found) return undefined
    if (found.lastUsedAt < now - TOUCH_INTERVAL_SECONDS)
      recordActivity(deps, found.user.id, () => touchSession(deps.db, tokenHash, now))
    return { user: found.user, via: 'session', credentialId: tokenHash, expiresAt: found.expiresAt }
  }
  if (kind === 'oauthAccess') {
    const found = await findLiveAccessToken(deps.db, tokenHash, now)
    if (!found) return undefined
    return {
      user: found.user,
      via: 'oauth',
      credentialId: tokenHash,
      expiresAt: found.token.expires_at,
      oauth: { scopes: parseScope(found.token.scope), audience: found.token.audience, clientId: found.token.client_id },
    }
  }
  if (kind === 'apiToken') {
    const found = await findApiTokenUser(deps.db, tokenHash, now)
    if (!found) return undefined
    if ((found.lastUsedAt ?? 0) < now - TOUCH_INTERVAL_SECONDS)
      recordActivity(deps, found.user.id, () => touchApiToken(deps.db, found.tokenId, now))
    return { user: found.user, via: 'api_token', credentialId: found.tokenId, expiresAt: found.expiresAt }
  }
  return undefined
}

/**
 * `authenticateToken` through the app's principal cache: a hash and a map lookup when warm.
 * Revocations clear the cache through the change feed, on every replica it reaches; elsewhere
 * within its TTL.
 */
export async function authenticateTokenCached(
  deps: AuthDeps & { principalCache: PrincipalCache },
  token: string,
): Promise<Principal | undefined> {
  const { principalCache } = deps
  const tokenHash = hashToken(token)
  const cached = principalCache.get(tokenHash)
  if (cached) return cached
  const snapshot = principalCache.snapshot()
  const principal = await authenticateToken(deps, token)
  if (principal)
    principalCache.set(
      tokenHash,
      principal,
      principal.expiresAt === null ? Number.POSITIVE_INFINITY : principal.expiresAt * 1000,
      snapshot,
    )
  return principal
}

/** Last-use bookkeeping happens off the request path; a failure is logged, never surfaced. */
function recordActivity(deps: AuthDeps, userId: string, touchCredential: () => Promise<void>): void {
  const now = nowSeconds()
  Promise.all([touchCredential(), updateUser(deps.db, userId, { last_seen_at: now })]).catch((error) =>
    deps.logger.warn('could not record activity', { user_id: userId, error }),
  )
}

/** The bearer token of an `Authorization` header, if it carries one. */
export function bearerToken(authorization: string | undefined | null): string | undefined {
  if (!authorization) return undefined
  const [scheme, token] = authorization.trim().split(/\s+/, 2)
  return scheme?.toLowerCase() === 'bearer' && token ? token : undefined
}

/** The credential a request presents: a bearer token wins over the session cookie. */
export function presentedCredential(
  authorization: string | undefined | null,
  sessionCookie: unknown,
): { token: string; viaCookie: boolean } | undefined {
  const bearer = bearerToken(authorization)
  if (bearer) return { token: bearer, viaCookie: false }
  if (typeof sessionCookie === 'string' && sessionCookie) return { token: sessionCookie, viaCookie: true }
  return undefined
}

/** The CSRF token of a session: derived from it, so it needs no storage and dies with it. */
export function csrfTokenFor(sessionToken: string): string {
  return hashToken(`csrf:${sessionToken}`)
}

function throwIfThrottled(count: AttemptCount, limit: number, now: number, windowSeconds: number): void {
  if (count.failures <= limit) return
  const retryAfter = Math.max(1, count.window_started_at + windowSeconds - now)
  throw new ApiError(429, 'Too many failed login attempts; try again later', undefined, {
    'retry-after': String(retryAfter),
  })
}

export interface LoginResult {
  sessionToken: string
  csrfToken: string
  expiresAt: number
  user: UserRow
}

/**
 * Password login. Attempts are counted per account (whichever of email or username was typed)
 * and per client address in the database, so every process sees them. Each attempt is reserved
 * before the password is checked, so simultaneous guesses count too; past the limit, attempts
 * wait out the window with 429. Unknown accounts are counted by the login string and cost the
 * same time as known ones.
 */
export async function loginWithPassword(
  deps: AuthDeps,
  input: { login: string; password: string; ip: string; userAgent: string | null },
): Promise<LoginResult> {
  const { db, config } = deps
  if (!config.passwordLogin)
    throw new ApiError(403, 'Password sign-in is turned off here; sign in with your identity provider')
  const now = nowSeconds()
  const user = await findUserByLogin(db, input.login)
  const accountKey = user ? `user:${user.id}` : `login:${input.login.trim().toLowerCase()}`
  const addressKey = `ip:${input.ip}`
  // The address is counted first: a client past its limit reserves no account slot, so one
  // address spraying made-up names neither fills the table nor locks anyone out.
  const address = await reserveLoginAttempt(db, addressKey, now, config.loginWindowSeconds)
  throwIfThrottled(address, config.loginMaxFailures * 4, now, config.loginWindowSeconds)
  const account = await reserveLoginAttempt(db, accountKey, now, config.loginWindowSeconds)
  throwIfThrottled(account, config.loginMaxFailures, now, config.loginWindowSeconds)

  const valid = user?.password_hash
    ? await verifyPassword(input.password, user.password_hash)
    : (await verifyDummyPassword(input.password), false)
  if (!user || !valid) throw new ApiError(401, 'Incorrect email/username or password')
  if (user.status !== 'active') throw new ApiError(403, 'This account is suspended')
  await clearLoginFailures(db, accountKey)
  await releaseLoginAttempt(db, addressKey)
  return startSession(deps, user, input)
}

/** A new session for a user who proved who they are (a password, an identity provider). */
export async function startSession(
  deps: AuthDeps,
  user: UserRow,
  client: { ip: string; userAgent: string | null },
): Promise<LoginResult> {
  const now = nowSeconds()
  const sessionToken = generateToken('session')
  const expiresAt = now + deps.config.sessionTtlSeconds
  await insertSession(deps.db, {
    token_hash: hashToken(sessionToken),
    user_id: user.id,
    created_at: now,
    expires_at: expiresAt,
    last_used_at: now,
    ip: client.ip,
    user_agent: client.userAgent?.slice(0, 512) ?? null,
  })
  const seen = await updateUser(deps.db, user.id, { last_seen_at: now })
  return { sessionToken, csrfToken: csrfTokenFor(sessionToken), expiresAt, user: seen ?? user }
}

export async function logout(deps: { db: Kysely<Database>; events: EventBus }, principal: Principal): Promise<void> {
  if (principal.via !== 'session') return
  await deleteSession(deps.db, principal.credentialId)
  deps.events.publish({ kind: 'credentials_revoked' })
}
