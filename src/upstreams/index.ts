import { type Cookie, Elysia, t } from 'elysia'
import { toolPolicyOf } from '../aggregate/index.ts'
import { CSRF_HEADER } from '../auth/auth.service.ts'
import { cookieNamesFor } from '../auth/cookies.ts'
import { type AuthFailure, authenticateRequest, authPlugin, type PresentedRequest } from '../auth/index.ts'
import type { AppDeps } from '../deps.ts'
import { basePathOf } from '../config.ts'
import { ApiError } from '../http/errors.ts'
import { safeReturnTo } from '../http/return-to.ts'
import { checkBodyAsSent } from '../http/strict-body.ts'
import { renderConnectedPage, renderConnectFailedPage } from '../pages/connect-result.ts'
import { connectionsUrlsOf } from '../pages/connections.ts'
import { disconnect, finishConnect, setSelection, startConnect } from './connection.service.ts'
import { ID_MAX_LENGTH } from './limits.ts'
import { UpstreamsModel } from './model.ts'
import { listMetadataDocumentCallbacks } from './upstream.repository.ts'
import {
  callbackUrlOf,
  clientMetadataUrlOf,
  createServer,
  deleteServerConfig,
  findVisibleServer,
  listVisibleServers,
  presentServer,
  rediscoverServer,
  updateServerConfig,
} from './upstream.service.ts'

const idParams = t.Object({ id: t.String({ maxLength: ID_MAX_LENGTH }) })

/** JSON for API clients that ask for it and do not take HTML; pages and redirects for browsers. */
function wantsJson(accept: string | undefined): boolean {
  return !!accept && accept.includes('application/json') && !accept.includes('text/html')
}

/** The `auth` macro's JSON answer, for the routes that judge the session themselves. */
function failureJson(failure: AuthFailure): Response {
  const headers: Record<string, string> = failure.wwwAuthenticate ? { 'www-authenticate': failure.wwwAuthenticate } : {}
  return Response.json(failure.body, { status: failure.status, headers })
}

/**
 * Upstream MCP servers an organization's admins register, under /api/v1/mcp/servers. The
 * connect and callback routes are where a browser lands, so they judge the session themselves
 * and answer a browser's failure with a page instead of JSON.
 */
export const upstreamsModule = (deps: AppDeps) => {
  const base = basePathOf(deps.config.publicUrl)
  const sessionCookie = cookieNamesFor(deps.config.publicUrl).session
  const presentedBy = (
    request: Request,
    headers: Record<string, string | undefined>,
    cookie: Record<string, Cookie<unknown>>,
  ): PresentedRequest => ({
    method: request.method,
    authorization: headers.authorization,
    sessionCookie: cookie[sessionCookie]?.value,
    csrfToken: headers[CSRF_HEADER],
  })
  const urls = connectionsUrlsOf(base)
  const retryUrl = (serverId: string) => `${urls.page}?connect=${encodeURIComponent(serverId)}`
  const connectFailedPage = (error: ApiError, serverId: string) =>
    renderConnectFailedPage({
      status: error.status,
      message: error.message,
      detail: error.detail,
      retryUrl: error.status === 404 ? undefined : retryUrl(serverId),
      connectionsUrl: urls.page,
    })
  const notSignedInPage = (serverId: string) =>
    renderConnectFailedPage({
      status: 401,
      message: 'This browser is not signed in to Gatehouse, so the connection could not be saved.',
      detail:
        'Your session may have ended, or another Gatehouse on this host name replaced its cookie. Sign in and connect again.',
      retryUrl: retryUrl(serverId),
      connectionsUrl: urls.page,
    })
  return new Elysia({ name: 'upstreams', prefix: '/api/v1/mcp', detail: { tags: ['mcp servers'] } })
    .use(authPlugin(deps))
    .model(UpstreamsModel)
    .get('/servers', ({ principal }) => listVisibleServers(deps, principal), {
      auth: true,
      response: { 200: 'upstreams.list' },
      detail: { summary: 'MCP servers: all of your organizations’ for their admins, the enabled ones for members' },
    })
    .post(
      '/servers',
      async ({ body, principal, status }) => {
        const row = await createServer(deps, principal, body)
        return status(201, await presentServer(deps, principal, row, 'full'))
      },
      {
        auth: true,
        body: 'upstreams.create',
        transform: checkBodyAsSent(UpstreamsModel['upstreams.create']),
        response: { 201: 'upstreams.server', 400: 'api.error', 403: 'api.error', 404: 'api.error', 409: 'api.error' },
        detail: {
          summary: 'Register an MCP server (organization admins)',
          description:
            'With auth_type oauth2 and none of oauth2_client_id, oauth2_auth_url and oauth2_token_url, Gatehouse discovers the authorization server and registers itself there.',
        },
      },
    )
    .get(
      '/servers/:id',
      async ({ params, principal }) => {
        const { row, view } = await findVisibleServer(deps, principal, params.id)
        return presentServer(deps, principal, row, view)
      },
      {
        auth: true,
        params: idParams,
        response: { 200: 'upstreams.server', 404: 'api.error' },
        detail: { summary: 'One MCP server' },
      },
    )
    .patch(
      '/servers/:id',
      async ({ params, body, principal }) =>
        presentServer(deps, principal, await updateServerConfig(deps, principal, params.id, body), 'full'),
      {
        auth: true,
        params: idParams,
        body: 'upstreams.update',
        transform: checkBodyAsSent(UpstreamsModel['upstreams.update']),
        response: { 200: 'upstreams.server', 400: 'api.error', 403: 'api.error', 404: 'api.error', 409: 'api.error' },
        detail: { summary: 'Change an MCP server; changing auth_type clears the previous type’s settings' },
      },
    )
    .delete(
      '/servers/:id',
      async ({ params, principal, set }) => {
        await deleteServerConfig(deps, principal, params.id)
        set.status = 204
      },
      {
        auth: true,
        params: idParams,
        response: { 204: t.Void(), 403: 'api.error', 404: 'api.error' },
        detail: { summary: 'Delete an MCP server and every user’s tokens for it' },
      },
    )
    .get('/servers/:id/tools', ({ params, principal }) => toolPolicyOf(deps, principal, params.id), {
      auth: true,
      params: idParams,
      response: { 200: 'upstreams.tools', 403: 'api.error', 404: 'api.error', 409: 'api.error', 502: 'api.error' },
      detail: {
        summary: 'The upstream’s tools, their names in /mcp and whether the allow and deny lists let them through',
        description:
          'Organization admins. Listed live from the upstream with your own credential (oauth2: connect first, else 409); an upstream that does not answer is 502.',
      },
    })
    .post(
      '/servers/:id/oauth2/rediscover',
      async ({ params, principal }) =>
        presentServer(deps, principal, await rediscoverServer(deps, principal, params.id), 'full'),
      {
        auth: true,
        params: idParams,
        response: { 200: 'upstreams.server', 400: 'api.error', 403: 'api.error', 404: 'api.error', 409: 'api.error' },
        detail: { summary: 'Discover and register again (the upstream moved its authorization server)' },
      },
    )
    .get(
      '/servers/:id/oauth2/connect',
      async ({ params, query, headers, cookie, request, redirect }) => {
        const browser = !wantsJson(headers.accept)
        const signedIn = await authenticateRequest(deps, presentedBy(request, headers, cookie), true)
        if ('failure' in signedIn) return browser ? notSignedInPage(params.id) : failureJson(signedIn.failure)
        const returnTo =
          query.return_to === undefined
            ? undefined
            : safeReturnTo(query.return_to, deps.config.publicUrl, '') || undefined
        try {
          const url = await startConnect(deps, signedIn.principal, params.id, returnTo)
          // A script (a frontend calling with fetch) asks for the URL; a browser follows the redirect.
          if (!browser) return { authorization_url: url.href }
          return redirect(url.href, 302)
        } catch (error) {
          if (!(error instanceof ApiError) || !browser) throw error
          return connectFailedPage(error, params.id)
        }
      },
      {
        params: idParams,
        query: t.Object({ return_to: t.Optional(t.String({ maxLength: 2048 })) }),
        detail: { summary: 'Start connecting your account: a redirect to the upstream’s authorization page' },
      },
    )
    .get(
      '/servers/:id/oauth2/callback',
      async ({ params, query, headers, cookie, request, redirect }) => {
        const browser = !wantsJson(headers.accept)
        const signedIn = await authenticateRequest(deps, presentedBy(request, headers, cookie), true)
        if ('failure' in signedIn) return browser ? notSignedInPage(params.id) : failureJson(signedIn.failure)
        try {
          const { returnTo, server } = await finishConnect(deps, signedIn.principal, params.id, query)
          if (!browser) return { connected: true }
          // Checked again on the way out: a connection started before a stricter check keeps its value.
          const back = returnTo ? safeReturnTo(returnTo, deps.config.publicUrl, '') : ''
          if (back) return redirect(back, 303)
          return renderConnectedPage(server.display_name, connectionsUrlsOf(base).page)
        } catch (error) {
          if (!(error instanceof ApiError) || !browser) throw error
          return connectFailedPage(error, params.id)
        }
      },
      {
        params: idParams,
        // Unbounded here so an upstream's long error_description still reaches the page, not a
        // 422: finishConnect bounds code and state and shows the rest shortened.
        query: t.Object({
          code: t.Optional(t.String()),
          state: t.Optional(t.String()),
          iss: t.Optional(t.String()),
          error: t.Optional(t.String()),
          error_description: t.Optional(t.String()),
        }),
        detail: { summary: 'Where the upstream sends you back; stores your tokens, encrypted' },
      },
    )
    .delete(
      '/servers/:id/oauth2/disconnect',
      async ({ params, principal, set }) => {
        await disconnect(deps, principal, params.id)
        set.status = 204
      },
      {
        auth: true,
        params: idParams,
        response: { 204: t.Void() },
        detail: { summary: 'Forget (and revoke upstream) your tokens for this server; 204 also when there were none' },
      },
    )
    .put(
      '/servers/:id/selection',
      async ({ params, body, principal }) => {
        const { row, view } = await setSelection(deps, principal, params.id, body.selected)
        return presentServer(deps, principal, row, view)
      },
      {
        auth: true,
        params: idParams,
        body: 'upstreams.selection',
        transform: checkBodyAsSent(UpstreamsModel['upstreams.selection']),
        response: { 200: 'upstreams.server', 403: 'api.error', 404: 'api.error' },
        detail: { summary: 'Include the server in your /mcp or leave it out (force_on servers stay in)' },
      },
    )
    .get(
      '/client-metadata',
      async ({ status, set }) => {
        const url = clientMetadataUrlOf(deps.config.publicUrl)
        if (!url) return status(404, { message: 'A client metadata document needs an https public URL' })
        set.headers['cache-control'] = 'public, max-age=300'
        set.headers['access-control-allow-origin'] = '*'
        const ids = await listMetadataDocumentCallbacks(deps.db)
        return {
          client_id: url,
          client_name: `Gatehouse (${new URL(deps.config.publicUrl).host})`,
          client_uri: deps.config.publicUrl,
          redirect_uris: ids.map((id) => callbackUrlOf(deps.config.publicUrl, id)),
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'none' as const,
          application_type: 'web' as const,
        }
      },
      {
        response: { 200: 'upstreams.clientMetadata', 404: 'api.error' },
        detail: {
          summary: 'Gatehouse’s own Client ID Metadata Document, for upstream authorization servers',
          security: [],
        },
      },
    )
}
