import type { Generated, Insertable, Selectable, Updateable } from 'kysely'

/** Times are unix seconds on both dialects; Postgres BIGINTs are parsed to numbers in `createDb`. */
export interface UsersTable {
  id: string
  email: string
  username: string
  display_name: Generated<string>
  password_hash: string | null
  login_type: Generated<'password' | 'none'>
  status: Generated<'active' | 'suspended'>
  role: Generated<'owner' | 'admin' | 'member'>
  created_at: number
  updated_at: number
  last_seen_at: number | null
}

export interface InstanceEventsTable {
  name: string
  created_at: number
}

export interface OrganizationsTable {
  id: string
  name: string
  display_name: Generated<string>
  is_default: Generated<number>
  created_at: number
  updated_at: number
}

export interface OrganizationMembersTable {
  organization_id: string
  user_id: string
  role: Generated<'admin' | 'member'>
  created_at: number
}

export interface SessionsTable {
  token_hash: string
  user_id: string
  created_at: number
  expires_at: number
  last_used_at: number
  ip: string | null
  user_agent: string | null
}

export interface ApiTokensTable {
  id: string
  user_id: string
  name: string
  token_prefix: string
  token_hash: string
  created_at: number
  expires_at: number | null
  last_used_at: number | null
}

export interface LoginFailuresTable {
  key: string
  failures: number
  window_started_at: number
}

export interface SecretsTable {
  id: string
  purpose: string
  key_id: string
  ciphertext: string
  created_at: number
  updated_at: number
}

export interface Database {
  users: UsersTable
  instance_events: InstanceEventsTable
  organizations: OrganizationsTable
  organization_members: OrganizationMembersTable
  sessions: SessionsTable
  api_tokens: ApiTokensTable
  login_failures: LoginFailuresTable
  secrets: SecretsTable
}

export type UserRow = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type UserUpdate = Updateable<UsersTable>
export type OrganizationRow = Selectable<OrganizationsTable>
export type OrganizationMemberRow = Selectable<OrganizationMembersTable>
export type SessionRow = Selectable<SessionsTable>
export type ApiTokenRow = Selectable<ApiTokensTable>
export type SecretRow = Selectable<SecretsTable>

export type Dialect = 'sqlite' | 'postgres'
