import { Elysia, t } from 'elysia'
import { sql } from 'kysely'
import { pendingMigrations } from '../db/migrate.ts'
import type { AppDeps } from '../deps.ts'

/** /healthz (process up), /readyz (database reachable, migrations applied), /metrics (Prometheus). */
export const opsModule = (deps: AppDeps) => {
  let migrationsApplied = false
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
      () =>
        new Response(deps.metrics.render(), {
          headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' },
        }),
      { detail: { summary: 'Prometheus metrics' } },
    )
}
