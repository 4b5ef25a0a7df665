import type { DatabaseSync, SQLInputValue } from 'node:sqlite'
import {
  CompiledQuery,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
} from 'kysely'

/** Kysely over `node:sqlite`, for runtimes without `bun:sqlite` (Deno, Node ≥ 22). */
export class NodeSqliteDialect implements Dialect {
  constructor(private readonly database: DatabaseSync) {}
  createAdapter() {
    return new SqliteAdapter()
  }
  createDriver(): Driver {
    return new NodeSqliteDriver(this.database)
  }
  createIntrospector(db: Kysely<any>) {
    return new SqliteIntrospector(db)
  }
  createQueryCompiler() {
    return new SqliteQueryCompiler()
  }
}

/** SQLite has one connection, so acquireConnection() queues callers. */
class NodeSqliteDriver implements Driver {
  #queue: Promise<void> = Promise.resolve()
  #release?: () => void
  readonly #connection: DatabaseConnection

  constructor(private readonly database: DatabaseSync) {
    this.#connection = {
      async executeQuery<R>({ sql, parameters }: CompiledQuery): Promise<QueryResult<R>> {
        const statement = database.prepare(sql)
        const params = parameters as SQLInputValue[]
        if (statement.columns().length > 0) return { rows: statement.all(...params) as R[] }
        const { changes, lastInsertRowid } = statement.run(...params)
        return { rows: [], numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid) }
      },
      streamQuery() {
        throw new Error('streaming is not supported by the node:sqlite driver')
      },
    }
  }

  async init() {}
  async acquireConnection() {
    const previous = this.#queue
    this.#queue = new Promise((resolve) => {
      this.#release = resolve
    })
    await previous
    return this.#connection
  }
  async releaseConnection() {
    this.#release?.()
  }
  async beginTransaction(connection: DatabaseConnection) {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'))
  }
  async commitTransaction(connection: DatabaseConnection) {
    await connection.executeQuery(CompiledQuery.raw('commit'))
  }
  async rollbackTransaction(connection: DatabaseConnection) {
    await connection.executeQuery(CompiledQuery.raw('rollback'))
  }
  async destroy() {
    this.database.close()
  }
}
