import { isLoopbackHostname } from './loopback.ts'

/**
 * CORS for the MCP endpoints (`/mcp`, later `/mcp/servers/{slug}`), so browser-based clients (MCP
 * Inspector's web UI, web agents) can call them. Unlike the OAuth endpoints these are not open to
 * every origin: the MCP transport spec's DNS-rebinding warning asks servers to validate Origin, so
 * only the origins an operator allows get CORS headers, and the rest keep getting 403.
 */

/** Whether a browser page on `origin` (an Origin header value) may call the endpoint. */
export type OriginPolicy = (origin: string) => boolean

const ALLOWED_METHODS = 'GET, POST, DELETE, OPTIONS'

/**
 * Request headers Streamable HTTP clients send (2025-03-26 … 2026-07-28): the bearer token, the
 * negotiated revision, the session and resumption headers, the 2026 `Mcp-Method`/`Mcp-Name`
 * mirrors, and our request ID. `Mcp-Param-*` headers (named by a tool's declarations) are allowed
 * when asked for, as no fixed list can name them.
 */
const ALLOWED_HEADERS = [
  'authorization',
  'content-type',
  'mcp-protocol-version',
  'mcp-session-id',
  'last-event-id',
  'mcp-method',
  'mcp-name',
  'x-request-id',
]

/** Response headers a browser client must read: the 401/403 challenge and the session. */
const EXPOSED_HEADERS = 'WWW-Authenticate, Mcp-Session-Id, Mcp-Protocol-Version'

const PREFLIGHT_MAX_AGE_SECONDS = '600'

/** `origin` parsed, when it is the serialised origin of an http(s) page (never `null` or a path). */
function parseOrigin(origin: string): URL | undefined {
  try {
    const url = new URL(origin)
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === origin ? url : undefined
  } catch {
    return undefined
  }
}

/**
 * The origins allowed to call an MCP endpoint: the public URL's own, each one configured, and,
 * when the public URL is a loopback one, every loopback origin on any port (a local gateway used
 * by a local dev server or inspector on another port, under `localhost` or `127.0.0.1` alike).
 */
export function createOriginPolicy(options: { publicUrl: string; allowedOrigins: readonly string[] }): OriginPolicy {
  const publicUrl = new URL(options.publicUrl)
  const allowed = new Set([publicUrl.origin, ...options.allowedOrigins])
  const anyLoopback = isLoopbackHostname(publicUrl.hostname)
  return (origin) => {
    const url = parseOrigin(origin)
    if (!url) return false
    return allowed.has(url.origin) || (anyLoopback && isLoopbackHostname(url.hostname))
  }
}

/** Adds `Vary: Origin` unless the response already varies on it. */
function addVaryOrigin(headers: Headers): void {
  const vary = headers.get('vary')
  if (!vary) headers.set('vary', 'Origin')
  else if (!/(^|,)\s*(origin|\*)\s*(,|$)/i.test(vary)) headers.set('vary', `${vary}, Origin`)
}

/**
 * `response` with the CORS headers of an actual request (Fetch standard, "CORS protocol"): an
 * allowed Origin is echoed, with the headers a browser client needs to read exposed. Every answer
 * varies on Origin, so a cache never serves one origin's answer to another.
 */
export function withCors(request: Request, response: Response, allowsOrigin: OriginPolicy): Response {
  const origin = request.headers.get('origin')
  const allowed = origin !== null && allowsOrigin(origin)
  let target = response
  try {
    addVaryOrigin(target.headers)
  } catch {
    // Immutable headers (a response from fetch): copy it.
    target = new Response(response.body, response)
    addVaryOrigin(target.headers)
  }
  if (allowed) {
    target.headers.set('access-control-allow-origin', origin)
    target.headers.set('access-control-expose-headers', EXPOSED_HEADERS)
  }
  return target
}

/** The allowed headers for a preflight: the fixed list, plus any `Mcp-Param-*` the browser asks for. */
function allowedHeadersFor(request: Request): string {
  const requested = (request.headers.get('access-control-request-headers') ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => /^mcp-param-[a-z0-9-]+$/.test(name))
  return [...new Set([...ALLOWED_HEADERS, ...requested])].join(', ')
}

/**
 * Answers a CORS preflight (`OPTIONS`) without authentication: a browser sends no credentials on
 * it. An allowed Origin gets 204 with what it may send; a refused one 403, so the page's request
 * is never sent; an OPTIONS without Origin (not a browser) 204 with `Allow`.
 */
export function answerPreflight(request: Request, allowsOrigin: OriginPolicy): Response {
  const origin = request.headers.get('origin')
  if (origin === null) return new Response(null, { status: 204, headers: { allow: ALLOWED_METHODS, vary: 'Origin' } })
  if (!allowsOrigin(origin))
    return new Response(`Forbidden: requests from origin ${origin} are not allowed`, {
      status: 403,
      headers: { 'content-type': 'text/plain; charset=utf-8', vary: 'Origin' },
    })
  return new Response(null, {
    status: 204,
    headers: {
      'access-control-allow-origin': origin,
      'access-control-allow-methods': ALLOWED_METHODS,
      'access-control-allow-headers': allowedHeadersFor(request),
      'access-control-max-age': PREFLIGHT_MAX_AGE_SECONDS,
      vary: 'Origin, Access-Control-Request-Headers',
    },
  })
}
