import { createHmac } from 'node:crypto'
import { decodeBase64urlIgnorePadding, encodeBase64urlNoPadding } from '@oslojs/encoding'
import type { EncryptionKeySpec } from '../config.ts'

const IV_BYTES = 12

/** A secret could not be opened: unknown key ID, wrong key material or tampered ciphertext. */
export class SecretKeyError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'SecretKeyError'
  }
}

export interface Sealed {
  keyId: string
  ciphertext: string
}

/**
 * AES-256-GCM over WebCrypto. The first key seals; every key opens what it sealed, which is
 * what lets `rotate-key` re-encrypt stored secrets while old ciphertext stays readable.
 * The additional data binds a ciphertext to its row, so one row's secret cannot be moved to another.
 */
export class Keyring {
  private constructor(
    private readonly keys: Map<string, CryptoKey>,
    readonly activeKeyId: string,
    private readonly activeKey: Uint8Array,
  ) {}

  static async create(specs: EncryptionKeySpec[]): Promise<Keyring> {
    if (specs.length === 0) throw new SecretKeyError('no encryption key is configured')
    const keys = new Map<string, CryptoKey>()
    for (const spec of specs)
      keys.set(
        spec.id,
        await crypto.subtle.importKey('raw', new Uint8Array(spec.key), 'AES-GCM', false, ['encrypt', 'decrypt']),
      )
    return new Keyring(keys, specs[0].id, new Uint8Array(specs[0].key))
  }

  /**
   * A 32-byte key for another purpose (`label` names it), derived from the active key with
   * HMAC-SHA-256, so every replica with the same configuration derives the same one.
   */
  deriveKey(label: string): Uint8Array {
    return new Uint8Array(createHmac('sha256', this.activeKey).update(`gatehouse/${label}`).digest())
  }

  get keyIds(): string[] {
    return [...this.keys.keys()]
  }

  async seal(plaintext: string, additionalData: string): Promise<Sealed> {
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES))
    const encrypted = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(additionalData) },
      this.keys.get(this.activeKeyId)!,
      new TextEncoder().encode(plaintext),
    )
    const joined = new Uint8Array(IV_BYTES + encrypted.byteLength)
    joined.set(iv)
    joined.set(new Uint8Array(encrypted), IV_BYTES)
    return { keyId: this.activeKeyId, ciphertext: encodeBase64urlNoPadding(joined) }
  }

  async open({ keyId, ciphertext }: Sealed, additionalData: string): Promise<string> {
    const key = this.keys.get(keyId)
    if (!key) throw new SecretKeyError(`secret was sealed with key "${keyId}", which is not configured`)
    let bytes: Uint8Array
    try {
      bytes = decodeBase64urlIgnorePadding(ciphertext)
    } catch {
      throw new SecretKeyError('stored ciphertext is not valid base64url')
    }
    try {
      const plaintext = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: bytes.slice(0, IV_BYTES), additionalData: new TextEncoder().encode(additionalData) },
        key,
        bytes.slice(IV_BYTES),
      )
      return new TextDecoder().decode(plaintext)
    } catch {
      throw new SecretKeyError(
        `key "${keyId}" does not decrypt the stored secret (wrong key material or tampered data)`,
      )
    }
  }
}
