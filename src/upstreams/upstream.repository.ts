import type { Insertable, Kysely, Updateable } from 'kysely'
import type { Database, McpServerRow, McpServersTable, McpServerUserTokenRow } from '../db/schema.ts'

export async function insertServer(db: Kysely<Database>, row: Insertable<McpServersTable>): Promise<McpServerRow> {
  return db.insertInto('mcp_servers').values(row).returningAll().executeTakeFirstOrThrow()
}

export async function findServerById(db: Kysely<Database>, id: string): Promise<McpServerRow | undefined> {
  return db.selectFrom('mcp_servers').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function findServerBySlug(db: Kysely<Database>, slug: string): Promise<McpServerRow | undefined> {
  return db.selectFrom('mcp_servers').selectAll().where('slug', '=', slug).executeTakeFirst()
}

/** The servers of the given organizations (every organization with `'all'`), by display name. */
export async function listServers(
  db: Kysely<Database>,
  organizations: string[] | 'all',
  options: { enabledOnly?: boolean } = {},
): Promise<McpServerRow[]> {
  if (organizations !== 'all' && organizations.length === 0) return []
  let query = db.selectFrom('mcp_servers').selectAll().orderBy('display_name').orderBy('slug')
  if (organizations !== 'all') query = query.where('organization_id', 'in', organizations)
  if (options.enabledOnly) query = query.where('enabled', '=', 1)
  return query.execute()
}

export async function updateServer(
  db: Kysely<Database>,
  id: string,
  update: Updateable<McpServersTable>,
): Promise<McpServerRow | undefined> {
  return db.updateTable('mcp_servers').set(update).where('id', '=', id).returningAll().executeTakeFirst()
}

/** Records (or, with null, clears) why the upstream last failed; `updated_at` stays, so caches keyed by it stay valid. */
export async function setServerLastError(
  db: Kysely<Database>,
  id: string,
  error: string | null,
  at: number | null,
): Promise<void> {
  await db.updateTable('mcp_servers').set({ last_error: error, last_error_at: at }).where('id', '=', id).execute()
}

export async function deleteServer(db: Kysely<Database>, id: string): Promise<boolean> {
  const result = await db.deleteFrom('mcp_servers').where('id', '=', id).executeTakeFirst()
  return result.numDeletedRows > 0n
}

/** Every user's upstream tokens for a server: they belong to its OAuth configuration. */
export async function deleteUserTokensOfServer(db: Kysely<Database>, serverId: string): Promise<void> {
  await db.deleteFrom('mcp_server_user_tokens').where('server_id', '=', serverId).execute()
}

export async function listUserTokens(
  db: Kysely<Database>,
  userId: string,
  serverIds: string[],
): Promise<McpServerUserTokenRow[]> {
  if (serverIds.length === 0) return []
  return db
    .selectFrom('mcp_server_user_tokens')
    .selectAll()
    .where('user_id', '=', userId)
    .where('server_id', 'in', serverIds)
    .execute()
}

/** The user's explicit choices, server ID to selected. */
export async function listSelections(
  db: Kysely<Database>,
  userId: string,
  serverIds: string[],
): Promise<Map<string, boolean>> {
  if (serverIds.length === 0) return new Map()
  const rows = await db
    .selectFrom('mcp_server_selections')
    .select(['server_id', 'selected'])
    .where('user_id', '=', userId)
    .where('server_id', 'in', serverIds)
    .execute()
  return new Map(rows.map((row) => [row.server_id, row.selected === 1]))
}

/** IDs of the servers that use Gatehouse's client metadata document: its redirect URIs are their callbacks. */
export async function listMetadataDocumentCallbacks(db: Kysely<Database>): Promise<string[]> {
  const rows = await db
    .selectFrom('mcp_servers')
    .select('id')
    .where('auth_type', '=', 'oauth2')
    .where('oauth2_registration', '=', 'metadata_document')
    .orderBy('id')
    .execute()
  return rows.map((row) => row.id)
}
