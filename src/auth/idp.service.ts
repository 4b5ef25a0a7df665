import type { Kysely } from 'kysely'
import type { Config } from '../config.ts'
import { nowSeconds } from '../db/index.ts'
import { refreshUnderLease, shareInFlight } from '../db/refresh-lease.ts'
import type { Database, UserLinkRow, UserRow } from '../db/schema.ts'
import { ApiError } from '../http/errors.ts'
import type { Logger } from '../ops/logger.ts'
import type { Keyring } from '../secrets/keyring.ts'
import { openValue, sealValue } from '../secrets/sealed-column.ts'
import { countUsers, findUserById, updateUser } from '../users/user.repository.ts'
import { createUser } from '../users/user.service.ts'
import type { IdentityProfile, LoginProvider, ProviderId, ProviderTokens } from './identity-providers.ts'
import {
  claimLinkLease,
  findLink,
  findLinkBySubject,
  updateLinkUnderLease,
  upsertLink,
} from './user-link.repository.ts'

export interface IdpDeps {
  db: Kysely<Database>
  config: Config
  logger: Logger
  keyring: Keyring
  identityProviders: Map<ProviderId, LoginProvider>
}

const linkBinding = (userId: string, provider: ProviderId, column: 'access_token' | 'refresh_token') => ({
  table: 'user_links',
  column,
  rowKey: `${userId}/${provider}`,
})

async function findUserByEmail(db: Kysely<Database>, email: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst()
}

/** A username from the provider's (or the email's local part), made valid and unique. */
async function createUserFor(db: Kysely<Database>, profile: IdentityProfile): Promise<UserRow> {
  const base =
    (profile.username ?? profile.email.split('@')[0])
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '')
      .slice(0, 24) || 'user'
  for (let attempt = 0; attempt < 6; attempt++) {
    const username = attempt === 0 ? base : `${base}-${crypto.randomUUID().slice(0, 6)}`
    try {
      return await createUser(db, { email: profile.email, username, display_name: profile.name, role: 'member' })
    } catch (error) {
      // Taken meanwhile: an email conflict means the account exists after all, so stop.
      if (!(error instanceof ApiError) || error.status !== 409 || !/username/.test(error.message)) throw error
    }
  }
  throw new ApiError(409, 'Could not find a free username for this account; ask an admin to create it')
}

/**
 * Who a provider's sign-in is: the user linked to its subject; else the user whose email matches
 * a verified email (an unverified one links nothing); else, when sign-ups are on, a new member of
 * the default organization. A suspended user is refused. The link (tokens sealed, claims) is
 * rewritten at every sign-in.
 */
export async function signInWith(
  deps: IdpDeps,
  provider: LoginProvider,
  result: { profile: IdentityProfile; tokens: ProviderTokens },
): Promise<UserRow> {
  const { profile } = result
  const linked = await findLinkBySubject(deps.db, provider.id, profile.subject)
  let user = linked ? await findUserById(deps.db, linked.user_id) : undefined
  if (!user && profile.email) {
    const existing = await findUserByEmail(deps.db, profile.email)
    if (existing && !profile.emailVerified)
      throw new ApiError(
        403,
        `Your email at ${provider.displayName} is not verified, so it cannot sign you in to the account with that address; verify it there first`,
      )
    user = existing
  }
  if (!user) {
    // Until the owner exists, sign-ups would let anyone at the provider take the first account.
    if ((await countUsers(deps.db)) === 0)
      throw new ApiError(403, 'Gatehouse has no owner yet; create the first user before signing in with a provider')
    if (!deps.config.oidcAllowSignups)
      throw new ApiError(403, `No Gatehouse account belongs to ${profile.email || 'you'}; ask an admin to create one`)
    if (!profile.email || !profile.emailVerified)
      throw new ApiError(403, `${provider.displayName} did not give a verified email address, which an account needs`)
    user = await createUserFor(deps.db, profile)
    deps.logger.info('user signed up through an identity provider', { user_id: user.id, provider: provider.id })
  }
  if (user.status !== 'active') throw new ApiError(403, 'This account is suspended')
  await storeLink(deps, user.id, provider.id, result)
  return (await updateUser(deps.db, user.id, { identity_provider: provider.id })) ?? user
}

async function storeLink(
  deps: IdpDeps,
  userId: string,
  provider: ProviderId,
  { profile, tokens }: { profile: IdentityProfile; tokens: ProviderTokens },
): Promise<void> {
  const now = nowSeconds()
  await upsertLink(deps.db, {
    user_id: userId,
    provider,
    subject: profile.subject,
    email: profile.email,
    access_token: await sealValue(deps.keyring, linkBinding(userId, provider, 'access_token'), tokens.accessToken),
    refresh_token: tokens.refreshToken
      ? await sealValue(deps.keyring, linkBinding(userId, provider, 'refresh_token'), tokens.refreshToken)
      : null,
    expires_at: tokens.expiresAt ?? null,
    issued_at: now,
    claims: JSON.stringify(profile.claims),
    created_at: now,
    updated_at: now,
  })
}

/**
 * When a token should be renewed before use: 10 minutes before expiry (the seed's margin), or
 * half-way through for tokens that live less than 20 minutes, which 10 minutes would renew at once.
 */
export function shouldRefreshLink(link: Pick<UserLinkRow, 'expires_at' | 'issued_at'>, now: number): boolean {
  if (link.expires_at === null) return false
  const lifetime = link.expires_at - link.issued_at
  const margin = lifetime < 1200 ? lifetime / 2 : 600
  return link.expires_at - margin <= now
}

/** A live OIDC link means the user can be sent upstream as themselves. */
export function isLiveLink(link: Pick<UserLinkRow, 'access_token' | 'expires_at' | 'refresh_token'>, now: number) {
  return (
    link.access_token !== null && (link.expires_at === null || link.expires_at > now || link.refresh_token !== null)
  )
}

const LEASE_SECONDS = 30
const WAIT_MS = 10_000
const inFlight = new Map<string, Promise<string | undefined>>()

/**
 * The user's OpenID Connect access token, for `user_oidc` upstreams (seed 003): renewed first when
 * `shouldRefreshLink` says so, one refresh at a time per user (shared in this process, a lease
 * across processes), never on the caller's abort signal so the rotated tokens are always stored.
 * No link, or a failed refresh, is `undefined`: the request goes without `Authorization` and the
 * upstream answers 401 itself, never an error here.
 */
export async function identityProviderAccessToken(deps: IdpDeps, userId: string): Promise<string | undefined> {
  const link = await findLink(deps.db, userId, 'oidc')
  if (!link?.access_token) return undefined
  if (!link.refresh_token || !shouldRefreshLink(link, nowSeconds()))
    return openValue(deps.keyring, linkBinding(userId, 'oidc', 'access_token'), link.access_token)
  return shareInFlight(inFlight, userId, async () => {
    const outcome = await refreshUnderLease({
      row: link,
      claim: (row, lease) => claimLinkLease(deps.db, row, lease),
      reread: () => findLink(deps.db, userId, 'oidc'),
      isNewer: (latest, row) => latest.access_token !== row.access_token,
      refresh: (row, leaseId) => refreshLinkUnderLease(deps, row, leaseId),
      leaseSeconds: LEASE_SECONDS,
      waitMs: WAIT_MS,
    })
    if (outcome.kind === 'refreshed') return outcome.value
    if (outcome.kind === 'stored' && outcome.row.access_token)
      return openValue(deps.keyring, linkBinding(userId, 'oidc', 'access_token'), outcome.row.access_token)
    return undefined
  })
}

async function refreshLinkUnderLease(deps: IdpDeps, link: UserLinkRow, leaseId: string): Promise<string | undefined> {
  const provider = deps.identityProviders.get('oidc')
  const release = () => updateLinkUnderLease(deps.db, link, leaseId, {})
  if (!provider) {
    await release()
    return undefined
  }
  let tokens: ProviderTokens
  try {
    const refreshToken = await openValue(
      deps.keyring,
      linkBinding(link.user_id, 'oidc', 'refresh_token'),
      link.refresh_token!,
    )
    tokens = await provider.refresh(refreshToken)
  } catch (error) {
    await release()
    deps.logger.warn('could not refresh the identity-provider token for an upstream request', {
      user_id: link.user_id,
      error: error instanceof Error ? error.name : 'unknown',
    })
    return undefined
  }
  const now = nowSeconds()
  await updateLinkUnderLease(deps.db, link, leaseId, {
    access_token: await sealValue(deps.keyring, linkBinding(link.user_id, 'oidc', 'access_token'), tokens.accessToken),
    refresh_token: tokens.refreshToken
      ? await sealValue(deps.keyring, linkBinding(link.user_id, 'oidc', 'refresh_token'), tokens.refreshToken)
      : link.refresh_token,
    expires_at: tokens.expiresAt ?? null,
    issued_at: now,
    updated_at: now,
  })
  deps.logger.info('refreshed the identity-provider token for an upstream request', { user_id: link.user_id })
  return tokens.accessToken
}
