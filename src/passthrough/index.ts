import { Elysia, t } from 'elysia'
import { hasBody } from '../http/body-limit.ts'
import { exceedsJsonDepth } from '../http/json-depth.ts'
import { authenticateTokenCached, bearerToken } from '../auth/auth.service.ts'
import type { AppDeps } from '../deps.ts'
import { answerPreflight, withCors } from '../http/cors.ts'
import { createOutboundFetch, outboundPolicyOf } from '../http/outbound.ts'
import { type StreamLease, StreamRefused } from '../http/outbound-capacity.ts'
import { bearerChallenge } from '../mcp/protected-resource.ts'
import { mcpAttributesOf, requestSpan, traceUpstream } from '../ops/tracing.ts'
import { mcpOriginPolicy, originAndHostCheck } from '../mcp/origin.ts'
import { CORS_HEADERS, preflight } from '../oauth/http.ts'
import { resourcesOf } from '../oauth/resource.ts'
import { upstreamHeaders } from '../upstreams/credentials.ts'
import { sendWithRefresh, UpstreamTokenError } from '../upstreams/upstream-tokens.ts'
import { findUsableServerBySlug } from '../upstreams/upstream.service.ts'
import { screenRequest } from './policy.ts'
import { forward, forwardedRequestHeaders, relayResponse, UpstreamUnavailable } from './proxy.ts'
import { BridgeRefused, SseBridge } from './sse-bridge.ts'
import { connectMessage, createConnectStandIn, isStandInMessage } from './connect-stand-in.ts'
import { connectLinkOf } from '../upstreams/connections-page.ts'

/** MCP 2025-11-25: the server needs the user to open a URL first (URL-mode elicitation). */
const URL_ELICITATION_REQUIRED = -32042

function rpcError(
  status: number,
  code: number,
  message: string,
  options: { id?: unknown; data?: unknown; headers?: Record<string, string> } = {},
): Response {
  return Response.json(
    {
      jsonrpc: '2.0',
      error: { code, message, ...(options.data ? { data: options.data } : {}) },
      id: options.id ?? null,
    },
    { status, headers: options.headers },
  )
}

/** The body's one JSON-RPC message, or undefined for a batch, nothing, or what does not parse. */
function parseSingleMessage(body: Uint8Array | null): unknown {
  if (!body) return undefined
  const text = new TextDecoder().decode(body)
  if (exceedsJsonDepth(text)) return undefined
  try {
    const message = JSON.parse(text)
    return Array.isArray(message) ? undefined : message
  } catch {
    return undefined
  }
}

/**
 * The id of a single JSON-RPC request in the body, so an error can answer it. Only what JSON-RPC
 * allows as an id (a string or a number): anything else, a deeply nested value included, is
 * answered with `null` rather than serialised back.
 */
function requestIdOf(body: Uint8Array | null): string | number | null {
  const id = (parseSingleMessage(body) as { id?: unknown } | null | undefined)?.id
  return typeof id === 'string' || typeof id === 'number' ? id : null
}

/**
 * `/mcp/servers/{slug}`: one upstream MCP server, passed through with the user's own credential.
 * Its own protected resource (audience `<public>/mcp/servers/{slug}`, metadata beside `/mcp`'s);
 * session and API tokens work as on `/mcp`. Nothing about the MCP session is kept here: the
 * upstream's `Mcp-Session-Id` goes to the client and back, so any replica serves any request.
 */
export interface Passthrough {
  /** A POST, GET or DELETE of `/mcp/servers/{slug}`, CORS included. */
  serve(request: Request, slug: string): Promise<Response>
  resourceOf(slug: string): string
  /** Ends the SSE-transport sessions this process holds. */
  close(): Promise<void>
}

const passthroughs = new WeakMap<AppDeps, Passthrough>()

/** The one passthrough of an app: the server's hot path and the app's routes share its sessions. */
export function passthroughOf(deps: AppDeps): Passthrough {
  let passthrough = passthroughs.get(deps)
  if (!passthrough) {
    passthrough = createPassthrough(deps)
    passthroughs.set(deps, passthrough)
  }
  return passthrough
}

/** Ends the app's SSE-transport sessions, if any were opened. */
export async function closePassthrough(deps: AppDeps): Promise<void> {
  const passthrough = passthroughs.get(deps)
  passthroughs.delete(deps)
  await passthrough?.close()
}

function createPassthrough(deps: AppDeps): Passthrough {
  const { config } = deps
  const checkOriginAndHost = originAndHostCheck(config)
  const allowsOrigin = mcpOriginPolicy(config)
  // Streams stay open as long as they deliver; only the wait for the upstream's answer is capped.
  const fetchUpstream = createOutboundFetch(
    outboundPolicyOf(config),
    {
      connectTimeoutMs: config.upstreamTimeoutSeconds * 1000,
      totalTimeoutMs: Number.POSITIVE_INFINITY,
      maxResponseBytes: Number.POSITIVE_INFINITY,
      decompress: false,
    },
    deps.outboundCapacity,
  )
  const resourceOf = (slug: string) => `${resourcesOf(config.publicUrl).mcp}/servers/${slug}`
  const standIn = createConnectStandIn(config.maxBodyBytes)
  const bridge = new SseBridge({
    fetch: fetchUpstream,
    capacity: deps.outboundCapacity,
    timeoutMs: config.upstreamTimeoutSeconds * 1000,
    maxMessageBytes: config.upstreamMaxResponseBytes,
  })
  // A server's edit or removal ends its sessions; a user's disconnection, theirs.
  const unsubscribe = deps.events.subscribe((event) => {
    if (event.kind === 'server_changed') bridge.endSessionsOf(event.serverId)
    else if (event.kind === 'connection_changed') bridge.endSessionsOf(event.serverId, event.userId)
  })

  async function handle(request: Request, slug: string): Promise<Response> {
    const refused = checkOriginAndHost(request)
    if (refused) return rpcError(403, -32000, `Forbidden: ${refused}`)
    const resource = resourceOf(slug)
    const challenge = (options: Parameters<typeof bearerChallenge>[1] = {}) => ({
      'www-authenticate': bearerChallenge(config, { resource, ...options }),
    })
    const token = bearerToken(request.headers.get('authorization'))
    if (!token) return rpcError(401, -32001, 'Authentication required', { headers: challenge() })
    const principal = await authenticateTokenCached(deps, token)
    if (!principal || (principal.oauth && principal.oauth.audience !== resource)) {
      const description = principal
        ? `the token was issued for ${principal.oauth!.audience}, not ${resource}`
        : 'the token is invalid, expired or revoked'
      return rpcError(401, -32001, `Invalid token: ${description}`, {
        headers: challenge({ error: 'invalid_token', description }),
      })
    }
    if (principal.oauth && !principal.oauth.scopes.includes('mcp'))
      return rpcError(403, -32001, 'Insufficient scope: the mcp scope is required', {
        headers: challenge({ error: 'insufficient_scope', scopes: ['mcp'] }),
      })
    const server = await deps.usableServers.get(principal.user.id, slug, () =>
      findUsableServerBySlug(deps, principal, slug),
    )
    if (!server) return rpcError(404, -32000, `There is no MCP server "${slug}" for you here`)

    const body = hasBody(request) ? new Uint8Array(await request.arrayBuffer()) : null
    const started = performance.now()
    const account = (outcome: string, status: number) => {
      const seconds = (performance.now() - started) / 1000
      deps.metrics.observeUpstream(server.id, outcome, seconds)
      deps.logger.info('mcp passthrough', {
        server: server.slug,
        user_id: principal.user.id,
        method: request.method,
        status,
        outcome,
        duration_ms: Math.round(seconds * 1000),
      })
      if (deps.tracing)
        requestSpan()?.annotate({
          ...mcpAttributesOf(parseSingleMessage(body)),
          'user.id': principal.user.id,
          'gatehouse.server.id': server.id,
          'gatehouse.server.slug': server.slug,
          'gatehouse.outcome': outcome,
        })
    }
    // The server's allow and deny lists; a server without lists reads and rewrites nothing.
    const screening = screenRequest(server, request, body)
    if (screening.refusal) {
      account('refused', screening.refusal.status)
      return screening.refusal
    }
    let credentials: Record<string, string>
    try {
      credentials = await upstreamHeaders(deps, server, principal.user)
    } catch (error) {
      if (!(error instanceof UpstreamTokenError) || error.reason === 'unavailable') {
        const message = error instanceof Error ? error.message : 'its credential could not be prepared'
        account('unavailable', 502)
        return rpcError(502, -32000, `${server.display_name} is unavailable: ${message}`, { id: requestIdOf(body) })
      }
      account('connect_required', 200)
      return connectRequired(request, server, error.message, body)
    }

    if (server.transport === 'sse') {
      try {
        const response = await bridge.handle({ request, body, server, userId: principal.user.id, credentials })
        account(response.status >= 400 ? 'client_error' : 'ok', response.status)
        return response
      } catch (error) {
        if (error instanceof BridgeRefused) {
          account('stream_refused', 429)
          return rpcError(429, -32000, `${server.display_name}: ${error.message}`, {
            id: requestIdOf(body),
            headers: { 'retry-after': '5' },
          })
        }
        account('unavailable', 502)
        const cause = error instanceof Error ? error.message : 'the connection failed'
        return rpcError(502, -32000, `${server.display_name} is unavailable: ${cause}`, { id: requestIdOf(body) })
      }
    }
    const send = (credentialHeaders: Record<string, string>) => {
      const headers = forwardedRequestHeaders(request.headers, credentialHeaders)
      const exchange = () =>
        forward(
          fetchUpstream,
          { url: server.url, method: request.method, headers, body, signal: request.signal },
          server.display_name,
        )
      return deps.tracing ? traceUpstream(server.id, request.method, server.url, headers, exchange) : exchange()
    }
    // A GET is the upstream's event stream, held as long as the client listens: it takes a slot of
    // the stream budget, refused past the user's, the server's or the process's bound.
    let lease: StreamLease | undefined
    if (request.method === 'GET')
      try {
        lease = deps.outboundCapacity.acquire({ userId: principal.user.id, serverId: server.id })
      } catch (error) {
        if (!(error instanceof StreamRefused)) throw error
        account('stream_refused', 429)
        return rpcError(429, -32000, `${server.display_name}: ${error.message}`, { headers: { 'retry-after': '5' } })
      }
    let upstream: Response
    try {
      upstream = await sendWithRefresh(deps, server, principal.user.id, credentials, send)
    } catch (error) {
      lease?.release()
      if (error instanceof UpstreamTokenError) {
        account('connect_required', 200)
        return connectRequired(request, server, error.message, body)
      }
      if (error instanceof UpstreamUnavailable) {
        account('unavailable', error.status)
        return rpcError(error.status, -32000, error.message, { id: requestIdOf(body) })
      }
      // The client hung up: nobody is left to answer, and it is not Gatehouse's error.
      if (request.signal.aborted) {
        account('client_gone', 499)
        return new Response(null, { status: 499 })
      }
      throw error
    }
    if (upstream.status === 401) {
      lease?.release()
      await upstream.body?.cancel().catch(() => {})
      account('upstream_error', 502)
      return rpcError(502, -32000, `${server.display_name} refused the credential Gatehouse sent for you`, {
        id: requestIdOf(body),
      })
    }
    account(upstream.status >= 500 ? 'upstream_error' : upstream.status >= 400 ? 'client_error' : 'ok', upstream.status)
    const relayed = screening.filter ? await screening.filter(upstream) : upstream
    if (lease && relayed.ok && relayed.body)
      return relayResponse(relayed, deps.outboundCapacity.watch(relayed.body, lease))
    lease?.release()
    return relayResponse(relayed)
  }

  /**
   * An oauth2 server the user has not connected (or must reconnect). Not a 401, which would send
   * the client to sign in to Gatehouse again, and not an HTTP error, which 2025 clients end on
   * before showing it: the handshake and the `connect` tool are answered by a stand-in server
   * (connect-stand-in.ts); any other request by a JSON-RPC error whose message carries the link,
   * with the URL-elicitation-required code for 2025-11-25 clients, so clients that support it open it.
   */
  async function connectRequired(
    request: Request,
    server: { id: string; display_name: string; slug: string },
    reason: string,
    body: Uint8Array | null,
  ): Promise<Response> {
    const connectUrl = connectLinkOf(config.publicUrl, server.id)
    const context = { serverName: server.display_name, connectUrl, reason }
    if (request.method === 'GET') return new Response(null, { status: 405, headers: { allow: 'POST, DELETE' } })
    if (request.method === 'DELETE') return new Response(null, { status: 204 })
    const message = parseSingleMessage(body)
    if (isStandInMessage(message)) return standIn.handle(request, message, context)
    const id = requestIdOf(body)
    const text = connectMessage(context)
    if (request.headers.get('mcp-protocol-version') === '2025-11-25')
      return rpcError(200, URL_ELICITATION_REQUIRED, text, {
        id,
        data: {
          elicitations: [
            {
              mode: 'url',
              elicitationId: crypto.randomUUID(),
              url: connectUrl,
              message: `Connect ${server.display_name}`,
            },
          ],
        },
      })
    return rpcError(200, -32001, text, { id, data: { connect_url: connectUrl } })
  }

  return {
    serve: async (request, slug) => withCors(request, await handle(request, slug), allowsOrigin),
    resourceOf,
    close: async () => {
      unsubscribe()
      await Promise.all([bridge.close(), standIn.close()])
    },
  }
}

/** The path of a passthrough request, `/mcp/servers/{slug}` exactly, and its slug. */
export function passthroughSlugOf(path: string): string | undefined {
  return /^\/mcp\/servers\/([^/]{1,64})$/.exec(path)?.[1]
}

/**
 * The routes, for the API documentation and `app.handle`; a real server answers passthrough
 * requests before the app (see `createRequestHandler`), as they are the hot path.
 */
export const passthroughModule = (deps: AppDeps, passthrough = passthroughOf(deps)) => {
  const { config } = deps
  const allowsOrigin = mcpOriginPolicy(config)
  const slugParams = t.Object({ slug: t.String({ maxLength: 64 }) })
  return new Elysia({ name: 'passthrough', detail: { tags: ['mcp'] } })
    .get(
      '/.well-known/oauth-protected-resource/mcp/servers/:slug',
      ({ params }) =>
        Response.json(
          {
            resource: passthrough.resourceOf(params.slug),
            authorization_servers: [config.publicUrl],
            scopes_supported: ['mcp'],
            bearer_methods_supported: ['header'],
            resource_name: `Gatehouse: ${params.slug}`,
          },
          { headers: { ...CORS_HEADERS, 'cache-control': 'public, max-age=300' } },
        ),
      {
        params: slugParams,
        detail: { summary: 'Protected resource metadata of one upstream (RFC 9728)', security: [] },
      },
    )
    .options('/.well-known/oauth-protected-resource/mcp/servers/:slug', preflight, { detail: { hide: true } })
    .options('/mcp/servers/:slug', ({ request }) => answerPreflight(request, allowsOrigin), { detail: { hide: true } })
    .post('/mcp/servers/:slug', ({ request, params }) => passthrough.serve(request, params.slug), {
      parse: 'none',
      params: slugParams,
      detail: { summary: 'One upstream MCP server, passed through with your own credential', security: [] },
    })
    .get('/mcp/servers/:slug', ({ request, params }) => passthrough.serve(request, params.slug), {
      params: slugParams,
      detail: { summary: 'The upstream’s server-to-client stream (Streamable HTTP GET)', security: [] },
    })
    .delete('/mcp/servers/:slug', ({ request, params }) => passthrough.serve(request, params.slug), {
      params: slugParams,
      detail: { summary: 'End the upstream MCP session', security: [] },
    })
}
