import { Elysia, t } from 'elysia'
import { authPlugin } from '../auth/index.ts'
import { isUniqueViolation } from '../db/errors.ts'
import { nowSeconds } from '../db/index.ts'
import type { AppDeps } from '../deps.ts'
import { ApiError, ErrorModel } from '../http/errors.ts'
import { findUserById } from '../users/user.repository.ts'
import {
  deleteMembership,
  deleteOrganization,
  findMembership,
  insertOrganization,
  listMembers,
  listOrganizations,
  listOrganizationsOfUser,
  updateOrganization,
  upsertMembership,
} from './org.repository.ts'
import { findAccessibleOrganization, rowToMember, rowToOrganization } from './org.service.ts'

const organization = t.Object({
  id: t.String(),
  name: t.String(),
  display_name: t.String(),
  is_default: t.Boolean(),
  created_at: t.String({ format: 'date-time' }),
  updated_at: t.String({ format: 'date-time' }),
})
const member = t.Object({
  user_id: t.String(),
  username: t.String(),
  email: t.String(),
  display_name: t.String(),
  role: t.Union([t.Literal('admin'), t.Literal('member')]),
  created_at: t.String({ format: 'date-time' }),
})
const orgName = t.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$',
  description: 'Lower-case letters, digits and `-`',
})

export const OrgsModel = {
  ...ErrorModel,
  'orgs.organization': organization,
  'orgs.list': t.Array(organization),
  'orgs.create': t.Object({ name: orgName, display_name: t.Optional(t.String({ maxLength: 128 })) }),
  'orgs.update': t.Object({ name: t.Optional(orgName), display_name: t.Optional(t.String({ maxLength: 128 })) }),
  'orgs.member': member,
  'orgs.members': t.Array(member),
  'orgs.setMember': t.Object({ role: t.Union([t.Literal('admin'), t.Literal('member')]) }),
}

const orgParams = t.Object({ id: t.String({ maxLength: 64 }) })
const memberParams = t.Object({ id: t.String({ maxLength: 64 }), userId: t.String({ maxLength: 64 }) })

async function withUniqueName<T>(name: string | undefined, write: () => Promise<T>): Promise<T> {
  try {
    return await write()
  } catch (error) {
    if (isUniqueViolation(error)) throw new ApiError(409, `An organization named "${name}" already exists`)
    throw error
  }
}

/** Organizations and their members, under /api/v1/organizations. */
export const orgsModule = (deps: AppDeps) =>
  new Elysia({ name: 'orgs', prefix: '/api/v1/organizations', detail: { tags: ['organizations'] } })
    .use(authPlugin(deps))
    .model(OrgsModel)
    .get(
      '/',
      async ({ principal }) => {
        const rows =
          principal.user.role === 'owner'
            ? await listOrganizations(deps.db)
            : await listOrganizationsOfUser(deps.db, principal.user.id)
        return rows.map(rowToOrganization)
      },
      {
        auth: true,
        response: { 200: 'orgs.list' },
        detail: { summary: 'Organizations you belong to (the owner sees all)' },
      },
    )
    .post(
      '/',
      async ({ body, status }) => {
        const now = nowSeconds()
        const row = await withUniqueName(body.name, () =>
          insertOrganization(deps.db, {
            id: crypto.randomUUID(),
            name: body.name,
            display_name: body.display_name ?? '',
            is_default: 0,
            created_at: now,
            updated_at: now,
          }),
        )
        return status(201, rowToOrganization(row))
      },
      {
        auth: 'owner',
        body: 'orgs.create',
        response: { 201: 'orgs.organization', 409: 'api.error' },
        detail: { summary: 'Create an organization (owner)' },
      },
    )
    .get(
      '/:id',
      async ({ params, principal }) =>
        rowToOrganization(await findAccessibleOrganization(deps.db, principal, params.id)),
      {
        auth: true,
        params: orgParams,
        response: { 200: 'orgs.organization', 404: 'api.error' },
        detail: { summary: 'Get an organization' },
      },
    )
    .patch(
      '/:id',
      async ({ params, body, principal }) => {
        await findAccessibleOrganization(deps.db, principal, params.id)
        const row = await withUniqueName(body.name, () =>
          updateOrganization(deps.db, params.id, { ...body, updated_at: nowSeconds() }),
        )
        if (!row) throw new ApiError(404, 'Organization not found')
        return rowToOrganization(row)
      },
      {
        auth: 'owner',
        params: orgParams,
        body: 'orgs.update',
        response: { 200: 'orgs.organization', 404: 'api.error', 409: 'api.error' },
        detail: { summary: 'Rename an organization (owner)' },
      },
    )
    .delete(
      '/:id',
      async ({ params, principal, set }) => {
        const organization = await findAccessibleOrganization(deps.db, principal, params.id)
        if (organization.is_default === 1) throw new ApiError(409, 'The default organization cannot be deleted')
        await deleteOrganization(deps.db, organization.id)
        // Its memberships and servers went with it.
        deps.events.publish({ kind: 'access_changed' })
        set.status = 204
      },
      {
        auth: 'owner',
        params: orgParams,
        response: { 204: t.Void(), 404: 'api.error', 409: 'api.error' },
        detail: { summary: 'Delete an organization and everything it owns (owner)' },
      },
    )
    .get(
      '/:id/members',
      async ({ params, principal }) => {
        const organization = await findAccessibleOrganization(deps.db, principal, params.id)
        return (await listMembers(deps.db, organization.id)).map(rowToMember)
      },
      {
        auth: true,
        params: orgParams,
        response: { 200: 'orgs.members', 404: 'api.error' },
        detail: { summary: 'List members' },
      },
    )
    .put(
      '/:id/members/:userId',
      async ({ params, body, principal }) => {
        const organization = await findAccessibleOrganization(deps.db, principal, params.id, 'manage')
        if (!(await findUserById(deps.db, params.userId))) throw new ApiError(404, 'User not found')
        const existing = await findMembership(deps.db, organization.id, params.userId)
        await upsertMembership(deps.db, {
          organization_id: organization.id,
          user_id: params.userId,
          role: body.role,
          created_at: existing?.created_at ?? nowSeconds(),
        })
        deps.events.publish({ kind: 'access_changed', userId: params.userId })
        const member = (await listMembers(deps.db, organization.id)).find((m) => m.user_id === params.userId)
        // Deleted by someone else in between: as if it never existed.
        if (!member) throw new ApiError(404, 'User not found')
        return rowToMember(member)
      },
      {
        auth: { role: true, firstParty: true },
        params: memberParams,
        body: 'orgs.setMember',
        response: { 200: 'orgs.member', 403: 'api.error', 404: 'api.error' },
        detail: { summary: "Add a member or change their role (owner or the organization's admins)" },
      },
    )
    .delete(
      '/:id/members/:userId',
      async ({ params, principal, set }) => {
        const organization = await findAccessibleOrganization(deps.db, principal, params.id, 'manage')
        if (!(await deleteMembership(deps.db, organization.id, params.userId)))
          throw new ApiError(404, 'Member not found')
        deps.events.publish({ kind: 'access_changed', userId: params.userId })
        set.status = 204
      },
      {
        auth: true,
        params: memberParams,
        response: { 204: t.Void(), 403: 'api.error', 404: 'api.error' },
        detail: { summary: "Remove a member (owner or the organization's admins)" },
      },
    )
