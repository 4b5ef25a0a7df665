/**
 * One change feed for every cache (DESIGN.md, "State and scale": process state is a cache that is
 * safe to lose). What changed is published here once, by the service that changed it, and every
 * cache that holds something derived from it subscribes: resolved credentials, usable servers,
 * upstream lists and connections, users' assembled `/mcp` views. Repositories only read and
 * write rows; none of them knows a cache.
 *
 * In one process (SQLite) the bus is in memory. On Postgres it also crosses replicas through
 * `LISTEN/NOTIFY` (see pg-event-bus.ts), so a revocation or an edit reaches every replica within
 * moments instead of its caches' time to live; the caches keep their time to live, which is what
 * a replica falls back to while it cannot hear the others.
 */

export type ChangeEvent =
  /** A token, session, grant or client stopped working: credentials resolved before are stale. */
  | { kind: 'credentials_revoked' }
  /** A user's role, status or memberships changed (one user's, or anyone's when `userId` is absent). */
  | { kind: 'access_changed'; userId?: string }
  /** A server was created, changed or deleted. */
  | { kind: 'server_changed'; serverId: string }
  /** A user's connection to a server was made, lapsed or removed, or their selection changed. */
  | { kind: 'connection_changed'; serverId: string; userId: string }

export type ChangeListener = (event: ChangeEvent) => void

export interface EventBus {
  /** Tells this process's subscribers at once, and the other replicas' as soon as it can. */
  publish(event: ChangeEvent): void
  /** Hears every event, this process's and the other replicas'; returns the unsubscribe. */
  subscribe(listener: ChangeListener): () => void
  /** Whether events of other replicas reach this one now (always true where there are none). */
  readonly connected: boolean
  /** How often the connection to the other replicas was made again after it was lost. */
  readonly reconnects: number
  close(): Promise<void>
}

/** The bus of one process: subscribers are told synchronously, in the order they subscribed. */
export class LocalEventBus implements EventBus {
  private readonly listeners = new Set<ChangeListener>()

  get connected(): boolean {
    return true
  }

  get reconnects(): number {
    return 0
  }

  publish(event: ChangeEvent): void {
    this.deliver(event)
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Tells every subscriber; one that throws does not keep the others from hearing. */
  protected deliver(event: ChangeEvent): void {
    for (const listener of this.listeners)
      try {
        listener(event)
      } catch {
        // A cache that failed to drop something keeps it until its time to live ends.
      }
  }

  async close(): Promise<void> {
    this.listeners.clear()
  }
}

/** Whether a value is an event this version knows, as a payload from another replica must be. */
export function isChangeEvent(value: unknown): value is ChangeEvent {
  if (!value || typeof value !== 'object') return false
  const event = value as Record<string, unknown>
  const id = (field: string) => typeof event[field] === 'string'
  switch (event.kind) {
    case 'credentials_revoked':
      return true
    case 'access_changed':
      return event.userId === undefined || id('userId')
    case 'server_changed':
      return id('serverId')
    case 'connection_changed':
      return id('serverId') && id('userId')
    default:
      return false
  }
}
