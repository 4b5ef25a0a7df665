import type { UserView } from '../aggregate/aggregator.ts'
import type { AggregatedServer } from '../upstreams/upstream.service.ts'
import { forwardToolCall } from '../aggregate/fast-call.ts'
import { aggregatorOf, GATEHOUSE_VERSION } from '../aggregate/index.ts'
import { addPromptsAndResources, addUpstreams, createRelayCodec, type UpstreamServing } from '../aggregate/serve.ts'
import { authenticateTokenCached, bearerToken } from '../auth/auth.service.ts'
import type { Principal } from '../auth/index.ts'
import type { AppDeps } from '../deps.ts'
import { memoizedByValue } from '../http/headers.ts'
import { exceedsJsonDepth, MAX_JSON_DEPTH } from '../http/json-depth.ts'
import { mcpAttributesOf, requestSpan } from '../ops/tracing.ts'
import { resourcesOf } from '../oauth/resource.ts'
import { ALL_SCOPES, narrowScopes } from '../oauth/scope.ts'
import {
  answerToolCall,
  answerToolsList,
  type ListAnswerParts,
  toolsListParts,
  listedTool,
  recogniseToolCall,
  recogniseToolsList,
  type ToolCall,
} from './fast-path.ts'
import { originAndHostCheck } from './origin.ts'
import { bearerChallenge } from './protected-resource.ts'
import { findTool, toolsForRole, type McpContext } from './tools.ts'
import { createMcpEndpoint, warmUpMcp } from './transport.ts'

const CLIENT_CAPABILITIES_KEY = 'io.modelcontextprotocol/clientCapabilities'
const SERVER_INFO = { name: 'gatehouse', version: GATEHOUSE_VERSION }

/** A JSON-RPC error outside any request (id null), as the transport answers refusals. */
function rpcError(status: number, code: number, message: string, headers: Record<string, string> = {}): Response {
  return Response.json({ jsonrpc: '2.0', error: { code, message }, id: null }, { status, headers })
}

/** Streamable HTTP needs a client that takes both JSON and SSE answers. */
const acceptsMcpResponses = memoizedByValue((accept: string) => {
  const types = accept.split(',').map((part) => part.split(';')[0].trim().toLowerCase())
  const any = types.includes('*/*')
  return (any || types.includes('application/json')) && (any || types.includes('text/event-stream'))
})

/** What the per-request server knows of the caller: the tools' context plus their upstreams. */
interface EndpointContext extends McpContext {
  /** `view` only when the request lists or calls upstream tools; `servers` decides the capabilities. */
  upstreams?: {
    servers: AggregatedServer[]
    view?: UserView
    called: string[] | 'all'
    protocolVersion: string | null
  }
}

/** Methods answered without the user's upstreams: no need to assemble their lists. */
const WITHOUT_UPSTREAMS = new Set(['ping', 'logging/setLevel'])

/**
 * The upstream tools a request calls (`[]` when it calls none), or `'all'` when it lists them;
 * undefined when it needs nothing of the upstreams (a ping, a call of Gatehouse's own tool).
 */
function upstreamNeeds(body: unknown): string[] | 'all' | undefined {
  const messages = Array.isArray(body) ? body : [body]
  const called: string[] = []
  let all = false
  let any = false
  for (const message of messages as { method?: unknown; id?: unknown; params?: { name?: unknown } }[]) {
    if (!message || typeof message !== 'object' || typeof message.method !== 'string') continue
    if (message.method.startsWith('notifications/') || WITHOUT_UPSTREAMS.has(message.method)) continue
    if (message.method === 'tools/call') {
      if (typeof message.params?.name === 'string' && !findTool(message.params.name)) {
        called.push(message.params.name)
        any = true
      }
      continue
    }
    any = true
    if (message.method === 'tools/list') all = true
  }
  if (!any) return undefined
  return all ? 'all' : called
}

/**
 * Serves `/mcp`. In front of the SDK: DNS-rebinding checks, the bearer token (an OAuth token for
 * this audience, a session or an API token), and per-tool scopes, so a call that needs more scope
 * gets a 403 a client can step up from before any tool runs. Behind it, each user's upstreams
 * (`src/aggregate`) join Gatehouse's own tools.
 */
export function createMcpRequestHandler(deps: AppDeps): (request: Request, body?: Uint8Array) => Promise<Response> {
  const { config } = deps
  const audience = resourcesOf(config.publicUrl).mcp
  const checkOriginAndHost = originAndHostCheck(config)
  /** What a session or API token may do: everything the role allows. */
  const roleScopes = {
    owner: narrowScopes([...ALL_SCOPES], { role: 'owner' }),
    admin: narrowScopes([...ALL_SCOPES], { role: 'admin' }),
    member: narrowScopes([...ALL_SCOPES], { role: 'member' }),
  }
  const aggregator = aggregatorOf(deps)
  const codec = createRelayCodec(deps.keyring.deriveKey('mcp-request-state'))
  const serving: UpstreamServing = {
    aggregator,
    codec,
    timeoutMs: config.upstreamTimeoutSeconds * 1000,
    metrics: deps.metrics,
    tracing: deps.tracing,
  }
  const endpoint = createMcpEndpoint<EndpointContext>({
    ...SERVER_INFO,
    maxBodyBytes: config.maxBodyBytes,
    toolsFor: (context) => toolsForRole(context.principal.user.role),
    extend: (server, context) => {
      const upstreams = context.upstreams
      if (!upstreams || upstreams.servers.length === 0) return
      if (upstreams.view)
        addUpstreams(server, serving, context.principal, upstreams.view, upstreams.called, upstreams.protocolVersion)
      addPromptsAndResources(server, serving, context.principal)
    },
    verifyRequestState: codec.verify,
    onError: (error) => deps.logger.debug('mcp request refused', { error: error.message }),
  })
  aggregator.onChange(() => endpoint.listsChanged())
  /** Gatehouse's own tools as `tools/list` shows them to each role, serialised once. */
  const ownToolsJson = Object.fromEntries(
    (['owner', 'admin', 'member'] as const).map((role) => [
      role,
      toolsForRole(role)
        .map((tool) => JSON.stringify(listedTool(tool)))
        .join(','),
    ]),
  ) as Record<'owner' | 'admin' | 'member', string>
  /** Each view's `tools/list` answers, encoded once per role and era (a new view has new ones). */
  const listParts = new WeakMap<UserView, Map<string, ListAnswerParts>>()
  function listPartsOf(view: UserView, role: 'owner' | 'admin' | 'member', era: 'legacy' | 'modern') {
    let byRole = listParts.get(view)
    if (!byRole) listParts.set(view, (byRole = new Map()))
    const key = `${role} ${era}`
    let parts = byRole.get(key)
    if (!parts) {
      const own = ownToolsJson[role]
      parts = toolsListParts(era, view.toolsJson ? `${own},${view.toolsJson}` : own, SERVER_INFO)
      byRole.set(key, parts)
    }
    return parts
  }
  const fastCall = {
    ...serving,
    publicUrl: config.publicUrl,
    serverInfo: SERVER_INFO,
    maxAnswerBytes: config.upstreamMaxResponseBytes,
  }

  /** A plain call of an upstream tool, forwarded without the SDK; undefined leaves it to the SDK path. */
  async function forwardUpstreamCall(principal: Principal, call: ToolCall, body: unknown, signal: AbortSignal) {
    const meta = (body as { params?: { _meta?: Record<string, unknown> } }).params?._meta
    if (meta?.progressToken !== undefined) return undefined
    const route = (await aggregator.view(principal)).routes.get(call.name)
    if (route?.kind !== 'upstream') return undefined
    return forwardToolCall(fastCall, principal, route, call, meta?.[CLIENT_CAPABILITIES_KEY], signal)
  }
  warmUpMcp()

  const decoder = new TextDecoder()
  async function handle(request: Request, rawBody?: Uint8Array): Promise<Response> {
    const refused = checkOriginAndHost(request)
    if (refused) return rpcError(403, -32000, `Forbidden: ${refused}`)

    const token = bearerToken(request.headers.get('authorization'))
    if (!token) return rpcError(401, -32001, 'Authentication required', { 'www-authenticate': bearerChallenge(config) })
    const principal = await authenticateTokenCached(deps, token)
    if (!principal || (principal.oauth && principal.oauth.audience !== audience)) {
      const description = principal
        ? `the token was issued for ${principal.oauth!.audience}, not ${audience}`
        : 'the token is invalid, expired or revoked'
      return rpcError(401, -32001, `Invalid token: ${description}`, {
        'www-authenticate': bearerChallenge(config, { error: 'invalid_token', description }),
      })
    }
    const scopes = principal.oauth?.scopes ?? roleScopes[principal.user.role]
    if (!scopes.includes('mcp'))
      return rpcError(403, -32001, 'Insufficient scope: the mcp scope is required', {
        'www-authenticate': bearerChallenge(config, { error: 'insufficient_scope', scopes: ['mcp'] }),
      })
    const context: EndpointContext = { deps, principal, scopes }
    const auth = {
      token,
      clientId: principal.oauth?.clientId ?? principal.via,
      scopes,
      ...(principal.expiresAt === null ? {} : { expiresAt: principal.expiresAt }),
    }
    if (request.method !== 'POST') return endpoint.handle(request, auth, context)

    if (!acceptsMcpResponses(request.headers.get('accept') ?? ''))
      return rpcError(406, -32000, 'Not Acceptable: the client must accept both application/json and text/event-stream')
    const text = rawBody ? decoder.decode(rawBody) : await request.text()
    // Before anything walks or serialises the body: deep nesting would overflow the stack there.
    if (exceedsJsonDepth(text))
      return rpcError(400, -32600, `Invalid request: the body nests deeper than ${MAX_JSON_DEPTH} levels`)
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      return rpcError(400, -32700, 'Parse error: the request body is not valid JSON')
    }
    if (deps.tracing) requestSpan()?.annotate({ ...mcpAttributesOf(body), 'user.id': principal.user.id })
    const missing = missingScopes(body, context)
    if (missing)
      return rpcError(403, -32001, `Insufficient scope: this call needs ${missing.join(' ')}`, {
        'www-authenticate': bearerChallenge(config, { error: 'insufficient_scope', scopes: missing }),
      })
    const call = config.mcpFastPath ? recogniseToolCall(request.headers, body) : undefined
    const tool = call ? visibleTool(call.name, context) : undefined
    const answered = call && tool ? await answerToolCall(call, tool, context, SERVER_INFO) : undefined
    if (answered) return answered
    if (call && !tool) {
      const forwarded = await forwardUpstreamCall(principal, call, body, request.signal)
      if (forwarded) return forwarded
    }
    const list = config.mcpFastPath && !call ? recogniseToolsList(request.headers, body) : undefined
    if (list) return answerToolsList(list, listPartsOf(await aggregator.view(principal), principal.user.role, list.era))
    const called = upstreamNeeds(body)
    if (called !== undefined)
      context.upstreams = {
        servers: await aggregator.servers(principal),
        view: called === 'all' || called.length > 0 ? await aggregator.view(principal) : undefined,
        called,
        protocolVersion: request.headers.get('mcp-protocol-version'),
      }
    return endpoint.handle(request, auth, context, body)
  }
  return handle
}

/** A tool by name, if the caller's role may see it. */
function visibleTool(name: string, context: McpContext) {
  const tool = findTool(name)
  return tool && (!tool.roles || tool.roles.includes(context.principal.user.role as 'owner' | 'admin'))
    ? tool
    : undefined
}

/**
 * For a `tools/call` of a tool the caller's role may use, every scope it needs when the token lacks
 * one; otherwise undefined (unknown tools and other methods are left to the protocol's own errors).
 */
function missingScopes(body: unknown, context: McpContext): string[] | undefined {
  if (!Array.isArray(body)) {
    const missing = scopesMissingFor(body, context)
    return missing.length > 0 ? missing : undefined
  }
  // Only the top level can be a (2025-03-26) batch, which needs whatever any of its messages needs;
  // an array inside it is no message, so nothing here recurses.
  const needed = new Set(body.flatMap((message) => scopesMissingFor(message, context)))
  return needed.size > 0 ? [...needed] : undefined
}

/** The scopes one message lacks: those of a `tools/call` of a visible tool the token does not cover. */
function scopesMissingFor(body: unknown, context: McpContext): string[] {
  const message = body as { method?: unknown; params?: { name?: unknown } } | null
  if (!message || typeof message !== 'object' || Array.isArray(message) || message.method !== 'tools/call') return []
  const tool = typeof message.params?.name === 'string' ? visibleTool(message.params.name, context) : undefined
  if (!tool) return []
  return tool.scopes.every((scope) => context.scopes.includes(scope)) ? [] : tool.scopes
}
