import { type Cookie, Elysia } from 'elysia'
import { authenticateToken, csrfTokenFor, type Principal } from '../auth/auth.service.ts'
import { cookieNamesFor } from '../auth/cookies.ts'
import { constantTimeEqual } from '../auth/token.ts'
import { basePathOf } from '../config.ts'
import { nowSeconds } from '../db/index.ts'
import type { AppDeps } from '../deps.ts'
import { ApiError } from '../http/errors.ts'
import { connectionsUrlsOf, renderConnectionsErrorPage, renderConnectionsPage } from '../pages/connections.ts'
import { disconnect, setSelection } from './connection.service.ts'
import type { UpstreamServerDto } from './model.ts'
import { findVisibleServer, listVisibleServers } from './upstream.service.ts'

function field(body: unknown, name: string): string {
  const value = (body as Record<string, unknown> | undefined)?.[name]
  return typeof value === 'string' ? value : ''
}

function redirectTo(location: string, status: 302 | 303): Response {
  return new Response(null, {
    status,
    headers: { location, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' },
  })
}

/**
 * The link an MCP client shows a user to connect a server: it signs them in if needed, then
 * starts the server's connect route and comes back to the connections page.
 */
export function connectLinkOf(publicUrl: string, serverId: string): string {
  return `${publicUrl}/connections?connect=${encodeURIComponent(serverId)}`
}

/**
 * The servers the user may use, as the page lists them: enabled, of the organizations they are a
 * member of (an admin also sees disabled ones, and the owner other organizations', elsewhere).
 */
export async function listUsableServers(deps: AppDeps, principal: Principal): Promise<UpstreamServerDto[]> {
  return listVisibleServers(deps, principal, 'use')
}

/**
 * `/connections`: the signed-in user's MCP servers, with Connect / Disconnect and the
 * include-in-`/mcp` switch. Server-rendered forms, so it works without JavaScript; the session
 * cookie signs the user in and every form carries the session's CSRF token. `?connect=<id>`
 * (the link MCP clients show) signs the user in if needed and starts connecting that server.
 */
export const connectionsPageModule = (deps: AppDeps) => {
  const { publicUrl } = deps.config
  const base = basePathOf(publicUrl)
  const urls = connectionsUrlsOf(base)
  const sessionCookie = cookieNamesFor(publicUrl).session
  const toLogin = (next: string, status: 302 | 303) =>
    redirectTo(`${base}/login?next=${encodeURIComponent(next)}`, status)

  /** The session behind the cookie; page routes take no bearer token, and no other kind of token. */
  async function signedIn(cookie: Record<string, Cookie<unknown>>) {
    const token = cookie[sessionCookie]?.value
    if (typeof token !== 'string' || !token) return undefined
    const principal = await authenticateToken(deps, token)
    return principal?.via === 'session' ? { principal, token } : undefined
  }

  /** A form post: signed in, the CSRF token of this session (constant time), then the change. */
  async function change(
    cookie: Record<string, Cookie<unknown>>,
    body: unknown,
    serverId: string,
    apply: (principal: Principal) => Promise<unknown>,
  ): Promise<Response> {
    const session = await signedIn(cookie)
    if (!session) return toLogin(urls.page, 303)
    if (!constantTimeEqual(field(body, 'csrf_token'), csrfTokenFor(session.token)))
      return renderConnectionsErrorPage(403, 'This page expired. Open your connections again and retry.', urls.page)
    try {
      await apply(session.principal)
    } catch (error) {
      if (error instanceof ApiError) return renderConnectionsErrorPage(error.status, error.message, urls.page)
      throw error
    }
    return redirectTo(`${urls.page}#server-${encodeURIComponent(serverId)}`, 303)
  }

  return new Elysia({ name: 'connections.page', detail: { tags: ['pages'] } })
    .get(
      '/connections',
      async ({ query, cookie }) => {
        const connect = typeof query.connect === 'string' && query.connect ? query.connect.slice(0, 64) : undefined
        const session = await signedIn(cookie)
        if (!session) return toLogin(connect ? `${urls.page}?connect=${encodeURIComponent(connect)}` : urls.page, 302)
        const servers = await listUsableServers(deps, session.principal)
        const wanted = connect ? servers.find((server) => server.id === connect || server.slug === connect) : undefined
        if (wanted?.auth_type === 'oauth2') return redirectTo(urls.connect(wanted.id, urls.page), 302)
        const notice = !connect
          ? undefined
          : wanted
            ? `${wanted.display_name} needs no sign-in: there is nothing to connect.`
            : `No MCP server “${connect}” is available to you.`
        return renderConnectionsPage({
          username: session.principal.user.username,
          servers,
          csrf: csrfTokenFor(session.token),
          urls,
          notice,
          status: connect && !wanted ? 404 : 200,
          now: nowSeconds(),
        })
      },
      { detail: { summary: 'Your MCP servers: status, connect, disconnect, include in /mcp (page)' } },
    )
    .post(
      '/connections/:id/disconnect',
      ({ params, body, cookie }) =>
        change(cookie, body, params.id, async (principal) => {
          await findVisibleServer(deps, principal, params.id)
          await disconnect(deps, principal, params.id)
        }),
      { detail: { summary: 'Disconnect a server (form post from the connections page)' } },
    )
    .post(
      '/connections/:id/selection',
      ({ params, body, cookie }) =>
        change(cookie, body, params.id, async (principal) => {
          const selected = field(body, 'selected')
          if (selected !== 'true' && selected !== 'false') throw new ApiError(400, 'selected must be true or false')
          await setSelection(deps, principal, params.id, selected === 'true')
        }),
      { detail: { summary: 'Include a server in /mcp or leave it out (form post from the connections page)' } },
    )
}
