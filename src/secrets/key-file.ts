import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseEncryptionKeys, type EncryptionKeySpec } from '../config.ts'

export const KEY_FILE_NAME = 'encryption-key'

/**
 * A key ID that no other generated key shares: the date for people reading it, and 48 random
 * bits so two machines generating a key on the same day never collide.
 */
export function generateKeyId(now = new Date()): string {
  const random = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, '0')).join('')
  return `k${now.toISOString().slice(0, 10).replaceAll('-', '')}-${random}`
}

/** A fresh key in the `id:base64` form GATEHOUSE_ENCRYPTION_KEYS uses. */
export function generateKeySpecText(id = generateKeyId()): string {
  const key = crypto.getRandomValues(new Uint8Array(32))
  return `${id}:${btoa(String.fromCharCode(...key))}`
}

/**
 * The key used when GATEHOUSE_ENCRYPTION_KEYS is unset: read from the data directory, created
 * there (mode 0600) on first start so the quick start needs no configuration.
 */
export function loadOrCreateKeyFile(dataDir: string): { keys: EncryptionKeySpec[]; path: string; created: boolean } {
  const path = join(dataDir, KEY_FILE_NAME)
  let created = false
  if (!existsSync(path)) {
    mkdirSync(dataDir, { recursive: true })
    writeFileSync(path, `${generateKeySpecText()}\n`, { mode: 0o600, flag: 'wx' })
    created = true
  }
  try {
    return { keys: parseEncryptionKeys(readFileSync(path, 'utf8')), path, created }
  } catch (error) {
    throw new Error(`${path}: ${error instanceof Error ? error.message : String(error)}`)
  }
}
