import type { OAuthTokens } from '@modelcontextprotocol/client'
import { nowSeconds } from '../db/index.ts'
import { refreshUnderLease, shareInFlight } from '../db/refresh-lease.ts'
import type { McpServerRow, McpServerUserTokenRow } from '../db/schema.ts'
import { openValue, sealValue } from '../secrets/sealed-column.ts'
import { isInvalidGrant, refreshUpstreamTokens, upstreamClientOf } from './oauth-client.ts'
import { openServerSecrets, type UpstreamDeps } from './server-secrets.ts'
import {
  claimRefreshLease,
  findUserToken,
  markNeedsReauth,
  updateUnderLease,
  upsertUserToken,
} from './user-token.repository.ts'

/**
 * The one place a user's upstream OAuth tokens are read. An access token close to expiry (the
 * configured skew) is refreshed first, and again when an upstream answers 401. One refresh runs
 * at a time per (server, user): within a process callers share one promise, across processes a
 * lease taken by a conditional UPDATE decides and the others wait for its result. The refresh
 * never runs on the caller's abort signal, so a rotated refresh token is stored even when the
 * request that needed it was cancelled. `invalid_grant` marks the connection `needs_reauth` and
 * nothing refreshes it again until the user reconnects; network errors and 5xx are transient.
 */
export class UpstreamTokenError extends Error {
  constructor(
    readonly reason: 'not_connected' | 'needs_reauth' | 'unavailable',
    message: string,
  ) {
    super(message)
    this.name = 'UpstreamTokenError'
  }
}

/** How long a lease holds; a process that died mid-refresh delays the next one by at most this. */
const LEASE_SECONDS = 30
/** How long a caller waits for another process's refresh before giving up for now. */
const WAIT_FOR_OTHERS_MS = 15_000

export const tokenBinding = (row: Pick<McpServerUserTokenRow, 'server_id' | 'user_id'>, column: string) => ({
  table: 'mcp_server_user_tokens',
  column,
  rowKey: `${row.server_id}/${row.user_id}`,
})

const inFlight = new Map<string, Promise<McpServerUserTokenRow>>()

/** Whether the access token is good for at least `skew` more seconds (no expiry: until an upstream says no). */
export function isFresh(token: Pick<McpServerUserTokenRow, 'expires_at'>, now: number, skewSeconds: number): boolean {
  return token.expires_at === null || token.expires_at - skewSeconds > now
}

/** Seals and stores the tokens of a finished authorization, replacing any earlier connection. */
export async function storeConnection(
  deps: UpstreamDeps,
  key: { serverId: string; userId: string },
  tokens: OAuthTokens,
  requestedScopes: string,
): Promise<void> {
  const now = nowSeconds()
  const binding = { server_id: key.serverId, user_id: key.userId }
  await upsertUserToken(deps.db, {
    ...binding,
    access_token: await sealValue(deps.keyring, tokenBinding(binding, 'access_token'), tokens.access_token),
    refresh_token: tokens.refresh_token
      ? await sealValue(deps.keyring, tokenBinding(binding, 'refresh_token'), tokens.refresh_token)
      : null,
    token_type: tokens.token_type || 'Bearer',
    expires_at: tokens.expires_in === undefined ? null : now + Number(tokens.expires_in),
    scopes: tokens.scope ?? requestedScopes,
    needs_reauth: 0,
    created_at: now,
    updated_at: now,
  })
}

export async function openAccessToken(deps: UpstreamDeps, token: McpServerUserTokenRow): Promise<string> {
  return openValue(deps.keyring, tokenBinding(token, 'access_token'), token.access_token)
}

/** The user's access token for an oauth2 server, refreshed first when it is about to expire. */
export async function upstreamAccessToken(deps: UpstreamDeps, server: McpServerRow, userId: string): Promise<string> {
  const token = await findUserToken(deps.db, server.id, userId)
  if (!token) throw new UpstreamTokenError('not_connected', `you have not connected ${server.display_name} yet`)
  if (token.needs_reauth === 1)
    throw new UpstreamTokenError('needs_reauth', `reconnect ${server.display_name}: its sign-in has ended`)
  if (isFresh(token, nowSeconds(), deps.config.upstreamRefreshSkewSeconds)) return openAccessToken(deps, token)
  return openAccessToken(deps, await refreshShared(deps, server, token))
}

/**
 * After an upstream answered 401 to `rejected`: a refreshed token if there is a new one (someone
 * else refreshed meanwhile, or this refresh succeeds), undefined when refreshing cannot help.
 */
export async function refreshAfterUnauthorized(
  deps: UpstreamDeps,
  server: McpServerRow,
  userId: string,
  rejected: string,
): Promise<string | undefined> {
  const token = await findUserToken(deps.db, server.id, userId)
  if (!token || token.needs_reauth === 1) return undefined
  const current = await openAccessToken(deps, token)
  if (current !== rejected) return current
  try {
    return await openAccessToken(deps, await refreshShared(deps, server, token))
  } catch (error) {
    if (!(error instanceof UpstreamTokenError)) throw error
    // The upstream refused a token that cannot be renewed: the user must reconnect, and their
    // `/mcp` shows the connect tool again.
    if (error.reason === 'needs_reauth') {
      await markNeedsReauth(deps.db, token)
      deps.events.publish({ kind: 'connection_changed', serverId: server.id, userId })
    }
    return undefined
  }
}

/**
 * Sends one request to an upstream with the user's credential headers. When an oauth2 upstream
 * answers 401 to a token that still looked valid (revoked, rotated elsewhere), the token is
 * refreshed once and the request sent again; when no renewed token can be had, this throws
 * `UpstreamTokenError('needs_reauth')`. The passthrough and the aggregated `/mcp` both send this way.
 */
export async function sendWithRefresh(
  deps: UpstreamDeps,
  server: McpServerRow,
  userId: string,
  credentials: Record<string, string>,
  send: (credentials: Record<string, string>) => Promise<Response>,
): Promise<Response> {
  const response = await send(credentials)
  if (response.status !== 401 || server.auth_type !== 'oauth2') return response
  await response.body?.cancel().catch(() => {})
  const rejected = credentials.authorization?.replace(/^Bearer /, '') ?? ''
  const renewed = await refreshAfterUnauthorized(deps, server, userId, rejected)
  if (!renewed)
    throw new UpstreamTokenError('needs_reauth', `reconnect ${server.display_name}: it refused your sign-in`)
  return send({ ...credentials, authorization: `Bearer ${renewed}` })
}

/** One refresh per (server, user): shared in this process, a lease across processes. */
function refreshShared(deps: UpstreamDeps, server: McpServerRow, token: McpServerUserTokenRow) {
  return shareInFlight(inFlight, `${server.id}/${token.user_id}`, async () => {
    const key = { serverId: server.id, userId: token.user_id }
    const outcome = await refreshUnderLease({
      row: token,
      claim: (row, lease) => claimRefreshLease(deps.db, key, { ...lease, accessToken: row.access_token }),
      reread: () => findUserToken(deps.db, key.serverId, key.userId),
      isNewer: (latest, row) => latest.access_token !== row.access_token,
      check: (row) => {
        if (row.needs_reauth === 1)
          throw new UpstreamTokenError('needs_reauth', `reconnect ${server.display_name}: its sign-in has ended`)
        if (!row.refresh_token)
          throw new UpstreamTokenError('needs_reauth', `reconnect ${server.display_name}: its sign-in has expired`)
      },
      refresh: (row, leaseId) => refreshTokensUnderLease(deps, server, row, leaseId),
      leaseSeconds: LEASE_SECONDS,
      waitMs: WAIT_FOR_OTHERS_MS,
    })
    if (outcome.kind === 'refreshed') return outcome.value
    if (outcome.kind === 'stored') return outcome.row
    if (outcome.kind === 'gone')
      throw new UpstreamTokenError('not_connected', `you have not connected ${server.display_name} yet`)
    throw new UpstreamTokenError('unavailable', `${server.display_name}'s sign-in is being renewed; try again`)
  })
}

async function refreshTokensUnderLease(
  deps: UpstreamDeps,
  server: McpServerRow,
  token: McpServerUserTokenRow,
  leaseId: string,
): Promise<McpServerUserTokenRow> {
  const key = { serverId: server.id, userId: token.user_id }
  const client = upstreamClientOf(server, (await openServerSecrets(deps.keyring, server)).oauth2ClientSecret)
  const refreshToken = await openValue(deps.keyring, tokenBinding(token, 'refresh_token'), token.refresh_token!)
  let tokens: OAuthTokens
  try {
    tokens = await refreshUpstreamTokens(client, deps.outboundFetch, refreshToken)
  } catch (error) {
    const now = nowSeconds()
    if (await isInvalidGrant(error)) {
      await updateUnderLease(deps.db, key, leaseId, { needs_reauth: 1, updated_at: now })
      deps.events.publish({ kind: 'connection_changed', ...key })
      deps.logger.info('upstream refresh token refused; the user must reconnect', {
        server_id: server.id,
        user_id: token.user_id,
      })
      throw new UpstreamTokenError('needs_reauth', `reconnect ${server.display_name}: its sign-in has ended`)
    }
    await updateUnderLease(deps.db, key, leaseId, {})
    deps.logger.warn('upstream token refresh failed', {
      server_id: server.id,
      user_id: token.user_id,
      error: error instanceof Error ? error.message : String(error),
    })
    throw new UpstreamTokenError('unavailable', `${server.display_name}'s sign-in could not be renewed right now`)
  }
  const now = nowSeconds()
  const update = {
    access_token: await sealValue(deps.keyring, tokenBinding(token, 'access_token'), tokens.access_token),
    // The SDK returns the old refresh token when the server rotates none.
    refresh_token: tokens.refresh_token
      ? await sealValue(deps.keyring, tokenBinding(token, 'refresh_token'), tokens.refresh_token)
      : token.refresh_token,
    token_type: tokens.token_type || token.token_type,
    expires_at: tokens.expires_in === undefined ? null : now + Number(tokens.expires_in),
    scopes: tokens.scope ?? token.scopes,
    updated_at: now,
  }
  if (!(await updateUnderLease(deps.db, key, leaseId, update)))
    throw new UpstreamTokenError('not_connected', `${server.display_name} was disconnected meanwhile`)
  return { ...token, ...update, refresh_lease_id: null, refresh_lease_until: null }
}

/**
 * Refreshes, in parallel and within `timeoutMs`, the expired tokens among `tokens`, so a list of
 * servers shows their real status. A refresh that does not finish in time goes on in the
 * background and its server is reported as it stands.
 */
export async function refreshExpiredForListing(
  deps: UpstreamDeps,
  servers: Map<string, McpServerRow>,
  tokens: McpServerUserTokenRow[],
  timeoutMs = 3000,
): Promise<McpServerUserTokenRow[]> {
  const now = nowSeconds()
  const isDue = (token: McpServerUserTokenRow) =>
    servers.get(token.server_id)?.auth_type === 'oauth2' &&
    token.needs_reauth === 0 &&
    token.refresh_token !== null &&
    token.expires_at !== null &&
    token.expires_at <= now
  // The usual case, nothing expired: no timer, no promises.
  if (!tokens.some(isDue)) return tokens
  const refreshed = tokens.map(async (token) => {
    if (!isDue(token)) return token
    return refreshShared(deps, servers.get(token.server_id)!, token).catch(() =>
      findUserToken(deps.db, token.server_id, token.user_id).then((t) => t ?? token),
    )
  })
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(resolve, timeoutMs, 'timeout')
  })
  try {
    return await Promise.all(
      refreshed.map((pending, index) =>
        Promise.race([pending, timeout]).then((result) => (result === 'timeout' ? tokens[index] : result)),
      ),
    )
  } finally {
    clearTimeout(timer)
  }
}
