import type { Kysely, Transaction } from 'kysely'
import type { Database, NewUser, UserRow, UserUpdate } from '../db/schema.ts'

type Db = Kysely<Database> | Transaction<Database>

export async function insertUser(db: Db, user: NewUser): Promise<UserRow> {
  return db.insertInto('users').values(user).returningAll().executeTakeFirstOrThrow()
}

export async function findUserById(db: Db, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

/** Finds a user by email or username; both are stored lower-case. */
export async function findUserByLogin(db: Db, login: string): Promise<UserRow | undefined> {
  const value = login.trim().toLowerCase()
  return db
    .selectFrom('users')
    .selectAll()
    .where((eb) => eb.or([eb('email', '=', value), eb('username', '=', value)]))
    .executeTakeFirst()
}

export async function findUserConflict(
  db: Db,
  email: string,
  username: string,
): Promise<'email' | 'username' | undefined> {
  const row = await db
    .selectFrom('users')
    .select(['email', 'username'])
    .where((eb) => eb.or([eb('email', '=', email), eb('username', '=', username)]))
    .executeTakeFirst()
  if (!row) return undefined
  return row.email === email ? 'email' : 'username'
}

export async function listUsers(db: Db, options: { limit: number; afterUsername?: string }): Promise<UserRow[]> {
  let query = db.selectFrom('users').selectAll().orderBy('username').limit(options.limit)
  if (options.afterUsername) query = query.where('username', '>', options.afterUsername)
  return query.execute()
}

export async function updateUser(db: Db, id: string, update: UserUpdate): Promise<UserRow | undefined> {
  const row = await db.updateTable('users').set(update).where('id', '=', id).returningAll().executeTakeFirst()
  // A suspension or a role change must reach cached credentials, and what they may use, at once.
  if (update.status !== undefined || update.role !== undefined) {
  }
  return row
}

export async function countUsers(db: Db): Promise<number> {
  const row = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .executeTakeFirstOrThrow()
  return Number(row.count)
}

/** Records a one-time instance event; false when it already happened (the primary key says so). */
export async function claimInstanceEvent(db: Db, name: string, now: number): Promise<boolean> {
  const result = await db
    .insertInto('instance_events')
    .values({ name, created_at: now })
    .onConflict((oc) => oc.column('name').doNothing())
    .executeTakeFirst()
  return (result.numInsertedOrUpdatedRows ?? 0n) > 0n
}
