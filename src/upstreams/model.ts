import { t, type UnwrapSchema } from 'elysia'
import { ErrorModel } from '../http/errors.ts'
import {
  CUSTOM_HEADERS_MAX_COUNT,
  DESCRIPTION_MAX_LENGTH,
  DISPLAY_NAME_MAX_LENGTH,
  HEADER_NAME_MAX_LENGTH,
  HEADER_VALUE_MAX_LENGTH,
  ID_MAX_LENGTH,
  OAUTH2_CLIENT_ID_MAX_LENGTH,
  OAUTH2_CLIENT_SECRET_MAX_LENGTH,
  OAUTH2_SCOPES_MAX_LENGTH,
  SLUG_MAX_LENGTH,
  TOOL_LIST_MAX_ITEMS,
  TOOL_NAME_MAX_LENGTH,
  URL_MAX_LENGTH,
} from './limits.ts'

const timestamp = t.String({ format: 'date-time' })

const transport = t.Union([t.Literal('streamable_http'), t.Literal('sse')])
const authType = t.Union([
  t.Literal('none'),
  t.Literal('oauth2'),
  t.Literal('api_key'),
  t.Literal('custom_headers'),
  t.Literal('user_oidc'),
])
const availability = t.Union([t.Literal('force_on'), t.Literal('default_on'), t.Literal('default_off')])
const toolList = t.Array(t.String({ maxLength: TOOL_NAME_MAX_LENGTH }), {
  maxItems: TOOL_LIST_MAX_ITEMS,
  description: 'Tool names; `*` matches any run of characters',
})

const connection = t.Object({
  status: t.Union([
    t.Literal('connected'),
    t.Literal('needs_reauth'),
    t.Literal('not_connected'),
    t.Literal('not_required'),
  ]),
  expires_at: t.Nullable(timestamp),
  renews_automatically: t.Boolean({
    description: 'Gatehouse holds a refresh token and renews the access token itself, so expires_at needs no action',
  }),
  scopes: t.Array(t.String()),
})

/**
 * One upstream MCP server. Secrets are write-only: responses say only whether one is set
 * (`has_*`). The redacted view members get blanks the connection details.
 */
const server = t.Object({
  id: t.String(),
  organization_id: t.String(),
  display_name: t.String(),
  slug: t.String(),
  description: t.String(),
  icon_url: t.String(),
  transport: t.Union([transport, t.Literal('')]),
  url: t.String(),
  auth_type: authType,
  oauth2_client_id: t.String(),
  oauth2_auth_url: t.String(),
  oauth2_token_url: t.String(),
  oauth2_scopes: t.String(),
  oauth2_registration: t.Union([t.Literal('manual'), t.Literal('dynamic'), t.Literal('metadata_document')]),
  api_key_header: t.String(),
  has_oauth2_secret: t.Boolean(),
  has_api_key: t.Boolean(),
  has_custom_headers: t.Boolean(),
  tool_allow_list: t.Array(t.String()),
  tool_deny_list: t.Array(t.String()),
  availability,
  enabled: t.Boolean(),
  forward_identity_headers: t.Boolean(),
  created_by: t.Nullable(t.String()),
  updated_by: t.Nullable(t.String()),
  created_at: timestamp,
  updated_at: timestamp,
  last_error: t.Nullable(
    t.String({
      description:
        'Admins only: why the upstream last failed to answer a list (too large, too many entries, an error); null once it answers again',
    }),
  ),
  last_error_at: t.Nullable(timestamp),
  auth_connected: t.Boolean({
    description: 'oauth2: the caller holds a live or refreshable token; every other type: true',
  }),
  connection,
  selected: t.Boolean({ description: 'Whether the server is part of the caller’s /mcp' }),
})

const headerMap = t.Record(t.String(), t.String({ maxLength: HEADER_VALUE_MAX_LENGTH }), {
  maxProperties: CUSTOM_HEADERS_MAX_COUNT,
  // Checked with the other header name rules (validation.ts); stated here for the documentation.
  propertyNames: { maxLength: HEADER_NAME_MAX_LENGTH },
  description: 'Header name to value; write-only, stored encrypted',
})

const writable = {
  display_name: t.String({ minLength: 1, maxLength: DISPLAY_NAME_MAX_LENGTH }),
  slug: t.String({
    minLength: 1,
    maxLength: SLUG_MAX_LENGTH,
    description: `Lower-case letters, digits and \`-\`, at most ${SLUG_MAX_LENGTH}; names the server in tool names and URLs`,
  }),
  description: t.String({ maxLength: DESCRIPTION_MAX_LENGTH }),
  icon_url: t.String({ maxLength: URL_MAX_LENGTH }),
  transport,
  url: t.String({ minLength: 1, maxLength: URL_MAX_LENGTH }),
  auth_type: authType,
  oauth2_client_id: t.String({ maxLength: OAUTH2_CLIENT_ID_MAX_LENGTH }),
  oauth2_client_secret: t.String({
    maxLength: OAUTH2_CLIENT_SECRET_MAX_LENGTH,
    description: 'Write-only, stored encrypted',
  }),
  oauth2_auth_url: t.String({ maxLength: URL_MAX_LENGTH }),
  oauth2_token_url: t.String({ maxLength: URL_MAX_LENGTH }),
  oauth2_scopes: t.String({ maxLength: OAUTH2_SCOPES_MAX_LENGTH, description: 'Space-separated' }),
  api_key_header: t.String({ maxLength: HEADER_NAME_MAX_LENGTH }),
  api_key_value: t.String({ maxLength: HEADER_VALUE_MAX_LENGTH, description: 'Write-only, stored encrypted' }),
  custom_headers: headerMap,
  tool_allow_list: toolList,
  tool_deny_list: toolList,
  availability,
  enabled: t.Boolean(),
  forward_identity_headers: t.Boolean(),
}

const { display_name, slug, url, ...rest } = writable

/** Request bodies name only known fields: a misspelt one is refused, not silently dropped. */
const exact = { additionalProperties: false } as const

export const UpstreamsModel = {
  ...ErrorModel,
  'upstreams.server': server,
  'upstreams.list': t.Array(server),
  'upstreams.create': t.Composite(
    [
      t.Object({
        organization_id: t.Optional(
          t.String({ maxLength: ID_MAX_LENGTH, description: 'Default: the default organization' }),
        ),
        display_name,
        slug,
        url,
      }),
      t.Partial(t.Object(rest)),
    ],
    exact,
  ),
  'upstreams.update': t.Partial(t.Object(writable), exact),
  'upstreams.selection': t.Object({ selected: t.Boolean() }, exact),
  'upstreams.tools': t.Object({
    server_id: t.String(),
    slug: t.String(),
    tool_allow_list: t.Array(t.String()),
    tool_deny_list: t.Array(t.String()),
    tools: t.Array(
      t.Object({
        name: t.String({ description: 'The name the upstream gives it' }),
        mcp_name: t.String({ description: 'Its name in /mcp: `<slug>__<name>`, cut to 64 characters with a hash' }),
        allowed: t.Boolean({ description: 'Whether the allow and deny lists let it into /mcp' }),
        title: t.Nullable(t.String()),
        description: t.Nullable(t.String()),
      }),
    ),
  }),
  'upstreams.clientMetadata': t.Object({
    client_id: t.String(),
    client_name: t.String(),
    client_uri: t.String(),
    redirect_uris: t.Array(t.String()),
    grant_types: t.Array(t.String()),
    response_types: t.Array(t.String()),
    token_endpoint_auth_method: t.Literal('none'),
    application_type: t.Literal('web'),
  }),
}

export type UpstreamServerDto = UnwrapSchema<(typeof UpstreamsModel)['upstreams.server']>
export type CreateServerInput = UnwrapSchema<(typeof UpstreamsModel)['upstreams.create']>
export type UpdateServerInput = UnwrapSchema<(typeof UpstreamsModel)['upstreams.update']>
