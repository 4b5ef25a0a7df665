import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'

export async function findSetting(db: Kysely<Database>, name: string): Promise<string | undefined> {
  const row = await db.selectFrom('instance_settings').select('value').where('name', '=', name).executeTakeFirst()
  return row?.value
}

export async function upsertSetting(db: Kysely<Database>, name: string, value: string, now: number): Promise<void> {
  await db
    .insertInto('instance_settings')
    .values({ name, value, updated_at: now })
    .onConflict((oc) => oc.column('name').doUpdateSet({ value, updated_at: now }))
    .execute()
}
