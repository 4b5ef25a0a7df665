import type { Principal } from '../auth/index.ts'
import { nowSeconds } from '../db/index.ts'
import type { UserRow } from '../db/schema.ts'
import type { AppDeps } from '../deps.ts'
import { toIsoTime, toIsoTimeOrNull } from '../http/time.ts'
import { listLiveGrants, revokeGrantsOfUserForClient } from '../oauth/grant.repository.ts'
import { listMembershipsOfUser, listOrganizationIdsOfUser } from '../orgs/org.repository.ts'
import { organizationRoleOf } from '../orgs/org.service.ts'
import { disconnect } from '../upstreams/connection.service.ts'
import { connectLinkOf, listUsableServers } from '../upstreams/connections-page.ts'
import type { UpstreamServerDto } from '../upstreams/model.ts'
import { listVisibleServers } from '../upstreams/upstream.service.ts'
import { findUserToken } from '../upstreams/user-token.repository.ts'
import { listUsers } from '../users/user.repository.ts'
import { loginTypeOf } from '../users/user.service.ts'
import { compileSchema, type CallToolResult, type ToolDefinition } from './transport.ts'

/** What a tool call knows about its caller. */
export interface McpContext {
  deps: AppDeps
  principal: Principal
  /** The scopes the credential carries: an OAuth token's, or every scope the role allows. */
  scopes: string[]
}

export type GatehouseTool = ToolDefinition<McpContext> & {
  /** Every scope a call needs; a token missing one gets 403 insufficient_scope naming them all. */
  scopes: string[]
  /** Only these site roles see the tool at all. */
  roles?: ('owner' | 'admin')[]
}

/**
 * The user's organization IDs, asked once per resolved principal: a cached principal lives at most
 * the principal cache's few seconds and is dropped by any membership change in this process, so
 * this is as fresh as the principal itself.
 */
const organizationIds = new WeakMap<Principal, Promise<string[]>>()
function organizationIdsOf(deps: AppDeps, principal: Principal): Promise<string[]> {
  let ids = organizationIds.get(principal)
  if (!ids) {
    ids = listOrganizationIdsOfUser(deps.db, principal.user.id)
    organizationIds.set(principal, ids)
    ids.catch(() => organizationIds.delete(principal))
  }
  return ids
}

/** Structured output plus the same JSON as text, for clients that read only text. */
function result(structured: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(structured) }], structuredContent: structured }
}

function failure(message: string): CallToolResult {
  return { content: [{ type: 'text', text: message }], isError: true }
}

const noInput = compileSchema({ type: 'object', properties: {}, additionalProperties: false })

const userSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    username: { type: 'string' },
    email: { type: 'string' },
    name: { type: 'string' },
    status: { type: 'string', enum: ['active', 'suspended'] },
    login_type: { type: 'string' },
    roles: { type: 'array', items: { type: 'string' } },
    created_at: { type: 'string' },
    last_seen_at: { type: ['string', 'null'] },
  },
  required: ['id', 'username', 'email', 'status', 'roles'],
}

function userOutput(user: UserRow) {
  return {
    id: user.id,
    username: user.username,
    email: user.email,
    name: user.display_name,
    status: user.status,
    login_type: loginTypeOf(user),
    roles: [user.role],
    created_at: toIsoTime(user.created_at),
    last_seen_at: toIsoTimeOrNull(user.last_seen_at),
  }
}

const getAuthenticatedUser: GatehouseTool = {
  name: 'get_authenticated_user',
  title: 'Who am I',
  description: 'Get the signed-in user: ID, username, email, status, login type, roles and organization IDs.',
  input: noInput,
  output: compileSchema({
    ...userSchema,
    properties: { ...userSchema.properties, organization_ids: { type: 'array', items: { type: 'string' } } },
    required: [...userSchema.required, 'organization_ids'],
  }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scopes: ['mcp'],
  async run({ deps, principal }) {
    return result({
      ...userOutput(principal.user),
      organization_ids: await organizationIdsOf(deps, principal),
    })
  },
}

const listOrganizations: GatehouseTool = {
  name: 'list_organizations',
  title: 'My organizations',
  description: 'List the organizations the signed-in user belongs to, with their role in each.',
  input: noInput,
  output: compileSchema({
    type: 'object',
    properties: {
      organizations: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            name: { type: 'string' },
            display_name: { type: 'string' },
            is_default: { type: 'boolean' },
            role: { type: 'string', enum: ['admin', 'member'] },
          },
          required: ['id', 'name', 'role'],
        },
      },
    },
    required: ['organizations'],
  }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scopes: ['mcp'],
  async run({ deps, principal }) {
    const rows = await listMembershipsOfUser(deps.db, principal.user.id)
    return result({
      organizations: rows.map((row) => ({
        id: row.id,
        name: row.name,
        display_name: row.display_name,
        is_default: row.is_default === 1,
        role: organizationRoleOf(principal.user, row, row.member_role) ?? row.member_role,
      })),
    })
  },
}

const appSchema = {
  type: 'object',
  properties: {
    client_id: { type: 'string' },
    client_name: { type: 'string' },
    scope: { type: 'string' },
    authorized_at: { type: 'string' },
  },
  required: ['client_id', 'client_name', 'scope'],
}

const listAuthorizedApps: GatehouseTool = {
  name: 'list_authorized_apps',
  title: 'My authorized apps',
  description: 'List the OAuth apps that hold tokens for the signed-in user.',
  input: noInput,
  output: compileSchema({
    type: 'object',
    properties: { apps: { type: 'array', items: appSchema } },
    required: ['apps'],
  }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scopes: ['mcp'],
  async run({ deps, principal }) {
    const grants = await listLiveGrants(deps.db, { userId: principal.user.id }, nowSeconds())
    return result({
      apps: grants.map((grant) => ({
        client_id: grant.client_id,
        client_name: grant.client_name,
        scope: grant.scope,
        authorized_at: toIsoTime(Number(grant.created_at)),
      })),
    })
  },
}

const revokeAuthorizedApp: GatehouseTool = {
  name: 'revoke_authorized_app',
  title: 'Revoke an app',
  description: "Revoke an OAuth app's access for the signed-in user: its tokens stop working at once.",
  input: compileSchema({
    type: 'object',
    properties: { client_id: { type: 'string', minLength: 1, maxLength: 2000, description: 'The app to revoke' } },
    required: ['client_id'],
    additionalProperties: false,
  }),
  output: compileSchema({
    type: 'object',
    properties: { revoked: { type: 'boolean' }, client_id: { type: 'string' } },
    required: ['revoked', 'client_id'],
  }),
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  scopes: ['mcp'],
  async run({ deps, principal }, args) {
    const clientId = String(args.client_id)
    const revoked = await revokeGrantsOfUserForClient(deps.db, principal.user.id, clientId, nowSeconds())
    if (revoked === 0) return failure(`You have not authorized an app with client_id ${clientId}`)
    deps.events.publish({ kind: 'credentials_revoked' })
    return result({ revoked: true, client_id: clientId })
  },
}

const connectionSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    slug: { type: 'string' },
    name: { type: 'string' },
    auth_type: { type: 'string', enum: ['none', 'oauth2', 'api_key', 'custom_headers', 'user_oidc'] },
    status: { type: 'string', enum: ['connected', 'needs_reauth', 'not_connected', 'not_required'] },
    expires_at: { type: ['string', 'null'] },
    included_in_mcp: { type: 'boolean' },
    connect_url: { type: 'string', description: 'Open in a browser to connect (sign-in first if needed)' },
  },
  required: ['id', 'slug', 'name', 'auth_type', 'status', 'expires_at', 'included_in_mcp'],
}

function connectionOutput(publicUrl: string, server: UpstreamServerDto) {
  const { status, expires_at } = server.connection
  const needsUser = server.auth_type === 'oauth2' && (status === 'not_connected' || status === 'needs_reauth')
  return {
    id: server.id,
    slug: server.slug,
    name: server.display_name,
    auth_type: server.auth_type,
    status,
    expires_at,
    included_in_mcp: server.selected,
    ...(needsUser ? { connect_url: connectLinkOf(publicUrl, server.id) } : {}),
  }
}

const listConnections: GatehouseTool = {
  name: 'list_connections',
  title: 'My MCP server connections',
  description:
    'List the upstream MCP servers the signed-in user may use, with their connection status. For an OAuth server not connected or needing a reconnect, connect_url is a link the user opens in a browser to connect it.',
  input: noInput,
  output: compileSchema({
    type: 'object',
    properties: { servers: { type: 'array', items: connectionSchema } },
    required: ['servers'],
  }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scopes: ['mcp'],
  async run({ deps, principal }) {
    const servers = await listUsableServers(deps, principal)
    return result({ servers: servers.map((server) => connectionOutput(deps.config.publicUrl, server)) })
  },
}

const disconnectServer: GatehouseTool = {
  name: 'disconnect_server',
  title: 'Disconnect an MCP server',
  description:
    "Forget the signed-in user's OAuth tokens for an upstream MCP server (revoked upstream when it allows): its tools stop working for the user until they connect again.",
  input: compileSchema({
    type: 'object',
    properties: {
      server: { type: 'string', minLength: 1, maxLength: 64, description: 'The server’s slug or ID' },
    },
    required: ['server'],
    additionalProperties: false,
  }),
  output: compileSchema({
    type: 'object',
    properties: {
      id: { type: 'string' },
      slug: { type: 'string' },
      was_connected: { type: 'boolean' },
      status: { type: 'string', enum: ['not_connected'] },
      connect_url: { type: 'string' },
    },
    required: ['id', 'slug', 'was_connected', 'status', 'connect_url'],
  }),
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  scopes: ['mcp'],
  async run({ deps, principal }, args) {
    const wanted = String(args.server)
    const server = (await listVisibleServers(deps, principal)).find((s) => s.slug === wanted || s.id === wanted)
    if (!server) return failure(`No MCP server "${wanted}" is available to you; list_connections names them`)
    if (server.auth_type !== 'oauth2')
      return failure(`${server.display_name} (${server.slug}) does not use OAuth: there is nothing to disconnect`)
    const wasConnected = (await findUserToken(deps.db, server.id, principal.user.id)) !== undefined
    await disconnect(deps, principal, server.id)
    return result({
      id: server.id,
      slug: server.slug,
      was_connected: wasConnected,
      status: 'not_connected',
      connect_url: connectLinkOf(deps.config.publicUrl, server.id),
    })
  },
}

const listUsersTool: GatehouseTool = {
  name: 'list_users',
  title: 'List users',
  description: 'List the users of this Gatehouse (admins only), sorted by username, a page at a time.',
  input: compileSchema({
    type: 'object',
    properties: {
      limit: { type: 'integer', minimum: 1, maximum: 200, description: 'Users per page (default 50)' },
      after: {
        type: 'string',
        maxLength: 64,
        description: 'Continue after this username (next_after of the previous page)',
      },
    },
    additionalProperties: false,
  }),
  output: compileSchema({
    type: 'object',
    properties: { users: { type: 'array', items: userSchema }, next_after: { type: ['string', 'null'] } },
    required: ['users', 'next_after'],
  }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scopes: ['mcp', 'mcp:admin'],
  roles: ['owner', 'admin'],
  async run({ deps }, args) {
    const limit = typeof args.limit === 'number' ? args.limit : 50
    const rows = await listUsers(deps.db, {
      limit: limit + 1,
      afterUsername: typeof args.after === 'string' ? args.after : undefined,
    })
    return result({
      users: rows.slice(0, limit).map(userOutput),
      next_after: rows.length > limit ? rows[limit - 1].username : null,
    })
  },
}

export const TOOLS: readonly GatehouseTool[] = [
  getAuthenticatedUser,
  listOrganizations,
  listAuthorizedApps,
  revokeAuthorizedApp,
  listConnections,
  disconnectServer,
  listUsersTool,
]

const TOOLS_BY_NAME = new Map(TOOLS.map((tool) => [tool.name, tool]))

/** The tools a role may see, computed once per role. */
const TOOLS_BY_ROLE = {
  owner: TOOLS,
  admin: TOOLS.filter((tool) => !tool.roles || tool.roles.includes('admin')),
  member: TOOLS.filter((tool) => !tool.roles),
}

export function toolsForRole(role: 'owner' | 'admin' | 'member'): readonly GatehouseTool[] {
  return TOOLS_BY_ROLE[role]
}

export function findTool(name: string): GatehouseTool | undefined {
  return TOOLS_BY_NAME.get(name)
}
