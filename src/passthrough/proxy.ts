import type { OutboundFetch } from '../http/outbound.ts'
import { HOP_BY_HOP_HEADERS } from '../http/headers.ts'
import { OutboundError } from '../http/outbound.ts'
import { prependChunk } from '../runtime/streams.ts'

/**
 * Forwarding one MCP request to an upstream, transparently (DESIGN.md, `/mcp/servers/{slug}`):
 * every method, the body as sent, the MCP headers both ways, SSE streamed as it comes. Only the
 * credential changes: the client's `Authorization` and cookies never leave Gatehouse, the
 * upstream's cookies and challenges never reach the client.
 */

/** Request headers that belong to the client's session with Gatehouse, never forwarded. */
const CLIENT_CREDENTIALS = ['authorization', 'cookie', 'x-csrf-token', 'origin', 'referer']

/** Response headers that belong to the upstream's relation with Gatehouse, never passed back. */
const UPSTREAM_PRIVATE = ['set-cookie', 'www-authenticate', 'alt-svc', 'strict-transport-security']

const SSE_COMMENT = new TextEncoder().encode(': gatehouse\n\n')

const NOT_FORWARDED = [...HOP_BY_HOP_HEADERS, ...CLIENT_CREDENTIALS]
const NOT_RETURNED = [...HOP_BY_HOP_HEADERS, ...UPSTREAM_PRIVATE]

export function forwardedRequestHeaders(incoming: Headers, credentials: Record<string, string>): Headers {
  const headers = new Headers(incoming)
  for (const name of NOT_FORWARDED) headers.delete(name)
  for (const name of [...headers.keys()]) if (name.startsWith('x-forwarded-')) headers.delete(name)
  for (const [name, value] of Object.entries(credentials)) headers.set(name, value)
  return headers
}

function returnedHeaders(upstream: Headers): Headers {
  const headers = new Headers(upstream)
  for (const name of NOT_RETURNED) headers.delete(name)
  return headers
}

/**
 * The upstream's answer as the client's. An SSE stream starts with a comment: `Bun.serve` sends
 * a streamed response's head only with its first chunk, so without it the client would wait for
 * the upstream's first event to see even the status; SSE parsers skip comments.
 */
export function relayResponse(upstream: Response, source: ReadableStream<Uint8Array> | null = upstream.body): Response {
  const headers = returnedHeaders(upstream.headers)
  const isStream = headers.get('content-type')?.toLowerCase().startsWith('text/event-stream') ?? false
  const body = isStream && source ? prependChunk(SSE_COMMENT, source) : source
  return new Response(body, { status: upstream.status, statusText: upstream.statusText, headers })
}

export interface ForwardInput {
  url: string
  method: string
  headers: Headers
  /** Buffered (and capped) by the caller, so the request can be sent again after a refresh. */
  body: Uint8Array | null
  signal: AbortSignal
}

export class UpstreamUnavailable extends Error {
  constructor(
    readonly status: 502 | 504,
    message: string,
  ) {
    super(message)
    this.name = 'UpstreamUnavailable'
  }
}

/** One exchange with the upstream through the outbound guard; failures name the cause. */
export async function forward(fetch: OutboundFetch, input: ForwardInput, serverName: string): Promise<Response> {
  try {
    return await fetch(input.url, {
      method: input.method,
      headers: input.headers,
      body: input.body as BodyInit | null,
      signal: input.signal,
      redirect: 'manual',
    })
  } catch (error) {
    if (input.signal.aborted) throw error
    const message = error instanceof OutboundError ? error.message : 'the request failed'
    const slow = /did not answer within|did not finish/.test(message)
    throw new UpstreamUnavailable(slow ? 504 : 502, `${serverName} is unavailable: ${message}`)
  }
}
