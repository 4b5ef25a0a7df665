import type { McpServerRow } from '../db/schema.ts'
import type { HttpMetrics } from '../ops/metrics.ts'
import { requestSpan, type Tracing } from '../ops/tracing.ts'

/** Where an aggregated upstream call is counted: `/metrics`, and the request's span when tracing is on. */
export interface UpstreamAccounting {
  metrics: HttpMetrics
  tracing?: Tracing
}

/**
 * One upstream tool call of `/mcp`, with the passthrough's outcome words (`ok`, `tool_error`,
 * `upstream_error`, `unavailable`, `connect_required`, `client_gone`), so `/metrics` shows every
 * path to a server alike, by server ID.
 */
export function accountUpstream(
  accounting: UpstreamAccounting,
  server: Pick<McpServerRow, 'id' | 'slug'>,
  outcome: string,
  started: number,
): void {
  accounting.metrics.observeUpstream(server.id, outcome, (performance.now() - started) / 1000)
  if (accounting.tracing)
    requestSpan()?.annotate({
      'gatehouse.server.id': server.id,
      'gatehouse.server.slug': server.slug,
      'gatehouse.outcome': outcome,
    })
}
