/**
 * The upstream half of `/mcp`, added to the per-request SDK server: upstream tools are registered
 * with schemas that only describe (the upstream validates its own arguments, and nothing is
 * compiled per request), and only those the request calls, unless it lists them; prompts and
 * resources get their own handlers. Each call goes to its server with the user's credential;
 * progress is relayed, a cancellation aborts the upstream call, and a 2026 upstream's request for
 * input (`input_required`) is relayed to the caller with the upstream's state sealed in an
 * HMAC-signed envelope bound to the user, so any replica can take the retry.
 */
import {
  CLIENT_CAPABILITIES_META_KEY,
  createRequestStateCodec,
  inputRequired,
  isInputRequiredResult,
  type McpServer,
  ProtocolError,
  ProtocolErrorCode,
  type ServerContext,
  UrlElicitationRequiredError,
} from '@modelcontextprotocol/server'
import type { Principal } from '../auth/index.ts'
import type { McpServerRow } from '../db/schema.ts'
import { accountUpstream, type UpstreamAccounting } from './accounting.ts'
import type { Aggregator, ToolRoute, UserView } from './aggregator.ts'
import { unwrapResourceUri, wrapResourceUri } from './names.ts'
import { credentialProblemOf } from './upstream-pool.ts'

/** What a relayed `input_required` round carries back: the upstream's own state and the tool it is for. */
interface RelayState {
  up?: string
  tool: string
}

export type RequestStateCodec = ReturnType<typeof createRequestStateCodec<RelayState>>

/** Bound to the method and the user, so a state minted for one user is refused for another. */
export function createRelayCodec(key: Uint8Array): RequestStateCodec {
  return createRequestStateCodec<RelayState>({
    key,
    bind: (ctx) => `${ctx.mcpReq.method}\0${userIdOf(ctx)}`,
  })
}

function userIdOf(ctx: ServerContext): string {
  const context = ctx.http?.authInfo?.extra?.context as { principal?: Principal } | undefined
  return context?.principal?.user.id ?? ''
}

/** A JSON Schema handed to the SDK as is: listed unchanged, never compiled, every value accepted. */
function describing(schema: unknown) {
  const json = () => schema as Record<string, unknown>
  return {
    '~standard': {
      version: 1 as const,
      vendor: 'gatehouse-upstream',
      validate: (value: unknown) => ({ value }),
      jsonSchema: { input: json, output: json },
    },
  }
}

export interface UpstreamServing extends UpstreamAccounting {
  aggregator: Aggregator
  codec: RequestStateCodec
  timeoutMs: number
}

/**
 * Registers the routes of `view` on `server`. `called` names the tools the request calls (only
 * those are registered), or is `'all'` for a request that may list them.
 */
export function addUpstreams(
  server: McpServer,
  serving: UpstreamServing,
  principal: Principal,
  view: UserView,
  called: string[] | 'all',
  protocolVersion: string | null,
): void {
  const routes: [string, ToolRoute][] =
    called === 'all'
      ? [...view.routes].filter(([, route]) => route.kind !== 'connect_required')
      : called.flatMap((name) => {
          const route = serving.aggregator.routeOf(principal, view, name)
          return route ? [[name, route] as [string, ToolRoute]] : []
        })
  for (const [name, route] of routes)
    server.registerTool(name, registration(route, called === 'all'), (args: unknown, ctx: ServerContext) =>
      callRoute(serving, principal, name, route, args as Record<string, unknown>, ctx, protocolVersion),
    )
}

/** Never listed: the tool of a server the user must reconnect, known only by its name. */
const UNLISTED = describing({ type: 'object' })

/**
 * A route as the SDK registers it. The output schema is there only to be listed: for a call it is
 * left out, so the SDK never holds the upstream's result to it and the result passes unchanged.
 */
function registration(route: ToolRoute, listing: boolean) {
  if (route.kind === 'connect_required' || route.kind === 'unavailable') return { inputSchema: UNLISTED }
  const { title, description, inputSchema, outputSchema, annotations, icons, _meta } = route.definition
  return {
    title,
    description,
    inputSchema: describing(inputSchema),
    ...(outputSchema && listing ? { outputSchema: describing(outputSchema) } : {}),
    annotations,
    icons,
    _meta,
  }
}

/** Whether the caller can open a link it is sent (URL-mode elicitation). */
function takesUrlElicitation(ctx: ServerContext, protocolVersion: string | null): boolean {
  if (protocolVersion === '2025-11-25') return true
  const capabilities = callerCapabilities(ctx) as { elicitation?: { url?: unknown } } | undefined
  return capabilities?.elicitation?.url !== undefined
}

/** The capabilities a 2026 caller declared in its request's envelope. */
function callerCapabilities(ctx: ServerContext): unknown {
  return (ctx.mcpReq.envelope as Record<string, unknown> | undefined)?.[CLIENT_CAPABILITIES_META_KEY]
}

function connectAnswer(
  serving: UpstreamServing,
  server: McpServerRow,
  reason: string,
  ctx: ServerContext,
  protocolVersion: string | null,
  asError: boolean,
) {
  const url = serving.aggregator.connectLink(server)
  const text = `${reason}. Open ${url} to connect ${server.display_name}; its tools then appear in this server's tool list.`
  if (asError && takesUrlElicitation(ctx, protocolVersion))
    throw new UrlElicitationRequiredError(
      [{ mode: 'url', elicitationId: crypto.randomUUID(), url, message: `Connect ${server.display_name}` }],
      text,
    )
  return { content: [{ type: 'text' as const, text }], ...(asError ? { isError: true } : {}) }
}

async function callRoute(
  serving: UpstreamServing,
  principal: Principal,
  name: string,
  route: ToolRoute,
  args: Record<string, unknown>,
  ctx: ServerContext,
  protocolVersion: string | null,
) {
  const { server } = route
  const started = performance.now()
  if (route.kind === 'connect' || route.kind === 'connect_required')
    accountUpstream(serving, server, 'connect_required', started)
  else if (route.kind === 'unavailable') accountUpstream(serving, server, 'unavailable', started)
  if (route.kind === 'connect')
    return connectAnswer(serving, server, `${server.display_name} needs you to sign in`, ctx, protocolVersion, false)
  if (route.kind === 'connect_required')
    return connectAnswer(
      serving,
      server,
      `${server.display_name} (${server.slug}) needs you to connect your account first`,
      ctx,
      protocolVersion,
      true,
    )
  if (route.kind === 'unavailable')
    return {
      content: [
        {
          type: 'text' as const,
          text: `${name} cannot be called: ${server.display_name} (${server.slug}) is unavailable: ${route.reason}`,
        },
      ],
      isError: true,
    }

  const state = ctx.mcpReq.requestState<RelayState>()
  if (state !== undefined && (typeof state !== 'object' || state.tool !== name))
    throw new ProtocolError(ProtocolErrorCode.InvalidParams, 'The requestState was issued for another tool')
  const capabilities = callerCapabilities(ctx)
  const progressToken = ctx.mcpReq._meta?.progressToken
  try {
    const client = await serving.aggregator.clientFor(server, principal)
    const result = await client.callTool(
      {
        name: route.upstreamName,
        arguments: args,
        ...(ctx.mcpReq.inputResponses ? { inputResponses: ctx.mcpReq.inputResponses } : {}),
        ...(state?.up !== undefined ? { requestState: state.up } : {}),
        // A 2026 upstream asks only for what the caller can give (a 2025 caller: nothing).
        _meta: { [CLIENT_CAPABILITIES_META_KEY]: capabilities ?? {} },
      } as Parameters<typeof client.callTool>[0],
      {
        signal: ctx.mcpReq.signal,
        timeout: serving.timeoutMs,
        resetTimeoutOnProgress: true,
        allowInputRequired: true,
        // The upstream validates its own arguments; nothing checks its result on the way back.
        toolDefinition: { name: route.upstreamName, inputSchema: route.definition.inputSchema },
        ...(progressToken === undefined
          ? {}
          : {
              onprogress: (progress: Record<string, unknown>) =>
                void ctx.mcpReq
                  .notify({ method: 'notifications/progress', params: { ...progress, progressToken } })
                  .catch(() => {}),
            }),
      } as Parameters<typeof client.callTool>[1],
    )
    accountUpstream(serving, server, (result as { isError?: unknown }).isError ? 'tool_error' : 'ok', started)
    if (isInputRequiredResult(result)) {
      const relayed = result as { inputRequests: Record<string, unknown>; requestState?: string }
      return inputRequired({
        inputRequests: relayed.inputRequests as Parameters<typeof inputRequired>[0]['inputRequests'],
        requestState: await serving.codec.mint({ up: relayed.requestState, tool: name }, ctx),
      })
    }
    return result
  } catch (error) {
    const credentialProblem = credentialProblemOf(error)
    accountUpstream(
      serving,
      server,
      credentialProblem
        ? 'connect_required'
        : ctx.mcpReq.signal.aborted
          ? 'client_gone'
          : error instanceof ProtocolError
            ? 'upstream_error'
            : 'unavailable',
      started,
    )
    if (credentialProblem) return connectAnswer(serving, server, credentialProblem.message, ctx, protocolVersion, true)
    if (ctx.mcpReq.signal.aborted) throw error
    // Anything but the upstream's own JSON-RPC answer may be the connection's fault.
    if (!(error instanceof ProtocolError)) serving.aggregator.dropConnection(server, principal)
    const message = error instanceof Error ? error.message : String(error)
    return { content: [{ type: 'text' as const, text: `${server.display_name} failed: ${message}` }], isError: true }
  }
}

/** Prompts and resources of the user's upstreams, routed back by name and wrapped URI. */
export function addPromptsAndResources(server: McpServer, serving: UpstreamServing, principal: Principal): void {
  const low = server.server
  const { aggregator } = serving
  low.registerCapabilities({ prompts: { listChanged: true }, resources: { listChanged: true }, completions: {} })
  low.setRequestHandler('prompts/list', async () => ({ prompts: (await aggregator.prompts(principal)).prompts }))
  low.setRequestHandler('prompts/get', async (request, ctx) => {
    const route = (await aggregator.prompts(principal)).routes.get(request.params.name)
    if (!route) throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Prompt ${request.params.name} not found`)
    const [upstream, name] = route
    return upstreamCall(serving, upstream, principal, ctx, (client) =>
      client.getPrompt({ name, arguments: request.params.arguments }, { signal: ctx.mcpReq.signal }),
    )
  })
  // Argument completion, for a prompt or a resource template, asked of the server it belongs to.
  low.setRequestHandler('completion/complete', async (request, ctx) => {
    const { ref, argument, context } = request.params
    let target: [McpServerRow, typeof ref] | undefined
    if (ref.type === 'ref/prompt') {
      const route = (await aggregator.prompts(principal)).routes.get(ref.name)
      if (route) target = [route[0], { ...ref, name: route[1] }]
    } else {
      const unwrapped = unwrapResourceUri(ref.uri)
      const upstream = unwrapped ? await aggregator.readyServer(principal, unwrapped.slug) : undefined
      if (upstream && unwrapped) target = [upstream, { ...ref, uri: unwrapped.uri }]
    }
    if (!target) throw new ProtocolError(ProtocolErrorCode.InvalidParams, 'Nothing to complete for this reference')
    const [upstream, upstreamRef] = target
    return upstreamCall(serving, upstream, principal, ctx, async (client) =>
      client.getServerCapabilities()?.completions
        ? client.complete(
            { ref: upstreamRef, argument, ...(context ? { context } : {}) },
            { signal: ctx.mcpReq.signal },
          )
        : { completion: { values: [] } },
    )
  })
  low.setRequestHandler('resources/list', async () => ({ resources: await aggregator.resources(principal) }))
  low.setRequestHandler('resources/templates/list', async () => ({
    resourceTemplates: await aggregator.resourceTemplates(principal),
  }))
  low.setRequestHandler('resources/read', async (request, ctx) => {
    const target = unwrapResourceUri(request.params.uri)
    const upstream = target ? await aggregator.readyServer(principal, target.slug) : undefined
    if (!target || !upstream || !(await aggregator.mayReadResource(principal, upstream, target.uri)))
      throw new ProtocolError(ProtocolErrorCode.ResourceNotFound ?? -32002, `Resource ${request.params.uri} not found`)
    const result = await upstreamCall(serving, upstream, principal, ctx, (client) =>
      client.readResource({ uri: target.uri }, { signal: ctx.mcpReq.signal, cacheMode: 'bypass' }),
    )
    return {
      ...result,
      contents: result.contents.map((content) => ({ ...content, uri: wrapResourceUri(target.slug, content.uri) })),
    }
  })
}

async function upstreamCall<T>(
  serving: UpstreamServing,
  server: McpServerRow,
  principal: Principal,
  ctx: ServerContext,
  call: (client: Awaited<ReturnType<Aggregator['clientFor']>>) => Promise<T>,
): Promise<T> {
  try {
    return await call(await serving.aggregator.clientFor(server, principal))
  } catch (error) {
    if (error instanceof ProtocolError) throw error
    if (!ctx.mcpReq.signal.aborted) serving.aggregator.dropConnection(server, principal)
    const message = error instanceof Error ? error.message : String(error)
    throw new ProtocolError(ProtocolErrorCode.InternalError, `${server.display_name} failed: ${message}`)
  }
}
