import type { OutboundFetch } from '../http/outbound.ts'
import { HOP_BY_HOP_HEADERS } from '../http/headers.ts'
import { OutboundError } from '../http/outbound.ts'
import { prependChunk } from '../runtime/streams.ts'

/**
 * Forwarding one MCP request to an upstream, transparently (DESIGN.md, `/mcp/servers/{slug}`):
 * every method, the body as sent, the MCP headers both ways, SSE streamed as it comes. Only the
 * credential changes: the client's `Authorization`, cookies and identity claims never leave
 * Gatehouse, and of the upstream's headers only those MCP needs reach the client.
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

/**
 * The response headers passed back, the only ones: what the body is and how it is encoded, the
 * MCP session and revision (Streamable HTTP), caching, `Vary`, `Retry-After` on a 429 or 503,
 * `Allow` on a 405, and `X-Accel-Buffering` so a proxy in front does not hold an SSE stream back.
 * Anything else an upstream sends would act on Gatehouse's origin in a browser (cookies,
 * challenges, Clear-Site-Data, Refresh, CSP, CORS, Link), so it stays behind; Gatehouse adds its
 * own CORS headers afterwards. Content-Length is the runtime's, for the body it actually sends.
 */
const RETURNED = [
  'content-type',
  'content-encoding',
  'cache-control',
  'vary',
  'retry-after',
  'allow',
  'mcp-session-id',
  'mcp-protocol-version',
  'x-accel-buffering',
]

const SSE_COMMENT = new TextEncoder().encode(': gatehouse\n\n')

const NOT_FORWARDED = [...HOP_BY_HOP_HEADERS, ...CLIENT_CREDENTIALS, ...CLIENT_CLAIMS]

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
  const headers = new Headers()
  for (const name of RETURNED) {
    const value = upstream.get(name)
    if (value !== null) headers.set(name, value)
  }
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

/**
 * One exchange with the upstream through the outbound guard; failures name the cause. A redirect
 * is a failure too: following it would send the user's credential where the admin did not point
 * it, and passing it on would send the client there from Gatehouse's origin.
 */
export async function forward(fetch: OutboundFetch, input: ForwardInput, serverName: string): Promise<Response> {
  let response: Response
  try {
    response = await fetch(input.url, {
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
  if (isRedirect(response.status)) {
    await response.body?.cancel().catch(() => {})
    throw new UpstreamUnavailable(
      502,
      `${serverName} is unavailable: it answered with a redirect (HTTP ${response.status}), which Gatehouse neither follows nor passes on`,
    )
  }
  return response
}

/** 3xx but 304, which only says a cached answer is still good. */
function isRedirect(status: number): boolean {
  return status >= 300 && status < 400 && status !== 304
}
