import type { Kysely } from 'kysely'
import type { Principal } from '../auth/index.ts'
import type { Database, OrganizationRow, UserRow } from '../db/schema.ts'
import { ApiError } from '../http/errors.ts'
import { toIsoTime } from '../http/time.ts'
import { findMembership, findOrganizationById, type MembershipRow } from './org.repository.ts'

export function rowToOrganization(row: OrganizationRow) {
  return {
    id: row.id,
    name: row.name,
    display_name: row.display_name,
    is_default: row.is_default === 1,
    created_at: toIsoTime(row.created_at),
    updated_at: toIsoTime(row.updated_at),
  }
}

export function rowToMember(row: MembershipRow) {
  return {
    user_id: row.user_id,
    username: row.username,
    email: row.email,
    display_name: row.display_name,
    role: row.role,
    created_at: toIsoTime(row.created_at),
  }
}

/**
 * A user's effective role in an organization: the one place it is decided, from the site role
 * and the membership together. The owner administers every organization; site admins administer
 * the default one (which everyone belongs to); otherwise the membership says. No membership,
 * no role.
 */
export function organizationRoleOf(
  user: Pick<UserRow, 'role'>,
  organization: Pick<OrganizationRow, 'is_default'>,
  membershipRole: 'admin' | 'member' | undefined,
): 'admin' | 'member' | undefined {
  if (user.role === 'owner') return 'admin'
  if (membershipRole === undefined) return undefined
  if (organization.is_default === 1 && user.role === 'admin') return 'admin'
  return membershipRole
}

/**
 * The organization a request names, if the caller may see it: the owner sees every one, anyone
 * else only those they belong to. Anything else is 404, exactly as for an ID that does not
 * exist, so one organization cannot probe for another's resources. With `manage`, the caller
 * must also be the owner or an admin of that organization (403 once they can see it).
 */
export async function findAccessibleOrganization(
  db: Kysely<Database>,
  principal: Principal,
  organizationId: string,
  access: 'view' | 'manage' = 'view',
): Promise<OrganizationRow> {
  const organization = await findOrganizationById(db, organizationId)
  const membership =
    organization && principal.user.role !== 'owner'
      ? await findMembership(db, organization.id, principal.user.id)
      : undefined
  const role = organization ? organizationRoleOf(principal.user, organization, membership?.role) : undefined
  if (!organization || !role) throw new ApiError(404, 'Organization not found')
  if (access === 'manage' && role !== 'admin')
    throw new ApiError(403, 'Managing this organization requires its admin role')
  return organization
}
