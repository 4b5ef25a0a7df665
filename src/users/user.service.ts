import type { EventBus } from '../events/bus.ts'
import type { Kysely } from 'kysely'
import { deleteSessionsOfUser } from '../auth/session.repository.ts'
import { isUniqueViolation } from '../db/errors.ts'
import { nowSeconds } from '../db/index.ts'
import type { Database, UserRow } from '../db/schema.ts'
import { ApiError } from '../http/errors.ts'
import { toIsoTime, toIsoTimeOrNull } from '../http/time.ts'
import { findDefaultOrganization, upsertMembership } from '../orgs/org.repository.ts'
import { hashPassword } from '../runtime/password.ts'
import type { UserDto } from './model.ts'
import {
  claimInstanceEvent,
  countUsers,
  findUserById,
  findUserConflict,
  insertUser,
  updateUser,
} from './user.repository.ts'

/** The identity provider the user last signed in with, else how the account was created. */
/** What a service that changes rows needs: the database and the change feed to tell. */
export interface ChangeDeps {
  db: Kysely<Database>
  events: EventBus
}

export function loginTypeOf(row: Pick<UserRow, 'login_type' | 'identity_provider'>): UserDto['login_type'] {
  return row.identity_provider ?? row.login_type
}

export function rowToUser(row: UserRow): UserDto {
  return {
    id: row.id,
    email: row.email,
    username: row.username,
    display_name: row.display_name,
    status: row.status,
    role: row.role,
    login_type: loginTypeOf(row),
    created_at: toIsoTime(row.created_at),
    last_seen_at: toIsoTimeOrNull(row.last_seen_at),
  }
}

export interface NewUserInput {
  email: string
  username: string
  password?: string
  display_name?: string
  role: 'owner' | 'admin' | 'member'
}

function firstUserExists(): ApiError {
  return new ApiError(409, 'The first user already exists', 'Sign in, or ask an admin to create your account')
}

/**
 * Creates a user and makes them a member of the default organization (owners and admins as
 * its admins). With `firstUser`, the instance's one-time 'first_user' event is claimed in the
 * same transaction, so two racing bootstraps cannot both succeed.
 */
export async function createUser(db: Kysely<Database>, input: NewUserInput, options: { firstUser?: boolean } = {}) {
  const email = input.email.trim().toLowerCase()
  const username = input.username.trim().toLowerCase()
  // Refused before hashing: anyone may call the bootstrap route, and argon2 is the expensive part.
  if (options.firstUser && (await countUsers(db)) > 0) throw firstUserExists()
  const passwordHash = input.password ? await hashPassword(input.password) : null
  const now = nowSeconds()
  try {
    return await db.transaction().execute(async (trx) => {
      if (options.firstUser && !(await claimInstanceEvent(trx, 'first_user', now))) throw firstUserExists()
      const conflict = await findUserConflict(trx, email, username)
      if (conflict) throw new ApiError(409, `A user with this ${conflict} already exists`)
      const user = await insertUser(trx, {
        id: crypto.randomUUID(),
        email,
        username,
        display_name: input.display_name?.trim() ?? '',
        password_hash: passwordHash,
        login_type: passwordHash ? 'password' : 'none',
        role: input.role,
        created_at: now,
        updated_at: now,
        last_seen_at: null,
      })
      const organization = await findDefaultOrganization(trx)
      await upsertMembership(trx, {
        organization_id: organization.id,
        user_id: user.id,
        role: input.role === 'member' ? 'member' : 'admin',
        created_at: now,
      })
      return user
    })
  } catch (error) {
    if (isUniqueViolation(error)) throw new ApiError(409, 'A user with this email or username already exists')
    throw error
  }
}

/** Suspends a user: their sessions are deleted and their API tokens stop working at once. */
export async function setUserStatus(
  { db, events }: ChangeDeps,
  actor: UserRow,
  userId: string,
  status: 'active' | 'suspended',
): Promise<UserRow> {
  const target = await findUserById(db, userId)
  if (!target) throw new ApiError(404, 'User not found')
  if (status === 'suspended') {
    if (target.id === actor.id) throw new ApiError(409, 'You cannot suspend yourself')
    if (target.role === 'owner') throw new ApiError(409, 'The owner cannot be suspended')
  }
  if (target.role === 'admin' && actor.role !== 'owner')
    throw new ApiError(403, "Only the owner can change an admin's status")
  const updated = await db.transaction().execute(async (trx) => {
    const row = await updateUser(trx, userId, { status, updated_at: nowSeconds() })
    if (status === 'suspended') await deleteSessionsOfUser(trx, userId)
    return row
  })
  if (!updated) throw new ApiError(404, 'User not found')
  events.publish({ kind: 'access_changed', userId })
  return updated
}

/**
 * Changes a site role and, in the same transaction, the default-organization membership that
 * `createUser` derived from it, so a demoted admin keeps no admin rights anywhere. The change feed
 * tells every cache, so the change applies to the very next request.
 */
export async function setUserRole(
  { db, events }: ChangeDeps,
  userId: string,
  role: 'admin' | 'member',
): Promise<UserRow> {
  const target = await findUserById(db, userId)
  if (!target) throw new ApiError(404, 'User not found')
  if (target.role === 'owner') throw new ApiError(409, "The owner's role cannot be changed")
  const now = nowSeconds()
  const updated = await db.transaction().execute(async (trx) => {
    const row = await updateUser(trx, userId, { role, updated_at: now })
    if (!row) return undefined
    const organization = await findDefaultOrganization(trx)
    await upsertMembership(trx, { organization_id: organization.id, user_id: userId, role, created_at: now })
    return row
  })
  if (!updated) throw new ApiError(404, 'User not found')
  events.publish({ kind: 'access_changed', userId })
  return updated
}
