import { Elysia, t } from 'elysia'
import { authPlugin, type Principal } from '../auth/index.ts'
import { nowSeconds } from '../db/index.ts'
import type { AppDeps } from '../deps.ts'
import { ApiError } from '../http/errors.ts'
import { findAccessibleOrganization } from '../orgs/org.service.ts'
import { upsertSetting } from '../settings/settings.repository.ts'
import { rowToApp, rowToGrant, rowToSecret, validateAppMetadata } from './apps.service.ts'
import {
  deleteClient,
  deleteClientSecret,
  findClientById,
  insertClient,
  listClientSecrets,
  listClientsOfOrganization,
  updateClient,
} from './client.repository.ts'
import { createClientSecret, grantTypesOf, metadataColumns, metadataToRow, redirectUrisOf } from './client.service.ts'
import { listLiveGrants, revokeGrantsOfUserForClient } from './grant.repository.ts'
import { OAuthModel } from './model.ts'
import { DYNAMIC_REGISTRATION_SETTING, isDynamicRegistrationEnabled } from './register.routes.ts'

const orgParams = t.Object({ id: t.String({ maxLength: 64 }) })
const appParams = t.Object({ id: t.String({ maxLength: 64 }), appId: t.String({ maxLength: 2000 }) })

/** The app a request names, if it belongs to an organization the caller manages; otherwise 404. */
async function findManagedApp(deps: AppDeps, principal: Principal, organizationId: string, appId: string) {
  const organization = await findAccessibleOrganization(deps.db, principal, organizationId, 'manage')
  const app = await findClientById(deps.db, appId)
  if (!app || app.organization_id !== organization.id) throw new ApiError(404, 'OAuth app not found')
  return app
}

/**
 * OAuth apps of an organization (admin-managed clients, plus the dynamically registered ones
 * that land in the default organization), their secrets and the grants users gave them.
 */
export const appsModule = (deps: AppDeps) =>
  new Elysia({ name: 'oauth.apps', prefix: '/api/v1', detail: { tags: ['oauth apps'] } })
    .use(authPlugin(deps))
    .model(OAuthModel)
    .get(
      '/organizations/:id/oauth-apps',
      async ({ params, principal }) => {
        const organization = await findAccessibleOrganization(deps.db, principal, params.id, 'manage')
        return (await listClientsOfOrganization(deps.db, organization.id)).map(rowToApp)
      },
      {
        auth: true,
        params: orgParams,
        response: { 200: 'oauth.apps', 403: 'api.error', 404: 'api.error' },
        detail: { summary: "List an organization's OAuth apps" },
      },
    )
    .post(
      '/organizations/:id/oauth-apps',
      async ({ params, body, principal, status }) => {
        const organization = await findAccessibleOrganization(deps.db, principal, params.id, 'manage')
        const metadata = validateAppMetadata({
          client_name: body.name,
          redirect_uris: body.redirect_uris,
          token_endpoint_auth_method: body.confidential === false ? 'none' : 'client_secret_basic',
          grant_types: body.refresh_tokens === false ? ['authorization_code'] : ['authorization_code', 'refresh_token'],
          scope: body.scope,
          client_uri: body.client_uri,
          logo_uri: body.logo_uri,
        })
        const row = metadataToRow(metadata, {
          id: crypto.randomUUID(),
          organizationId: organization.id,
          kind: 'managed',
          createdBy: principal.user.id,
          now: nowSeconds(),
        })
        await insertClient(deps.db, row)
        return status(201, rowToApp(row))
      },
      {
        auth: true,
        params: orgParams,
        body: 'oauth.createApp',
        response: { 201: 'oauth.app', 400: 'api.error', 403: 'api.error', 404: 'api.error' },
        detail: { summary: 'Create an OAuth app; add a secret with POST …/secrets' },
      },
    )
    .get(
      '/organizations/:id/oauth-apps/:appId',
      async ({ params, principal }) => rowToApp(await findManagedApp(deps, principal, params.id, params.appId)),
      {
        auth: true,
        params: appParams,
        response: { 200: 'oauth.app', 404: 'api.error' },
        detail: { summary: 'Get an OAuth app' },
      },
    )
    .patch(
      '/organizations/:id/oauth-apps/:appId',
      async ({ params, body, principal }) => {
        const app = await findManagedApp(deps, principal, params.id, params.appId)
        const metadata = validateAppMetadata({
          client_name: body.name ?? app.name,
          redirect_uris: body.redirect_uris ?? redirectUrisOf(app),
          token_endpoint_auth_method: app.token_endpoint_auth_method,
          grant_types: grantTypesOf(app),
          scope: body.scope ?? app.scope,
          client_uri: body.client_uri === undefined ? app.client_uri : body.client_uri,
          logo_uri: body.logo_uri === undefined ? app.logo_uri : body.logo_uri,
        })
        const updated = await updateClient(deps.db, app.id, { ...metadataColumns(metadata), updated_at: nowSeconds() })
        if (!updated) throw new ApiError(404, 'OAuth app not found')
        return rowToApp(updated)
      },
      {
        auth: true,
        params: appParams,
        body: 'oauth.updateApp',
        response: { 200: 'oauth.app', 400: 'api.error', 404: 'api.error' },
        detail: { summary: 'Update an OAuth app' },
      },
    )
    .delete(
      '/organizations/:id/oauth-apps/:appId',
      async ({ params, principal, set }) => {
        const app = await findManagedApp(deps, principal, params.id, params.appId)
        await deleteClient(deps.db, app.id)
        deps.events.publish({ kind: 'credentials_revoked' })
        set.status = 204
      },
      {
        auth: true,
        params: appParams,
        response: { 204: t.Void(), 404: 'api.error' },
        detail: { summary: 'Delete an OAuth app; every token it holds stops working' },
      },
    )
    .get(
      '/organizations/:id/oauth-apps/:appId/secrets',
      async ({ params, principal }) => {
        const app = await findManagedApp(deps, principal, params.id, params.appId)
        return (await listClientSecrets(deps.db, app.id)).map(rowToSecret)
      },
      {
        auth: true,
        params: appParams,
        response: { 200: 'oauth.secrets', 404: 'api.error' },
        detail: { summary: "List an app's secrets by prefix" },
      },
    )
    .post(
      '/organizations/:id/oauth-apps/:appId/secrets',
      async ({ params, principal, status }) => {
        const app = await findManagedApp(deps, principal, params.id, params.appId)
        if (app.token_endpoint_auth_method === 'none') throw new ApiError(409, 'A public app has no secrets')
        const { secret, row } = await createClientSecret(deps.db, app.id)
        return status(201, { ...rowToSecret(row), client_secret: secret })
      },
      {
        auth: { role: true, firstParty: true },
        params: appParams,
        response: { 201: 'oauth.createdSecret', 403: 'api.error', 404: 'api.error', 409: 'api.error' },
        detail: { summary: 'Create a client secret; it is in this response only' },
      },
    )
    .delete(
      '/organizations/:id/oauth-apps/:appId/secrets/:secretId',
      async ({ params, principal, set }) => {
        const app = await findManagedApp(deps, principal, params.id, params.appId)
        if (!(await deleteClientSecret(deps.db, app.id, params.secretId))) throw new ApiError(404, 'Secret not found')
        set.status = 204
      },
      {
        auth: true,
        params: t.Object({
          id: t.String({ maxLength: 64 }),
          appId: t.String({ maxLength: 2000 }),
          secretId: t.String({ maxLength: 64 }),
        }),
        response: { 204: t.Void(), 404: 'api.error' },
        detail: { summary: 'Delete a client secret' },
      },
    )
    .get(
      '/organizations/:id/oauth-apps/:appId/grants',
      async ({ params, principal }) => {
        const app = await findManagedApp(deps, principal, params.id, params.appId)
        return (await listLiveGrants(deps.db, { clientId: app.id }, nowSeconds())).map(rowToGrant)
      },
      {
        auth: true,
        params: appParams,
        response: { 200: 'oauth.grants', 404: 'api.error' },
        detail: { summary: 'Users who gave this app access' },
      },
    )
    .delete(
      '/organizations/:id/oauth-apps/:appId/grants/:userId',
      async ({ params, principal, set }) => {
        const app = await findManagedApp(deps, principal, params.id, params.appId)
        if ((await revokeGrantsOfUserForClient(deps.db, params.userId, app.id, nowSeconds())) === 0)
          throw new ApiError(404, 'This user has not authorized the app')
        deps.events.publish({ kind: 'credentials_revoked' })
        set.status = 204
      },
      {
        auth: true,
        params: t.Object({
          id: t.String({ maxLength: 64 }),
          appId: t.String({ maxLength: 2000 }),
          userId: t.String({ maxLength: 64 }),
        }),
        response: { 204: t.Void(), 404: 'api.error' },
        detail: { summary: "Revoke a user's access for this app" },
      },
    )
    .get(
      '/users/me/oauth-grants',
      async ({ principal }) =>
        (await listLiveGrants(deps.db, { userId: principal.user.id }, nowSeconds())).map(rowToGrant),
      {
        auth: true,
        response: { 200: 'oauth.grants' },
        detail: { summary: 'Apps holding your tokens' },
      },
    )
    .delete(
      '/users/me/oauth-grants/:clientId',
      async ({ params, principal, set }) => {
        if ((await revokeGrantsOfUserForClient(deps.db, principal.user.id, params.clientId, nowSeconds())) === 0)
          throw new ApiError(404, 'You have not authorized this app')
        deps.events.publish({ kind: 'credentials_revoked' })
        set.status = 204
      },
      {
        auth: true,
        params: t.Object({ clientId: t.String({ maxLength: 2000 }) }),
        response: { 204: t.Void(), 404: 'api.error' },
        detail: { summary: "Revoke an app's access: its tokens stop working at once" },
      },
    )
    .get('/settings/oauth', async () => ({ dynamic_registration: await isDynamicRegistrationEnabled(deps) }), {
      auth: 'admin',
      response: { 200: 'oauth.settings' },
      detail: { summary: 'OAuth settings of this instance (admins)' },
    })
    .put(
      '/settings/oauth',
      async ({ body }) => {
        await upsertSetting(
          deps.db,
          DYNAMIC_REGISTRATION_SETTING,
          body.dynamic_registration ? 'enabled' : 'disabled',
          nowSeconds(),
        )
        return { dynamic_registration: body.dynamic_registration }
      },
      {
        auth: 'admin',
        body: 'oauth.settings',
        response: { 200: 'oauth.settings' },
        detail: { summary: 'Change OAuth settings (admins)' },
      },
    )
