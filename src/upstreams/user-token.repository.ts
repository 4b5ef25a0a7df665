import type { Insertable, Kysely, Updateable } from 'kysely'
import type { Database, McpServerUserTokenRow, McpServerUserTokensTable } from '../db/schema.ts'

/** A refused token that cannot be renewed; unless a newer one was stored meanwhile. */
export async function markNeedsReauth(
  db: Kysely<Database>,
  token: Pick<McpServerUserTokenRow, 'server_id' | 'user_id' | 'updated_at'>,
): Promise<void> {
  await db
    .updateTable('mcp_server_user_tokens')
    .set({ needs_reauth: 1 })
    .where('server_id', '=', token.server_id)
    .where('user_id', '=', token.user_id)
    .where('updated_at', '=', token.updated_at)
    .execute()
}

export async function findUserToken(
  db: Kysely<Database>,
  serverId: string,
  userId: string,
): Promise<McpServerUserTokenRow | undefined> {
  return db
    .selectFrom('mcp_server_user_tokens')
    .selectAll()
    .where('server_id', '=', serverId)
    .where('user_id', '=', userId)
    .executeTakeFirst()
}

/** A new connection replaces the old one whole, a refresh lease included. */
export async function upsertUserToken(db: Kysely<Database>, row: Insertable<McpServerUserTokensTable>): Promise<void> {
  const { server_id: _, user_id: __, created_at: ___, ...update } = row
  await db
    .insertInto('mcp_server_user_tokens')
    .values(row)
    .onConflict((oc) =>
      oc
        .columns(['server_id', 'user_id'])
        .doUpdateSet({ ...update, refresh_lease_id: null, refresh_lease_until: null }),
    )
    .execute()
}

/** Deletes the user's tokens and returns what was stored, for revocation upstream. */
export async function deleteUserToken(
  db: Kysely<Database>,
  serverId: string,
  userId: string,
): Promise<McpServerUserTokenRow | undefined> {
  return db
    .deleteFrom('mcp_server_user_tokens')
    .where('server_id', '=', serverId)
    .where('user_id', '=', userId)
    .returningAll()
    .executeTakeFirst()
}

/**
 * Takes the refresh lease if nobody holds a live one and the tokens are still the version the
 * caller read (`accessToken`, the sealed value, which changes with every write). One conditional
 * UPDATE, so across processes exactly one caller wins.
 */
export async function claimRefreshLease(
  db: Kysely<Database>,
  key: { serverId: string; userId: string },
  lease: { id: string; until: number; accessToken: string; now: number },
): Promise<boolean> {
  const result = await db
    .updateTable('mcp_server_user_tokens')
    .set({ refresh_lease_id: lease.id, refresh_lease_until: lease.until })
    .where('server_id', '=', key.serverId)
    .where('user_id', '=', key.userId)
    .where('access_token', '=', lease.accessToken)
    .where('needs_reauth', '=', 0)
    .where((eb) => eb.or([eb('refresh_lease_until', 'is', null), eb('refresh_lease_until', '<', lease.now)]))
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

/** Writes under the lease and releases it; false when the lease was lost (a disconnect, a new connection). */
export async function updateUnderLease(
  db: Kysely<Database>,
  key: { serverId: string; userId: string },
  leaseId: string,
  update: Updateable<McpServerUserTokensTable>,
): Promise<boolean> {
  const result = await db
    .updateTable('mcp_server_user_tokens')
    .set({ ...update, refresh_lease_id: null, refresh_lease_until: null })
    .where('server_id', '=', key.serverId)
    .where('user_id', '=', key.userId)
    .where('refresh_lease_id', '=', leaseId)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}
