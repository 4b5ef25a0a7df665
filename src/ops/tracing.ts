/**
 * OpenTelemetry tracing of MCP requests: a server span per `/mcp` and `/mcp/servers/{slug}`
 * request and a client span per request sent upstream, W3C `traceparent` accepted from clients
 * and sent to upstreams. Off unless an OTLP endpoint is configured, and then nothing of the SDK is
 * loaded: `deps.tracing` is undefined and each request pays one check of it. The SDK half lives in
 * tracing-sdk.ts, imported only when tracing is on.
 *
 * Spans carry what identifies a request (the MCP method, the tool name, the server, the user's ID,
 * the outcome), never tokens, arguments or results.
 */
import type { TracingConfig } from '../config.ts'
import type { Logger } from './logger.ts'
import { currentRequestContext } from './request-context.ts'

export type SpanAttributes = Record<string, string | number | boolean>

/** The span of one MCP request, which the handlers annotate as they learn who and what it is. */
export interface RequestSpan {
  annotate(attributes: SpanAttributes): void
  /** A client span, child of this one, for one request to an upstream. */
  startUpstream(serverId: string, method: string, url: string): UpstreamSpan
  end(status: number): void
}

export interface UpstreamSpan {
  /** `traceparent` (and `tracestate`) naming this span, for the upstream request. */
  readonly headers: Record<string, string>
  end(status: number | undefined, error?: unknown): void
}

export interface Tracing {
  /** Starts a request's span: the child of the client's `traceparent` when it sent a valid one. */
  startRequest(request: Request, route: string): RequestSpan
  /** Sends the spans queued so far. */
  flush(): Promise<void>
  /** Sends what is still queued and stops (at shutdown). */
  shutdown(): Promise<void>
}

/** The tracing of `config`, or undefined (and nothing loaded) when no endpoint is configured. */
export async function openTracing(config: TracingConfig | undefined, logger: Logger): Promise<Tracing | undefined> {
  if (!config) return undefined
  const { createTracing } = await import('./tracing-sdk.ts')
  return createTracing(config, logger)
}

/** The current request's span; only called where `deps.tracing` is set. */
export function requestSpan(): RequestSpan | undefined {
  return currentRequestContext()?.span
}

/**
 * One request to an upstream as a client span: its `traceparent` set on `headers` (replacing any
 * a client sent, which must not reach the upstream as if it were Gatehouse's), ended with the
 * answer's status or the failure.
 */
export async function traceUpstream(
  serverId: string,
  method: string,
  url: string,
  headers: Headers,
  send: () => Promise<Response>,
): Promise<Response> {
  const parent = requestSpan()
  if (!parent) return send()
  const span = parent.startUpstream(serverId, method, url)
  // The client's trace context gives way to Gatehouse's own span's: the upstream's spans are
  // children of one that was recorded. Without tracing, the client's passes as it came.
  headers.delete('traceparent')
  headers.delete('tracestate')
  for (const [name, value] of Object.entries(span.headers)) headers.set(name, value)
  try {
    const response = await send()
    span.end(response.status)
    return response
  } catch (error) {
    span.end(undefined, error)
    throw error
  }
}

/**
 * The method and tool of an MCP body, as span attributes: `mcp.method.name` and, for a
 * `tools/call`, `gen_ai.tool.name` (the OpenTelemetry MCP conventions); a batch is `batch`.
 */
export function mcpAttributesOf(body: unknown): SpanAttributes {
  if (Array.isArray(body)) return { 'mcp.method.name': 'batch' }
  const message = body as { method?: unknown; params?: { name?: unknown } } | null
  if (!message || typeof message !== 'object' || typeof message.method !== 'string') return {}
  const attributes: SpanAttributes = { 'mcp.method.name': message.method.slice(0, 128) }
  if (message.method === 'tools/call' && typeof message.params?.name === 'string')
    attributes['gen_ai.tool.name'] = message.params.name.slice(0, 128)
  return attributes
}
