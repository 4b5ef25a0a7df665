import type { Kysely } from 'kysely'
import type { Config } from './config.ts'
import type { Database, Dialect } from './db/schema.ts'
import type { OutboundFetch } from './http/outbound.ts'
import type { OutboundCapacity } from './http/outbound-capacity.ts'
import type { Logger } from './ops/logger.ts'
import type { HttpMetrics } from './ops/metrics.ts'
import type { Tracing } from './ops/tracing.ts'
import type { Keyring } from './secrets/keyring.ts'
import type { LoginProvider, ProviderId } from './auth/identity-providers.ts'
import type { PrincipalCache } from './auth/principal-cache.ts'
import type { EventBus } from './events/bus.ts'
import type { UsableServerCache } from './upstreams/usable-server-cache.ts'

/** Everything a module needs, passed in explicitly; nothing reaches for globals. */
export interface AppDeps {
  db: Kysely<Database>
  dialect: Dialect
  config: Config
  logger: Logger
  metrics: HttpMetrics
  /** Spans of MCP requests; undefined when tracing is off, and every use checks that first. */
  tracing?: Tracing
  keyring: Keyring
  /**
   * The `fetch` for every URL a user, client or admin supplied (upstreams, discovery, client
   * metadata documents): the outbound guard of `src/http/outbound.ts`. Never the global fetch.
   */
  outboundFetch: OutboundFetch
  /** The process's budget of outbound requests and long-lived upstream streams (one per process). */
  outboundCapacity: OutboundCapacity
  /** The change feed: services publish what they changed, caches subscribe (src/events/bus.ts). */
  events: EventBus
  /** Resolved credentials, for the hot paths; emptied by the change feed. */
  principalCache: PrincipalCache
  /** Which server a slug names for a user; emptied by the change feed. */
  usableServers: UsableServerCache
  /** What `/login/{provider}` signs in with; each caches its discovered metadata and keys. */
  identityProviders: Map<ProviderId, LoginProvider>
}
