import type { Kysely } from 'kysely'
import type { Config } from './config.ts'
import type { Database, Dialect } from './db/schema.ts'
import type { Logger } from './ops/logger.ts'
import type { HttpMetrics } from './ops/metrics.ts'
import type { Keyring } from './secrets/keyring.ts'

/** Everything a module needs, passed in explicitly; nothing reaches for globals. */
export interface AppDeps {
  db: Kysely<Database>
  dialect: Dialect
  config: Config
  logger: Logger
  metrics: HttpMetrics
  keyring: Keyring
}
