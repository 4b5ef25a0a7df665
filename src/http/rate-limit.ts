/**
 * A fixed-window counter per key, kept in this process. Good enough to stop one address from
 * flooding an open endpoint; with several replicas each enforces its own share.
 */
export class RateLimiter {
  private readonly windows = new Map<string, { count: number; resetAt: number }>()

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /** Counts one hit; returns the seconds to wait when over the limit. */
  take(key: string, now = Date.now()): { allowed: true } | { allowed: false; retryAfterSeconds: number } {
    if (this.windows.size > 10000) for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k)
    let window = this.windows.get(key)
    if (!window || window.resetAt <= now) {
      window = { count: 0, resetAt: now + this.windowMs }
      this.windows.set(key, window)
    }
    window.count++
    if (window.count <= this.limit) return { allowed: true }
    return { allowed: false, retryAfterSeconds: Math.ceil((window.resetAt - now) / 1000) }
  }
}
