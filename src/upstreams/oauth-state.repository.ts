import type { Kysely } from 'kysely'
import type { Database, McpOAuthStateRow } from '../db/schema.ts'

export async function insertState(db: Kysely<Database>, row: McpOAuthStateRow): Promise<void> {
  await db.insertInto('mcp_oauth_states').values(row).execute()
}

/** Single use across processes: the DELETE that returns the row is the one claim. */
export async function claimState(db: Kysely<Database>, stateHash: string): Promise<McpOAuthStateRow | undefined> {
  return db.deleteFrom('mcp_oauth_states').where('state_hash', '=', stateHash).returningAll().executeTakeFirst()
}

export async function deleteExpiredStates(db: Kysely<Database>, now: number): Promise<void> {
  await db.deleteFrom('mcp_oauth_states').where('expires_at', '<=', now).execute()
}
