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

/**
 * Request headers that claim who the caller is or where it connects from. Only a proxy in front
 * may set them, and Gatehouse is the last hop before the upstream: a client's value would be a
 * claim an upstream might trust, so it never passes (nor any `x-forwarded-*` or `x-gatehouse-*`).
 */
const CLIENT_CLAIMS = [
  'forwarded',
  'x-real-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'fastly-client-ip',
]
const CLAIM_PREFIXES = ['x-forwarded-', 'x-gatehouse-']

/** Response headers that belong to the upstream's relation with Gatehouse, never passed back. */
const UPSTREAM_PRIVATE = ['set-cookie', 'www-authenticate', 'alt-svc', 'strict-transport-security']

const SSE_COMMENT = new TextEncoder().encode(': gatehouse\n\n')

const NOT_FORWARDED = [...HOP_BY_HOP_HEADERS, ...CLIENT_CREDENTIALS, ...CLIENT_CLAIMS]
const NOT_RETURNED = [...HOP_BY_HOP_HEADERS, ...UPSTREAM_PRIVATE]

/**
 * The client's headers as the upstream gets them: without Gatehouse's own session, hop-by-hop
 * framing and any identity claim, then with the server's credentials. Those come last, so the
 * identity headers a server asks for (`forward_identity_headers`) are always Gatehouse's.
 */
export function forwardedRequestHeaders(incoming: Headers, credentials: Record<string, string>): Headers {
  const headers = new Headers(incoming)
  for (const name of NOT_FORWARDED) headers.delete(name)
  for (const name of [...headers.keys()])
    if (CLAIM_PREFIXES.some((prefix) => name.startsWith(prefix))) headers.delete(name)
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
export function relayResponse(upstream: Response): Response {
  const headers = returnedHeaders(upstream.headers)
  const isStream = headers.get('content-type')?.toLowerCase().startsWith('text/event-stream') ?? false
  const body = isStream && upstream.body ? prependChunk(SSE_COMMENT, upstream.body) : upstream.body
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
