import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'

export interface AttemptCount {
  failures: number
  window_started_at: number
}

/**
 * Counts one login attempt for `key` and returns the new count, in a single statement, so
 * simultaneous guesses cannot all slip under the limit before any of them is recorded. A window
 * that has ended starts again at one.
 */
export async function reserveLoginAttempt(
  db: Kysely<Database>,
  key: string,
  now: number,
  windowSeconds: number,
): Promise<AttemptCount> {
  const windowStart = now - windowSeconds
  return db
    .insertInto('login_failures')
    .values({ key, failures: 1, window_started_at: now })
    .onConflict((oc) =>
      oc.column('key').doUpdateSet({
        failures: sql`CASE WHEN login_failures.window_started_at <= ${windowStart} THEN 1 ELSE login_failures.failures + 1 END`,
        window_started_at: sql`CASE WHEN login_failures.window_started_at <= ${windowStart} THEN ${now} ELSE login_failures.window_started_at END`,
      }),
    )
    .returning(['failures', 'window_started_at'])
    .executeTakeFirstOrThrow()
}

/** Takes back a reserved attempt that turned out not to be a failure. */
export async function releaseLoginAttempt(db: Kysely<Database>, key: string): Promise<void> {
  await db
    .updateTable('login_failures')
    .set({ failures: sql`CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END` })
    .where('key', '=', key)
    .execute()
}

export async function clearLoginFailures(db: Kysely<Database>, key: string): Promise<void> {
  await db.deleteFrom('login_failures').where('key', '=', key).execute()
}

/** Forgets counts whose window has ended: they would start again at one anyway. */
export async function deleteStaleLoginFailures(db: Kysely<Database>, windowStartedBefore: number): Promise<void> {
  await db.deleteFrom('login_failures').where('window_started_at', '<=', windowStartedBefore).execute()
}
