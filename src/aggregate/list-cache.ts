/**
 * Upstream lists (tools, prompts, resources, resource templates) per (server, credential), kept for
 * the upstream's `ttlMs` (60 s when it gives none) and refreshed in the background shortly before
 * they expire, so a warm `/mcp` never waits for an upstream. An expired list is served while a
 * fresh one is fetched (stale-while-revalidate); an invalidated one (`list_changed`, a reconnect)
 * is fetched before it is served again, falling back to the last good list when the upstream is
 * down or slower than the cap. Losing this cache costs a round trip, nothing else.
 */
export const DEFAULT_LIST_TTL_MS = 60_000
/** Refresh in the background once this share of the time to live has passed. */
const REFRESH_AT = 0.8
/**
 * A list is reused for at least this long, even when the upstream says 0 (as servers do that give
 * no cache hints), so a busy `/mcp` does not ask every upstream again on every request.
 */
const MIN_TTL_MS = 1000
/** After a failed fetch, how long the next one waits. */
const FAILURE_PAUSE_MS = 5000

export type ListKind = 'tools' | 'prompts' | 'resources' | 'resourceTemplates'

export interface FetchedList {
  items: unknown[]
  ttlMs?: number
}

interface Entry {
  items: unknown[] | undefined
  fetchedAt: number
  ttlMs: number
  invalidated: boolean
  refreshing: Promise<void> | undefined
  refreshStartedAt: number
  /** Why the last fetch failed, until one succeeds. */
  failure: string | undefined
}

export class ListCache {
  private readonly entries = new Map<string, Entry>()
  /** Changes whenever any list changes, so views built from the lists know to rebuild. */
  version = 0

  constructor(private readonly maxEntries = 20_000) {}

  /**
   * The list for a credential key, or undefined when the upstream never answered (it is then left
   * out). `onFailure` hears why a fetch failed, for the server's log.
   */
  async get(
    key: string,
    kind: ListKind,
    fetch: () => Promise<FetchedList>,
    options: { capMs: number; onFailure: (error: unknown) => void },
  ): Promise<unknown[] | undefined> {
    const id = `${kind}\0${key}`
    const now = Date.now()
    let entry = this.entries.get(id)
    if (!entry) {
      if (this.entries.size >= this.maxEntries) this.entries.clear()
      entry = {
        items: undefined,
        fetchedAt: 0,
        ttlMs: 0,
        invalidated: true,
        refreshing: undefined,
        refreshStartedAt: 0,
        failure: undefined,
      }
      this.entries.set(id, entry)
    }
    const age = now - entry.fetchedAt
    if (entry.items !== undefined && !entry.invalidated) {
      if (age >= entry.ttlMs * REFRESH_AT) this.refresh(entry, fetch, options.onFailure)
      return entry.items
    }
    // A recent failure is not waited for again until its pause is over.
    if (entry.refreshing === undefined && entry.items === undefined && age < entry.ttlMs) return undefined
    // Never fetched, or known to be out of date: wait for the upstream, but never longer than the
    // cap, counted from when the fetch started, so a hanging upstream delays one list at most.
    const refreshing = this.refresh(entry, fetch, options.onFailure)
    const wait = options.capMs - (now - entry.refreshStartedAt)
    if (wait <= 0) return entry.items
    let timer: ReturnType<typeof setTimeout> | undefined
    const capped = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, wait)
    })
    await Promise.race([refreshing, capped])
    clearTimeout(timer)
    return entry.items
  }

  /**
   * Why a key's list cannot be had, when it cannot: the last fetch's failure, or that the first
   * fetch has not finished. Undefined while a list is held.
   */
  unavailable(key: string, kind: ListKind): string | undefined {
    const entry = this.entries.get(`${kind}\0${key}`)
    if (entry?.items !== undefined) return undefined
    return entry?.failure ?? 'it has not answered yet'
  }

  /** The list held for a key, fresh or not, without fetching. */
  peek(key: string, kind: ListKind): unknown[] | undefined {
    return this.entries.get(`${kind}\0${key}`)?.items
  }

  /** Marks the lists of the credential keys `concerned` picks out of date. */
  invalidate(concerned: (key: string) => boolean): void {
    let changed = false
    for (const [id, entry] of this.entries) {
      const key = id.slice(id.indexOf('\0') + 1)
      if (concerned(key)) {
        entry.invalidated = true
        changed = true
      }
    }
    if (changed) this.version++
  }

  clear(): void {
    this.entries.clear()
    this.version++
  }

  private refresh(entry: Entry, fetch: () => Promise<FetchedList>, onFailure: (error: unknown) => void) {
    if (entry.refreshing) return entry.refreshing
    const run = async () => {
      const invalidatedBefore = entry.invalidated
      try {
        const fetched = await fetch()
        // Views built from the lists are rebuilt only when a list really changed.
        const changed = entry.items === undefined || JSON.stringify(entry.items) !== JSON.stringify(fetched.items)
        entry.items = fetched.items
        entry.ttlMs =
          typeof fetched.ttlMs === 'number' && fetched.ttlMs >= 0
            ? Math.max(fetched.ttlMs, MIN_TTL_MS)
            : DEFAULT_LIST_TTL_MS
        entry.fetchedAt = Date.now()
        // A notification that arrived during the fetch may not be in this answer.
        if (entry.invalidated === invalidatedBefore) entry.invalidated = false
        entry.failure = undefined
        if (changed) this.version++
      } catch (error) {
        entry.failure = error instanceof Error ? error.message : String(error)
        onFailure(error)
        // The last good list stays; the next request tries again after a short pause.
        entry.fetchedAt = Date.now()
        entry.ttlMs = FAILURE_PAUSE_MS
        if (entry.items !== undefined) entry.invalidated = false
      }
    }
    entry.refreshStartedAt = Date.now()
    const refreshing: Promise<void> = run().finally(() => {
      if (entry.refreshing === refreshing) entry.refreshing = undefined
    })
    entry.refreshing = refreshing
    return refreshing
  }
}
