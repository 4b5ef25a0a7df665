import type { Kysely, Transaction } from 'kysely'
import type { Database, SessionRow, UserRow } from '../db/schema.ts'

export async function insertSession(db: Kysely<Database>, row: SessionRow): Promise<void> {
  await db.insertInto('sessions').values(row).execute()
}

/** The active user behind a live session, in one indexed lookup. Suspended users find nothing. */
export async function findSessionUser(
  db: Kysely<Database>,
  tokenHash: string,
  now: number,
): Promise<{ user: UserRow; lastUsedAt: number; expiresAt: number } | undefined> {
  const row = await db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .selectAll('users')
    .select(['sessions.last_used_at as session_last_used_at', 'sessions.expires_at as session_expires_at'])
    .where('sessions.token_hash', '=', tokenHash)
    .where('sessions.expires_at', '>', now)
    .where('users.status', '=', 'active')
    .executeTakeFirst()
  if (!row) return undefined
  const { session_last_used_at, session_expires_at, ...user } = row
  return { user, lastUsedAt: session_last_used_at, expiresAt: session_expires_at }
}

export async function touchSession(db: Kysely<Database>, tokenHash: string, now: number): Promise<void> {
  await db.updateTable('sessions').set({ last_used_at: now }).where('token_hash', '=', tokenHash).execute()
}

export async function deleteSession(db: Kysely<Database>, tokenHash: string): Promise<void> {
  await db.deleteFrom('sessions').where('token_hash', '=', tokenHash).execute()
}

export async function deleteExpiredSessions(db: Kysely<Database>, now: number): Promise<void> {
  await db.deleteFrom('sessions').where('expires_at', '<=', now).execute()
}

export async function deleteSessionsOfUser(
  db: Kysely<Database> | Transaction<Database>,
  userId: string,
): Promise<void> {
  await db.deleteFrom('sessions').where('user_id', '=', userId).execute()
}
