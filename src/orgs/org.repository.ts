import type { CompiledQuery, Kysely, Transaction } from 'kysely'
import type { Database, OrganizationMemberRow, OrganizationRow } from '../db/schema.ts'

type Db = Kysely<Database> | Transaction<Database>

export type MembershipRow = OrganizationMemberRow & { username: string; email: string; display_name: string }

export async function findDefaultOrganization(db: Db): Promise<OrganizationRow> {
  return db.selectFrom('organizations').selectAll().where('is_default', '=', 1).executeTakeFirstOrThrow()
}

export async function findOrganizationById(db: Db, id: string): Promise<OrganizationRow | undefined> {
  return db.selectFrom('organizations').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function listOrganizations(db: Db): Promise<OrganizationRow[]> {
  return db.selectFrom('organizations').selectAll().orderBy('name').execute()
}

export async function listOrganizationsOfUser(db: Db, userId: string): Promise<OrganizationRow[]> {
  return db
    .selectFrom('organizations')
    .innerJoin('organization_members', 'organization_members.organization_id', 'organizations.id')
    .selectAll('organizations')
    .where('organization_members.user_id', '=', userId)
    .orderBy('organizations.name')
    .execute()
}

export async function insertOrganization(db: Db, row: OrganizationRow): Promise<OrganizationRow> {
  return db.insertInto('organizations').values(row).returningAll().executeTakeFirstOrThrow()
}

export async function updateOrganization(
  db: Db,
  id: string,
  update: { name?: string; display_name?: string; updated_at: number },
): Promise<OrganizationRow | undefined> {
  return db.updateTable('organizations').set(update).where('id', '=', id).returningAll().executeTakeFirst()
}

export async function deleteOrganization(db: Db, id: string): Promise<boolean> {
  const result = await db
    .deleteFrom('organizations')
    .where('id', '=', id)
    .where('is_default', '=', 0)
    .executeTakeFirst()
  return result.numDeletedRows > 0n
}

export async function findMembership(
  db: Db,
  organizationId: string,
  userId: string,
): Promise<OrganizationMemberRow | undefined> {
  return db
    .selectFrom('organization_members')
    .selectAll()
    .where('organization_id', '=', organizationId)
    .where('user_id', '=', userId)
    .executeTakeFirst()
}

export async function listMembers(db: Db, organizationId: string): Promise<MembershipRow[]> {
  return db
    .selectFrom('organization_members')
    .innerJoin('users', 'users.id', 'organization_members.user_id')
    .selectAll('organization_members')
    .select(['users.username', 'users.email', 'users.display_name'])
    .where('organization_members.organization_id', '=', organizationId)
    .orderBy('users.username')
    .execute()
}

/** Adds a member or changes their role. */
export async function upsertMembership(db: Db, row: OrganizationMemberRow): Promise<void> {
  await db
    .insertInto('organization_members')
    .values(row)
    .onConflict((oc) => oc.columns(['organization_id', 'user_id']).doUpdateSet({ role: row.role }))
    .execute()
  // What a signed-in user may see and use follows their organizations.
}

export async function deleteMembership(db: Db, organizationId: string, userId: string): Promise<boolean> {
  const result = await db
    .deleteFrom('organization_members')
    .where('organization_id', '=', organizationId)
    .where('user_id', '=', userId)
    .executeTakeFirst()
  return result.numDeletedRows > 0n
}

/** The user's organizations with their role in each. */
export async function listMembershipsOfUser(
  db: Db,
  userId: string,
): Promise<(OrganizationRow & { member_role: 'admin' | 'member' })[]> {
  return db
    .selectFrom('organizations')
    .innerJoin('organization_members', 'organization_members.organization_id', 'organizations.id')
    .selectAll('organizations')
    .select('organization_members.role as member_role')
    .where('organization_members.user_id', '=', userId)
    .orderBy('organizations.name')
    .execute()
}

const organizationIdsQueries = new WeakMap<Db, CompiledQuery<{ organization_id: string }>>()

/**
 * Asked on every `get_authenticated_user` call, so the query is built and compiled once per
 * database and then run with the user's ID: Kysely's building costs more than SQLite's answer.
 */
export async function listOrganizationIdsOfUser(db: Db, userId: string): Promise<string[]> {
  let compiled = organizationIdsQueries.get(db)
  if (!compiled) {
    compiled = db.selectFrom('organization_members').select('organization_id').where('user_id', '=', '').compile()
    organizationIdsQueries.set(db, compiled)
  }
  const { rows } = await db.executeQuery<{ organization_id: string }>({ ...compiled, parameters: [userId] })
  return rows.map((row) => row.organization_id)
}
