import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'

export async function findLoginFailures(
  db: Kysely<Database>,
  keys: string[],
): Promise<{ key: string; failures: number; window_started_at: number }[]> {
  return db.selectFrom('login_failures').selectAll().where('key', 'in', keys).execute()
}

/** Counts one failure for `key`, starting a new window when the old one has ended. */
export async function recordLoginFailure(db: Kysely<Database>, key: string, now: number, windowSeconds: number) {
  const windowStart = now - windowSeconds
  await db
    .insertInto('login_failures')
    .values({ key, failures: 1, window_started_at: now })
    .onConflict((oc) =>
      oc.column('key').doUpdateSet({
        failures: sql`CASE WHEN login_failures.window_started_at <= ${windowStart} THEN 1 ELSE login_failures.failures + 1 END`,
        window_started_at: sql`CASE WHEN login_failures.window_started_at <= ${windowStart} THEN ${now} ELSE login_failures.window_started_at END`,
      }),
    )
    .execute()
}

export async function clearLoginFailures(db: Kysely<Database>, key: string): Promise<void> {
  await db.deleteFrom('login_failures').where('key', '=', key).execute()
}
