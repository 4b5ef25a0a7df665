import { Elysia, t } from 'elysia'
import { sql } from 'kysely'
import { bearerToken } from '../auth/auth.service.ts'
import { constantTimeEqual, hashToken } from '../auth/token.ts'
import { pendingMigrations } from '../db/migrate.ts'
import type { AppDeps } from '../deps.ts'
import { jsonError } from '../http/errors.ts'

/**
 * /healthz (process up), /readyz (database reachable, migrations applied), /metrics (Prometheus;
 * behind a bearer token when GATEHOUSE_METRICS_TOKEN is set, as it describes the deployment).
 */
export const opsModule = (deps: AppDeps) => {
  let migrationsApplied = false
  const expectedTokenHash = deps.config.metricsToken === undefined ? undefined : hashToken(deps.config.metricsToken)
  return new Elysia({ name: 'ops', detail: { tags: ['operations'] } })
    .get('/healthz', () => ({ status: 'ok' as const }), {
      response: { 200: t.Object({ status: t.Literal('ok') }) },
      detail: { summary: 'Liveness: the process answers' },
    })
    .get(
      '/readyz',
      async ({ status }) => {
        try {
          await sql`select 1`.execute(deps.db)
        } catch (error) {
          deps.logger.warn('readiness check: database unreachable', { error })
          return status(503, { status: 'unavailable' as const, detail: 'database unreachable' })
        }
        if (!migrationsApplied) {
          const pending = await pendingMigrations(deps.db, deps.dialect)
          if (pending.length > 0)
            return status(503, { status: 'unavailable' as const, detail: `pending migrations: ${pending.join(', ')}` })
          migrationsApplied = true // migrations never un-apply, so this is checked until it first holds
        }
        return { status: 'ready' as const }
      },
      {
        response: {
          200: t.Object({ status: t.Literal('ready') }),
          503: t.Object({ status: t.Literal('unavailable'), detail: t.String() }),
        },
        detail: { summary: 'Readiness: database reachable and migrations applied' },
      },
    )
    .get(
      '/metrics',
      ({ headers }) => {
        if (expectedTokenHash !== undefined) {
          const presented = bearerToken(headers.authorization)
          // Hashes of equal length, compared in constant time: neither the token nor its length leaks.
          if (presented === undefined || !constantTimeEqual(hashToken(presented), expectedTokenHash))
            return jsonError(
              401,
              { message: 'The metrics need Authorization: Bearer with the token set in GATEHOUSE_METRICS_TOKEN' },
              { 'www-authenticate': 'Bearer realm="metrics"' },
            )
        }
        return new Response(deps.metrics.render(), {
          headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' },
        })
      },
      { detail: { summary: 'Prometheus metrics (a bearer token when GATEHOUSE_METRICS_TOKEN is set)' } },
    )
}
