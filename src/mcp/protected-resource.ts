import type { Config } from '../config.ts'
import { resourcesOf } from '../oauth/resource.ts'

/** The scopes every MCP client needs; asked for in the 401 challenge. */
export const BASELINE_SCOPES = ['mcp']

/** RFC 9728 §3.1: where a resource's metadata lives (path-aware); the MCP endpoint's by default. */
export function protectedResourceMetadataUrl(config: Config, resource = resourcesOf(config.publicUrl).mcp): string {
  const { origin, pathname } = new URL(resource)
  return `${origin}/.well-known/oauth-protected-resource${pathname}`
}

/**
 * RFC 9728 protected resource metadata for `/mcp`. `scopes_supported` (§2) lists the scopes this
 * resource understands; `offline_access` is the authorization server's (a refresh token), so it
 * is in the RFC 8414 metadata only.
 */
export function protectedResourceMetadata(config: Config) {
  return {
    resource: resourcesOf(config.publicUrl).mcp,
    authorization_servers: [config.publicUrl],
    scopes_supported: ['mcp', 'mcp:admin'],
    bearer_methods_supported: ['header'],
    resource_name: 'Gatehouse MCP',
  }
}

function quote(value: string): string {
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`
}

/**
 * RFC 6750 §3 challenge with RFC 9728's `resource_metadata` and the MCP spec's `scope`, which
 * tells a client where to start the OAuth flow and what to ask for (or step up to).
 */
export function bearerChallenge(
  config: Config,
  options: {
    error?: 'invalid_token' | 'insufficient_scope'
    description?: string
    scopes?: string[]
    /** The protected resource the challenge is for; default the MCP endpoint. */
    resource?: string
  } = {},
): string {
  const parts = [
    'Bearer realm="gatehouse"',
    `resource_metadata=${quote(protectedResourceMetadataUrl(config, options.resource))}`,
    `scope=${quote((options.scopes ?? BASELINE_SCOPES).join(' '))}`,
  ]
  if (options.error) parts.push(`error=${quote(options.error)}`)
  if (options.description) parts.push(`error_description=${quote(options.description)}`)
  return parts.join(', ')
}
