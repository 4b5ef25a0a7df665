import { listLinksOfUser } from '../auth/user-link.repository.ts'
import { toIsoTime, toIsoTimeOrNull } from '../http/time.ts'
import { Elysia, t } from 'elysia'
import { authPlugin } from '../auth/index.ts'
import type { AppDeps } from '../deps.ts'
import { ApiError } from '../http/errors.ts'
import { listOrganizationIdsOfUser } from '../orgs/org.repository.ts'
import { UsersModel } from './model.ts'
import { findUserById, listUsers } from './user.repository.ts'
import { createUser, rowToUser, setUserRole, setUserStatus } from './user.service.ts'

const idParams = t.Object({ id: t.String({ minLength: 1, maxLength: 64 }) })

async function linksOf(deps: AppDeps, userId: string) {
  return (await listLinksOfUser(deps.db, userId)).map((link) => ({
    provider: link.provider,
    subject: link.subject,
    email: link.email,
    expires_at: toIsoTimeOrNull(link.expires_at),
    has_refresh_token: link.refresh_token !== null,
    claims: JSON.parse(link.claims) as Record<string, unknown>,
    created_at: toIsoTime(link.created_at),
    updated_at: toIsoTime(link.updated_at),
  }))
}

/** Users: first-user bootstrap, the current user, and admin management, under /api/v1/users. */
export const usersModule = (deps: AppDeps) =>
  new Elysia({ name: 'users', prefix: '/api/v1/users', detail: { tags: ['users'] } })
    .use(authPlugin(deps))
    .model(UsersModel)
    .post(
      '/first',
      async ({ body, status }) =>
        status(201, rowToUser(await createUser(deps.db, { ...body, role: 'owner' }, { firstUser: true }))),
      {
        body: 'users.createFirst',
        response: { 201: 'users.user', 409: 'users.error' },
        detail: { summary: 'Create the first user (the owner); only while no user exists', security: [] },
      },
    )
    .get(
      '/me',
      async ({ principal }) => ({
        ...rowToUser(principal.user),
        organization_ids: await listOrganizationIdsOfUser(deps.db, principal.user.id),
      }),
      { auth: true, response: { 200: 'users.me', 401: 'users.error' }, detail: { summary: 'The signed-in user' } },
    )
    .get(
      '/',
      async ({ query }) => {
        const limit = query.limit ?? 100
        const rows = await listUsers(deps.db, { limit: limit + 1, afterUsername: query.after })
        return {
          users: rows.slice(0, limit).map(rowToUser),
          next_after: rows.length > limit ? rows[limit - 1].username : null,
        }
      },
      {
        auth: 'admin',
        query: t.Object({
          limit: t.Optional(t.Integer({ minimum: 1, maximum: 500 })),
          after: t.Optional(t.String({ description: 'Return users whose username sorts after this one' })),
        }),
        response: { 200: 'users.list', 401: 'users.error', 403: 'users.error' },
        detail: { summary: 'List users (admins)' },
      },
    )
    .post(
      '/',
      async ({ body, principal, status }) => {
        const role = body.role ?? 'member'
        if (role === 'admin' && principal.user.role !== 'owner')
          throw new ApiError(403, 'Only the owner can create admins')
        return status(201, rowToUser(await createUser(deps.db, { ...body, role })))
      },
      {
        auth: { role: 'admin', firstParty: true },
        body: 'users.create',
        response: { 201: 'users.user', 403: 'users.error', 409: 'users.error' },
        detail: { summary: 'Create a user (admins); they join the default organization' },
      },
    )
    .get('/me/links', async ({ principal }) => linksOf(deps, principal.user.id), {
      auth: true,
      response: { 200: 'users.links' },
      detail: { summary: 'Your identity-provider links (never their tokens)' },
    })
    .get(
      '/:id/links',
      async ({ params, status }) => {
        if (!(await findUserById(deps.db, params.id))) return status(404, { message: 'User not found' })
        return linksOf(deps, params.id)
      },
      {
        auth: 'admin',
        params: idParams,
        response: { 200: 'users.links', 404: 'users.error' },
        detail: { summary: "A user's identity-provider links (admins)" },
      },
    )
    .get(
      '/:id',
      async ({ params, principal, status }) => {
        const isAdmin = principal.user.role !== 'member'
        const row = isAdmin || params.id === principal.user.id ? await findUserById(deps.db, params.id) : undefined
        if (!row) return status(404, { message: 'User not found' })
        return rowToUser(row)
      },
      {
        auth: true,
        params: idParams,
        response: { 200: 'users.user', 404: 'users.error' },
        detail: { summary: 'Get a user (admins, or yourself)' },
      },
    )
    .post(
      '/:id/suspend',
      async ({ params, principal }) => rowToUser(await setUserStatus(deps, principal.user, params.id, 'suspended')),
      {
        auth: 'admin',
        params: idParams,
        response: { 200: 'users.user', 403: 'users.error', 404: 'users.error', 409: 'users.error' },
        detail: { summary: 'Suspend a user: their sessions end and their tokens stop working at once' },
      },
    )
    .post(
      '/:id/activate',
      async ({ params, principal }) => rowToUser(await setUserStatus(deps, principal.user, params.id, 'active')),
      {
        auth: 'admin',
        params: idParams,
        response: { 200: 'users.user', 404: 'users.error' },
        detail: { summary: 'Reactivate a suspended user' },
      },
    )
    .put('/:id/role', async ({ params, body }) => rowToUser(await setUserRole(deps, params.id, body.role)), {
      auth: { role: 'owner', firstParty: true },
      params: idParams,
      body: 'users.setRole',
      response: { 200: 'users.user', 403: 'users.error', 404: 'users.error', 409: 'users.error' },
      detail: { summary: "Change a user's site role (owner)" },
    })
