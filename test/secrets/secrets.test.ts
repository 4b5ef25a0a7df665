import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import type { Kysely } from 'kysely'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseEncryptionKeys, testConfig } from '../../src/config.ts'
import type { Database } from '../../src/db/schema.ts'
import { findDefaultOrganization } from '../../src/orgs/org.repository.ts'
import { generateKeyId, KEY_FILE_NAME } from '../../src/secrets/key-file.ts'
import { Keyring, SecretKeyError } from '../../src/secrets/keyring.ts'
import { openValue, rotateSealedColumns, sealValue, verifySealedColumns } from '../../src/secrets/sealed-column.ts'
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

const binding = (id: string, column = 'api_key_value') => ({ table: 'mcp_servers', column, rowKey: id })

/** An upstream server row whose API key is `value`, sealed the way the registry seals it. */
async function insertServerWithKey(db: Kysely<Database>, keyring: Keyring, slug: string, value: string) {
  const id = crypto.randomUUID()
  const organization = await findDefaultOrganization(db)
  await db
    .insertInto('mcp_servers')
    .values({
      id,
      organization_id: organization.id,
      display_name: slug,
      slug,
      transport: 'streamable_http',
      url: 'https://mcp.example.com/mcp',
      auth_type: 'api_key',
      api_key_header: 'X-Api-Key',
      api_key_value: await sealValue(keyring, binding(id), value),
      availability: 'default_on',
      created_at: 0,
      updated_at: 0,
    })
    .execute()
  return id
}

async function storedKey(ctx: TestContext, id: string): Promise<string> {
  const row = await ctx.db
    .selectFrom('mcp_servers')
    .select('api_key_value')
    .where('id', '=', id)
    .executeTakeFirstOrThrow()
  return row.api_key_value!
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

describe('secrets sealed in their rows', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup()
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('reads back what it stored', async () => {
    const id = await insertServerWithKey(ctx.db, ctx.deps.keyring, 'a', 'hunter2-plaintext')
    expect(await openValue(ctx.deps.keyring, binding(id), await storedKey(ctx, id))).toBe('hunter2-plaintext')
  })

  it('stores ciphertext sealed with the active key, never the plaintext', async () => {
    const id = await insertServerWithKey(ctx.db, ctx.deps.keyring, 'a', 'hunter2-plaintext')
    const stored = await storedKey(ctx, id)
    expect(stored).toStartWith('test1:')
    expect(stored).not.toContain('hunter2')
    expect(stored).not.toContain(btoa('hunter2-plaintext').slice(0, 12))
  })

  it('seals the same plaintext differently each time', async () => {
    const a = await insertServerWithKey(ctx.db, ctx.deps.keyring, 'a', 'same value')
    const b = await insertServerWithKey(ctx.db, ctx.deps.keyring, 'b', 'same value')
    expect(await storedKey(ctx, a)).not.toBe(await storedKey(ctx, b))
  })

  it('still reads old ciphertext through a keyring with a newer key in front', async () => {
    const id = await insertServerWithKey(ctx.db, ctx.deps.keyring, 'a', 'sealed with test1')
    const rotated = await Keyring.create([NEW_KEY, TEST_KEY])
    expect(await openValue(rotated, binding(id), await storedKey(ctx, id))).toBe('sealed with test1')
  })

  it('re-seals every value with the new key on rotation, in batches', async () => {
    const ids = []
    for (let i = 0; i < 5; i++) ids.push(await insertServerWithKey(ctx.db, ctx.deps.keyring, `s${i}`, `secret ${i}`))
    const result = await rotateSealedColumns(ctx.db, await Keyring.create([NEW_KEY, TEST_KEY]), 2)
    expect(result).toEqual({ rotated: 5, skipped: 0 })
    const newOnly = await Keyring.create([NEW_KEY])
    for (const [i, id] of ids.entries()) {
      const stored = await storedKey(ctx, id)
      expect(stored).toStartWith('new:')
      expect(await openValue(newOnly, binding(id), stored)).toBe(`secret ${i}`)
    }
  })

  it('leaves nothing to do on a second rotation', async () => {
    await insertServerWithKey(ctx.db, ctx.deps.keyring, 'a', 'value')
    const keyring = await Keyring.create([NEW_KEY, TEST_KEY])
    await rotateSealedColumns(ctx.db, keyring)
    expect(await rotateSealedColumns(ctx.db, keyring)).toEqual({ rotated: 0, skipped: 0 })
  })

  it('accepts a keyring that opens every stored secret', async () => {
    await insertServerWithKey(ctx.db, ctx.deps.keyring, 'a', 'value')
    await verifySealedColumns(ctx.db, await Keyring.create([NEW_KEY, TEST_KEY]))
  })

  it('refuses a keyring that lacks the key secrets were sealed with, naming that key', async () => {
    await insertServerWithKey(ctx.db, ctx.deps.keyring, 'a', 'value')
    const error = await rejectionOf(verifySealedColumns(ctx.db, await Keyring.create([NEW_KEY])))
    expect(error).toBeInstanceOf(SecretKeyError)
    expect(error.message).toContain('"test1"')
    expect(error.message).toContain('not configured')
  })

  it('refuses a keyring whose key has the right ID but other key material', async () => {
    await insertServerWithKey(ctx.db, ctx.deps.keyring, 'a', 'value')
    const impostor = await Keyring.create([{ id: 'test1', key: new Uint8Array(32).fill(8) }])
    const error = await rejectionOf(verifySealedColumns(ctx.db, impostor))
    expect(error).toBeInstanceOf(SecretKeyError)
    expect(error.message).toContain('wrong key material')
  })

  it('refuses to open tampered ciphertext', async () => {
    const id = await insertServerWithKey(ctx.db, ctx.deps.keyring, 'a', 'value')
    const stored = await storedKey(ctx, id)
    const position = Math.floor(stored.length / 2) + 3
    const tampered = stored.slice(0, position) + (stored[position] === 'A' ? 'B' : 'A') + stored.slice(position + 1)
    expect(await rejectionOf(openValue(ctx.deps.keyring, binding(id), tampered))).toBeInstanceOf(SecretKeyError)
  })

  it('refuses to open a ciphertext moved to another row, saying which row and column', async () => {
    const a = await insertServerWithKey(ctx.db, ctx.deps.keyring, 'a', 'secret of a')
    const b = await insertServerWithKey(ctx.db, ctx.deps.keyring, 'b', 'secret of b')
    await ctx.db
      .updateTable('mcp_servers')
      .set({ api_key_value: await storedKey(ctx, a) })
      .where('id', '=', b)
      .execute()
    const error = await rejectionOf(openValue(ctx.deps.keyring, binding(b), await storedKey(ctx, b)))
    expect(error).toBeInstanceOf(SecretKeyError)
    expect(error.message).toContain(`mcp_servers.api_key_value of ${b}`)
    expect(error.message).toContain('does not decrypt')
  })

  it('refuses to open a ciphertext moved to another column of the same row', async () => {
    const id = await insertServerWithKey(ctx.db, ctx.deps.keyring, 'a', 'value')
    const stored = await storedKey(ctx, id)
    expect(await rejectionOf(openValue(ctx.deps.keyring, binding(id, 'custom_headers'), stored))).toBeInstanceOf(
      SecretKeyError,
    )
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
      await insertServerWithKey(deps.db, deps.keyring, 'rotate', 'rotate me')
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
