import { OAuthError } from './errors.ts'

/** The protected resources this server issues tokens for (RFC 8707 audiences). */
export function resourcesOf(publicUrl: string) {
  return {
    /** The user's aggregated MCP endpoint: the default audience. */
    mcp: `${publicUrl}/mcp`,
    /** The management API, for frontends that use OAuth instead of a session. */
    api: `${publicUrl}/api`,
  }
}

/** A per-server endpoint's slug, as the gateway names upstreams (lowercase `[a-z0-9-]`, ≤ 32). */
const SERVER_SLUG = /^[a-z0-9-]{1,32}$/

/** A path segment that is `.` or `..`, written plainly or percent-encoded (RFC 3986 §5.2.4). */
const DOT_SEGMENT = /(^|\/)(\.|%2e){1,2}(\/|$)/i

function invalidTarget(description: string): OAuthError {
  return new OAuthError('invalid_target', description)
}

/**
 * The canonical form of a `resource` (RFC 8707 §2: an absolute URI, no fragment), so that
 * spellings of one URI name one audience: WHATWG URL parsing lower-cases the scheme and host and
 * drops a default port; a trailing slash is dropped, as clients differ. A query, a fragment or a
 * dot segment makes it `invalid_target` rather than something to normalise away: a resource
 * naming `/mcp/servers/../../api` is not asking for the API by accident.
 */
export function canonicalizeResource(resource: string): string {
  let url: URL
  try {
    url = new URL(resource)
  } catch {
    throw invalidTarget('resource must be an absolute URI')
  }
  // URL parsing would quietly drop whitespace and read `\` as `/`; neither belongs in a URI.
  if (/[\s\\\x00-\x1f\x7f]/.test(resource)) throw invalidTarget('resource must be an absolute URI')
  if (resource.includes('#')) throw invalidTarget('resource must not contain a fragment')
  if (resource.includes('?')) throw invalidTarget('resource must not contain a query')
  if (DOT_SEGMENT.test(resource)) throw invalidTarget('resource must not contain . or .. path segments')
  return url.href.replace(/\/+$/, '')
}

/**
 * The audience a `resource` parameter names, or the MCP endpoint when there is none. After
 * canonicalisation it must be exactly one of ours: the MCP endpoint, the API, or a per-server
 * endpoint `<public url>/mcp/servers/<slug>`.
 */
export function resolveResource(publicUrl: string, resource: string | undefined | null): string {
  const known = resourcesOf(publicUrl)
  if (resource === undefined || resource === null || resource === '') return known.mcp
  const canonical = canonicalizeResource(resource)
  if (canonical === known.mcp || canonical === known.api) return canonical
  const serverPrefix = `${known.mcp}/servers/`
  if (canonical.startsWith(serverPrefix) && SERVER_SLUG.test(canonical.slice(serverPrefix.length))) return canonical
  throw invalidTarget(`resource ${JSON.stringify(resource.slice(0, 200))} is not served by this authorization server`)
}
