/**
 * One refresh at a time of tokens kept in a row, for every process sharing the database (user
 * upstream tokens, identity-provider links). Within a process callers share one promise
 * (`shareInFlight`); across processes a lease taken by a conditional UPDATE decides who refreshes
 * (`refreshUnderLease`), and the others watch the row until the winner stores new tokens.
 * The refresh never runs on a caller's abort signal, so rotated tokens are always stored.
 */
export function shareInFlight<T>(inFlight: Map<string, Promise<T>>, key: string, start: () => Promise<T>): Promise<T> {
  let pending = inFlight.get(key)
  if (!pending) {
    pending = start().finally(() => inFlight.delete(key))
    inFlight.set(key, pending)
  }
  return pending
}

export interface Lease {
  id: string
  /** Unix seconds: a process that died mid-refresh delays the next one by at most the lease. */
  until: number
  now: number
}

export type LeaseOutcome<Row, T> =
  | { kind: 'refreshed'; value: T }
  /** Another process stored new tokens meanwhile. */
  | { kind: 'stored'; row: Row }
  /** The row went away (a disconnect). */
  | { kind: 'gone' }
  /** Another process held the lease for longer than the caller may wait. */
  | { kind: 'timeout' }

const POLL_MS = 100

export async function refreshUnderLease<Row, T>(options: {
  row: Row
  /** Takes the lease if nobody holds a live one and the row is still this version. */
  claim: (row: Row, lease: Lease) => Promise<boolean>
  reread: () => Promise<Row | undefined>
  /** Whether `latest` holds tokens other than `row`'s (someone refreshed). */
  isNewer: (latest: Row, row: Row) => boolean
  /** Throws when the row may not be refreshed at all (no refresh token, needs re-authorization). */
  check?: (row: Row) => void
  refresh: (row: Row, leaseId: string) => Promise<T>
  leaseSeconds: number
  waitMs: number
}): Promise<LeaseOutcome<Row, T>> {
  const deadline = Date.now() + options.waitMs
  let row = options.row
  while (Date.now() <= deadline) {
    options.check?.(row)
    const now = Math.floor(Date.now() / 1000)
    const lease = { id: crypto.randomUUID(), until: now + options.leaseSeconds, now }
    if (await options.claim(row, lease)) return { kind: 'refreshed', value: await options.refresh(row, lease.id) }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    const latest = await options.reread()
    if (!latest) return { kind: 'gone' }
    if (options.isNewer(latest, row)) return { kind: 'stored', row: latest }
    row = latest
  }
  return { kind: 'timeout' }
}
