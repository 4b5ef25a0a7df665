/** The scope vocabulary shared by the authorization server and every protected endpoint (DESIGN.md). */
export const SCOPES = {
  mcp: 'Use the MCP endpoint: list and call the tools you may use',
  'mcp:admin': 'Use admin-only MCP tools (if your role allows them)',
  api: 'Use the management API on your behalf',
  offline_access: 'Stay signed in (a refresh token)',
} as const

export type Scope = keyof typeof SCOPES

export const ALL_SCOPES = Object.keys(SCOPES) as Scope[]

/** The scopes an MCP client gets when it asks for none. */
export const DEFAULT_SCOPES: Scope[] = ['mcp']

export function parseScope(scope: string | undefined | null): string[] {
  return [...new Set((scope ?? '').split(' ').filter(Boolean))]
}

export function formatScope(scopes: readonly string[]): string {
  return scopes.join(' ')
}

/**
 * Narrows a requested scope to what may be granted: unknown scopes are dropped (not fatal, as
 * clients ask for things like `openid` or `profile`), then whatever the client registered and the
 * user's role allow. An empty request means the default scopes.
 */
export function narrowScopes(
  requested: string[],
  limits: { clientScopes?: string[]; role: 'owner' | 'admin' | 'member' },
): Scope[] {
  const wanted = requested.length > 0 ? requested : DEFAULT_SCOPES
  return ALL_SCOPES.filter(
    (scope) =>
      wanted.includes(scope) &&
      (!limits.clientScopes || limits.clientScopes.length === 0 || limits.clientScopes.includes(scope)) &&
      (scope !== 'mcp:admin' || limits.role !== 'member'),
  )
}
