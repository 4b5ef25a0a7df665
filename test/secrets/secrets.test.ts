import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseEncryptionKeys, testConfig } from '../../src/config.ts'
import { generateKeyId, KEY_FILE_NAME } from '../../src/secrets/key-file.ts'
import { Keyring, SecretKeyError } from '../../src/secrets/keyring.ts'
import { readSecret, rotateSecrets, storeSecret, verifyStoredSecrets } from '../../src/secrets/secret.service.ts'
import { prepare } from '../../src/server.ts'
import { silentLogger } from '../../src/ops/logger.ts'
import {
  cliEnv,
  createTempDir,
  encodeKey,
  findFreePort,
  killChildren,
  runCli,
  spawnCli,
  waitUntilHealthy,
  withTimeout,
} from '../fixtures/cli-process.ts'
import { setup, TEST_KEY, type TestContext } from '../setup.ts'

const NEW_KEY = { id: 'new', key: new Uint8Array(32).fill(42) }

async function secretRows(ctx: TestContext) {
  return ctx.db.selectFrom('secrets').selectAll().orderBy('id').execute()
}

/** The rejection of `promise`, or a failure if it resolves. */
async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (error) {
    return error as Error
  }
  throw new Error('expected the promise to reject')
}

describe('secrets at rest', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup()
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('reads back what it stored', async () => {
    const id = await storeSecret(ctx.db, ctx.deps.keyring, 'upstream.client_secret', 'hunter2-plaintext')
    expect(await readSecret(ctx.db, ctx.deps.keyring, id)).toBe('hunter2-plaintext')
  })

  it('reads an unknown secret ID as undefined', async () => {
    expect(await readSecret(ctx.db, ctx.deps.keyring, crypto.randomUUID())).toBeUndefined()
  })

  it('stores ciphertext sealed with the active key, never the plaintext', async () => {
    const id = await storeSecret(ctx.db, ctx.deps.keyring, 'upstream.client_secret', 'hunter2-plaintext')
    const [row] = await secretRows(ctx)
    expect(row).toMatchObject({ id, purpose: 'upstream.client_secret', key_id: 'test1' })
    expect(row.ciphertext).not.toContain('hunter2')
    expect(row.ciphertext).not.toContain(btoa('hunter2-plaintext').slice(0, 12))
  })

  it('seals the same plaintext differently each time', async () => {
    await storeSecret(ctx.db, ctx.deps.keyring, 'p', 'same value')
    await storeSecret(ctx.db, ctx.deps.keyring, 'p', 'same value')
    const [first, second] = await secretRows(ctx)
    expect(first.ciphertext).not.toBe(second.ciphertext)
  })

  it('still reads old ciphertext through a keyring with a newer key in front', async () => {
    const id = await storeSecret(ctx.db, ctx.deps.keyring, 'p', 'sealed with test1')
    const rotated = await Keyring.create([NEW_KEY, TEST_KEY])
    expect(await readSecret(ctx.db, rotated, id)).toBe('sealed with test1')
  })

  it('re-encrypts every secret with the new key on rotation', async () => {
    for (let i = 0; i < 5; i++) await storeSecret(ctx.db, ctx.deps.keyring, 'p', `secret ${i}`)
    const result = await rotateSecrets(ctx.db, await Keyring.create([NEW_KEY, TEST_KEY]), 2)
    expect(result).toEqual({ rotated: 5, skipped: 0 })
    expect((await secretRows(ctx)).map((row) => row.key_id)).toEqual(['new', 'new', 'new', 'new', 'new'])
  })

  it('reads rotated secrets with the new key alone', async () => {
    const ids = [
      await storeSecret(ctx.db, ctx.deps.keyring, 'p', 'first'),
      await storeSecret(ctx.db, ctx.deps.keyring, 'q', 'second'),
    ]
    await rotateSecrets(ctx.db, await Keyring.create([NEW_KEY, TEST_KEY]))
    const newOnly = await Keyring.create([NEW_KEY])
    expect(await Promise.all(ids.map((id) => readSecret(ctx.db, newOnly, id)))).toEqual(['first', 'second'])
  })

  it('leaves nothing to do on a second rotation', async () => {
    await storeSecret(ctx.db, ctx.deps.keyring, 'p', 'value')
    const keyring = await Keyring.create([NEW_KEY, TEST_KEY])
    await rotateSecrets(ctx.db, keyring)
    expect(await rotateSecrets(ctx.db, keyring)).toEqual({ rotated: 0, skipped: 0 })
  })

  it('accepts a keyring that opens every stored secret', async () => {
    await storeSecret(ctx.db, ctx.deps.keyring, 'p', 'value')
    await verifyStoredSecrets(ctx.db, await Keyring.create([NEW_KEY, TEST_KEY]))
  })

  it('refuses a keyring that lacks the key secrets were sealed with, naming that key', async () => {
    await storeSecret(ctx.db, ctx.deps.keyring, 'p', 'value')
    const error = await rejectionOf(verifyStoredSecrets(ctx.db, await Keyring.create([NEW_KEY])))
    expect(error).toBeInstanceOf(SecretKeyError)
    expect(error.message).toContain('"test1"')
    expect(error.message).toContain('not configured')
  })

  it('refuses a keyring whose key has the right ID but other key material', async () => {
    await storeSecret(ctx.db, ctx.deps.keyring, 'p', 'value')
    const impostor = await Keyring.create([{ id: 'test1', key: new Uint8Array(32).fill(8) }])
    const error = await rejectionOf(verifyStoredSecrets(ctx.db, impostor))
    expect(error).toBeInstanceOf(SecretKeyError)
    expect(error.message).toContain('wrong key material')
  })

  it('refuses to open tampered ciphertext', async () => {
    const id = await storeSecret(ctx.db, ctx.deps.keyring, 'p', 'value')
    const [row] = await secretRows(ctx)
    const position = Math.floor(row.ciphertext.length / 2)
    const flipped = row.ciphertext[position] === 'A' ? 'B' : 'A'
    const tampered = row.ciphertext.slice(0, position) + flipped + row.ciphertext.slice(position + 1)
    await ctx.db.updateTable('secrets').set({ ciphertext: tampered }).where('id', '=', id).execute()
    expect(await rejectionOf(readSecret(ctx.db, ctx.deps.keyring, id))).toBeInstanceOf(SecretKeyError)
  })

  it("refuses to open a ciphertext moved to another secret's row", async () => {
    const a = await storeSecret(ctx.db, ctx.deps.keyring, 'p', 'secret of a')
    const b = await storeSecret(ctx.db, ctx.deps.keyring, 'p', 'secret of b')
    const rows = await secretRows(ctx)
    const ciphertextOf = (id: string) => rows.find((row) => row.id === id)!.ciphertext
    await ctx.db
      .updateTable('secrets')
      .set({ ciphertext: ciphertextOf(b) })
      .where('id', '=', a)
      .execute()
    await ctx.db
      .updateTable('secrets')
      .set({ ciphertext: ciphertextOf(a) })
      .where('id', '=', b)
      .execute()
    expect(await rejectionOf(readSecret(ctx.db, ctx.deps.keyring, a))).toBeInstanceOf(SecretKeyError)
    expect(await rejectionOf(readSecret(ctx.db, ctx.deps.keyring, b))).toBeInstanceOf(SecretKeyError)
  })

  it('refuses to open a secret whose purpose was changed', async () => {
    const id = await storeSecret(ctx.db, ctx.deps.keyring, 'upstream.client_secret', 'value')
    await ctx.db.updateTable('secrets').set({ purpose: 'something.else' }).where('id', '=', id).execute()
    expect(await rejectionOf(readSecret(ctx.db, ctx.deps.keyring, id))).toBeInstanceOf(SecretKeyError)
  })
})

describe('gatehouse rotate-key', () => {
  const NEW_KEY_TEXT = `new:${encodeKey(NEW_KEY.key)}`
  const OLD_KEY_TEXT = `test1:${encodeKey(TEST_KEY.key)}`
  let dir: ReturnType<typeof createTempDir>
  let databaseUrl: string

  beforeEach(async () => {
    dir = createTempDir()
    databaseUrl = `sqlite:${join(dir.path, 'gatehouse.db')}`
    const deps = await prepare(testConfig({ databaseUrl, encryptionKeys: [TEST_KEY] }), silentLogger)
    try {
      await storeSecret(deps.db, deps.keyring, 'upstream.client_secret', 'rotate me')
    } finally {
      await deps.db.destroy()
    }
  })
  afterEach(() => {
    killChildren()
    dir.remove()
  })

  const env = (keys: string, extra: Record<string, string> = {}) =>
    cliEnv({ DATABASE_URL: databaseUrl, GATEHOUSE_DATA_DIR: dir.path, GATEHOUSE_ENCRYPTION_KEYS: keys, ...extra })

  async function serveWith(keys: string) {
    const port = await findFreePort()
    const child = spawnCli(['serve'], env(keys, { PORT: String(port), GATEHOUSE_HOST: '127.0.0.1' }))
    return { child, healthz: `http://127.0.0.1:${port}/healthz` }
  }

  it('reports how many secrets it re-encrypted and with which key', async () => {
    const result = await runCli(['rotate-key'], env(`${NEW_KEY_TEXT},${OLD_KEY_TEXT}`))
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toBe('re-encrypted 1 secret(s) with key "new"\n')
  })

  it('lets the server start with only the new key after rotating', async () => {
    expect((await runCli(['rotate-key'], env(`${NEW_KEY_TEXT},${OLD_KEY_TEXT}`))).exitCode).toBe(0)
    const { child, healthz } = await serveWith(NEW_KEY_TEXT)
    await waitUntilHealthy(healthz, child)
    expect((await fetch(healthz)).status).toBe(200)
  })

  it('refuses to start with only a wrong key, naming the key the secrets need', async () => {
    expect((await runCli(['rotate-key'], env(`${NEW_KEY_TEXT},${OLD_KEY_TEXT}`))).exitCode).toBe(0)
    const { child } = await serveWith(`wrong:${encodeKey(new Uint8Array(32).fill(9))}`)
    const [exitCode, stderr] = await withTimeout(
      Promise.all([child.exited, new Response(child.stderr).text()]),
      15_000,
      'the server to give up',
    )
    expect(exitCode).not.toBe(0)
    expect(stderr).toContain('stored secrets cannot be decrypted')
    expect(stderr).toContain('"new"')
  })

  it('refuses to start with the old key alone after rotating', async () => {
    expect((await runCli(['rotate-key'], env(`${NEW_KEY_TEXT},${OLD_KEY_TEXT}`))).exitCode).toBe(0)
    const { child } = await serveWith(OLD_KEY_TEXT)
    const [exitCode, stderr] = await withTimeout(
      Promise.all([child.exited, new Response(child.stderr).text()]),
      15_000,
      'the server to give up',
    )
    expect(exitCode).not.toBe(0)
    expect(stderr).toContain('"new"')
  })
})

describe('encryption keys with several replicas', () => {
  afterEach(() => killChildren())

  it('refuses to serve on Postgres without configured keys, in one line naming the variable', async () => {
    const dir = createTempDir()
    try {
      // Nothing listens on this port: the refusal must come before any connection is tried.
      const port = await findFreePort()
      const result = await runCli(
        ['serve'],
        cliEnv({ DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/test`, GATEHOUSE_DATA_DIR: dir.path }),
      )
      expect(result.exitCode).toBe(2)
      expect(result.stderr).toContain(
        'GATEHOUSE_ENCRYPTION_KEYS: must be set when DATABASE_URL is Postgres, so every replica seals and opens secrets with the same keys',
      )
      expect(existsSync(join(dir.path, KEY_FILE_NAME))).toBe(false)
    } finally {
      dir.remove()
    }
  })

  it('gives every generated key its own ID, even on the same day', () => {
    const ids = new Set(Array.from({ length: 50 }, () => generateKeyId(new Date('2026-12-01T00:00:00Z'))))
    expect(ids.size).toBe(50)
    for (const id of ids) expect(parseEncryptionKeys(`${id}:${encodeKey(new Uint8Array(32))}`)[0].id).toBe(id)
  })
})
