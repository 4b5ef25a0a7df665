import type { ChangeEvent } from '../events/bus.ts'
import type { Principal } from './auth.service.ts'

interface Entry {
  principal: Principal
  expiresAt: number
  generation: number
}

/**
 * A short-lived cache of resolved tokens for hot paths (the MCP endpoint), one per app. Any
 * revocation (a token, session, grant or client deleted, a user suspended, demoted or moved
 * between organizations) reaches it through the change feed (`hear`), which drops every entry at
 * once, on every replica the feed reaches; a replica it does not reach sees the change when its
 * entries expire, within `ttlMs`. Keys are token hashes, never tokens.
 *
 * Revocations often run inside a transaction, so the cache is cleared before the change commits.
 * A lookup in between would read the old row; to keep it from being cached, nothing is cached
 * for `quietMs` after an invalidation (revocations are rare, so this costs nothing measurable).
 */
export class PrincipalCache {
  private readonly entries = new Map<string, Entry>()
  private generation = 0
  private quietUntil = 0

  constructor(
    private readonly ttlMs = 5000,
    private readonly maxEntries = 10000,
    private readonly quietMs = 1000,
  ) {}

  get(tokenHash: string, now = Date.now()): Principal | undefined {
    const entry = this.entries.get(tokenHash)
    if (!entry) return undefined
    if (entry.generation !== this.generation || entry.expiresAt <= now) {
      this.entries.delete(tokenHash)
      return undefined
    }
    return entry.principal
  }

  /** A marker to take before a lookup and hand to `set`, so a lookup that raced a revocation is not cached. */
  snapshot(): number {
    return this.generation
  }

  /** Caches a principal until the TTL or the credential's own expiry, whichever comes first. */
  set(
    tokenHash: string,
    principal: Principal,
    credentialExpiresAtMs: number,
    snapshot: number,
    now = Date.now(),
  ): void {
    if (snapshot !== this.generation || now < this.quietUntil) return
    if (this.entries.size >= this.maxEntries) this.entries.clear()
    this.entries.set(tokenHash, {
      principal,
      expiresAt: Math.min(now + this.ttlMs, credentialExpiresAtMs),
      generation: this.generation,
    })
  }

  /** What the change feed says: anything that can end or narrow a credential drops them all. */
  hear(event: ChangeEvent): void {
    if (event.kind === 'credentials_revoked' || event.kind === 'access_changed') this.invalidate()
  }

  invalidate(now = Date.now()): void {
    this.generation++
    this.quietUntil = now + this.quietMs
    this.entries.clear()
  }
}
