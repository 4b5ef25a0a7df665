import type { Kysely, Updateable } from 'kysely'
import type { Principal } from '../auth/index.ts'
import { isLiveLink } from '../auth/idp.service.ts'
import { findLink } from '../auth/user-link.repository.ts'
import type { Config } from '../config.ts'
import { isCheckViolation, isUniqueViolation } from '../db/errors.ts'
import { nowSeconds } from '../db/index.ts'
import type { Database, McpServerRow, McpServersTable, McpServerUserTokenRow, UserLinkRow } from '../db/schema.ts'
import { ApiError } from '../http/errors.ts'
import type { OutboundFetch } from '../http/outbound.ts'
import { toIsoTime, toIsoTimeOrNull } from '../http/time.ts'
import type { Logger } from '../ops/logger.ts'
import { findDefaultOrganization, listMembershipsOfUser } from '../orgs/org.repository.ts'
import { findAccessibleOrganization, organizationRoleOf } from '../orgs/org.service.ts'
import type { Keyring } from '../secrets/keyring.ts'
import { openValue, sealValue } from '../secrets/sealed-column.ts'
import type { DiscoveryResult } from './discovery.ts'
import { sealing, type UpstreamDeps } from './server-secrets.ts'
import { refreshExpiredForListing } from './upstream-tokens.ts'
import type { CreateServerInput, UpdateServerInput, UpstreamServerDto } from './model.ts'
import { createRegistrationStore } from './registration.repository.ts'
import {
  deleteServer,
  deleteUserTokensOfServer,
  findServerById,
  findServerBySlug,
  insertServer,
  listSelections,
  listServers,
  listUserTokens,
  updateServer,
} from './upstream.repository.ts'
import {
  checkAuthFields,
  checkCustomHeaders,
  checkHeaderName,
  checkHeaderValue,
  normalizeSlug,
  normalizeToolList,
  normalizeUrl,
} from './validation.ts'

type View = 'full' | 'redacted'

/** Where the upstream sends the user back after they authorize Gatehouse there. */
export function callbackUrlOf(publicUrl: string, serverId: string): string {
  return `${publicUrl}/api/v1/mcp/servers/${serverId}/oauth2/callback`
}

/**
 * Gatehouse's own Client ID Metadata Document, for authorization servers that take one instead
 * of a registration. Authorization servers fetch it, so it needs an https public URL.
 */
export function clientMetadataUrlOf(publicUrl: string): string | undefined {
  return publicUrl.startsWith('https://') ? `${publicUrl}/api/v1/mcp/client-metadata` : undefined
}

function connectionOf(
  row: McpServerRow,
  token: McpServerUserTokenRow | undefined,
  oidcLink: UserLinkRow | undefined,
  now: number,
) {
  const none = { expires_at: null, renews_automatically: false, scopes: [] }
  // user_oidc sends the user's identity-provider token: connected while they have a live link.
  if (row.auth_type === 'user_oidc')
    return oidcLink && isLiveLink(oidcLink, now)
      ? {
          status: 'connected' as const,
          expires_at: toIsoTimeOrNull(oidcLink.expires_at),
          renews_automatically: oidcLink.refresh_token !== null,
          scopes: [],
        }
      : { status: 'not_connected' as const, ...none }
  if (row.auth_type !== 'oauth2') return { status: 'not_required' as const, ...none }
  if (!token) return { status: 'not_connected' as const, ...none }
  const expired = token.expires_at !== null && token.expires_at <= now
  const live = token.needs_reauth === 0 && (!expired || token.refresh_token !== null)
  return {
    status: live ? ('connected' as const) : ('needs_reauth' as const),
    expires_at: toIsoTimeOrNull(token.expires_at),
    renews_automatically: live && token.refresh_token !== null,
    scopes: token.scopes.split(' ').filter(Boolean),
  }
}

/** Whether a server is part of the user's `/mcp`: its availability, then the user's own choice. */
export function isSelected(row: Pick<McpServerRow, 'availability'>, choice: boolean | undefined): boolean {
  if (row.availability === 'force_on') return true
  return choice ?? row.availability === 'default_on'
}

export function rowToServer(
  row: McpServerRow,
  view: View,
  user: { token?: McpServerUserTokenRow; oidcLink?: UserLinkRow; choice?: boolean; now: number; member?: boolean },
): UpstreamServerDto {
  const connection = connectionOf(row, user.token, user.oidcLink, user.now)
  const redacted = view === 'redacted'
  return {
    id: row.id,
    organization_id: row.organization_id,
    display_name: row.display_name,
    slug: row.slug,
    description: row.description,
    icon_url: row.icon_url,
    transport: redacted ? '' : row.transport,
    url: redacted ? '' : row.url,
    auth_type: row.auth_type,
    oauth2_client_id: redacted ? '' : row.oauth2_client_id,
    oauth2_auth_url: redacted ? '' : row.oauth2_auth_url,
    oauth2_token_url: redacted ? '' : row.oauth2_token_url,
    oauth2_scopes: redacted ? '' : row.oauth2_scopes,
    oauth2_registration: row.oauth2_registration,
    api_key_header: redacted ? '' : row.api_key_header,
    has_oauth2_secret: row.oauth2_client_secret !== null,
    has_api_key: row.api_key_value !== null,
    has_custom_headers: row.custom_headers !== null,
    tool_allow_list: JSON.parse(row.tool_allow_list),
    tool_deny_list: JSON.parse(row.tool_deny_list),
    availability: row.availability,
    enabled: row.enabled === 1,
    forward_identity_headers: row.forward_identity_headers === 1,
    created_by: row.created_by,
    updated_by: row.updated_by,
    created_at: toIsoTime(row.created_at),
    updated_at: toIsoTime(row.updated_at),
    last_error: redacted ? null : row.last_error,
    last_error_at: redacted || row.last_error_at === null ? null : toIsoTime(row.last_error_at),
    // As in the seed: only oauth2 needs the user to connect; user_oidc is true even without a link.
    auth_connected: row.auth_type !== 'oauth2' || connection.status === 'connected',
    connection,
    selected: user.member !== false && isSelected(row, user.choice),
  }
}

/**
 * What a principal may do with each organization's servers: manage them by their effective role
 * (`roles`; the owner administers every organization), use them only as a member (`memberships`).
 * Site-wide roles manage, they do not consume: the owner's identity and credentials reach only the
 * upstreams of the organizations they joined, never those another organization's admin points
 * at whatever address they like.
 */
interface Access {
  roles: 'all' | Map<string, 'admin' | 'member'>
  memberships: Set<string>
}

async function accessOf(db: Kysely<Database>, principal: Principal): Promise<Access> {
  const memberships = await listMembershipsOfUser(db, principal.user.id)
  const ids = new Set(memberships.map((membership) => membership.id))
  if (principal.user.role === 'owner') return { roles: 'all', memberships: ids }
  const roles = new Map<string, 'admin' | 'member'>()
  for (const membership of memberships) {
    const role = organizationRoleOf(principal.user, membership, membership.member_role)
    if (role) roles.set(membership.id, role)
  }
  return { roles, memberships: ids }
}

function viewOf(access: Access, row: McpServerRow): View | undefined {
  const role = access.roles === 'all' ? 'admin' : access.roles.get(row.organization_id)
  if (role === 'admin') return 'full'
  if (role === 'member' && row.enabled === 1) return 'redacted'
  return undefined
}

/** Whether the principal may use the server: enabled and of one of their organizations. */
function isUsable(access: Access, row: McpServerRow): boolean {
  return row.enabled === 1 && access.memberships.has(row.organization_id)
}

/**
 * The servers with the caller's connection and choice. A server of an organization the caller
 * manages without being a member (the owner's view of other organizations) shows no connection
 * and `selected: false`: nothing of theirs is refreshed for it or sent to it.
 */
async function withUserState(deps: UpstreamDeps, principal: Principal, access: Access, rows: [McpServerRow, View][]) {
  const member = (row: McpServerRow) => access.memberships.has(row.organization_id)
  const ids = rows.flatMap(([row]) => (member(row) ? [row.id] : []))
  // As in the seed: expired tokens are refreshed (in parallel, time-capped) so the status is true.
  const stored = await listUserTokens(deps.db, principal.user.id, ids)
  const servers = new Map(rows.map(([row]) => [row.id, row]))
  const tokens = new Map((await refreshExpiredForListing(deps, servers, stored)).map((t) => [t.server_id, t]))
  const choices = await listSelections(deps.db, principal.user.id, ids)
  const oidcLink = rows.some(([row]) => row.auth_type === 'user_oidc' && member(row))
    ? await findLink(deps.db, principal.user.id, 'oidc')
    : undefined
  const now = nowSeconds()
  return rows.map(([row, view]) =>
    member(row)
      ? rowToServer(row, view, { token: tokens.get(row.id), oidcLink, choice: choices.get(row.id), now })
      : rowToServer(row, view, { now, member: false }),
  )
}

/**
 * Org admins: every server of their organizations; members: the enabled ones, redacted. With
 * `use`, only the servers the caller may use (enabled, of their organizations), as the
 * connections page lists them.
 */
export async function listVisibleServers(
  deps: UpstreamDeps,
  principal: Principal,
  purpose: 'view' | 'use' = 'view',
): Promise<UpstreamServerDto[]> {
  const access = await accessOf(deps.db, principal)
  const rows =
    purpose === 'use'
      ? await listServers(deps.db, [...access.memberships], { enabledOnly: true })
      : await listServers(deps.db, access.roles === 'all' ? 'all' : [...access.roles.keys()])
  const visible = rows.flatMap((row) => {
    const view = viewOf(access, row)
    return view && (purpose === 'view' || isUsable(access, row)) ? [[row, view] as [McpServerRow, View]] : []
  })
  return withUserState(deps, principal, access, visible)
}

/** A server of the user's `/mcp`, and whether its tools can be listed or the user must connect it first. */
export interface AggregatedServer {
  row: McpServerRow
  /** `connect`: an oauth2 server the user has not connected, or must reconnect. */
  status: 'ready' | 'connect'
}

/**
 * The servers of the user's `/mcp` (DESIGN.md, "Serving upstreams"): enabled, in one of the
 * organizations they are a member of (whatever their site role), and `force_on`, `default_on` not
 * deselected or `default_off` selected; in slug order, so the aggregated lists are the same on
 * every replica.
 */
export async function aggregatedServers(deps: UpstreamDeps, principal: Principal): Promise<AggregatedServer[]> {
  const { memberships } = await accessOf(deps.db, principal)
  const rows = await listServers(deps.db, [...memberships], { enabledOnly: true })
  const ids = rows.map((row) => row.id)
  const choices = await listSelections(deps.db, principal.user.id, ids)
  const selected = rows.filter((row) => isSelected(row, choices.get(row.id)))
  const oauth = selected.filter((row) => row.auth_type === 'oauth2').map((row) => row.id)
  const tokens = new Map((await listUserTokens(deps.db, principal.user.id, oauth)).map((t) => [t.server_id, t]))
  const now = nowSeconds()
  return selected
    .sort((a, b) => (a.slug < b.slug ? -1 : a.slug > b.slug ? 1 : 0))
    .map((row) => ({
      row,
      status:
        row.auth_type === 'oauth2' && connectionOf(row, tokens.get(row.id), undefined, now).status !== 'connected'
          ? 'connect'
          : 'ready',
    }))
}

/**
 * The server a principal may use by its slug: enabled and in one of the organizations they are a
 * member of (the owner too). What they may not use is undefined, exactly as what does not exist.
 */
export async function findUsableServerBySlug(
  deps: UpstreamDeps,
  principal: Principal,
  slug: string,
): Promise<McpServerRow | undefined> {
  const row = await findServerBySlug(deps.db, slug)
  if (!row || row.enabled !== 1) return undefined
  return isUsable(await accessOf(deps.db, principal), row) ? row : undefined
}

/**
 * A server the principal may see, and how; anything else is 404, as for an ID that does not
 * exist. `manage` needs the organization's admin role; `use` (connect, select) needs membership,
 * which the owner, who sees every organization's servers, may lack: that is a 403 naming it.
 */
export async function findVisibleServer(
  deps: UpstreamDeps,
  principal: Principal,
  id: string,
  purpose: 'view' | 'manage' | 'use' = 'view',
): Promise<{ row: McpServerRow; view: View }> {
  const row = await findServerById(deps.db, id)
  const access = row ? await accessOf(deps.db, principal) : undefined
  const view = row && access ? viewOf(access, row) : undefined
  if (!row || !access || !view) throw new ApiError(404, 'MCP server not found')
  if (purpose === 'manage' && view !== 'full')
    throw new ApiError(403, "Managing this MCP server requires its organization's admin role")
  if (purpose === 'use' && !access.memberships.has(row.organization_id))
    throw new ApiError(403, `Using ${row.display_name} requires membership of its organization`)
  return { row, view }
}

export async function presentServer(deps: UpstreamDeps, principal: Principal, row: McpServerRow, view: View) {
  return (await withUserState(deps, principal, await accessOf(deps.db, principal), [[row, view]]))[0]
}

/** The columns each auth type owns; leaving the type clears them (and, for oauth2, the users' tokens). */
const OAUTH2_COLUMNS: Updateable<McpServersTable> = {
  oauth2_client_id: '',
  oauth2_client_secret: null,
  oauth2_auth_url: '',
  oauth2_token_url: '',
  oauth2_scopes: '',
  oauth2_token_auth_method: '',
  oauth2_issuer: '',
  oauth2_iss_required: 0,
  oauth2_revocation_url: '',
  oauth2_resource: '',
  oauth2_registration: 'manual',
}
const API_KEY_COLUMNS: Updateable<McpServersTable> = { api_key_header: '', api_key_value: null }

function discoveredColumns(result: DiscoveryResult, requestedScopes: string): Updateable<McpServersTable> {
  return {
    oauth2_client_id: result.clientId,
    oauth2_auth_url: result.authorizationEndpoint,
    oauth2_token_url: result.tokenEndpoint,
    oauth2_scopes: requestedScopes || result.scopes,
    oauth2_token_auth_method: result.tokenEndpointAuthMethod,
    oauth2_issuer: result.issuer,
    oauth2_iss_required: result.issParameterSupported ? 1 : 0,
    oauth2_revocation_url: result.revocationEndpoint ?? '',
    oauth2_resource: result.resource,
    oauth2_registration: result.registration,
  }
}

/**
 * The validated, trimmed plain columns of a create or update, and the secrets to seal. Fields
 * that are absent keep the stored value (`existing`); secrets are write-only.
 */
function planColumns(input: UpdateServerInput, existing: McpServerRow | undefined) {
  const columns: Updateable<McpServersTable> = {}
  const text = (value: string | undefined) => (value === undefined ? undefined : value.trim())
  if (input.display_name !== undefined) {
    columns.display_name = input.display_name.trim()
    if (!columns.display_name)
      throw new ApiError(422, 'Invalid request body', undefined, {}, [
        { field: 'display_name', detail: 'must not be empty' },
      ])
  }
  if (input.slug !== undefined) columns.slug = normalizeSlug(input.slug)
  if (input.description !== undefined) columns.description = input.description.trim()
  if (input.icon_url !== undefined) columns.icon_url = normalizeUrl('icon_url', input.icon_url, { allowEmpty: true })
  if (input.transport !== undefined) columns.transport = input.transport
  if (input.url !== undefined) columns.url = normalizeUrl('url', input.url)
  if (input.auth_type !== undefined) columns.auth_type = input.auth_type
  if (input.oauth2_client_id !== undefined) columns.oauth2_client_id = text(input.oauth2_client_id)
  if (input.oauth2_auth_url !== undefined)
    columns.oauth2_auth_url = normalizeUrl('oauth2_auth_url', input.oauth2_auth_url, { allowEmpty: true })
  if (input.oauth2_token_url !== undefined)
    columns.oauth2_token_url = normalizeUrl('oauth2_token_url', input.oauth2_token_url, { allowEmpty: true })
  if (input.oauth2_scopes !== undefined) columns.oauth2_scopes = input.oauth2_scopes.trim().split(/\s+/).join(' ')
  if (input.api_key_header !== undefined)
    columns.api_key_header = input.api_key_header.trim()
      ? checkHeaderName('api_key_header', input.api_key_header, { allowAuthorization: true })
      : ''
  if (input.tool_allow_list !== undefined)
    columns.tool_allow_list = JSON.stringify(normalizeToolList(input.tool_allow_list))
  if (input.tool_deny_list !== undefined)
    columns.tool_deny_list = JSON.stringify(normalizeToolList(input.tool_deny_list))
  if (input.availability !== undefined) columns.availability = input.availability
  if (input.enabled !== undefined) columns.enabled = input.enabled ? 1 : 0
  if (input.forward_identity_headers !== undefined)
    columns.forward_identity_headers = input.forward_identity_headers ? 1 : 0

  const authType = columns.auth_type ?? existing?.auth_type ?? 'none'
  const typeChanged = existing !== undefined && authType !== existing.auth_type
  // Read before the type's columns are cleared: only what the request itself changed moves a server.
  const moved = existing ? ADDRESS_FIELDS.filter((name) => name in columns && columns[name] !== existing[name]) : []
  const rediscover =
    existing?.auth_type === 'oauth2' &&
    !typeChanged &&
    existing.oauth2_registration !== 'manual' &&
    moved.includes('url') &&
    [...CLIENT_FIELDS, 'oauth2_client_secret' as const].every((name) => input[name] === undefined)
  if (existing) checkSecretsFollow(input, existing, { moved, typeChanged, rediscover })
  if (typeChanged && existing.auth_type === 'oauth2')
    Object.assign(columns, { ...OAUTH2_COLUMNS, ...pick(columns, OAUTH2_COLUMNS) })
  if (typeChanged && existing.auth_type === 'api_key')
    Object.assign(columns, { ...API_KEY_COLUMNS, ...pick(columns, API_KEY_COLUMNS) })
  if (typeChanged && existing.auth_type === 'custom_headers' && input.custom_headers === undefined)
    columns.custom_headers = null
  // Manual OAuth settings replace whatever discovery had found.
  if (['oauth2_client_id', 'oauth2_auth_url', 'oauth2_token_url'].some((name) => name in columns && !typeChanged))
    columns.oauth2_registration = 'manual'

  const customHeaders =
    input.custom_headers === undefined
      ? undefined
      : checkCustomHeaders(input.custom_headers, authType === 'custom_headers')
  const apiKey = input.api_key_value === undefined ? undefined : checkHeaderValue('api_key_value', input.api_key_value)
  const clientSecret = input.oauth2_client_secret === undefined ? undefined : input.oauth2_client_secret.trim()
  const merged = { ...existing, ...columns } as McpServerRow
  const mode = checkAuthFields({
    auth_type: authType,
    oauth2_client_id: merged.oauth2_client_id ?? '',
    oauth2_auth_url: merged.oauth2_auth_url ?? '',
    oauth2_token_url: merged.oauth2_token_url ?? '',
    api_key_header: merged.api_key_header ?? '',
    hasApiKey: apiKey !== undefined || (merged.api_key_value ?? null) !== null,
    customHeaderCount:
      customHeaders !== undefined
        ? Object.keys(customHeaders).length
        : (merged.custom_headers ?? null) === null
          ? 0
          : 1,
  })
  return { columns, secrets: { clientSecret, apiKey, customHeaders }, mode, authType, typeChanged, rediscover }
}

/** Where a server's stored secrets are sent: changing one of these moves them somewhere new. */
const ADDRESS_FIELDS = ['url', 'oauth2_auth_url', 'oauth2_token_url'] as const
/** The client settings an admin sets by hand instead of discovery. */
const CLIENT_FIELDS = ['oauth2_client_id', 'oauth2_auth_url', 'oauth2_token_url'] as const

/**
 * Stored secrets never follow a change of address: when a PATCH changes `url`,
 * `oauth2_auth_url` or `oauth2_token_url`, the API key, the custom headers and the OAuth client
 * secret the server holds must be sent again in the same request (an empty
 * `oauth2_client_secret` for a client without one), and client settings set by hand on a
 * discovered server never take over the secret of Gatehouse's own registration. Otherwise anyone
 * who may edit the row could point it at their own endpoint and receive a secret that is
 * write-only everywhere else.
 *
 * The request is refused (422 naming the fields) rather than the secrets dropped: a PATCH that
 * silently switched a server's authentication off would surprise, and a refusal changes nothing
 * and loses nothing. A discovered server whose `url` changes, with no client settings in the
 * request, is discovered and registered again instead (`rediscover`), as its authorization server
 * may have changed with it; its new secret comes from that registration.
 */
function checkSecretsFollow(
  input: UpdateServerInput,
  existing: McpServerRow,
  change: { moved: string[]; typeChanged: boolean; rediscover: boolean },
): void {
  const { moved, typeChanged, rediscover } = change
  // A type change clears the old type's secrets itself; the new type's come with the request.
  const sameType = !typeChanged
  const keepsHeaders = sameType || existing.auth_type !== 'custom_headers'
  const moving = moved.length > 0
  const stale: string[] = []
  if (moving && keepsHeaders && existing.custom_headers !== null && input.custom_headers === undefined)
    stale.push('custom_headers')
  if (
    moving &&
    sameType &&
    existing.auth_type === 'api_key' &&
    existing.api_key_value !== null &&
    input.api_key_value === undefined
  )
    stale.push('api_key_value')
  const keepsSecret =
    sameType && existing.auth_type === 'oauth2' && existing.oauth2_client_secret !== null && !rediscover
  const discovered = existing.oauth2_registration !== 'manual'
  const byHand = discovered ? CLIENT_FIELDS.filter((name) => input[name] !== undefined) : []
  const inherits = keepsSecret && input.oauth2_client_secret === undefined && byHand.length > 0
  if (keepsSecret && input.oauth2_client_secret === undefined && (moving || inherits))
    stale.push('oauth2_client_secret')
  if (stale.length === 0) return
  const reasons = [...new Set([...moved, ...(inherits ? byHand : [])])]
  const detailOf = (field: string) =>
    field === 'oauth2_client_secret' && inherits
      ? "must be sent with client settings set by hand (empty for a client without one): the secret of Gatehouse's own registration does not carry over"
      : `must be sent again when ${moved.join(' or ')} changes: a stored secret is never sent to a new address`
  throw new ApiError(
    422,
    `${stale.join(' and ')} must be sent ${inherits ? '' : 'again '}along with the new ${reasons.join(' and ')}`,
    'Send the secrets in the same request as the change; an empty oauth2_client_secret stands for a client without one',
    {},
    stale.map((field) => ({ field, detail: detailOf(field) })),
  )
}

/** The entries of `values` whose keys `template` names: the columns the request itself set. */
function pick(values: Updateable<McpServersTable>, template: Updateable<McpServersTable>) {
  return Object.fromEntries(Object.entries(values).filter(([key]) => key in template))
}

async function sealSecrets(
  keyring: Keyring,
  serverId: string,
  secrets: { clientSecret?: string; apiKey?: string; customHeaders?: Record<string, string> },
): Promise<Updateable<McpServersTable>> {
  const columns: Updateable<McpServersTable> = {}
  if (secrets.clientSecret !== undefined)
    columns.oauth2_client_secret = secrets.clientSecret
      ? await sealValue(keyring, sealing(serverId, 'oauth2_client_secret'), secrets.clientSecret)
      : null
  if (secrets.apiKey !== undefined)
    columns.api_key_value = await sealValue(keyring, sealing(serverId, 'api_key_value'), secrets.apiKey)
  if (secrets.customHeaders !== undefined)
    columns.custom_headers =
      Object.keys(secrets.customHeaders).length > 0
        ? await sealValue(keyring, sealing(serverId, 'custom_headers'), JSON.stringify(secrets.customHeaders))
        : null
  return columns
}

function translateWriteError(error: unknown): never {
  if (isUniqueViolation(error)) throw new ApiError(409, 'An MCP server with this slug already exists')
  if (isCheckViolation(error))
    throw new ApiError(400, 'Invalid MCP server configuration', 'A field has a value the server does not accept')
  throw error
}

async function discover(deps: UpstreamDeps, row: McpServerRow): Promise<DiscoveryResult> {
  // The MCP client SDK loads on first use, off the start-up path (as the MCP endpoint's does).
  const { DiscoveryError, discoverAndRegister } = await import('./discovery.ts')
  const host = new URL(deps.config.publicUrl).host
  try {
    return await discoverAndRegister({
      serverUrl: row.url,
      callbackUrl: callbackUrlOf(deps.config.publicUrl, row.id),
      scopes: row.oauth2_scopes || undefined,
      fetch: deps.outboundFetch,
      clientMetadataUrl: clientMetadataUrlOf(deps.config.publicUrl),
      clientName: `Gatehouse (${host})`,
      // The organization's own registrations only: a client is never shared across organizations.
      registrations: createRegistrationStore(deps.db, deps.keyring, {
        organizationId: row.organization_id,
        gatehouseOrigin: new URL(deps.config.publicUrl).origin,
      }),
    })
  } catch (error) {
    if (!(error instanceof DiscoveryError)) throw error
    throw new ApiError(
      400,
      `OAuth2 discovery failed: ${error.message}`,
      'Provide oauth2_client_id, oauth2_auth_url and oauth2_token_url yourself, or make sure the server publishes protected resource metadata (RFC 9728) and its authorization server accepts registration (RFC 7591) or client ID metadata documents',
    )
  }
}

/** Discovery for a stored row, its result written back; returns the updated row. */
async function discoverInto(deps: UpstreamDeps, row: McpServerRow, userId: string): Promise<McpServerRow> {
  const result = await discover(deps, row)
  const secret = result.clientSecret
    ? await sealValue(deps.keyring, sealing(row.id, 'oauth2_client_secret'), result.clientSecret)
    : null
  const updated = await updateServer(deps.db, row.id, {
    ...discoveredColumns(result, row.oauth2_scopes),
    oauth2_client_secret: secret,
    updated_by: userId,
    updated_at: nowSeconds(),
  })
  if (!updated) throw new ApiError(404, 'MCP server not found')
  return updated
}

/**
 * Creates a server. With `auth_type: oauth2` and no client settings, the row is inserted first
 * so the callback URL registered upstream carries its real ID, then discovery and registration
 * run; if they fail the row is deleted again and the answer names the failed step.
 */
export async function createServer(
  deps: UpstreamDeps,
  principal: Principal,
  input: CreateServerInput,
): Promise<McpServerRow> {
  const organizationId = input.organization_id ?? (await findDefaultOrganization(deps.db)).id
  await findAccessibleOrganization(deps.db, principal, organizationId, 'manage')
  const { organization_id: _, ...fields } = input
  const plan = planColumns(fields, undefined)
  const id = crypto.randomUUID()
  const now = nowSeconds()
  let row: McpServerRow
  try {
    row = await insertServer(deps.db, {
      id,
      organization_id: organizationId,
      display_name: plan.columns.display_name!,
      slug: plan.columns.slug!,
      url: plan.columns.url!,
      transport: plan.columns.transport ?? 'streamable_http',
      auth_type: plan.authType,
      availability: plan.columns.availability ?? 'default_off',
      ...plan.columns,
      ...(await sealSecrets(deps.keyring, id, plan.secrets)),
      created_by: principal.user.id,
      updated_by: principal.user.id,
      created_at: now,
      updated_at: now,
    })
  } catch (error) {
    translateWriteError(error)
  }
  if (plan.mode === 'discover') {
    try {
      row = await discoverInto(deps, row, principal.user.id)
    } catch (error) {
      await deleteServer(deps.db, id)
      throw error
    }
  }
  deps.events.publish({ kind: 'server_changed', serverId: row.id })
  deps.logger.info('mcp server created', audit(row, principal))
  return row
}

/**
 * A partial update. Changing `auth_type` clears the previous type's settings and secrets in the
 * same transaction (and, leaving oauth2, every user's tokens for the server). A change that ends
 * in oauth2 without client settings runs discovery, as on creation, and so does a new `url` for a
 * discovered server. A change of address needs the stored secrets sent again (`checkSecretsFollow`).
 */
export async function updateServerConfig(
  deps: UpstreamDeps,
  principal: Principal,
  id: string,
  input: UpdateServerInput,
): Promise<McpServerRow> {
  const { row: existing } = await findVisibleServer(deps, principal, id, 'manage')
  const plan = planColumns(input, existing)
  const sealed = await sealSecrets(deps.keyring, id, plan.secrets)
  // Discovery runs before anything is written, so a failure leaves the server as it was.
  if ((plan.mode === 'discover' && plan.typeChanged) || plan.rediscover) {
    const merged = { ...existing, ...plan.columns } as McpServerRow
    const result = await discover(deps, merged)
    Object.assign(plan.columns, discoveredColumns(result, merged.oauth2_scopes))
    sealed.oauth2_client_secret = result.clientSecret
      ? await sealValue(deps.keyring, sealing(id, 'oauth2_client_secret'), result.clientSecret)
      : null
  }
  const oauthChanged =
    plan.typeChanged ||
    ['url', 'oauth2_client_id', 'oauth2_auth_url', 'oauth2_token_url'].some(
      (name) =>
        name in plan.columns &&
        plan.columns[name as keyof typeof plan.columns] !== existing[name as keyof McpServerRow],
    )
  let row: McpServerRow | undefined
  try {
    row = await deps.db.transaction().execute(async (trx) => {
      const updated = await updateServer(trx, id, {
        ...plan.columns,
        ...sealed,
        updated_by: principal.user.id,
        updated_at: nowSeconds(),
      })
      // Tokens issued under another client, endpoint or server are of no use any more.
      if (updated && existing.auth_type === 'oauth2' && oauthChanged) await deleteUserTokensOfServer(trx, id)
      return updated
    })
  } catch (error) {
    translateWriteError(error)
  }
  if (!row) throw new ApiError(404, 'MCP server not found')
  deps.events.publish({ kind: 'server_changed', serverId: row.id })
  deps.logger.info('mcp server updated', { ...audit(row, principal), fields: Object.keys(input).sort() })
  return row
}

/** Repeats discovery and registration, for an upstream whose authorization server moved. */
export async function rediscoverServer(deps: UpstreamDeps, principal: Principal, id: string): Promise<McpServerRow> {
  const { row } = await findVisibleServer(deps, principal, id, 'manage')
  if (row.auth_type !== 'oauth2')
    throw new ApiError(400, 'Only an oauth2 server has an authorization server to discover')
  const updated = await discoverInto(deps, row, principal.user.id)
  await deleteUserTokensOfServer(deps.db, id)
  deps.events.publish({ kind: 'server_changed', serverId: id })
  deps.logger.info('mcp server rediscovered', { ...audit(updated, principal), issuer: updated.oauth2_issuer })
  return updated
}

export async function deleteServerConfig(deps: UpstreamDeps, principal: Principal, id: string): Promise<void> {
  const { row } = await findVisibleServer(deps, principal, id, 'manage')
  // The users' tokens and choices go with the row (ON DELETE CASCADE).
  if (!(await deleteServer(deps.db, id))) throw new ApiError(404, 'MCP server not found')
  deps.events.publish({ kind: 'server_changed', serverId: id })
  deps.logger.info('mcp server deleted', audit(row, principal))
}

function audit(row: McpServerRow, principal: Principal) {
  return { server_id: row.id, slug: row.slug, organization_id: row.organization_id, user_id: principal.user.id }
}
