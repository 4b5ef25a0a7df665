import type { Generated, Insertable, Selectable, Updateable } from 'kysely'

/** Times are unix seconds on both dialects; Postgres BIGINTs are parsed to numbers in `createDb`. */
export interface UsersTable {
  id: string
  email: string
  username: string
  display_name: Generated<string>
  password_hash: string | null
  login_type: Generated<'password' | 'none'>
  /** The identity provider the user last signed in with, which the API reports as the login type. */
  identity_provider: Generated<'oidc' | 'github' | null>
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

export interface McpServersTable {
  id: string
  organization_id: string
  display_name: string
  slug: string
  description: Generated<string>
  icon_url: Generated<string>
  transport: 'streamable_http' | 'sse'
  url: string
  auth_type: 'none' | 'oauth2' | 'api_key' | 'custom_headers' | 'user_oidc'
  oauth2_client_id: Generated<string>
  /** Sealed (see secrets/sealed-column.ts), or null. */
  oauth2_client_secret: string | null
  oauth2_auth_url: Generated<string>
  oauth2_token_url: Generated<string>
  oauth2_scopes: Generated<string>
  /** How to authenticate at the token endpoint: `client_secret_basic`, `client_secret_post` or `none`; '' = pick from the secret. */
  oauth2_token_auth_method: Generated<string>
  oauth2_issuer: Generated<string>
  /** 1 when the authorization server sends `iss` on its redirects (RFC 9207), which must then be checked. */
  oauth2_iss_required: Generated<number>
  oauth2_revocation_url: Generated<string>
  /** The RFC 8707 resource to ask tokens for (the upstream's protected resource); '' = its URL. */
  oauth2_resource: Generated<string>
  oauth2_registration: Generated<'manual' | 'dynamic' | 'metadata_document'>
  api_key_header: Generated<string>
  /** Sealed, or null. */
  api_key_value: string | null
  /** Sealed JSON object of header name to value, or null. */
  custom_headers: string | null
  /** JSON array of tool names and `*` globs. */
  tool_allow_list: Generated<string>
  tool_deny_list: Generated<string>
  availability: 'force_on' | 'default_on' | 'default_off'
  enabled: Generated<number>
  forward_identity_headers: Generated<number>
  created_by: string | null
  updated_by: string | null
  created_at: number
  updated_at: number
  /** Why the upstream last failed to answer a list, and when (unix seconds); null once it answers again. */
  last_error: Generated<string | null>
  last_error_at: Generated<number | null>
}

export interface McpServerUserTokensTable {
  server_id: string
  user_id: string
  /** Sealed. */
  access_token: string
  /** Sealed, or null. */
  refresh_token: string | null
  token_type: Generated<string>
  expires_at: number | null
  scopes: Generated<string>
  needs_reauth: Generated<number>
  created_at: number
  updated_at: number
  /** Who is refreshing these tokens right now, and until when (unix seconds): one refresh at a time. */
  refresh_lease_id: string | null
  refresh_lease_until: number | null
}

export interface UserLinksTable {
  user_id: string
  provider: 'oidc' | 'github'
  /** The provider's stable ID for the user (`sub`, or GitHub's numeric ID). */
  subject: string
  email: Generated<string>
  /** Sealed, or null. */
  access_token: string | null
  /** Sealed, or null. */
  refresh_token: string | null
  expires_at: number | null
  /** When the current access token was issued, for its lifetime. */
  issued_at: number
  /** JSON of the ID token's claims (OIDC) or the profile (GitHub). */
  claims: Generated<string>
  refresh_lease_id: string | null
  refresh_lease_until: number | null
  created_at: number
  updated_at: number
}

export interface McpOAuthStatesTable {
  /** hex(sha256(state)). */
  state_hash: string
  server_id: string
  user_id: string
  /** Sealed PKCE verifier. */
  code_verifier: string
  return_to: string | null
  created_at: number
  expires_at: number
}

export interface McpServerSelectionsTable {
  server_id: string
  user_id: string
  selected: number
  updated_at: number
}

export interface UpstreamOAuthClientsTable {
  id: string
  /** The organization whose servers use the client; never shared with another organization. */
  organization_id: string
  issuer: string
  gatehouse_origin: string
  client_id: string
  /** Sealed, or null. */
  client_secret: string | null
  token_endpoint_auth_method: string
  /** JSON array. */
  redirect_uris: string
  registration_client_uri: string | null
  /** Sealed, or null. */
  registration_access_token: string | null
  client_secret_expires_at: number | null
  created_at: number
  updated_at: number
}

export interface OAuthClientsTable {
  id: string
  organization_id: string
  kind: 'managed' | 'dynamic' | 'metadata_document'
  name: string
  /** JSON array of strings. */
  redirect_uris: string
  /** JSON array of strings. */
  grant_types: string
  token_endpoint_auth_method: 'none' | 'client_secret_basic' | 'client_secret_post'
  scope: string
  client_uri: string | null
  logo_uri: string | null
  software_id: string | null
  software_version: string | null
  registration_token_hash: string | null
  created_by: string | null
  created_at: number
  updated_at: number
  last_used_at: number | null
}

export interface OAuthClientSecretsTable {
  id: string
  client_id: string
  secret_hash: string
  secret_prefix: string
  created_at: number
  last_used_at: number | null
}

export interface OAuthConsentsTable {
  user_id: string
  client_id: string
  redirect_uri: string
  scope: string
  created_at: number
}

export interface OAuthGrantsTable {
  id: string
  client_id: string
  user_id: string
  scope: string
  resource: string
  created_at: number
  revoked_at: number | null
}

export interface OAuthAuthorizationCodesTable {
  code_hash: string
  client_id: string
  user_id: string
  redirect_uri: string
  scope: string
  resource: string
  code_challenge: string
  created_at: number
  expires_at: number
  used_at: number | null
  grant_id: string | null
}

export interface OAuthAccessTokensTable {
  token_hash: string
  grant_id: string
  client_id: string
  user_id: string
  scope: string
  audience: string
  created_at: number
  expires_at: number
}

export interface OAuthRefreshTokensTable {
  token_hash: string
  grant_id: string
  created_at: number
  expires_at: number
  used_at: number | null
  /** hex(sha256) of the refresh token this one was issued for; null for the first of a grant. */
  parent_hash: string | null
  /** When a retry of its parent within the grace window replaced it; presenting it is then reuse. */
  superseded_at: number | null
}

export interface InstanceSettingsTable {
  name: string
  value: string
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
  mcp_servers: McpServersTable
  mcp_server_user_tokens: McpServerUserTokensTable
  mcp_server_selections: McpServerSelectionsTable
  upstream_oauth_clients: UpstreamOAuthClientsTable
  mcp_oauth_states: McpOAuthStatesTable
  user_links: UserLinksTable
  oauth_clients: OAuthClientsTable
  oauth_client_secrets: OAuthClientSecretsTable
  oauth_consents: OAuthConsentsTable
  oauth_grants: OAuthGrantsTable
  oauth_authorization_codes: OAuthAuthorizationCodesTable
  oauth_access_tokens: OAuthAccessTokensTable
  oauth_refresh_tokens: OAuthRefreshTokensTable
  instance_settings: InstanceSettingsTable
}

export type UserRow = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type UserUpdate = Updateable<UsersTable>
export type OrganizationRow = Selectable<OrganizationsTable>
export type OrganizationMemberRow = Selectable<OrganizationMembersTable>
export type SessionRow = Selectable<SessionsTable>
export type ApiTokenRow = Selectable<ApiTokensTable>
export type McpServerRow = Selectable<McpServersTable>
export type McpServerUserTokenRow = Selectable<McpServerUserTokensTable>
export type UpstreamOAuthClientRow = Selectable<UpstreamOAuthClientsTable>
export type McpOAuthStateRow = Selectable<McpOAuthStatesTable>
export type UserLinkRow = Selectable<UserLinksTable>

export type OAuthClientRow = Selectable<OAuthClientsTable>
export type OAuthClientSecretRow = Selectable<OAuthClientSecretsTable>
export type OAuthGrantRow = Selectable<OAuthGrantsTable>
export type OAuthAuthorizationCodeRow = Selectable<OAuthAuthorizationCodesTable>
export type OAuthAccessTokenRow = Selectable<OAuthAccessTokensTable>
export type OAuthRefreshTokenRow = Selectable<OAuthRefreshTokensTable>

export type Dialect = 'sqlite' | 'postgres'
