import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../ops/logger.ts'
import { type ChangeEvent, isChangeEvent, LocalEventBus } from './bus.ts'

/** How the listening connection names itself in `pg_stat_activity`, followed by the process ID. */
export const LISTENER_APPLICATION_NAME = 'gatehouse-change-feed'
const FIRST_RETRY_MS = 250
const LAST_RETRY_MS = 10_000

interface ListeningClient {
  connect(): Promise<void>
  query(text: string): Promise<unknown>
  end(): Promise<void>
  on(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): void
  on(event: 'error' | 'end', listener: (error?: Error) => void): void
  removeAllListeners(): void
}

/**
 * The change feed across replicas on one Postgres: each event is told to this process's
 * subscribers at once and sent with `pg_notify` (its kind and IDs, never a secret), and one
 * connection per process `LISTEN`s for the others'. A replica that loses that connection
 * reconnects with a growing pause and, until it has, its caches fall back to their time to live.
 * Events sent while it was away are not replayed; the caches' time to live covers them too.
 */
export class PostgresEventBus extends LocalEventBus {
  /** Tells this process's own notifications apart from the other replicas'. */
  private readonly origin = crypto.randomUUID()
  private client: ListeningClient | undefined
  private retryMs = FIRST_RETRY_MS
  private retry: ReturnType<typeof setTimeout> | undefined
  private closed = false
  private listening = false
  private reconnectCount = 0
  private everConnected = false
  /**
   * The channel the replicas share: one per schema, since notifications reach a whole database
   * and two deployments may share one in separate schemas.
   */
  private channel = 'gatehouse_changes'

  constructor(
    private readonly db: Kysely<Database>,
    private readonly connectionString: string,
    private readonly logger: Logger,
  ) {
    super()
  }

  override get connected(): boolean {
    return this.listening
  }

  override get reconnects(): number {
    return this.reconnectCount
  }

  /** Starts listening; resolves once the first connection is up (or has failed and a retry is set). */
  async start(): Promise<void> {
    const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(this.db)
    const digest = new Uint8Array(
      await crypto.subtle.digest('SHA-256', new TextEncoder().encode(rows[0]?.schema ?? '')),
    )
    this.channel = `gatehouse_changes_${[...digest.slice(0, 4)].map((byte) => byte.toString(16).padStart(2, '0')).join('')}`
    await this.listen()
  }

  override publish(event: ChangeEvent): void {
    this.deliver(event)
    if (this.closed) return
    const payload = JSON.stringify({ ...event, origin: this.origin })
    sql`select pg_notify(${this.channel}, ${payload})`
      .execute(this.db)
      .catch((error) => this.logger.warn('change not sent to the other replicas', { kind: event.kind, error }))
  }

  override async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.retry)
    const client = this.client
    this.client = undefined
    this.listening = false
    client?.removeAllListeners()
    await client?.end().catch(() => {})
    await super.close()
  }

  private async listen(): Promise<void> {
    const { default: pg } = await import('pg')
    const client = new pg.Client({
      connectionString: this.connectionString,
      application_name: `${LISTENER_APPLICATION_NAME} ${process.pid}`,
    }) as unknown as ListeningClient
    this.client = client
    client.on('notification', (message) => this.receive(message.payload))
    const lost = (error?: Error) => {
      if (this.client !== client) return
      this.client = undefined
      this.listening = false
      client.removeAllListeners()
      void client.end().catch(() => {})
      if (this.closed) return
      this.logger.warn('change feed connection lost; caches fall back to their time to live', {
        error: error?.message,
        retry_ms: this.retryMs,
      })
      this.scheduleRetry()
    }
    client.on('error', lost)
    client.on('end', () => lost())
    try {
      await client.connect()
      await client.query(`LISTEN ${this.channel}`)
    } catch (error) {
      lost(error as Error)
      return
    }
    if (this.client !== client) return
    if (this.everConnected) {
      this.reconnectCount++
      this.logger.info('change feed connection restored')
      // What changed while nothing was heard: everything derived may be stale.
      this.deliver({ kind: 'credentials_revoked' })
      this.deliver({ kind: 'access_changed' })
    }
    this.everConnected = true
    this.listening = true
    this.retryMs = FIRST_RETRY_MS
  }

  private scheduleRetry(): void {
    clearTimeout(this.retry)
    this.retry = setTimeout(() => void this.listen(), this.retryMs)
    ;(this.retry as { unref?: () => void }).unref?.()
    this.retryMs = Math.min(this.retryMs * 2, LAST_RETRY_MS)
  }

  private receive(payload: string | undefined): void {
    let parsed: unknown
    try {
      parsed = JSON.parse(payload ?? '')
    } catch {
      return
    }
    if (!parsed || typeof parsed !== 'object' || (parsed as { origin?: unknown }).origin === this.origin) return
    const { origin: _, ...event } = parsed as Record<string, unknown>
    if (isChangeEvent(event)) this.deliver(event)
  }
}
