import type { Kysely } from 'kysely'
import type { Database, SecretRow } from '../db/schema.ts'

export async function insertSecret(db: Kysely<Database>, row: SecretRow): Promise<void> {
  await db.insertInto('secrets').values(row).execute()
}

export async function findSecretById(db: Kysely<Database>, id: string): Promise<SecretRow | undefined> {
  return db.selectFrom('secrets').selectAll().where('id', '=', id).executeTakeFirst()
}

/** Up to `limit` secrets sealed with any key but `keyId`, in ID order after `afterId` (a cursor). */
export async function listSecretsNotSealedWith(
  db: Kysely<Database>,
  keyId: string,
  afterId: string,
  limit: number,
): Promise<SecretRow[]> {
  return db
    .selectFrom('secrets')
    .selectAll()
    .where('key_id', '!=', keyId)
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(limit)
    .execute()
}

/**
 * Swaps in a re-sealed ciphertext only if the row still holds what was read, so a concurrent
 * write of a new value is never overwritten with a re-encryption of the old one.
 */
export async function replaceSecretCiphertext(
  db: Kysely<Database>,
  previous: SecretRow,
  next: { keyId: string; ciphertext: string; updatedAt: number },
): Promise<boolean> {
  const result = await db
    .updateTable('secrets')
    .set({ key_id: next.keyId, ciphertext: next.ciphertext, updated_at: next.updatedAt })
    .where('id', '=', previous.id)
    .where('key_id', '=', previous.key_id)
    .where('ciphertext', '=', previous.ciphertext)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

/** One stored secret per key ID, to prove at start-up that every key in use is present and correct. */
export async function sampleSecretPerKey(db: Kysely<Database>): Promise<SecretRow[]> {
  const keyIds = await db.selectFrom('secrets').select('key_id').distinct().execute()
  const samples: SecretRow[] = []
  for (const { key_id } of keyIds) {
    const row = await db.selectFrom('secrets').selectAll().where('key_id', '=', key_id).limit(1).executeTakeFirst()
    if (row) samples.push(row)
  }
  return samples
}
