import { closeAggregator } from './aggregate/index.ts'
import { createApp, refuseNul } from './app.ts'
import { configuredProviders } from './auth/identity-providers.ts'
import { ConfigError, type Config } from './config.ts'
import { dialectOf, openDatabase, type Store } from './db/index.ts'
import { migrateToLatest } from './db/migrate.ts'
import { countUsers } from './users/user.repository.ts'
import type { AppDeps } from './deps.ts'
import { bodyTooLarge, declaresTooLargeBody, readChunkedBodyWithin } from './http/body-limit.ts'
import { bodyHasNul, findNulInUrl } from './http/reject-nul.ts'
import { mcpEndpointOf } from './mcp/index.ts'
import { closePassthrough, passthroughOf, passthroughSlugOf } from './passthrough/index.ts'
import { jsonError } from './http/errors.ts'
import { createOutboundFetch, outboundPolicyOf } from './http/outbound.ts'
import { outboundCapacityOf } from './http/outbound-capacity.ts'
import { PrincipalCache } from './auth/principal-cache.ts'
import { openEventBus } from './events/open.ts'
import { UsableServerCache } from './upstreams/usable-server-cache.ts'
import type { Logger } from './ops/logger.ts'
import { startMaintenance } from './ops/maintenance.ts'
import { HttpMetrics } from './ops/metrics.ts'
import { openTracing } from './ops/tracing.ts'
import { requestIdFrom, runWithRequestContext, type RequestContext } from './ops/request-context.ts'
import { serve, type RunningServer } from './runtime/serve.ts'
import { loadOrCreateKeyFile } from './secrets/key-file.ts'
import { Keyring } from './secrets/keyring.ts'
import { verifySealedColumns } from './secrets/sealed-column.ts'

/** The configured keys, or the generated key file when none are configured. */
export async function loadKeyring(config: Config, logger: Logger): Promise<Keyring> {
  if (config.encryptionKeys.length > 0) return Keyring.create(config.encryptionKeys)
  // A key file is per machine: replicas sharing a Postgres database would each seal with their
  // own key and then fail to open each other's secrets.
  if (dialectOf(config.databaseUrl) === 'postgres')
    throw new ConfigError([
      'GATEHOUSE_ENCRYPTION_KEYS: must be set when DATABASE_URL is Postgres, so every replica seals and opens secrets with the same keys',
    ])
  const file = loadOrCreateKeyFile(config.dataDir)
  logger[file.created ? 'warn' : 'info']('GATEHOUSE_ENCRYPTION_KEYS is not set; using the key file', {
    path: file.path,
    created: file.created,
  })
  return Keyring.create(file.keys)
}

/**
 * Opens the database, applies migrations and proves the encryption keys open what is stored:
 * everything that must hold before the first request. Used by `serve` and by tests.
 */
export async function prepare(config: Config, logger: Logger): Promise<AppDeps & { store: Store }> {
  const keyring = await loadKeyring(config, logger)
  const store = await openDatabase(config.databaseUrl)
  try {
    const applied = await migrateToLatest(store.db, store.dialect)
    if (applied.length > 0) logger.info('applied migrations', { migrations: applied })
    await verifySealedColumns(store.db, keyring)
    const outboundCapacity = outboundCapacityOf(config)
    const events = await openEventBus(store, config.databaseUrl, logger)
    const principalCache = new PrincipalCache()
    const usableServers = new UsableServerCache()
    events.subscribe((event) => {
      principalCache.hear(event)
      usableServers.hear(event)
    })
    return {
      store,
      db: store.db,
      dialect: store.dialect,
      config,
      logger,
      keyring,
      metrics: new HttpMetrics(),
      tracing: await openTracing(config.tracing, logger),
      outboundFetch: createOutboundFetch(outboundPolicyOf(config), {}, outboundCapacity),
      outboundCapacity,
      events,
      principalCache,
      usableServers,
      identityProviders: configuredProviders(config),
    }
  } catch (error) {
    await store.db.destroy()
    throw error
  }
}

const PASSTHROUGH_METHODS = new Set(['POST', 'GET', 'DELETE'])

function clientIpOf(request: Request, socketIp: string, trustProxy: boolean): string {
  if (!trustProxy) return socketIp
  const forwarded = request.headers.get('x-forwarded-for')
  // The last hop is the one our own proxy appended; earlier entries are the client's say-so.
  return forwarded?.split(',').at(-1)?.trim() || socketIp
}

/**
 * Wraps the app for a real server: a request ID on every response and log line, the client
 * address, an access log line and the request metrics. The log carries the path only, never the
 * query string, which may hold codes or tokens.
 */
export function createRequestHandler(deps: AppDeps, app: ReturnType<typeof createApp>) {
  const { logger, metrics, config, tracing } = deps
  const passthrough = passthroughOf(deps)
  const mcp = mcpEndpointOf(deps)
  /** `POST /mcp` without the app's routing and hooks, with the same checks the app applies. */
  async function serveMcp(request: Request): Promise<Response> {
    if (declaresTooLargeBody(request, config.maxBodyBytes))
      return bodyTooLarge(config.maxBodyBytes, Number(request.headers.get('content-length')))
    const inUrl = findNulInUrl(request.url)
    if (inUrl) return refuseNul(request.url, inUrl)
    const body = new Uint8Array(await request.arrayBuffer())
    if (bodyHasNul(body, request.headers.get('content-type'))) return refuseNul(request.url, 'body')
    return mcp(request, body)
  }
  return (request: Request, socketIp: string): Promise<Response> => {
    const started = performance.now()
    const context: RequestContext = {
      requestId: requestIdFrom(request.headers.get('x-request-id')),
      clientIp: clientIpOf(request, socketIp, config.trustProxy),
    }
    return runWithRequestContext(context, async () => {
      // The runtime builds the URL from the Host header; a malformed one (a port past 65535) leaves
      // a URL nothing can parse, so it is refused here rather than failing deeper down.
      const path = URL.parse(request.url)?.pathname
      let response: Response
      try {
        if (path === undefined) response = jsonError(400, { message: 'Malformed Host header' })
        else {
          const limited = await readChunkedBodyWithin(request, config.maxBodyBytes)
          const slug = passthroughSlugOf(path)
          if (tracing && (slug ? PASSTHROUGH_METHODS.has(request.method) : path === '/mcp'))
            context.span = tracing.startRequest(request, slug ? '/mcp/servers/{slug}' : '/mcp')
          if (!limited) response = bodyTooLarge(config.maxBodyBytes)
          else if (path === '/mcp' && request.method === 'POST') {
            context.route = '/mcp'
            response = await serveMcp(limited)
          }
          // The passthrough is the hot path: answered without the app's routing and hooks. Its
          // body goes to the upstream untouched, so only the URL is checked for NUL here.
          else if (slug && PASSTHROUGH_METHODS.has(request.method) && !findNulInUrl(request.url)) {
            context.route = '/mcp/servers/:slug'
            response = declaresTooLargeBody(limited, config.maxBodyBytes)
              ? bodyTooLarge(config.maxBodyBytes, Number(limited.headers.get('content-length')))
              : await passthrough.serve(limited, slug)
          } else response = await app.handle(limited)
        }
      } catch (error) {
        logger.error('request failed', { error })
        response = jsonError(500, { message: 'Internal server error', detail: `request ${context.requestId}` })
      }
      try {
        response.headers.set('x-request-id', context.requestId)
      } catch {
        response = new Response(response.body, response)
        response.headers.set('x-request-id', context.requestId)
      }
      const seconds = (performance.now() - started) / 1000
      if (tracing) context.span?.end(response.status)
      const route = context.route ?? 'unmatched'
      metrics.observe(request.method, route, response.status, seconds)
      if (logger.enabled('info'))
        logger.info('request', {
          method: request.method,
          path: path ?? '(malformed)',
          route,
          status: response.status,
          duration_ms: Math.round(seconds * 100000) / 100,
          ip: context.clientIp,
        })
      return response
    })
  }
}

export interface Gatehouse {
  server: RunningServer
  deps: AppDeps
  /** Graceful stop: no new connections, in-flight requests finish (up to the timeout), database closed. */
  shutdown(): Promise<void>
}

export async function startGatehouse(config: Config, logger: Logger): Promise<Gatehouse> {
  const deps = await prepare(config, logger)
  const app = createApp(deps)
  const server = await serve({
    port: config.port,
    hostname: config.host,
    maxBodyBytes: config.maxBodyBytes,
    fetch: createRequestHandler(deps, app),
  })
  logger.info('gatehouse listening', { url: server.url, public_url: config.publicUrl, database: deps.dialect })
  if ((await countUsers(deps.db)) === 0)
    logger.info(
      `no users yet: create the first admin with POST ${config.publicUrl}/api/v1/users/first or \`gatehouse create-admin\``,
    )

  const stopMaintenance = startMaintenance(deps)
  let stopping: Promise<void> | undefined
  const shutdown = () =>
    (stopping ??= (async () => {
      const timeout = setTimeout(() => {
        logger.warn('shutdown timeout reached; closing remaining connections')
        void server.close()
      }, config.shutdownTimeoutSeconds * 1000)
      stopMaintenance()
      await server.drain()
      clearTimeout(timeout)
      await closeAggregator(deps)
      await closePassthrough(deps)
      await deps.events.close()
      await deps.tracing?.shutdown()
      await deps.db.destroy()
    })())
  return { server, deps, shutdown }
}
