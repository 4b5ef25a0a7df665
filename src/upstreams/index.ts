import { Elysia, t } from 'elysia'
import { authPlugin } from '../auth/index.ts'
import type { AppDeps } from '../deps.ts'
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

const idParams = t.Object({ id: t.String({ maxLength: 64 }) })

/** Upstream MCP servers an organization's admins register, under /api/v1/mcp/servers. */
export const upstreamsModule = (deps: AppDeps) =>
  new Elysia({ name: 'upstreams', prefix: '/api/v1/mcp', detail: { tags: ['mcp servers'] } })
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
