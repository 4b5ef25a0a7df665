import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sql, type Kysely } from 'kysely'
import { Migrator, type Migration, type MigrationProvider, type MigrationResultSet } from 'kysely/migration'
import type { Dialect } from './schema.ts'

/** Migration SQL by dialect and name; the single-file build embeds it here (see scripts/build.ts). */
export type MigrationSources = Record<Dialect, Record<string, string>>

declare global {
  var __GATEHOUSE_MIGRATIONS__: MigrationSources | undefined
}

export const MIGRATIONS_DIR = join(import.meta.dirname, '../../migrations')

/** Reads `migrations/<dialect>/*.sql`, or the copy embedded in a compiled binary. */
export async function loadMigrationSources(dialect: Dialect, root = MIGRATIONS_DIR): Promise<Record<string, string>> {
  const embedded = globalThis.__GATEHOUSE_MIGRATIONS__?.[dialect]
  if (embedded) return embedded
  const folder = join(root, dialect)
  const files = (await readdir(folder)).filter((file) => file.endsWith('.sql')).sort()
  const sources: Record<string, string> = {}
  for (const file of files) sources[file.slice(0, -'.sql'.length)] = await readFile(join(folder, file), 'utf8')
  return sources
}

/**
 * Splits a migration into statements on a `;` that ends a line. SQLite drivers' prepare()
 * silently runs only the first statement of a string, so each one is executed on its own.
 * Chunks that hold only comments are dropped.
 */
export function splitStatements(source: string): string[] {
  return source
    .split(/;[ \t]*(?:--[^\n]*)?$/m)
    .map((chunk) => chunk.trim())
    .filter((chunk) => chunk.split('\n').some((line) => line.trim() && !line.trim().startsWith('--')))
}

/**
 * Kysely runs Postgres migrations inside a transaction, but not SQLite ones (its adapter does not
 * claim transactional DDL, which SQLite in fact has). Wrapping each SQLite migration in one here
 * means a migration that fails halfway leaves nothing behind and can be fixed and rerun.
 */
class SqlMigrationProvider implements MigrationProvider {
  constructor(
    private readonly sources: Record<string, string>,
    private readonly dialect: Dialect,
  ) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const migrations: Record<string, Migration> = {}
    const ownTransaction = this.dialect === 'sqlite'
    for (const [name, source] of Object.entries(this.sources)) {
      const statements = splitStatements(source)
      const run = async (db: Kysely<any>) => {
        for (const statement of statements) await sql.raw(statement).execute(db)
      }
      migrations[name] = { up: (db) => (ownTransaction ? db.transaction().execute(run) : run(db)) }
    }
    return migrations
  }
}

/**
 * On Postgres the migration tables live in the connection's current schema, named explicitly:
 * Kysely otherwise looks for them in every schema and, finding another schema's, skips creating its own.
 */
async function createMigrator(db: Kysely<any>, dialect: Dialect, root?: string): Promise<Migrator> {
  const provider = new SqlMigrationProvider(await loadMigrationSources(dialect, root), dialect)
  if (dialect !== 'postgres') return new Migrator({ db, provider })
  const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(db)
  return new Migrator({ db, provider, migrationTableSchema: rows[0].schema })
}

/**
 * Applies every pending migration, each in its own transaction. On Postgres, Kysely holds
 * `pg_advisory_lock` for the whole run, so processes starting together migrate exactly once.
 */
export async function migrateToLatest(db: Kysely<any>, dialect: Dialect, root?: string): Promise<string[]> {
  let { error, results }: MigrationResultSet = await (await createMigrator(db, dialect, root)).migrateToLatest()
  // Kysely lists the tables of every schema to find its own; a schema or table dropped meanwhile by
  // someone else sharing the database fails that listing (SQLSTATE 3F000, or 42P01 when a parallel
  // worker of the catalog scan meets the dropped table). Nothing was applied: try again.
  const isConcurrentDrop = () =>
    ['3F000', '42P01'].includes((error as { code?: string } | undefined)?.code ?? '') &&
    !results?.some((result) => result.status !== 'NotExecuted')
  for (let retry = 0; retry < 3 && isConcurrentDrop(); retry++)
    ({ error, results } = await (await createMigrator(db, dialect, root)).migrateToLatest())
  if (error) {
    const failed = results?.find((result) => result.status === 'Error')?.migrationName
    throw new Error(
      `migration ${failed ?? '(setup)'} failed: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    )
  }
  return (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName)
}

/** Names of migrations that exist but have not been applied to this database. */
export async function pendingMigrations(db: Kysely<any>, dialect: Dialect, root?: string): Promise<string[]> {
  const migrations = await (await createMigrator(db, dialect, root)).getMigrations()
  return migrations.filter((migration) => migration.executedAt === undefined).map((migration) => migration.name)
}
