import type { Insertable, Kysely, Updateable } from 'kysely'
import type { Database, UserLinkRow, UserLinksTable } from '../db/schema.ts'

export async function findLinkBySubject(
  db: Kysely<Database>,
  provider: UserLinkRow['provider'],
  subject: string,
): Promise<UserLinkRow | undefined> {
  return db
    .selectFrom('user_links')
    .selectAll()
    .where('provider', '=', provider)
    .where('subject', '=', subject)
    .executeTakeFirst()
}

export async function findLink(
  db: Kysely<Database>,
  userId: string,
  provider: UserLinkRow['provider'],
): Promise<UserLinkRow | undefined> {
  return db
    .selectFrom('user_links')
    .selectAll()
    .where('user_id', '=', userId)
    .where('provider', '=', provider)
    .executeTakeFirst()
}

export async function listLinksOfUser(db: Kysely<Database>, userId: string): Promise<UserLinkRow[]> {
  return db.selectFrom('user_links').selectAll().where('user_id', '=', userId).orderBy('provider').execute()
}

/** Every login rewrites the link: the provider's latest tokens and claims replace the old ones. */
export async function upsertLink(db: Kysely<Database>, row: Insertable<UserLinksTable>): Promise<void> {
  const { user_id: _, provider: __, created_at: ___, ...update } = row
  await db
    .insertInto('user_links')
    .values(row)
    .onConflict((oc) =>
      oc.columns(['user_id', 'provider']).doUpdateSet({ ...update, refresh_lease_id: null, refresh_lease_until: null }),
    )
    .execute()
}

/** Takes the refresh lease of a link whose tokens are still the version read (one conditional UPDATE). */
export async function claimLinkLease(
  db: Kysely<Database>,
  link: Pick<UserLinkRow, 'user_id' | 'provider' | 'access_token'>,
  lease: { id: string; until: number; now: number },
): Promise<boolean> {
  const result = await db
    .updateTable('user_links')
    .set({ refresh_lease_id: lease.id, refresh_lease_until: lease.until })
    .where('user_id', '=', link.user_id)
    .where('provider', '=', link.provider)
    .where('access_token', '=', link.access_token)
    .where((eb) => eb.or([eb('refresh_lease_until', 'is', null), eb('refresh_lease_until', '<', lease.now)]))
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

export async function updateLinkUnderLease(
  db: Kysely<Database>,
  link: Pick<UserLinkRow, 'user_id' | 'provider'>,
  leaseId: string,
  update: Updateable<UserLinksTable>,
): Promise<boolean> {
  const result = await db
    .updateTable('user_links')
    .set({ ...update, refresh_lease_id: null, refresh_lease_until: null })
    .where('user_id', '=', link.user_id)
    .where('provider', '=', link.provider)
    .where('refresh_lease_id', '=', leaseId)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}
