import type { Insertable, Kysely, Updateable } from 'kysely'
import { nowSeconds } from '../db/index.ts'
import type { Database, UpstreamOAuthClientRow, UpstreamOAuthClientsTable } from '../db/schema.ts'
import type { Keyring } from '../secrets/keyring.ts'
import { openValue, sealValue } from '../secrets/sealed-column.ts'
import type { RegistrationStore, StoredRegistration } from './discovery.ts'

type SealedColumn = 'client_secret' | 'registration_access_token'

/** Whose registration: one organization's, at one issuer, for one Gatehouse origin. */
export interface RegistrationKey {
  organizationId: string
  issuer: string
  gatehouseOrigin: string
}

export async function findUpstreamOAuthClient(
  db: Kysely<Database>,
  key: RegistrationKey,
): Promise<UpstreamOAuthClientRow | undefined> {
  return db
    .selectFrom('upstream_oauth_clients')
    .selectAll()
    .where('organization_id', '=', key.organizationId)
    .where('issuer', '=', key.issuer)
    .where('gatehouse_origin', '=', key.gatehouseOrigin)
    .executeTakeFirst()
}

/** Inserts unless the key already has a row; true when it inserted. */
export async function insertUpstreamOAuthClient(
  db: Kysely<Database>,
  row: Insertable<UpstreamOAuthClientsTable>,
): Promise<boolean> {
  const result = await db
    .insertInto('upstream_oauth_clients')
    .values(row)
    .onConflict((oc) => oc.columns(['organization_id', 'issuer', 'gatehouse_origin']).doNothing())
    .executeTakeFirst()
  return (result.numInsertedOrUpdatedRows ?? 0n) > 0n
}

export async function updateUpstreamOAuthClient(
  db: Kysely<Database>,
  id: string,
  update: Updateable<UpstreamOAuthClientsTable>,
): Promise<void> {
  await db.updateTable('upstream_oauth_clients').set(update).where('id', '=', id).execute()
}

function bindingOf(id: string, column: SealedColumn) {
  return { table: 'upstream_oauth_clients', column, rowKey: id }
}

async function sealOptional(keyring: Keyring, id: string, column: SealedColumn, value: string | undefined) {
  return value ? sealValue(keyring, bindingOf(id, column), value) : null
}

async function openOptional(keyring: Keyring, row: UpstreamOAuthClientRow, column: SealedColumn) {
  const stored = row[column]
  return stored === null ? undefined : openValue(keyring, bindingOf(row.id, column), stored)
}

function parseRedirectUris(stored: string): string[] {
  try {
    const parsed: unknown = JSON.parse(stored)
    return Array.isArray(parsed) ? parsed.filter((uri): uri is string => typeof uri === 'string') : []
  } catch {
    return []
  }
}

async function rowToRegistration(keyring: Keyring, row: UpstreamOAuthClientRow): Promise<StoredRegistration> {
  const registration: StoredRegistration = {
    issuer: row.issuer,
    clientId: row.client_id,
    tokenEndpointAuthMethod: row.token_endpoint_auth_method,
    redirectUris: parseRedirectUris(row.redirect_uris),
  }
  const clientSecret = await openOptional(keyring, row, 'client_secret')
  if (clientSecret) registration.clientSecret = clientSecret
  if (row.registration_client_uri) registration.registrationClientUri = row.registration_client_uri
  const registrationAccessToken = await openOptional(keyring, row, 'registration_access_token')
  if (registrationAccessToken) registration.registrationAccessToken = registrationAccessToken
  if (row.client_secret_expires_at !== null) registration.clientSecretExpiresAt = row.client_secret_expires_at
  return registration
}

/** The columns a registration sets, its secrets sealed to the row `id`. */
async function registrationColumns(keyring: Keyring, id: string, registration: StoredRegistration, now: number) {
  return {
    client_id: registration.clientId,
    client_secret: await sealOptional(keyring, id, 'client_secret', registration.clientSecret),
    token_endpoint_auth_method: registration.tokenEndpointAuthMethod,
    redirect_uris: JSON.stringify(registration.redirectUris),
    registration_client_uri: registration.registrationClientUri ?? null,
    registration_access_token: await sealOptional(
      keyring,
      id,
      'registration_access_token',
      registration.registrationAccessToken,
    ),
    client_secret_expires_at: registration.clientSecretExpiresAt ?? null,
    updated_at: now,
  }
}

/**
 * The registrations Gatehouse made at upstream authorization servers for one organization's
 * servers, one per issuer and Gatehouse origin (a client's redirect URIs are on one origin),
 * secrets sealed to their row. Servers of one organization share a client; another
 * organization's servers never see it, neither its secret nor a callback added to it (RFC 7592),
 * as each organization's admins may point a server at any address and the users of every other
 * organization rely on their own client.
 *
 * A row keeps its ID for life, because its sealed values are bound to it: `save` inserts a new
 * row only when there is none, and otherwise rewrites the existing one sealed to its ID, so two
 * replicas registering at once cannot leave a secret sealed for an ID the row does not have.
 */
export function createRegistrationStore(
  db: Kysely<Database>,
  keyring: Keyring,
  scope: { organizationId: string; gatehouseOrigin: string },
): RegistrationStore {
  const keyOf = (issuer: string): RegistrationKey => ({ ...scope, issuer })
  return {
    async find(issuer) {
      const row = await findUpstreamOAuthClient(db, keyOf(issuer))
      return row ? rowToRegistration(keyring, row) : undefined
    },
    async save(registration) {
      const now = nowSeconds()
      const key = keyOf(registration.issuer)
      let existing = await findUpstreamOAuthClient(db, key)
      if (!existing) {
        const id = crypto.randomUUID()
        const columns = await registrationColumns(keyring, id, registration, now)
        const row = {
          id,
          organization_id: key.organizationId,
          issuer: key.issuer,
          gatehouse_origin: key.gatehouseOrigin,
          ...columns,
          created_at: now,
        }
        if (await insertUpstreamOAuthClient(db, row)) return
        existing = await findUpstreamOAuthClient(db, key)
        if (!existing) throw new Error(`the registration for ${registration.issuer} vanished while it was saved`)
      }
      await updateUpstreamOAuthClient(
        db,
        existing.id,
        await registrationColumns(keyring, existing.id, registration, now),
      )
    },
  }
}
