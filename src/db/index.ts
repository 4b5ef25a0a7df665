import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { CompiledQuery, Kysely, PostgresDialect, type Dialect as KyselyDialect } from 'kysely'
import type { Database, Dialect } from './schema.ts'

export interface Store {
  db: Kysely<Database>
  dialect: Dialect
}

/** The dialect a `DATABASE_URL` selects. */
export function dialectOf(url: string): Dialect {
  return /^postgres(ql)?:\/\//.test(url) ? 'postgres' : 'sqlite'
}

/**
 * Opens the database a `DATABASE_URL` names: `postgres://…` through a `pg` pool, anything else
 * as an SQLite file (`sqlite:<path>` or `:memory:`). On Bun SQLite goes through `bun:sqlite`;
 * elsewhere through `node:sqlite`. Both imports are dynamic so Deno never loads `bun:sqlite`.
 */
export async function openDatabase(url: string): Promise<Store> {
  const dialect = dialectOf(url)
  const kyselyDialect = dialect === 'postgres' ? await createPostgresDialect(url) : await createSqliteDialect(url)
  return { db: new Kysely<Database>({ dialect: kyselyDialect }), dialect }
}

async function createPostgresDialect(url: string): Promise<KyselyDialect> {
  const { default: pg } = await import('pg')
  // BIGINT (int8) holds unix seconds; they fit a JS number, so read them as numbers, not strings.
  const parseInt8 = (value: string) => Number(value)
  const types = {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
      oid === 20 ? parseInt8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
  }
  return new PostgresDialect({ pool: new pg.Pool({ connectionString: url, types, max: 10 }) })
}

const SQLITE_PRAGMAS = [
  'PRAGMA journal_mode = WAL',
  'PRAGMA busy_timeout = 5000',
  'PRAGMA foreign_keys = ON',
  'PRAGMA synchronous = NORMAL',
]

/** The file path a SQLite URL names (`sqlite:./data/x.db`, `sqlite://./x.db`, `:memory:`). */
export function sqlitePath(url: string): string {
  if (url === ':memory:' || url === 'sqlite::memory:') return ':memory:'
  return url.replace(/^sqlite:(\/\/)?/, '')
}

async function createSqliteDialect(url: string): Promise<KyselyDialect> {
  const path = sqlitePath(url)
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  if (typeof Bun !== 'undefined') {
    const [{ Database }, { BunSqliteDialect }] = await Promise.all([import('bun:sqlite'), import('kysely-bun-sqlite')])
    const database = new Database(path, { create: true })
    for (const pragma of SQLITE_PRAGMAS) database.exec(pragma)
    // kysely-bun-sqlite prepares every statement afresh; `query()` caches prepared statements by
    // SQL text, which removes a sixth of the time of a token exchange.
    const cached = { prepare: (text: string) => database.query(text), close: () => database.close() }
    return withImmediateTransactions(new BunSqliteDialect({ database: cached as unknown as typeof database }))
  }
  const [{ DatabaseSync }, { NodeSqliteDialect }] = await Promise.all([
    import('node:sqlite'),
    import('./node-sqlite-dialect.ts'),
  ])
  const database = new DatabaseSync(path)
  for (const pragma of SQLITE_PRAGMAS) database.exec(pragma)
  return new NodeSqliteDialect(database)
}

/**
 * kysely-bun-sqlite begins transactions with a plain (deferred) `BEGIN`, which takes the write
 * lock only at the first write: a read-then-write transaction racing another process then fails
 * with SQLITE_BUSY at once, as busy_timeout does not cover a lock upgrade. `BEGIN IMMEDIATE`
 * takes the lock up front and waits for it, as the node:sqlite dialect already does.
 */
function withImmediateTransactions(dialect: KyselyDialect): KyselyDialect {
  const createDriver = dialect.createDriver.bind(dialect)
  dialect.createDriver = () => {
    const driver = createDriver()
    driver.beginTransaction = async (connection) => {
      await connection.executeQuery(CompiledQuery.raw('begin immediate'))
    }
    return driver
  }
  return dialect
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000)
}
