import type { Kysely, Transaction } from 'kysely'
import { formatScope, parseScope } from './scope.ts'
import type {
  Database,
  OAuthAccessTokenRow,
  OAuthAuthorizationCodeRow,
  OAuthGrantRow,
  OAuthRefreshTokenRow,
  UserRow,
} from '../db/schema.ts'

type Db = Kysely<Database> | Transaction<Database>

export async function insertAuthorizationCode(db: Db, row: OAuthAuthorizationCodeRow): Promise<void> {
  await db.insertInto('oauth_authorization_codes').values(row).execute()
}

export async function findAuthorizationCode(db: Db, codeHash: string): Promise<OAuthAuthorizationCodeRow | undefined> {
  return db.selectFrom('oauth_authorization_codes').selectAll().where('code_hash', '=', codeHash).executeTakeFirst()
}

/**
 * Marks a code used if nobody has; true only for the one caller that did. This single
 * conditional UPDATE is what makes a code single-use across processes.
 */
export async function claimAuthorizationCode(db: Db, codeHash: string, grantId: string, now: number): Promise<boolean> {
  const result = await db
    .updateTable('oauth_authorization_codes')
    .set({ used_at: now, grant_id: grantId })
    .where('code_hash', '=', codeHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

export async function deleteExpiredAuthorizationCodes(db: Db, before: number): Promise<void> {
  await db.deleteFrom('oauth_authorization_codes').where('expires_at', '<', before).execute()
}

export async function deleteExpiredTokens(db: Db, now: number): Promise<void> {
  await db.deleteFrom('oauth_access_tokens').where('expires_at', '<=', now).execute()
  await db.deleteFrom('oauth_refresh_tokens').where('expires_at', '<=', now).execute()
}

export async function insertGrant(db: Db, row: OAuthGrantRow): Promise<void> {
  await db.insertInto('oauth_grants').values(row).execute()
}

export async function findGrant(db: Db, id: string): Promise<OAuthGrantRow | undefined> {
  return db.selectFrom('oauth_grants').selectAll().where('id', '=', id).executeTakeFirst()
}

/** Ends a grant: every token it issued stops working at once. */
export async function revokeGrant(db: Db, id: string, now: number): Promise<void> {
  await db
    .updateTable('oauth_grants')
    .set({ revoked_at: now })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .execute()
  await db.deleteFrom('oauth_access_tokens').where('grant_id', '=', id).execute()
  await db.deleteFrom('oauth_refresh_tokens').where('grant_id', '=', id).execute()
}

export async function insertAccessToken(db: Db, row: OAuthAccessTokenRow): Promise<void> {
  await db.insertInto('oauth_access_tokens').values(row).execute()
}

export async function insertRefreshToken(db: Db, row: OAuthRefreshTokenRow): Promise<void> {
  await db.insertInto('oauth_refresh_tokens').values(row).execute()
}

export async function findRefreshToken(db: Db, tokenHash: string): Promise<OAuthRefreshTokenRow | undefined> {
  return db.selectFrom('oauth_refresh_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst()
}

/** Marks a refresh token used if nobody has; true only for the one caller that did. */
export async function claimRefreshToken(db: Db, tokenHash: string, now: number): Promise<boolean> {
  const result = await db
    .updateTable('oauth_refresh_tokens')
    .set({ used_at: now })
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .where('superseded_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

export async function deleteAccessTokensOfGrant(db: Db, grantId: string): Promise<void> {
  await db.deleteFrom('oauth_access_tokens').where('grant_id', '=', grantId).execute()
}

/** The refresh tokens issued for `parentHash`: its successors in the grant's lineage. */
export async function findRefreshTokenSuccessors(
  db: Db,
  grantId: string,
  parentHash: string,
): Promise<OAuthRefreshTokenRow[]> {
  return db
    .selectFrom('oauth_refresh_tokens')
    .selectAll()
    .where('grant_id', '=', grantId)
    .where('parent_hash', '=', parentHash)
    .execute()
}

/**
 * Marks a grant's unused refresh tokens superseded instead of deleting them, so one of them
 * presented later is recognised as reuse (and revokes the grant) rather than as unknown.
 */
export async function supersedeUnusedRefreshTokens(db: Db, grantId: string, now: number): Promise<void> {
  await db
    .updateTable('oauth_refresh_tokens')
    .set({ superseded_at: now })
    .where('grant_id', '=', grantId)
    .where('used_at', 'is', null)
    .where('superseded_at', 'is', null)
    .execute()
}

export type AccessTokenWithUser = { token: OAuthAccessTokenRow; user: UserRow }

/** A live access token of a live grant, with its active user, in one indexed lookup. */
export async function findLiveAccessToken(
  db: Db,
  tokenHash: string,
  now: number,
): Promise<AccessTokenWithUser | undefined> {
  const row = await db
    .selectFrom('oauth_access_tokens')
    .innerJoin('users', 'users.id', 'oauth_access_tokens.user_id')
    .selectAll('users')
    .select([
      'oauth_access_tokens.token_hash as t_token_hash',
      'oauth_access_tokens.grant_id as t_grant_id',
      'oauth_access_tokens.client_id as t_client_id',
      'oauth_access_tokens.user_id as t_user_id',
      'oauth_access_tokens.scope as t_scope',
      'oauth_access_tokens.audience as t_audience',
      'oauth_access_tokens.created_at as t_created_at',
      'oauth_access_tokens.expires_at as t_expires_at',
    ])
    .where('oauth_access_tokens.token_hash', '=', tokenHash)
    .where('oauth_access_tokens.expires_at', '>', now)
    .where('users.status', '=', 'active')
    .executeTakeFirst()
  if (!row) return undefined
  const { t_token_hash, t_grant_id, t_client_id, t_user_id, t_scope, t_audience, t_created_at, t_expires_at, ...user } =
    row
  return {
    user,
    token: {
      token_hash: t_token_hash,
      grant_id: t_grant_id,
      client_id: t_client_id,
      user_id: t_user_id,
      scope: t_scope,
      audience: t_audience,
      created_at: t_created_at,
      expires_at: t_expires_at,
    },
  }
}

export async function findAccessToken(db: Db, tokenHash: string): Promise<OAuthAccessTokenRow | undefined> {
  return db.selectFrom('oauth_access_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst()
}

export async function deleteAccessToken(db: Db, tokenHash: string): Promise<void> {
  await db.deleteFrom('oauth_access_tokens').where('token_hash', '=', tokenHash).execute()
}

export interface GrantSummaryRow {
  client_id: string
  client_name: string
  user_id: string
  username: string
  scope: string
  created_at: number
  last_token_at: number | null
}

/**
 * Live grants (not revoked, with at least one live token), one summary per client and user: the
 * union of the scopes of that pair's grants, the first grant's time and the latest one's.
 */
export async function listLiveGrants(
  db: Db,
  filter: { userId?: string; clientId?: string },
  now: number,
): Promise<GrantSummaryRow[]> {
  let query = db
    .selectFrom('oauth_grants')
    .innerJoin('oauth_clients', 'oauth_clients.id', 'oauth_grants.client_id')
    .innerJoin('users', 'users.id', 'oauth_grants.user_id')
    .select([
      'oauth_grants.client_id',
      'oauth_clients.name as client_name',
      'oauth_grants.user_id',
      'users.username',
      'oauth_grants.scope',
      'oauth_grants.created_at',
    ])
    .where('oauth_grants.revoked_at', 'is', null)
    .where((eb) =>
      eb.or([
        eb.exists(
          eb
            .selectFrom('oauth_refresh_tokens')
            .select('token_hash')
            .whereRef('oauth_refresh_tokens.grant_id', '=', 'oauth_grants.id')
            .where('oauth_refresh_tokens.used_at', 'is', null)
            .where('oauth_refresh_tokens.superseded_at', 'is', null)
            .where('oauth_refresh_tokens.expires_at', '>', now),
        ),
        eb.exists(
          eb
            .selectFrom('oauth_access_tokens')
            .select('token_hash')
            .whereRef('oauth_access_tokens.grant_id', '=', 'oauth_grants.id')
            .where('oauth_access_tokens.expires_at', '>', now),
        ),
      ]),
    )
    .orderBy('oauth_clients.name')
    .orderBy('oauth_grants.created_at')
  if (filter.userId) query = query.where('oauth_grants.user_id', '=', filter.userId)
  if (filter.clientId) query = query.where('oauth_grants.client_id', '=', filter.clientId)
  return summarizeGrants(await query.execute())
}

function summarizeGrants(rows: Omit<GrantSummaryRow, 'last_token_at'>[]): GrantSummaryRow[] {
  const summaries = new Map<string, GrantSummaryRow>()
  for (const row of rows) {
    const key = JSON.stringify([row.client_id, row.user_id])
    const summary = summaries.get(key)
    if (!summary) {
      summaries.set(key, { ...row, last_token_at: row.created_at })
      continue
    }
    summary.scope = formatScope([...new Set([...parseScope(summary.scope), ...parseScope(row.scope)])])
    summary.created_at = Math.min(summary.created_at, row.created_at)
    summary.last_token_at = Math.max(summary.last_token_at ?? 0, row.created_at)
  }
  return [...summaries.values()]
}

/**
 * Revokes every grant a user gave a client (and the consent, so the next flow asks again), in
 * one transaction: a failure half-way leaves no grant revoked with its consent still standing.
 */
export async function revokeGrantsOfUserForClient(
  db: Kysely<Database>,
  userId: string,
  clientId: string,
  now: number,
): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const grants = await trx
      .selectFrom('oauth_grants')
      .select('id')
      .where('user_id', '=', userId)
      .where('client_id', '=', clientId)
      .where('revoked_at', 'is', null)
      .execute()
    for (const grant of grants) await revokeGrant(trx, grant.id, now)
    await trx.deleteFrom('oauth_consents').where('user_id', '=', userId).where('client_id', '=', clientId).execute()
    return grants.length
  })
}

export async function findConsent(db: Db, userId: string, clientId: string, redirectUri: string) {
  return db
    .selectFrom('oauth_consents')
    .selectAll()
    .where('user_id', '=', userId)
    .where('client_id', '=', clientId)
    .where('redirect_uri', '=', redirectUri)
    .executeTakeFirst()
}

export async function upsertConsent(
  db: Db,
  row: { user_id: string; client_id: string; redirect_uri: string; scope: string; created_at: number },
) {
  await db
    .insertInto('oauth_consents')
    .values(row)
    .onConflict((oc) =>
      oc
        .columns(['user_id', 'client_id', 'redirect_uri'])
        .doUpdateSet({ scope: row.scope, created_at: row.created_at }),
    )
    .execute()
}
