import type { Kysely } from 'kysely'
import type { EventBus } from '../events/bus.ts'
import { hashToken } from '../auth/token.ts'
import type { Config } from '../config.ts'
import { nowSeconds } from '../db/index.ts'
import type { Database, OAuthClientRow } from '../db/schema.ts'
import { findUserById } from '../users/user.repository.ts'
import { deleteAccessToken, findAccessToken, findGrant, findRefreshToken, revokeGrant } from './grant.repository.ts'

/**
 * RFC 7009: revokes an access token (it stops working at once) or a refresh token (the whole
 * grant ends). Tokens of other clients and unknown tokens are ignored: the answer is the same 200
 * either way, so the endpoint cannot be used to probe for tokens.
 */
export async function revokeToken(
  { db, events }: { db: Kysely<Database>; events: EventBus },
  client: OAuthClientRow,
  token: string,
): Promise<void> {
  const tokenHash = hashToken(token)
  const access = await findAccessToken(db, tokenHash)
  if (access) {
    if (access.client_id !== client.id) return
    await deleteAccessToken(db, tokenHash)
    events.publish({ kind: 'credentials_revoked' })
    return
  }
  const refresh = await findRefreshToken(db, tokenHash)
  const grant = refresh ? await findGrant(db, refresh.grant_id) : undefined
  if (!grant || grant.client_id !== client.id) return
  await db.transaction().execute((trx) => revokeGrant(trx, grant.id, nowSeconds()))
  events.publish({ kind: 'credentials_revoked' })
}

/**
 * RFC 7662 introspection for a confidential client, about its own tokens; anything else, or a
 * dead token, is `{ active: false }`.
 */
export async function introspectToken(db: Kysely<Database>, config: Config, client: OAuthClientRow, token: string) {
  const inactive = { active: false as const }
  const now = nowSeconds()
  const tokenHash = hashToken(token)
  const access = await findAccessToken(db, tokenHash)
  const refresh = access ? undefined : await findRefreshToken(db, tokenHash)
  const grant = await findGrant(db, access?.grant_id ?? refresh?.grant_id ?? '')
  if (!grant || grant.revoked_at !== null || grant.client_id !== client.id) return inactive
  const expiresAt = access?.expires_at ?? refresh!.expires_at
  if (expiresAt <= now || (refresh && (refresh.used_at !== null || refresh.superseded_at !== null))) return inactive
  const user = await findUserById(db, grant.user_id)
  if (!user || user.status !== 'active') return inactive
  return {
    active: true as const,
    scope: access?.scope ?? grant.scope,
    client_id: client.id,
    username: user.username,
    sub: user.id,
    aud: grant.resource,
    iss: config.publicUrl,
    exp: expiresAt,
    iat: access?.created_at ?? refresh!.created_at,
    token_type: access ? 'Bearer' : 'refresh_token',
  }
}
