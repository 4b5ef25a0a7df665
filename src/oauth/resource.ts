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

/**
 * The audience a `resource` parameter names, or the MCP endpoint when there is none.
 * RFC 8707 §2: an absolute URI without a fragment. It must be one of ours: the MCP endpoint (or a
 * per-server endpoint below it) or the API. A trailing slash is tolerated, as clients differ.
 */
export function resolveResource(publicUrl: string, resource: string | undefined | null): string {
  const known = resourcesOf(publicUrl)
  if (resource === undefined || resource === null || resource === '') return known.mcp
  let url: URL
  try {
    url = new URL(resource)
  } catch {
    throw new OAuthError('invalid_target', 'resource must be an absolute URI')
  }
  if (url.hash) throw new OAuthError('invalid_target', 'resource must not contain a fragment')
  const normalized = resource.replace(/\/+$/, '')
  if (normalized === known.mcp || normalized === known.api) return normalized
  if (normalized.startsWith(`${known.mcp}/servers/`) && !url.search) return normalized
  throw new OAuthError(
    'invalid_target',
    `resource ${JSON.stringify(resource.slice(0, 200))} is not served by this authorization server`,
  )
}
