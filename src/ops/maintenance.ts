import { deleteStaleLoginFailures } from '../auth/login-throttle.repository.ts'
import { deleteExpiredSessions } from '../auth/session.repository.ts'
import { nowSeconds } from '../db/index.ts'
import type { AppDeps } from '../deps.ts'
import { deleteUnusedDynamicClients } from '../oauth/client.repository.ts'
import { deleteExpiredAuthorizationCodes, deleteExpiredTokens } from '../oauth/grant.repository.ts'
import { deleteExpiredStates } from '../upstreams/oauth-state.repository.ts'

/** Codes are kept a day past expiry so a late replay is still recognised as one. */
const CODE_RETENTION_SECONDS = 86400

/**
 * Deletes what has expired: sessions, OAuth codes and tokens, dynamic clients that were never
 * used, login-failure counts whose window has ended, and unfinished upstream authorizations.
 */
export async function sweepExpired(deps: Pick<AppDeps, 'db' | 'config'>): Promise<void> {
  const now = nowSeconds()
  await deleteExpiredSessions(deps.db, now)
  await deleteExpiredAuthorizationCodes(deps.db, now - CODE_RETENTION_SECONDS)
  await deleteExpiredTokens(deps.db, now)
  await deleteUnusedDynamicClients(deps.db, now - deps.config.dynamicClientTtlSeconds)
  await deleteStaleLoginFailures(deps.db, now - deps.config.loginWindowSeconds)
  await deleteExpiredStates(deps.db, now)
}

/** Runs the sweep now and then every `intervalMs`; safe on every replica at once. */
export function startMaintenance(
  deps: Pick<AppDeps, 'db' | 'config' | 'logger'>,
  intervalMs = 10 * 60_000,
): () => void {
  const run = () => sweepExpired(deps).catch((error) => deps.logger.warn('maintenance sweep failed', { error }))
  void run()
  const timer = setInterval(run, intervalMs)
  timer.unref?.()
  return () => clearInterval(timer)
}
