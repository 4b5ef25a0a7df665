import type { Kysely, Transaction } from 'kysely'
import type { Database, OAuthClientRow, OAuthClientSecretRow } from '../db/schema.ts'

type Db = Kysely<Database> | Transaction<Database>

export async function insertClient(db: Db, row: OAuthClientRow): Promise<void> {
  await db.insertInto('oauth_clients').values(row).execute()
}

/** Inserts or refreshes a client known by its metadata document URL. */
export async function upsertMetadataDocumentClient(db: Db, row: OAuthClientRow): Promise<void> {
  await db
    .insertInto('oauth_clients')
    .values(row)
    .onConflict((oc) =>
      oc.column('id').doUpdateSet({
        name: row.name,
        redirect_uris: row.redirect_uris,
        grant_types: row.grant_types,
        scope: row.scope,
        client_uri: row.client_uri,
        logo_uri: row.logo_uri,
        updated_at: row.updated_at,
      }),
    )
    .execute()
}

export async function findClientById(db: Db, id: string): Promise<OAuthClientRow | undefined> {
  return db.selectFrom('oauth_clients').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function findClientByRegistrationToken(db: Db, tokenHash: string): Promise<OAuthClientRow | undefined> {
  return db.selectFrom('oauth_clients').selectAll().where('registration_token_hash', '=', tokenHash).executeTakeFirst()
}

export async function listClientsOfOrganization(db: Db, organizationId: string): Promise<OAuthClientRow[]> {
  return db
    .selectFrom('oauth_clients')
    .selectAll()
    .where('organization_id', '=', organizationId)
    .orderBy('created_at', 'desc')
    .execute()
}

export async function updateClient(
  db: Db,
  id: string,
  update: Partial<Omit<OAuthClientRow, 'id' | 'created_at'>>,
): Promise<OAuthClientRow | undefined> {
  return db.updateTable('oauth_clients').set(update).where('id', '=', id).returningAll().executeTakeFirst()
}

export async function deleteClient(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('oauth_clients').where('id', '=', id).executeTakeFirst()
  return result.numDeletedRows > 0n
}

export async function touchClient(db: Db, id: string, now: number): Promise<void> {
  await db.updateTable('oauth_clients').set({ last_used_at: now }).where('id', '=', id).execute()
}

/** Dynamically registered clients that never completed a flow and are older than `before`. */
export async function deleteUnusedDynamicClients(db: Db, before: number): Promise<number> {
  const result = await db
    .deleteFrom('oauth_clients')
    .where('kind', '=', 'dynamic')
    .where('last_used_at', 'is', null)
    .where('created_at', '<', before)
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}

export async function insertClientSecret(db: Db, row: OAuthClientSecretRow): Promise<void> {
  await db.insertInto('oauth_client_secrets').values(row).execute()
}

export async function listClientSecrets(db: Db, clientId: string): Promise<OAuthClientSecretRow[]> {
  return db
    .selectFrom('oauth_client_secrets')
    .selectAll()
    .where('client_id', '=', clientId)
    .orderBy('created_at')
    .execute()
}

export async function findClientSecret(
  db: Db,
  clientId: string,
  secretHash: string,
): Promise<OAuthClientSecretRow | undefined> {
  return db
    .selectFrom('oauth_client_secrets')
    .selectAll()
    .where('client_id', '=', clientId)
    .where('secret_hash', '=', secretHash)
    .executeTakeFirst()
}

export async function deleteClientSecret(db: Db, clientId: string, id: string): Promise<boolean> {
  const result = await db
    .deleteFrom('oauth_client_secrets')
    .where('client_id', '=', clientId)
    .where('id', '=', id)
    .executeTakeFirst()
  return result.numDeletedRows > 0n
}

export async function touchClientSecret(db: Db, id: string, now: number): Promise<void> {
  await db.updateTable('oauth_client_secrets').set({ last_used_at: now }).where('id', '=', id).execute()
}
