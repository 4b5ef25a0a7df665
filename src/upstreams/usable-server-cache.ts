import type { McpServerRow } from '../db/schema.ts'

/**
 * Which server a slug names for a user, and whether they may use it, kept for a few seconds so
 * the passthrough's hot path does not ask the database twice per request. Any change to a server,
 * a connection or a selection in this process clears it at once (and tells the listeners); other processes see changes within `ttlMs` (as the principal
 * cache does for tokens). Losing it is harmless.
 */
export class UsableServerCache {
  private readonly entries = new Map<string, { row: McpServerRow | undefined; expiresAt: number }>()
  private generation = 0
  private readonly listeners = new Set<(change: UpstreamChange) => void>()

  constructor(
    private readonly ttlMs = 5000,
    private readonly maxEntries = 10000,
  ) {}

  async get(
    userId: string,
    slug: string,
    load: () => Promise<McpServerRow | undefined>,
    now = Date.now(),
  ): Promise<McpServerRow | undefined> {
    const key = `${userId}\0${slug}`
    const cached = this.entries.get(key)
    if (cached && cached.expiresAt > now) return cached.row
    const generation = this.generation
    const row = await load()
    // A change that landed while this lookup ran may not be in its answer: do not keep it.
    if (generation === this.generation) {
      if (this.entries.size >= this.maxEntries) this.entries.clear()
      this.entries.set(key, { row, expiresAt: now + this.ttlMs })
    }
    return row
  }

  /**
   * Any change to a server, a connection, a selection or a membership: what was derived from them
   * is stale. `change` says which server (and whose connection) when one is concerned.
   */
  invalidate(change: UpstreamChange = {}): void {
    this.generation++
    this.entries.clear()
    for (const listener of this.listeners) listener(change)
  }

  /** Hears every invalidation (the aggregated `/mcp` rebuilds its lists); returns the unsubscribe. */
  onInvalidate(listener: (change: UpstreamChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}

/** What changed: a server's configuration (`serverId`), or one user's connection to it (both). */
export interface UpstreamChange {
  serverId?: string
  userId?: string
}

export const usableServerCache = new UsableServerCache()
