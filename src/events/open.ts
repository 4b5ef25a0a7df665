import type { Kysely } from 'kysely'
import type { Database, Dialect } from '../db/schema.ts'
import type { Logger } from '../ops/logger.ts'
import { type EventBus, LocalEventBus } from './bus.ts'
import { PostgresEventBus } from './pg-event-bus.ts'

/** The change feed for a database: across replicas on Postgres, in this process on SQLite. */
export async function openEventBus(
  store: { db: Kysely<Database>; dialect: Dialect },
  databaseUrl: string,
  logger: Logger,
): Promise<EventBus> {
  if (store.dialect !== 'postgres') return new LocalEventBus()
  const bus = new PostgresEventBus(store.db, databaseUrl, logger)
  await bus.start()
  return bus
}
