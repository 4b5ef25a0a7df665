import { Elysia, t } from 'elysia'
import { authPlugin } from '../auth/index.ts'
import { displayPrefix, generateToken, hashToken } from '../auth/token.ts'
import { nowSeconds } from '../db/index.ts'
import type { ApiTokenRow } from '../db/schema.ts'
import type { AppDeps } from '../deps.ts'
import { ErrorModel } from '../http/errors.ts'
import { toIsoTime, toIsoTimeOrNull } from '../http/time.ts'
import { deleteApiTokenOfUser, insertApiToken, listApiTokensOfUser } from './api-token.repository.ts'

const MAX_LIFETIME_SECONDS = 5 * 365 * 86400

const apiToken = t.Object({
  id: t.String(),
  name: t.String(),
  prefix: t.String({ description: 'The start of the token, to tell tokens apart' }),
  created_at: t.String({ format: 'date-time' }),
  expires_at: t.Nullable(t.String({ format: 'date-time' })),
  last_used_at: t.Nullable(t.String({ format: 'date-time' })),
})

export const TokensModel = {
  ...ErrorModel,
  'tokens.token': apiToken,
  'tokens.list': t.Array(apiToken),
  'tokens.create': t.Object({
    name: t.String({ minLength: 1, maxLength: 64 }),
    expires_in_seconds: t.Optional(
      t.Integer({
        minimum: 60,
        maximum: MAX_LIFETIME_SECONDS,
        description: 'Lifetime; omit for a token that does not expire',
      }),
    ),
  }),
  'tokens.created': t.Composite([
    apiToken,
    t.Object({ token: t.String({ description: 'Shown once; only its hash is stored' }) }),
  ]),
}

function rowToApiToken(row: ApiTokenRow) {
  return {
    id: row.id,
    name: row.name,
    prefix: row.token_prefix,
    created_at: toIsoTime(row.created_at),
    expires_at: toIsoTimeOrNull(row.expires_at),
    last_used_at: toIsoTimeOrNull(row.last_used_at),
  }
}

/** Personal API tokens of the signed-in user, under /api/v1/tokens. */
export const tokensModule = (deps: AppDeps) =>
  new Elysia({ name: 'tokens', prefix: '/api/v1/tokens', detail: { tags: ['tokens'] } })
    .use(authPlugin(deps))
    .model(TokensModel)
    .get('/', async ({ principal }) => (await listApiTokensOfUser(deps.db, principal.user.id)).map(rowToApiToken), {
      auth: true,
      response: { 200: 'tokens.list', 401: 'api.error' },
      detail: { summary: 'List your API tokens' },
    })
    .post(
      '/',
      async ({ body, principal, status }) => {
        const token = generateToken('apiToken')
        const now = nowSeconds()
        const row: ApiTokenRow = {
          id: crypto.randomUUID(),
          user_id: principal.user.id,
          name: body.name,
          token_prefix: displayPrefix(token),
          token_hash: hashToken(token),
          created_at: now,
          expires_at: body.expires_in_seconds ? now + body.expires_in_seconds : null,
          last_used_at: null,
        }
        await insertApiToken(deps.db, row)
        return status(201, { ...rowToApiToken(row), token })
      },
      {
        auth: { role: true, firstParty: true },
        body: 'tokens.create',
        response: { 201: 'tokens.created', 401: 'api.error', 403: 'api.error' },
        detail: { summary: 'Create an API token; the token is in this response only' },
      },
    )
    .delete(
      '/:id',
      async ({ params, principal, status, set }) => {
        if (!(await deleteApiTokenOfUser(deps.db, principal.user.id, params.id)))
          return status(404, { message: 'API token not found' })
        deps.events.publish({ kind: 'credentials_revoked' })
        set.status = 204
      },
      {
        auth: true,
        params: t.Object({ id: t.String({ maxLength: 64 }) }),
        response: { 204: t.Void(), 404: 'api.error' },
        detail: { summary: 'Revoke an API token; it stops working at once' },
      },
    )
