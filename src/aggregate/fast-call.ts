/**
 * The hot path of the aggregated `/mcp`: a plain `tools/call` of an upstream tool (no progress
 * token, no multi-round-trip retry) is forwarded as one HTTP request on the pooled connection's
 * terms (its negotiated revision, its 2025 session), and the answer is relayed without building an
 * SDK server or going through the SDK client, which would cost ten times as much CPU. Anything
 * this path does not handle returns undefined before the upstream was asked, and the request
 * goes to the SDK path, which handles everything.
 */
import type { StreamableHTTPClientTransport, Tool } from '@modelcontextprotocol/client'
import type { Principal } from '../auth/index.ts'
import { SseEventSplitter } from '../runtime/sse-events.ts'
import { sseMessage, type ToolCall } from '../mcp/fast-path.ts'
import { accountUpstream, type UpstreamAccounting } from './accounting.ts'
import type { Aggregator, ToolRoute } from './aggregator.ts'
import type { RequestStateCodec } from './serve.ts'
import { credentialProblemOf, unrelayableMessage } from './upstream-pool.ts'

const MODERN = '2026-07-28'
const PROTOCOL_VERSION_KEY = 'io.modelcontextprotocol/protocolVersion'
const CLIENT_CAPABILITIES_KEY = 'io.modelcontextprotocol/clientCapabilities'
const CLIENT_INFO_KEY = 'io.modelcontextprotocol/clientInfo'
const SERVER_INFO_KEY = 'io.modelcontextprotocol/serverInfo'

export interface FastCallOptions extends UpstreamAccounting {
  publicUrl: string
  aggregator: Aggregator
  codec: RequestStateCodec
  serverInfo: { name: string; version: string }
  timeoutMs: number
  /** Largest answer (JSON body or one SSE event) read from an upstream. */
  maxAnswerBytes: number
}

type UpstreamRoute = Extract<ToolRoute, { kind: 'upstream' }>

let nextId = 0

/** Tools whose arguments travel in headers too (SEP-2243) are left to the SDK client, which mirrors them. */
const mirrorsHeaders = new WeakMap<Tool, boolean>()
function declaresHeaders(tool: Tool): boolean {
  let declares = mirrorsHeaders.get(tool)
  if (declares === undefined) {
    declares = JSON.stringify(tool.inputSchema).includes('"x-mcp-header"')
    mirrorsHeaders.set(tool, declares)
  }
  return declares
}

export async function forwardToolCall(
  options: FastCallOptions,
  principal: Principal,
  route: UpstreamRoute,
  call: ToolCall,
  callerCapabilities: unknown,
  signal: AbortSignal,
): Promise<Response | undefined> {
  const { server } = route
  if (server.transport !== 'streamable_http' || declaresHeaders(route.definition)) return undefined
  const { aggregator } = options
  let client: Awaited<ReturnType<Aggregator['clientFor']>>
  try {
    client = await aggregator.clientFor(server, principal)
  } catch {
    return undefined
  }
  const transport = client.transport as StreamableHTTPClientTransport | undefined
  const version = client.getNegotiatedProtocolVersion()
  if (!transport || !version) return undefined
  const modern = version === MODERN
  const id = `gatehouse-${++nextId}`
  const params: Record<string, unknown> = { name: route.upstreamName, arguments: call.args }
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': version,
  }
  if (modern) {
    params._meta = {
      [PROTOCOL_VERSION_KEY]: MODERN,
      [CLIENT_INFO_KEY]: { name: options.serverInfo.name, version: options.serverInfo.version },
      [CLIENT_CAPABILITIES_KEY]: callerCapabilities ?? {},
    }
    headers['mcp-method'] = 'tools/call'
    headers['mcp-name'] = route.upstreamName
  } else if (transport.sessionId) headers['mcp-session-id'] = transport.sessionId

  const abort = AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs)])
  const fetch = aggregator.pool.fetchFor(server, principal.user)
  const started = performance.now()
  /** Counts the call once it is answered here; a call left to the SDK path is counted there. */
  const accounted = (outcome: string, response: Response) => {
    accountUpstream(options, server, outcome, started)
    return response
  }
  let message: { result?: Record<string, unknown>; error?: { message?: unknown } } | undefined
  try {
    const response = await fetch(server.url, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params }),
      signal: abort,
    })
    // The upstream forgot the session (it restarted): nothing ran; the SDK path connects again.
    if (response.status === 404 && !modern) {
      await response.body?.cancel().catch(() => {})
      aggregator.dropConnection(server, principal)
      return undefined
    }
    if (!response.ok) {
      await response.body?.cancel().catch(() => {})
      return accounted(
        'upstream_error',
        toolError(options, call, `${server.display_name} failed: it answered HTTP ${response.status}`),
      )
    }
    // A 2025 upstream asking the caller for input mid-call is told why it cannot be, as the SDK
    // path tells it, so the call ends instead of waiting for an answer that never comes.
    message = await responseTo(
      response,
      id,
      (request) =>
        fetch(server.url, {
          method: 'POST',
          headers,
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: request.id,
            error: { code: -32600, message: unrelayableMessage(options.publicUrl, server, String(request.method)) },
          }),
          signal: abort,
        }).then((answered) => answered.body?.cancel()),
      options.maxAnswerBytes,
    )
  } catch (error) {
    if (signal.aborted) return accounted('client_gone', new Response(null, { status: 499 }))
    // The upstream refused the user's sign-in and it could not be renewed: nothing ran, and the
    // SDK path answers with the connect link as for any call of a server to reconnect.
    if (credentialProblemOf(error)) return undefined
    aggregator.dropConnection(server, principal)
    if (error instanceof AnswerTooLarge)
      aggregator.recordFailure(server, `answering a tool call failed: ${error.message}`)
    const cause = abort.aborted ? 'it did not answer in time' : error instanceof Error ? error.message : String(error)
    return accounted(
      error instanceof AnswerTooLarge ? 'upstream_error' : 'unavailable',
      toolError(options, call, `${server.display_name} failed: ${cause}`),
    )
  }
  if (!message)
    return accounted('upstream_error', toolError(options, call, `${server.display_name} failed: it sent no answer`))
  if (message.error || !message.result)
    return accounted(
      'upstream_error',
      toolError(options, call, `${server.display_name} failed: ${String(message.error?.message ?? 'no result')}`),
    )

  const { resultType, ...result } = message.result
  if (resultType === 'input_required') {
    if (call.era !== 'modern')
      return accounted(
        'tool_error',
        toolError(options, call, `${server.display_name} asked for input this client cannot give`),
      )
    const requestState = await options.codec.mint(
      { up: result.requestState as string | undefined, tool: call.name },
      stateContext(principal),
    )
    return accounted(
      'ok',
      answer(call, { resultType: 'input_required', inputRequests: result.inputRequests, requestState }, options),
    )
  }
  return accounted(result.isError ? 'tool_error' : 'ok', answer(call, result, options))
}

/** What the request-state codec binds to: the method and the user (as the SDK path's context gives them). */
function stateContext(principal: Principal) {
  return {
    mcpReq: { method: 'tools/call' },
    http: { authInfo: { extra: { context: { principal } } } },
  } as unknown as Parameters<RequestStateCodec['mint']>[1]
}

function toolError(options: FastCallOptions, call: ToolCall, text: string): Response {
  return answer(call, { content: [{ type: 'text', text }], isError: true }, options)
}

/** The answer as the SDK sends it in each era: SSE for 2025 clients, JSON stamped with the server for 2026. */
function answer(call: ToolCall, result: Record<string, unknown>, options: FastCallOptions): Response {
  if (call.era === 'modern') {
    // As the SDK does: the server's stamp joins the result's own `_meta` unless it names a server already.
    const meta = result._meta as Record<string, unknown> | undefined
    const stamped = {
      ...result,
      ...(result.resultType ? {} : { resultType: 'complete' }),
      _meta: meta?.[SERVER_INFO_KEY] ? meta : { ...meta, [SERVER_INFO_KEY]: options.serverInfo },
    }
    return new Response(JSON.stringify({ result: stamped, jsonrpc: '2.0', id: call.id }), {
      headers: { 'content-type': 'application/json' },
    })
  }
  return sseMessage(JSON.stringify({ result, jsonrpc: '2.0', id: call.id }))
}

/** An upstream's answer went past the size cap: the upstream is told off to its admins, the call fails. */
export class AnswerTooLarge extends Error {
  constructor(maxBytes: number) {
    super(`its answer is larger than ${maxBytes} bytes, the most Gatehouse reads`)
    this.name = 'AnswerTooLarge'
  }
}

/** A JSON body, read up to `maxBytes`. */
async function readJsonWithin(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<unknown> {
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      size += value.byteLength
      if (size > maxBytes) throw new AnswerTooLarge(maxBytes)
      chunks.push(value)
    }
  } finally {
    reader.cancel().catch(() => {})
  }
  return JSON.parse(await new Blob(chunks as BlobPart[]).text())
}

/**
 * The JSON-RPC response with `id`, from a JSON body or from the SSE stream that carries it; a
 * request the upstream sends on the way goes to `onRequest`. The stream is cut into events as it
 * comes, each byte looked at once, and no body or event may pass `maxBytes`.
 */
async function responseTo(
  response: Response,
  id: string,
  onRequest: (request: { id: unknown; method: unknown }) => Promise<unknown>,
  maxBytes: number,
): Promise<Record<string, never> | undefined> {
  const type = response.headers.get('content-type') ?? ''
  if (type.includes('application/json') && response.body) {
    const message = (await readJsonWithin(response.body, maxBytes)) as { id?: unknown } | null
    return message?.id === id ? (message as Record<string, never>) : undefined
  }
  if (!type.includes('text/event-stream') || !response.body) {
    await response.body?.cancel().catch(() => {})
    return undefined
  }
  const reader = response.body.getReader()
  const decoder = new TextDecoder()
  const events = new SseEventSplitter()
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return undefined
      for (const event of events.push(value)) {
        const data = decoder
          .decode(event)
          .split(/\r\n|\r|\n/)
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
          .join('\n')
        if (!data) continue
        const message = JSON.parse(data)
        if (message?.id === id && ('result' in message || 'error' in message)) return message
        if (typeof message?.method === 'string' && message.id !== undefined) await onRequest(message)
      }
      if (events.pending > maxBytes) throw new AnswerTooLarge(maxBytes)
    }
  } finally {
    reader.cancel().catch(() => {})
  }
}
