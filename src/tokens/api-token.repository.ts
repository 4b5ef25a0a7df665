import type { Kysely } from 'kysely'
import type { ApiTokenRow, Database, UserRow } from '../db/schema.ts'

export async function insertApiToken(db: Kysely<Database>, row: ApiTokenRow): Promise<void> {
  await db.insertInto('api_tokens').values(row).execute()
}

export async function listApiTokensOfUser(db: Kysely<Database>, userId: string): Promise<ApiTokenRow[]> {
  return db.selectFrom('api_tokens').selectAll().where('user_id', '=', userId).orderBy('created_at', 'desc').execute()
}

export async function deleteApiTokenOfUser(db: Kysely<Database>, userId: string, id: string): Promise<boolean> {
  const result = await db.deleteFrom('api_tokens').where('id', '=', id).where('user_id', '=', userId).executeTakeFirst()
  return result.numDeletedRows > 0n
}

/** The active user behind a live API token, in one indexed lookup. */
export async function findApiTokenUser(
  db: Kysely<Database>,
  tokenHash: string,
  now: number,
): Promise<{ user: UserRow; tokenId: string; lastUsedAt: number | null; expiresAt: number | null } | undefined> {
  const row = await db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .selectAll('users')
    .select([
      'api_tokens.id as token_id',
      'api_tokens.last_used_at as token_last_used_at',
      'api_tokens.expires_at as token_expires_at',
    ])
    .where('api_tokens.token_hash', '=', tokenHash)
    .where((eb) => eb.or([eb('api_tokens.expires_at', 'is', null), eb('api_tokens.expires_at', '>', now)]))
    .where('users.status', '=', 'active')
    .executeTakeFirst()
  if (!row) return undefined
  const { token_id, token_last_used_at, token_expires_at, ...user } = row
  return { user, tokenId: token_id, lastUsedAt: token_last_used_at, expiresAt: token_expires_at }
}

export async function touchApiToken(db: Kysely<Database>, id: string, now: number): Promise<void> {
  await db.updateTable('api_tokens').set({ last_used_at: now }).where('id', '=', id).execute()
}
