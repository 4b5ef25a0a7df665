import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { SecretKeyError, type Keyring } from './keyring.ts'

/**
 * Secrets live in the columns of the rows that own them (an upstream server's API key, a user's
 * upstream tokens), so they are deleted with their row. Each value is stored as
 * `<key id>:<base64url(iv ‖ ciphertext)>` and sealed with AES-256-GCM whose additional data names
 * the table, the column and the row's key, so a ciphertext copied to another row or column does
 * not open.
 */
export interface SealedBinding {
  table: string
  column: string
  /** The row's primary key; composite keys are joined with `/`. */
  rowKey: string
}

function additionalDataOf(binding: SealedBinding): string {
  return `gatehouse:${binding.table}.${binding.column}:${binding.rowKey}`
}

export async function sealValue(keyring: Keyring, binding: SealedBinding, plaintext: string): Promise<string> {
  const sealed = await keyring.seal(plaintext, additionalDataOf(binding))
  return `${sealed.keyId}:${sealed.ciphertext}`
}

/** Opens a stored value; a value of another row, column or key, or a tampered one, is a SecretKeyError. */
export async function openValue(keyring: Keyring, binding: SealedBinding, stored: string): Promise<string> {
  const separator = stored.indexOf(':')
  if (separator <= 0)
    throw new SecretKeyError(`${binding.table}.${binding.column} of ${binding.rowKey} is not a sealed value`)
  try {
    return await keyring.open(
      { keyId: stored.slice(0, separator), ciphertext: stored.slice(separator + 1) },
      additionalDataOf(binding),
    )
  } catch (error) {
    if (!(error instanceof SecretKeyError)) throw error
    throw new SecretKeyError(`${binding.table}.${binding.column} of ${binding.rowKey}: ${error.message}`)
  }
}

/** Every sealed column in the schema, for `rotate-key` and the start-up check. */
export interface SealedTable {
  table: keyof Database
  /** Primary key columns, in the order the row key joins them. */
  key: string[]
  columns: string[]
}

/** Every table with sealed columns. A new one is added here, so rotation and the start-up check cover it. */
export const SEALED_TABLES: SealedTable[] = [
  { table: 'mcp_servers', key: ['id'], columns: ['oauth2_client_secret', 'api_key_value', 'custom_headers'] },
  { table: 'mcp_server_user_tokens', key: ['server_id', 'user_id'], columns: ['access_token', 'refresh_token'] },
  { table: 'upstream_oauth_clients', key: ['id'], columns: ['client_secret', 'registration_access_token'] },
  { table: 'mcp_oauth_states', key: ['state_hash'], columns: ['code_verifier'] },
  { table: 'user_links', key: ['user_id', 'provider'], columns: ['access_token', 'refresh_token'] },
]

type Row = Record<string, unknown>

function rowKeyOf(table: SealedTable, row: Row): string {
  return table.key.map((column) => String(row[column])).join('/')
}

/**
 * Re-seals every value not sealed with the active key, table by table in batches. A value
 * changed meanwhile is left as written (the conditional update finds nothing), so a rerun
 * picks up whatever is left and nothing new is overwritten with an old value.
 */
export async function rotateSealedColumns(
  db: Kysely<Database>,
  keyring: Keyring,
  batchSize = 200,
): Promise<{ rotated: number; skipped: number }> {
  let rotated = 0
  let skipped = 0
  const prefix = `${keyring.activeKeyId}:`
  for (const table of SEALED_TABLES)
    for (const column of table.columns) {
      let offset = 0
      for (;;) {
        const rows = (
          await sql<Row>`SELECT ${sql.join(table.key.map((k) => sql.ref(k)))}, ${sql.ref(column)} AS value
            FROM ${sql.table(table.table)}
            WHERE ${sql.ref(column)} IS NOT NULL AND substr(${sql.ref(column)}, 1, ${prefix.length}) <> ${prefix}
            ORDER BY ${sql.join(table.key.map((k) => sql.ref(k)))}
            LIMIT ${batchSize} OFFSET ${offset}`.execute(db)
        ).rows
        if (rows.length === 0) break
        for (const row of rows) {
          const binding = { table: table.table, column, rowKey: rowKeyOf(table, row) }
          const stored = row.value as string
          const resealed = await sealValue(keyring, binding, await openValue(keyring, binding, stored))
          const where = sql.join(
            table.key.map((k) => sql`${sql.ref(k)} = ${row[k]}`),
            sql` AND `,
          )
          const result = await sql`UPDATE ${sql.table(table.table)} SET ${sql.ref(column)} = ${resealed}
              WHERE ${where} AND ${sql.ref(column)} = ${stored}`.execute(db)
          if ((result.numAffectedRows ?? 0n) > 0n) rotated++
          else {
            skipped++
            offset++
          }
        }
      }
    }
  return { rotated, skipped }
}

/**
 * Proves the configured keys open what is stored: no value may name a key that is not
 * configured, and one value per configured key, per column, must open. Run at start-up, so a
 * missing or wrong key is a clear error, never garbage at first use.
 */
export async function verifySealedColumns(db: Kysely<Database>, keyring: Keyring): Promise<void> {
  const keyColumns = (table: SealedTable) => sql.join(table.key.map((k) => sql.ref(k)))
  const startsWith = (column: string, keyId: string) =>
    sql`substr(${sql.ref(column)}, 1, ${keyId.length + 1}) = ${`${keyId}:`}`
  for (const table of SEALED_TABLES)
    for (const column of table.columns) {
      const samples: Row[] = []
      const unknown = sql.join(
        keyring.keyIds.map((keyId) => sql`NOT ${startsWith(column, keyId)}`),
        sql` AND `,
      )
      const foreign = (
        await sql<Row>`SELECT ${keyColumns(table)}, ${sql.ref(column)} AS value FROM ${sql.table(table.table)}
            WHERE ${sql.ref(column)} IS NOT NULL AND ${unknown} LIMIT 1`.execute(db)
      ).rows
      samples.push(...foreign)
      for (const keyId of keyring.keyIds)
        samples.push(
          ...(
            await sql<Row>`SELECT ${keyColumns(table)}, ${sql.ref(column)} AS value FROM ${sql.table(table.table)}
                WHERE ${startsWith(column, keyId)} LIMIT 1`.execute(db)
          ).rows,
        )
      for (const row of samples)
        try {
          await openValue(keyring, { table: table.table, column, rowKey: rowKeyOf(table, row) }, row.value as string)
        } catch (error) {
          if (!(error instanceof SecretKeyError)) throw error
          throw new SecretKeyError(
            `stored secrets cannot be decrypted: ${error.message}. Configure the key in GATEHOUSE_ENCRYPTION_KEYS (new key first, old keys after it).`,
          )
        }
    }
}
