import { closeAggregator } from '../src/aggregate/index.ts'
import { closePassthrough } from '../src/passthrough/index.ts'
import { treaty } from '@elysia/eden'
import pg from 'pg'
import { createApp } from '../src/app.ts'
import { testConfig, type Config } from '../src/config.ts'
import { silentLogger, type Logger } from '../src/ops/logger.ts'
import { prepare, startGatehouse, type Gatehouse } from '../src/server.ts'

/** A fixed 32-byte test key, so tests can also build a second keyring that knows it. */
export const TEST_KEY = { id: 'test1', key: new Uint8Array(32).fill(7) }

export const usingPostgres = Boolean(process.env.TEST_DATABASE_URL)

/**
 * A database URL of its own for one test: `:memory:` SQLite, or with TEST_DATABASE_URL a fresh
 * Postgres schema (selected through `search_path`) that `drop` removes again.
 */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = process.env.TEST_DATABASE_URL
  if (!base) return { url: ':memory:', drop: async () => {} }
  const schema = `t_${crypto.randomUUID().replaceAll('-', '').slice(0, 16)}`
  const admin = new pg.Client({ connectionString: base })
  await admin.connect()
  await admin.query(`CREATE SCHEMA ${schema}`)
  await admin.end()
  const url = new URL(base)
  url.searchParams.set('options', `-c search_path=${schema}`)
  return {
    url: url.href,
    drop: async () => {
      const client = new pg.Client({ connectionString: base })
      await client.connect()
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      await client.end()
    },
  }
}

/** A migrated app on its own database, driven through `app.handle` (no network). */
export async function setup(overrides: Partial<Config> = {}, logger: Logger = silentLogger) {
  const database = await createTestDatabase()
  const config = testConfig({ databaseUrl: database.url, encryptionKeys: [TEST_KEY], ...overrides })
  const deps = await prepare(config, logger).catch(async (error) => {
    await database.drop()
    throw error
  })
  const app = createApp(deps)
  const api = (token?: string) => treaty(app, { headers: token ? { authorization: `Bearer ${token}` } : {} })
  return {
    app,
    api,
    deps,
    db: deps.db,
    config,
    async close() {
      await closeAggregator(deps)
      await closePassthrough(deps)
      await deps.events.close()
      await deps.db.destroy()
      await database.drop()
    },
  }
}

export type TestContext = Awaited<ReturnType<typeof setup>>

/** A real server on a loopback port with its own database. */
export async function startTestServer(overrides: Partial<Config> = {}, logger: Logger = silentLogger) {
  const database = await createTestDatabase()
  const config = testConfig({
    databaseUrl: database.url,
    encryptionKeys: [TEST_KEY],
    port: 0,
    host: '127.0.0.1',
    ...overrides,
  })
  const gatehouse: Gatehouse = await startGatehouse(config, logger).catch(async (error) => {
    await database.drop()
    throw error
  })
  return {
    ...gatehouse,
    url: gatehouse.server.url,
    async close() {
      await gatehouse.shutdown()
      await database.drop()
    },
  }
}

export const OWNER = { email: 'owner@example.com', username: 'owner', password: 'owner-password-1' }

export async function json(response: Response): Promise<any> {
  return response.json()
}

/** Creates the first user through the API and signs them in; returns their session token. */
export async function bootstrapOwner(ctx: Pick<TestContext, 'app'>): Promise<{ id: string; token: string }> {
  const created = await ctx.app.handle(
    new Request('http://localhost/api/v1/users/first', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(OWNER),
    }),
  )
  if (created.status !== 201) throw new Error(`first user: ${created.status} ${await created.text()}`)
  const { id } = await created.json()
  return { id, token: await login(ctx, OWNER.username, OWNER.password) }
}

export async function login(ctx: Pick<TestContext, 'app'>, username: string, password: string): Promise<string> {
  const response = await ctx.app.handle(
    new Request('http://localhost/api/v1/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login: username, password }),
    }),
  )
  if (response.status !== 200) throw new Error(`login ${username}: ${response.status} ${await response.text()}`)
  return (await response.json()).session_token
}

/** An owner-created user, signed in. */
export async function createUserAndLogin(
  ctx: Pick<TestContext, 'app'>,
  ownerToken: string,
  username: string,
  role: 'admin' | 'member' = 'member',
): Promise<{ id: string; token: string }> {
  const password = `${username}-password-1`
  const response = await ctx.app.handle(
    new Request('http://localhost/api/v1/users', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ownerToken}` },
      body: JSON.stringify({ email: `${username}@example.com`, username, password, role }),
    }),
  )
  if (response.status !== 201) throw new Error(`create ${username}: ${response.status} ${await response.text()}`)
  const { id } = await response.json()
  return { id, token: await login(ctx, username, password) }
}
