import type { Principal } from '../auth/index.ts'
import { generateSecret, hashToken } from '../auth/token.ts'
import { nowSeconds } from '../db/index.ts'
import type { McpServerRow } from '../db/schema.ts'
import { ApiError } from '../http/errors.ts'
import { openValue, sealValue } from '../secrets/sealed-column.ts'
import {
  exchangeUpstreamCode,
  revokeUpstreamToken,
  startUpstreamAuthorization,
  upstreamClientOf,
} from './oauth-client.ts'
import { openServerSecrets, type UpstreamDeps } from './server-secrets.ts'
import { callbackUrlOf, findVisibleServer } from './upstream.service.ts'
import { storeConnection, tokenBinding } from './upstream-tokens.ts'
import { claimState, insertState } from './oauth-state.repository.ts'
import { findServerById } from './upstream.repository.ts'
import { deleteUserToken } from './user-token.repository.ts'

/** An authorization must finish within this long after it started (DESIGN.md: 10 minutes). */
const STATE_TTL_SECONDS = 600

/** What the caller sees of a server: the full view for its organization's admins, redacted for members. */
type View = Awaited<ReturnType<typeof findVisibleServer>>['view']

const verifierBinding = (stateHash: string) => ({
  table: 'mcp_oauth_states',
  column: 'code_verifier',
  rowKey: stateHash,
})

function assertConnectable(row: McpServerRow): void {
  if (row.enabled !== 1) throw new ApiError(400, `${row.display_name} is disabled; an admin must enable it first`)
  if (row.auth_type !== 'oauth2')
    throw new ApiError(
      400,
      `${row.display_name} does not use OAuth (its auth_type is ${row.auth_type}); there is nothing to connect`,
    )
  if (!row.oauth2_auth_url || !row.oauth2_token_url || !row.oauth2_client_id)
    throw new ApiError(
      400,
      `${row.display_name} has no authorization URL configured; ask an admin to finish its OAuth settings`,
    )
}

/**
 * Starts the user's authorization at the upstream: a random `state`, single use, bound to the
 * user and the server, kept 10 minutes in the database so any replica can finish the flow; a
 * PKCE S256 verifier kept sealed beside it; `resource` and the configured scopes.
 */
export async function startConnect(
  deps: UpstreamDeps,
  principal: Principal,
  serverId: string,
  returnTo: string | undefined,
): Promise<URL> {
  const { row } = await findVisibleServer(deps, principal, serverId, 'use')
  assertConnectable(row)
  const client = upstreamClientOf(row, (await openServerSecrets(deps.keyring, row)).oauth2ClientSecret)
  const state = generateSecret()
  const stateHash = hashToken(state)
  const { authorizationUrl, codeVerifier } = await startUpstreamAuthorization(client, {
    redirectUrl: callbackUrlOf(deps.config.publicUrl, row.id),
    state,
  })
  const now = nowSeconds()
  await insertState(deps.db, {
    state_hash: stateHash,
    server_id: row.id,
    user_id: principal.user.id,
    code_verifier: await sealValue(deps.keyring, verifierBinding(stateHash), codeVerifier),
    return_to: returnTo ?? null,
    created_at: now,
    expires_at: now + STATE_TTL_SECONDS,
  })
  return authorizationUrl
}

export interface CallbackQuery {
  code?: string
  state?: string
  iss?: string
  error?: string
  error_description?: string
}

/** Text from an upstream shown to the user: printable, bounded, so a page or log cannot be abused with it. */
function quoted(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '').slice(0, 300)
}

/** The upstream's own error code and description, for the detail of a refusal. */
function upstreamSaid(query: CallbackQuery): string {
  const description = query.error_description ? `: ${quoted(query.error_description)}` : ''
  return `Its authorization server answered ${quoted(query.error ?? '')}${description}.`
}

/** Longest code or state a callback may carry; ours are far shorter, an upstream's code rarely nears it. */
const MAX_CALLBACK_VALUE = 4096

/**
 * Finishes the authorization: the state must be one this user started for this server and not
 * expired or used; `iss` must name the server's issuer (RFC 9207) when it sends one or must; the
 * code is exchanged with the verifier and `resource`, and the tokens are stored sealed. Nothing
 * is stored on any failure, and each refusal says in plain words what happened, for the page
 * the user lands on. Returns where the user asked to go afterwards.
 */
export async function finishConnect(
  deps: UpstreamDeps,
  principal: Principal,
  serverId: string,
  query: CallbackQuery,
): Promise<{ returnTo?: string; server: McpServerRow }> {
  const tooLong = [query.code, query.state].some((value) => (value?.length ?? 0) > MAX_CALLBACK_VALUE)
  const state = query.state && !tooLong ? await claimState(deps.db, hashToken(query.state)) : undefined
  const { row } = await findVisibleServer(deps, principal, serverId, 'use')
  const refuse = (what: string, detail = 'Start connecting again.') =>
    new ApiError(400, `${row.display_name} was not connected: ${what}`, detail)
  if (query.error === 'access_denied')
    throw refuse(
      'access was denied at its sign-in page',
      `${upstreamSaid(query)} Connect again and allow access to use its tools.`,
    )
  if (query.error) throw refuse('its sign-in page reported a problem', upstreamSaid(query))
  if (tooLong) throw refuse(`the callback carries a code or state over ${MAX_CALLBACK_VALUE} characters`)
  if (!query.code) throw refuse('its sign-in page sent no authorization code back')
  if (!query.state) throw refuse('its sign-in page sent no state back')
  if (!state) throw refuse('this sign-in was already used, or was not started from this Gatehouse')
  if (state.user_id !== principal.user.id)
    throw refuse(
      `this sign-in was started by another Gatehouse user, not by ${principal.user.username}`,
      'Sign in to Gatehouse as the user who started it, or connect again as yourself.',
    )
  if (state.server_id !== serverId) throw refuse('this sign-in was started for another MCP server')
  if (state.expires_at <= nowSeconds()) throw refuse(`the sign-in took longer than ${STATE_TTL_SECONDS / 60} minutes`)
  assertConnectable(row)
  const client = upstreamClientOf(row, (await openServerSecrets(deps.keyring, row)).oauth2ClientSecret)
  // RFC 9207 needs the issuer; a manually configured server has none stored, so iss is not checked there.
  const issuerKnown = row.oauth2_issuer !== ''
  if (issuerKnown && (query.iss !== undefined || row.oauth2_iss_required === 1) && query.iss !== client.issuer)
    throw refuse('the answer names another authorization server (iss) than the one it uses')
  const codeVerifier = await openValue(deps.keyring, verifierBinding(state.state_hash), state.code_verifier)
  let tokens: Awaited<ReturnType<typeof exchangeUpstreamCode>>
  try {
    tokens = await exchangeUpstreamCode(client, deps.outboundFetch, {
      code: query.code,
      codeVerifier,
      redirectUri: callbackUrlOf(deps.config.publicUrl, row.id),
      ...(query.iss !== undefined && issuerKnown ? { iss: query.iss } : {}),
    })
  } catch (error) {
    deps.logger.warn('upstream code exchange failed', {
      server_id: row.id,
      user_id: principal.user.id,
      error: error instanceof Error ? error.name : 'unknown',
    })
    throw new ApiError(
      502,
      `${row.display_name} was not connected: its authorization server did not issue tokens for this sign-in`,
      'Try connecting again; if it keeps failing, tell your Gatehouse admin.',
    )
  }
  await storeConnection(deps, { serverId: row.id, userId: principal.user.id }, tokens, row.oauth2_scopes)
  deps.logger.info('upstream connected', { server_id: row.id, user_id: principal.user.id })
  deps.events.publish({ kind: 'connection_changed', serverId: row.id, userId: principal.user.id })
  return { returnTo: state.return_to ?? undefined, server: row }
}

/**
 * Forgets the caller's tokens for a server, then revokes them upstream when its authorization
 * server has a revocation endpoint (best effort, after the answer). Idempotent.
 */
export async function disconnect(deps: UpstreamDeps, principal: Principal, serverId: string): Promise<void> {
  const deleted = await deleteUserToken(deps.db, serverId, principal.user.id)
  if (!deleted) return
  deps.events.publish({ kind: 'connection_changed', serverId, userId: principal.user.id })
  deps.logger.info('upstream disconnected', { server_id: serverId, user_id: principal.user.id })
  void revokeDeleted(deps, serverId, deleted).catch((error) =>
    deps.logger.warn('upstream token revocation failed', {
      server_id: serverId,
      error: error instanceof Error ? error.message : String(error),
    }),
  )
}

async function revokeDeleted(
  deps: UpstreamDeps,
  serverId: string,
  token: NonNullable<Awaited<ReturnType<typeof deleteUserToken>>>,
): Promise<void> {
  const server = await findServerById(deps.db, serverId)
  if (!server?.oauth2_revocation_url) return
  const client = upstreamClientOf(server, (await openServerSecrets(deps.keyring, server)).oauth2ClientSecret)
  const binding = (column: string) => tokenBinding(token, column)
  if (token.refresh_token)
    await revokeUpstreamToken(
      client,
      deps.outboundFetch,
      await openValue(deps.keyring, binding('refresh_token'), token.refresh_token),
      'refresh_token',
    )
  await revokeUpstreamToken(
    client,
    deps.outboundFetch,
    await openValue(deps.keyring, binding('access_token'), token.access_token),
    'access_token',
  )
}

/**
 * Opts the user in or out of a server in `/mcp`; `force_on` servers stay in, whatever is asked.
 * Returns the server with the view the user is entitled to, as `GET /mcp/servers/{id}` shows it.
 */
export async function setSelection(
  deps: UpstreamDeps,
  principal: Principal,
  serverId: string,
  selected: boolean,
): Promise<{ row: McpServerRow; view: View }> {
  const { row, view } = await findVisibleServer(deps, principal, serverId, 'use')
  if (row.availability === 'force_on') return { row, view }
  await deps.db
    .insertInto('mcp_server_selections')
    .values({ server_id: row.id, user_id: principal.user.id, selected: selected ? 1 : 0, updated_at: nowSeconds() })
    .onConflict((oc) =>
      oc.columns(['server_id', 'user_id']).doUpdateSet({ selected: selected ? 1 : 0, updated_at: nowSeconds() }),
    )
    .execute()
  deps.events.publish({ kind: 'connection_changed', serverId: row.id, userId: principal.user.id })
  return { row, view }
}
