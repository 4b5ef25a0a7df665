import { afterEach, describe, expect, it } from 'bun:test'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Kysely, sql } from 'kysely'
import { openDatabase, type Store } from '../../src/db/index.ts'
import {
  loadMigrationSources,
  migrateToLatest,
  MIGRATIONS_DIR,
  pendingMigrations,
  splitStatements,
} from '../../src/db/migrate.ts'
import { cliEnv, createTempDir, killChildren, runCli } from '../fixtures/cli-process.ts'
import { createTestDatabase, usingPostgres } from '../setup.ts'

/** Every shipped migration of a dialect, in the order they apply. */
async function shippedMigrations(dialect: 'sqlite' | 'postgres'): Promise<string[]> {
  return Object.keys(await loadMigrationSources(dialect)).sort()
}

describe('splitStatements', () => {
  it('splits statements that end a line with a semicolon', () => {
    expect(splitStatements('CREATE TABLE a (x INTEGER);\nCREATE TABLE b (y INTEGER);\n')).toEqual([
      'CREATE TABLE a (x INTEGER)',
      'CREATE TABLE b (y INTEGER)',
    ])
  })

  it('keeps a statement that spans several lines whole', () => {
    expect(splitStatements('CREATE TABLE a (\n  x INTEGER,\n  y TEXT\n);\n')).toEqual([
      'CREATE TABLE a (\n  x INTEGER,\n  y TEXT\n)',
    ])
  })

  it('does not split on a semicolon inside a line', () => {
    expect(splitStatements("INSERT INTO a (x) VALUES ('one;two');\nSELECT 1;")).toEqual([
      "INSERT INTO a (x) VALUES ('one;two')",
      'SELECT 1',
    ])
  })

  it('splits after a semicolon followed by a comment on the same line', () => {
    expect(splitStatements('CREATE TABLE a (x INTEGER); -- the first\nCREATE TABLE b (y INTEGER);')).toEqual([
      'CREATE TABLE a (x INTEGER)',
      'CREATE TABLE b (y INTEGER)',
    ])
  })

  it('keeps comments that introduce a statement with it', () => {
    const statements = splitStatements(
      '-- users\nCREATE TABLE users (id TEXT);\n\n-- orgs\nCREATE TABLE orgs (id TEXT);\n',
    )
    expect(statements).toEqual(['-- users\nCREATE TABLE users (id TEXT)', '-- orgs\nCREATE TABLE orgs (id TEXT)'])
  })

  it('drops a trailing chunk that holds only comments', () => {
    expect(splitStatements('CREATE TABLE a (x INTEGER);\n\n-- end of migration\n-- nothing else\n')).toEqual([
      'CREATE TABLE a (x INTEGER)',
    ])
  })

  it('treats a last statement without a semicolon as a statement', () => {
    expect(splitStatements('CREATE TABLE a (x INTEGER);\nCREATE TABLE b (y INTEGER)')).toEqual([
      'CREATE TABLE a (x INTEGER)',
      'CREATE TABLE b (y INTEGER)',
    ])
  })

  it('splits files with Windows line endings', () => {
    expect(splitStatements('CREATE TABLE a (x INTEGER);\r\nCREATE TABLE b (y INTEGER);\r\n')).toEqual([
      'CREATE TABLE a (x INTEGER)',
      'CREATE TABLE b (y INTEGER)',
    ])
  })

  it('finds nothing in an empty or comment-only file', () => {
    expect(splitStatements('')).toEqual([])
    expect(splitStatements('-- nothing yet\n')).toEqual([])
  })
})

describe('migrateToLatest', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  async function openTestDatabase(): Promise<Store> {
    const database = await createTestDatabase()
    const store = await openDatabase(database.url)
    cleanups.push(
      () => database.drop(),
      () => store.db.destroy(),
    )
    return store
  }

  function migrationFolder(files: Record<string, string>): string {
    const dir = createTempDir()
    cleanups.push(dir.remove)
    mkdirSync(join(dir.path, 'sqlite'))
    for (const [name, source] of Object.entries(files)) writeFileSync(join(dir.path, 'sqlite', name), source)
    return dir.path
  }

  async function sqliteTables(store: Store): Promise<string[]> {
    const { rows } = await sql<{
      name: string
    }>`select name from sqlite_master where type = 'table' and name not like 'kysely_%' order by name`.execute(store.db)
    return rows.map((row) => row.name)
  }

  it('runs every statement of a migration file on SQLite', async () => {
    const root = migrationFolder({
      '0001_x.sql':
        '-- three tables\nCREATE TABLE alpha (id TEXT);\n\nCREATE TABLE beta (\n  id TEXT\n);\nCREATE TABLE gamma (id TEXT); -- last\n',
    })
    const store = await openDatabase(':memory:')
    cleanups.push(() => store.db.destroy())
    expect(await migrateToLatest(store.db, 'sqlite', root)).toEqual(['0001_x'])
    expect(await sqliteTables(store)).toEqual(['alpha', 'beta', 'gamma'])
  })

  it('applies migration files in name order', async () => {
    const root = migrationFolder({
      '0002_second.sql': 'ALTER TABLE first ADD COLUMN extra TEXT;\n',
      '0001_first.sql': 'CREATE TABLE first (id TEXT);\n',
    })
    const store = await openDatabase(':memory:')
    cleanups.push(() => store.db.destroy())
    expect(await migrateToLatest(store.db, 'sqlite', root)).toEqual(['0001_first', '0002_second'])
  })

  it('names the migration that failed', async () => {
    const root = migrationFolder({ '0001_broken.sql': 'CREATE TABLE fine (id TEXT);\nCREATE TABLE broken (;\n' })
    const store = await openDatabase(':memory:')
    cleanups.push(() => store.db.destroy())
    const error = await migrateToLatest(store.db, 'sqlite', root).then(
      () => undefined,
      (e: Error) => e,
    )
    expect(error?.message).toStartWith('migration 0001_broken failed:')
  })

  it('leaves nothing of a migration that failed half-way', async () => {
    const root = migrationFolder({ '0001_broken.sql': 'CREATE TABLE fine (id TEXT);\nCREATE TABLE broken (;\n' })
    const store = await openDatabase(':memory:')
    cleanups.push(() => store.db.destroy())
    await migrateToLatest(store.db, 'sqlite', root).catch(() => undefined)
    expect(await sqliteTables(store)).toEqual([])
  })

  it('applies a corrected migration after a failed attempt', async () => {
    const root = migrationFolder({ '0001_broken.sql': 'CREATE TABLE fine (id TEXT);\nCREATE TABLE broken (;\n' })
    const store = await openDatabase(':memory:')
    cleanups.push(() => store.db.destroy())
    await migrateToLatest(store.db, 'sqlite', root).catch(() => undefined)
    writeFileSync(
      join(root, 'sqlite', '0001_broken.sql'),
      'CREATE TABLE fine (id TEXT);\nCREATE TABLE broken (id TEXT);\n',
    )
    expect(await migrateToLatest(store.db, 'sqlite', root)).toEqual(['0001_broken'])
  })

  it('applies the shipped migrations to an empty database', async () => {
    const store = await openTestDatabase()
    expect(await migrateToLatest(store.db, store.dialect)).toEqual(await shippedMigrations(store.dialect))
    expect(await pendingMigrations(store.db, store.dialect)).toEqual([])
  })

  it('applies nothing on a second run', async () => {
    const store = await openTestDatabase()
    await migrateToLatest(store.db, store.dialect)
    expect(await migrateToLatest(store.db, store.dialect)).toEqual([])
  })

  it('creates the default organization exactly once', async () => {
    const store = await openTestDatabase()
    await migrateToLatest(store.db, store.dialect)
    await migrateToLatest(store.db, store.dialect)
    const organizations = await store.db.selectFrom('organizations').select(['name', 'is_default']).execute()
    expect(organizations).toEqual([{ name: 'default', is_default: 1 }])
  })

  it('ships the same migration file names for SQLite and Postgres', () => {
    const names = (dialect: string) =>
      readdirSync(join(MIGRATIONS_DIR, dialect))
        .filter((file) => file.endsWith('.sql'))
        .sort()
    expect(names('sqlite').length).toBeGreaterThan(0)
    expect(names('postgres')).toEqual(names('sqlite'))
  })
})

describe('0007: registrations at upstream authorization servers belong to one organization', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  /** A database migrated up to 0006, as a deployment of the previous release has it. */
  async function openMigratedTo0006(): Promise<Store> {
    const database = await createTestDatabase()
    const store = await openDatabase(database.url)
    cleanups.push(
      () => database.drop(),
      () => store.db.destroy(),
    )
    const dir = createTempDir()
    cleanups.push(dir.remove)
    mkdirSync(join(dir.path, store.dialect))
    const sources = await loadMigrationSources(store.dialect)
    for (const name of Object.keys(sources).filter((migration) => migration < '0007'))
      writeFileSync(join(dir.path, store.dialect, `${name}.sql`), sources[name])
    await migrateToLatest(store.db, store.dialect, dir.path)
    return store
  }

  it('gives a kept registration to the one organization whose servers use it, and forgets shared and unused ones', async () => {
    const store = await openMigratedTo0006()
    const db = store.db as Kysely<any>
    const home = (await db.selectFrom('organizations').select('id').executeTakeFirstOrThrow()).id as string
    await db
      .insertInto('organizations')
      .values({ id: 'org-side', name: 'side', display_name: '', is_default: 0, created_at: 0, updated_at: 0 })
      .execute()
    const client = (id: string, issuer: string, clientId: string) => ({
      id,
      issuer,
      gatehouse_origin: 'https://gatehouse.example.com',
      client_id: clientId,
      client_secret: `test1:sealed-${id}`,
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: '[]',
      created_at: 0,
      updated_at: 0,
    })
    await db
      .insertInto('upstream_oauth_clients')
      .values([
        client('shared', 'https://as-shared.example', 'client-shared'),
        client('home-only', 'https://as-home.example', 'client-home'),
        client('side-only', 'https://as-side.example', 'client-side'),
        client('unused', 'https://as-unused.example', 'client-unused'),
      ])
      .execute()
    const server = (
      slug: string,
      organizationId: string,
      issuer: string,
      clientId: string,
      registration = 'dynamic',
    ) => ({
      id: `server-${slug}`,
      organization_id: organizationId,
      display_name: slug,
      slug,
      transport: 'streamable_http',
      url: `https://${slug}.example/mcp`,
      auth_type: 'oauth2',
      oauth2_client_id: clientId,
      oauth2_issuer: issuer,
      oauth2_registration: registration,
      availability: 'default_on',
      created_at: 0,
      updated_at: 0,
    })
    await db
      .insertInto('mcp_servers')
      .values([
        server('shared-home', home, 'https://as-shared.example', 'client-shared'),
        server('shared-side', 'org-side', 'https://as-shared.example', 'client-shared'),
        server('home-a', home, 'https://as-home.example', 'client-home'),
        server('home-b', home, 'https://as-home.example', 'client-home'),
        server('side-a', 'org-side', 'https://as-side.example', 'client-side'),
        // Set by hand with the same client ID: not a user of the registration.
        server('home-manual', home, 'https://as-side.example', 'client-side', 'manual'),
      ])
      .execute()

    expect(await migrateToLatest(store.db, store.dialect)).toContain('0007_upstream_clients_per_organization')

    const kept = await db
      .selectFrom('upstream_oauth_clients')
      .select(['id', 'organization_id', 'issuer', 'client_id', 'client_secret'])
      .orderBy('id')
      .execute()
    expect(kept).toEqual([
      {
        id: 'home-only',
        organization_id: home,
        issuer: 'https://as-home.example',
        client_id: 'client-home',
        client_secret: 'test1:sealed-home-only',
      },
      {
        id: 'side-only',
        organization_id: 'org-side',
        issuer: 'https://as-side.example',
        client_id: 'client-side',
        client_secret: 'test1:sealed-side-only',
      },
    ])
    // The servers keep the client they hold; only the sharing is gone.
    expect(await db.selectFrom('mcp_servers').select('id').execute()).toHaveLength(6)
  })

  it('keeps one registration per organization, issuer and origin, and drops it with its organization', async () => {
    const store = await openMigratedTo0006()
    await migrateToLatest(store.db, store.dialect)
    const db = store.db as Kysely<any>
    await db
      .insertInto('organizations')
      .values({ id: 'org-side', name: 'side', display_name: '', is_default: 0, created_at: 0, updated_at: 0 })
      .execute()
    const home = (
      await db.selectFrom('organizations').select('id').where('is_default', '=', 1).executeTakeFirstOrThrow()
    ).id as string
    const row = (id: string, organizationId: string) => ({
      id,
      organization_id: organizationId,
      issuer: 'https://as.example',
      gatehouse_origin: 'https://gatehouse.example.com',
      client_id: id,
      token_endpoint_auth_method: 'none',
      redirect_uris: '[]',
      created_at: 0,
      updated_at: 0,
    })
    await db
      .insertInto('upstream_oauth_clients')
      .values([row('a', home), row('b', 'org-side')])
      .execute()
    const duplicate = await db
      .insertInto('upstream_oauth_clients')
      .values(row('c', home))
      .execute()
      .then(
        () => undefined,
        (error: unknown) => error,
      )
    expect(duplicate).toBeInstanceOf(Error)
    await db.deleteFrom('organizations').where('id', '=', 'org-side').execute()
    expect(await db.selectFrom('upstream_oauth_clients').select('id').execute()).toEqual([{ id: 'a' }])
  })
})

describe.skipIf(!usingPostgres)('concurrent migrations on Postgres', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    killChildren()
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  async function freshSchema() {
    const database = await createTestDatabase()
    cleanups.push(() => database.drop())
    return database.url
  }

  async function appliedMigrationNames(url: string): Promise<string[]> {
    const store = await openDatabase(url)
    try {
      const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(store.db)
      return rows.map((row) => row.name)
    } finally {
      await store.db.destroy()
    }
  }

  it('lets two `gatehouse migrate` processes started together both succeed, applying each migration once', async () => {
    const url = await freshSchema()
    const dataDir = createTempDir()
    cleanups.push(dataDir.remove)
    const env = cliEnv({ DATABASE_URL: url, GATEHOUSE_DATA_DIR: dataDir.path })
    const results = await Promise.all([runCli(['migrate'], env), runCli(['migrate'], env)])
    expect(results.map((result) => [result.exitCode, result.stderr])).toEqual([
      [0, ''],
      [0, ''],
    ])
    const shipped = await shippedMigrations('postgres')
    expect(results.map((result) => result.stdout).sort()).toEqual([
      `applied: ${shipped.join(', ')}\n`,
      'database is up to date\n',
    ])
    expect(await appliedMigrationNames(url)).toEqual(shipped)
  })

  it('lets four pools migrating at once apply each migration exactly once', async () => {
    const url = await freshSchema()
    const stores = await Promise.all([1, 2, 3, 4].map(() => openDatabase(url)))
    cleanups.push(() => Promise.all(stores.map((store) => store.db.destroy())).then(() => undefined))
    const applied = await Promise.all(stores.map((store) => migrateToLatest(store.db, 'postgres')))
    const shipped = await shippedMigrations('postgres')
    expect(applied.flat().sort()).toEqual(shipped)
    expect(await appliedMigrationNames(url)).toEqual(shipped)
  })

  it('migrates a schema while another schema of the same database is already migrated', async () => {
    const migrated = await freshSchema()
    const other = await openDatabase(migrated)
    cleanups.push(() => other.db.destroy())
    await migrateToLatest(other.db, 'postgres')

    const url = await freshSchema()
    const store = await openDatabase(url)
    cleanups.push(() => store.db.destroy())
    expect(await migrateToLatest(store.db, 'postgres')).toEqual(await shippedMigrations('postgres'))
  })
})
