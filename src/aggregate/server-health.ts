import type { Kysely } from 'kysely'
import type { Database, McpServerRow } from '../db/schema.ts'
import { nowSeconds } from '../db/index.ts'
import type { Logger } from '../ops/logger.ts'
import { setServerLastError } from '../upstreams/upstream.repository.ts'

/** A process records a server's failure at most this often. */
const WRITE_EVERY_MS = 30_000
const MAX_REASON_LENGTH = 500

/**
 * What an admin sees of an upstream that fails to answer (a list over its size or count cap, a
 * broken answer): the last reason, on the server (`last_error`, `last_error_at`), so every replica
 * and the API show it. Written at most every 30 s per server by each process, and cleared by the
 * next list that succeeds; users' lists leave such a server out or serve its last good list.
 */
export class ServerHealth {
  /** Servers this process recorded a failure of, and when. */
  private readonly recorded = new Map<string, number>()

  constructor(
    private readonly db: Kysely<Database>,
    private readonly logger: Logger,
  ) {}

  failed(server: McpServerRow, reason: string): void {
    const now = Date.now()
    if ((this.recorded.get(server.id) ?? 0) > now - WRITE_EVERY_MS) return
    this.recorded.set(server.id, now)
    this.write(server, reason.slice(0, MAX_REASON_LENGTH), nowSeconds())
  }

  succeeded(server: McpServerRow): void {
    if (!this.recorded.delete(server.id) && (server.last_error ?? null) === null) return
    this.write(server, null, null)
  }

  private write(server: McpServerRow, reason: string | null, at: number | null): void {
    setServerLastError(this.db, server.id, reason, at).catch((error) =>
      this.logger.warn('recording an upstream failure failed', { server: server.slug, error }),
    )
  }
}
