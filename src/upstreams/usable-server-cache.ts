import type { McpServerRow } from '../db/schema.ts'
import type { ChangeEvent } from '../events/bus.ts'

/**
 * Which server a slug names for a user, and whether they may use it, kept for a few seconds so
 * the passthrough's hot path does not ask the database twice per request. Any change to a server,
 * a connection or a selection in this process clears it at once (and tells the listeners); other processes see changes within `ttlMs` (as the principal
 * cache does for tokens). Losing it is harmless.
 */
export class UsableServerCache {
  private readonly entries = new Map<string, { row: McpServerRow | undefined; expiresAt: number }>()
  private generation = 0

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

  /** What the change feed says: any change to a server, a connection or anyone's access. */
  hear(event: ChangeEvent): void {
    if (event.kind === 'credentials_revoked') return
    this.generation++
    this.entries.clear()
  }
}
