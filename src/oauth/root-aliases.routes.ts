import { Elysia } from 'elysia'
import { basePathOf } from '../config.ts'
import type { AppDeps } from '../deps.ts'
import { CORS_HEADERS, preflight } from './http.ts'

/**
 * `…/oauth2/<endpoint>` with the request's query: a 307, so a POST is repeated as a POST with the
 * same body (RFC 9110 §15.4.8), which the fetch standard and the MCP SDK's same-origin redirect
 * handling both do. CORS headers let a browser client follow it.
 */
function redirectToOAuth2(base: string, endpoint: 'authorize' | 'token' | 'register') {
  return ({ request }: { request: Request }) =>
    new Response(null, {
      status: 307,
      headers: {
        ...CORS_HEADERS,
        location: `${base}/oauth2/${endpoint}${new URL(request.url).search}`,
        'cache-control': 'no-store',
      },
    })
}

const LEGACY = 'MCP 2025-03-26 default path (a client without metadata): 307 to '

/**
 * The MCP 2025-03-26 authorization spec ("Fallbacks for Servers without Metadata Discovery") has
 * clients that find no RFC 8414 metadata use `/authorize`, `/token` and `/register` at the
 * authorization base URL, the MCP URL without its path. Our endpoints live under `/oauth2/`, so
 * these paths redirect there. They are served below the base path (the proxy strips it); a public
 * URL with a path cannot answer at the origin root, which it does not own.
 */
export const rootAliasRoutes = (deps: AppDeps) => {
  const base = basePathOf(deps.config.publicUrl)
  const hidden = { detail: { hide: true } }
  const documented = (endpoint: string) => ({
    parse: 'none' as const,
    detail: { summary: `${LEGACY}${base}/oauth2/${endpoint}`, deprecated: true, security: [] },
  })
  return new Elysia({ name: 'oauth.root-aliases', detail: { tags: ['oauth'] } })
    .get('/authorize', redirectToOAuth2(base, 'authorize'), documented('authorize'))
    .post('/authorize', redirectToOAuth2(base, 'authorize'), documented('authorize'))
    .post('/token', redirectToOAuth2(base, 'token'), documented('token'))
    .post('/register', redirectToOAuth2(base, 'register'), documented('register'))
    .options('/token', preflight, hidden)
    .options('/register', preflight, hidden)
}
