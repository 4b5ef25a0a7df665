import { Elysia } from 'elysia'
import type { AppDeps } from '../deps.ts'
import { answerPreflight, withCors } from '../http/cors.ts'
import { CORS_HEADERS, preflight } from '../oauth/http.ts'
import { mcpOriginPolicy } from './origin.ts'
import { protectedResourceMetadata } from './protected-resource.ts'

/**
 * `/mcp`, the user's MCP endpoint (Streamable HTTP), and its RFC 9728 metadata. The MCP SDK and the
 * tools' compiled schemas take about a third of a cold start, so they load in the background right
 * after start-up (a request that arrives first waits for them) and never delay `/healthz`. Every
 * answer of `/mcp` carries CORS headers for an allowed browser origin, the 401 challenge included,
 * so a browser client can read `WWW-Authenticate`; the metadata is readable from any origin.
 */
type McpHandle = (request: Request, body?: Uint8Array) => Promise<Response>

const endpoints = new WeakMap<AppDeps, McpHandle>()

/**
 * `/mcp` itself, CORS included, one per app: the app's route and the server's hot path (which
 * answers `POST /mcp` before the app's routing, see `createRequestHandler`) share it. `body` is
 * the request's body when the caller has read it already.
 */
export function mcpEndpointOf(deps: AppDeps): McpHandle {
  const existing = endpoints.get(deps)
  if (existing) return existing
  let handler: Promise<McpHandle> | undefined
  // A failed load is forgotten, so the next request tries again instead of failing for good.
  const load = () =>
    (handler ??= import('./handler.ts')
      .then((module) => module.createMcpRequestHandler(deps))
      .catch((error) => {
        handler = undefined
        throw error
      }))
  setTimeout(() => load().catch((error) => deps.logger.error('could not load the MCP endpoint', { error })), 0)
  const allowsOrigin = mcpOriginPolicy(deps.config)
  const handle: McpHandle = async (request, body) =>
    withCors(request, await (await load())(request, body), allowsOrigin)
  endpoints.set(deps, handle)
  return handle
}

export const mcpModule = (deps: AppDeps) => {
  const handle = mcpEndpointOf(deps)
  const allowsOrigin = mcpOriginPolicy(deps.config)
  const metadata = protectedResourceMetadata(deps.config)
  const serveMetadata = () =>
    Response.json(metadata, { headers: { ...CORS_HEADERS, 'cache-control': 'public, max-age=300' } })

  return new Elysia({ name: 'mcp', detail: { tags: ['mcp'] } })
    .get('/.well-known/oauth-protected-resource/mcp', serveMetadata, {
      detail: { summary: 'Protected resource metadata of /mcp (RFC 9728)', security: [] },
    })
    .get('/.well-known/oauth-protected-resource', serveMetadata, {
      detail: { summary: 'Protected resource metadata (RFC 9728), at the root', security: [] },
    })
    .options('/.well-known/oauth-protected-resource/mcp', preflight, { detail: { hide: true } })
    .options('/.well-known/oauth-protected-resource', preflight, { detail: { hide: true } })
    .options('/mcp', ({ request }) => answerPreflight(request, allowsOrigin), { detail: { hide: true } })
    .post('/mcp', ({ request }) => handle(request), {
      parse: 'none',
      detail: { summary: 'MCP endpoint (Streamable HTTP, JSON-RPC)' },
    })
    .get('/mcp', ({ request }) => handle(request), {
      detail: { summary: 'MCP endpoint: no server-initiated stream (405)' },
    })
    .delete('/mcp', ({ request }) => handle(request), { detail: { summary: 'MCP endpoint: no sessions to end (405)' } })
}
