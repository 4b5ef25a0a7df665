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
        // Past this every outbound request waits for a connection, for every user: a balancer
        // should send traffic elsewhere until streams end.
        if (deps.outboundCapacity.exhausted()) {
          const { streams, requests, runtimeLimit } = deps.outboundCapacity.snapshot()
          return status(503, {
            status: 'unavailable' as const,
            detail: `outbound capacity exhausted: ${streams} upstream streams and ${requests} requests hold all ${runtimeLimit} connections`,
          })
        }
        return { status: 'ready' as const }
      },
      {
        response: {
          200: t.Object({ status: t.Literal('ready') }),
          503: t.Object({ status: t.Literal('unavailable'), detail: t.String() }),
        },
        detail: { summary: 'Readiness: database reachable, migrations applied, outbound connections to spare' },
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
        return new Response(
          deps.metrics.render() + renderCapacity(deps.outboundCapacity.snapshot()) + renderChangeFeed(deps),
          {
            headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' },
          },
        )
      },
      { detail: { summary: 'Prometheus metrics (a bearer token when GATEHOUSE_METRICS_TOKEN is set)' } },
    )
}

/** The outbound budget as gauges: what `/readyz` decides on, to graph and alert on. */
function renderCapacity(snapshot: ReturnType<AppDeps['outboundCapacity']['snapshot']>): string {
  return [
    '# HELP gatehouse_outbound_streams Long-lived upstream streams held open.',
    '# TYPE gatehouse_outbound_streams gauge',
    `gatehouse_outbound_streams ${snapshot.streams}`,
    '# HELP gatehouse_outbound_streams_limit Long-lived upstream streams allowed at once.',
    '# TYPE gatehouse_outbound_streams_limit gauge',
    `gatehouse_outbound_streams_limit ${snapshot.streamLimit}`,
    '# HELP gatehouse_outbound_requests_in_flight Other outbound requests waiting for or reading their answer.',
    '# TYPE gatehouse_outbound_requests_in_flight gauge',
    `gatehouse_outbound_requests_in_flight ${snapshot.requests}`,
    '# HELP gatehouse_outbound_connections_limit Concurrent outbound requests the runtime serves.',
    '# TYPE gatehouse_outbound_connections_limit gauge',
    `gatehouse_outbound_connections_limit ${snapshot.runtimeLimit}`,
    '',
  ].join('\n')
}

/** Whether this replica hears the others' changes, and how often it had to reconnect to. */
function renderChangeFeed(deps: Pick<AppDeps, 'events'>): string {
  return [
    '# HELP gatehouse_change_feed_connected 1 while changes made on other replicas reach this one.',
    '# TYPE gatehouse_change_feed_connected gauge',
    `gatehouse_change_feed_connected ${deps.events.connected ? 1 : 0}`,
    '# HELP gatehouse_change_feed_reconnects_total Times the connection that hears other replicas was made again.',
    '# TYPE gatehouse_change_feed_reconnects_total counter',
    `gatehouse_change_feed_reconnects_total ${deps.events.reconnects}`,
    '',
  ].join('\n')
}
