import type { Kysely } from 'kysely'
import { nowSeconds } from '../db/index.ts'
import type { Database } from '../db/schema.ts'
import { SecretKeyError, type Keyring } from './keyring.ts'
import {
  findSecretById,
  insertSecret,
  listSecretsNotSealedWith,
  replaceSecretCiphertext,
  sampleSecretPerKey,
} from './secret.repository.ts'

/** The additional data that binds a ciphertext to its row and purpose. */
function bindingOf(id: string, purpose: string): string {
  return `gatehouse-secret:${purpose}:${id}`
}

/** Encrypts and stores a secret; returns its ID for the owning row to reference. */
export async function storeSecret(
  db: Kysely<Database>,
  keyring: Keyring,
  purpose: string,
  plaintext: string,
): Promise<string> {
  const id = crypto.randomUUID()
  const sealed = await keyring.seal(plaintext, bindingOf(id, purpose))
  const now = nowSeconds()
  await insertSecret(db, {
    id,
    purpose,
    key_id: sealed.keyId,
    ciphertext: sealed.ciphertext,
    created_at: now,
    updated_at: now,
  })
  return id
}

export async function readSecret(db: Kysely<Database>, keyring: Keyring, id: string): Promise<string | undefined> {
  const row = await findSecretById(db, id)
  if (!row) return undefined
  return keyring.open({ keyId: row.key_id, ciphertext: row.ciphertext }, bindingOf(row.id, row.purpose))
}

/**
 * Re-encrypts every secret not yet sealed with the active key, in batches. Rows written
 * concurrently are skipped, not clobbered; a rerun picks up whatever is left.
 */
export async function rotateSecrets(
  db: Kysely<Database>,
  keyring: Keyring,
  batchSize = 200,
): Promise<{ rotated: number; skipped: number }> {
  let rotated = 0
  let skipped = 0
  let cursor = ''
  for (;;) {
    const rows = await listSecretsNotSealedWith(db, keyring.activeKeyId, cursor, batchSize)
    if (rows.length === 0) break
    for (const row of rows) {
      cursor = row.id
      const binding = bindingOf(row.id, row.purpose)
      const plaintext = await keyring.open({ keyId: row.key_id, ciphertext: row.ciphertext }, binding)
      const sealed = await keyring.seal(plaintext, binding)
      const replaced = await replaceSecretCiphertext(db, row, { ...sealed, updatedAt: nowSeconds() })
      if (replaced) rotated++
      else skipped++
    }
  }
  return { rotated, skipped }
}

/**
 * Proves the configured keys can open what is stored: one secret per key ID in use must decrypt.
 * Called at start-up so a missing or wrong key is a clear error, never garbage at first use.
 */
export async function verifyStoredSecrets(db: Kysely<Database>, keyring: Keyring): Promise<void> {
  for (const row of await sampleSecretPerKey(db)) {
    try {
      await keyring.open({ keyId: row.key_id, ciphertext: row.ciphertext }, bindingOf(row.id, row.purpose))
    } catch (error) {
      if (!(error instanceof SecretKeyError)) throw error
      throw new SecretKeyError(
        `stored secrets cannot be decrypted: ${error.message}. Configure the key in GATEHOUSE_ENCRYPTION_KEYS (new key first, old keys after it).`,
      )
    }
  }
}
