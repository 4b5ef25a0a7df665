import { t } from 'elysia'
import { ErrorModel } from '../http/errors.ts'

const timestamp = t.String({ format: 'date-time' })

const app = t.Object({
  id: t.String({ description: 'The client_id' }),
  organization_id: t.String(),
  name: t.String(),
  kind: t.Union([t.Literal('managed'), t.Literal('dynamic'), t.Literal('metadata_document')]),
  redirect_uris: t.Array(t.String()),
  grant_types: t.Array(t.String()),
  token_endpoint_auth_method: t.Union([
    t.Literal('none'),
    t.Literal('client_secret_basic'),
    t.Literal('client_secret_post'),
  ]),
  scope: t.String({ description: 'Scopes the app may ask for; empty means any' }),
  client_uri: t.Nullable(t.String()),
  logo_uri: t.Nullable(t.String()),
  created_at: timestamp,
  updated_at: timestamp,
  last_used_at: t.Nullable(timestamp),
})

const secret = t.Object({
  id: t.String(),
  prefix: t.String({ description: 'The start of the secret, to tell secrets apart' }),
  created_at: timestamp,
  last_used_at: t.Nullable(timestamp),
})

const grant = t.Object({
  client_id: t.String(),
  client_name: t.String(),
  user_id: t.String(),
  username: t.String(),
  scope: t.String(),
  created_at: timestamp,
})

const uris = t.Array(t.String({ maxLength: 2000 }), { minItems: 1, maxItems: 20 })

export const OAuthModel = {
  ...ErrorModel,
  'oauth.app': app,
  'oauth.apps': t.Array(app),
  'oauth.createApp': t.Object({
    name: t.String({ minLength: 1, maxLength: 200 }),
    redirect_uris: uris,
    confidential: t.Optional(t.Boolean({ description: 'Confidential apps authenticate with a secret (default true)' })),
    scope: t.Optional(t.String({ maxLength: 200 })),
    refresh_tokens: t.Optional(t.Boolean({ description: 'Issue refresh tokens (default true)' })),
    client_uri: t.Optional(t.String({ maxLength: 2000 })),
    logo_uri: t.Optional(t.String({ maxLength: 2000 })),
  }),
  'oauth.updateApp': t.Object({
    name: t.Optional(t.String({ minLength: 1, maxLength: 200 })),
    redirect_uris: t.Optional(uris),
    scope: t.Optional(t.String({ maxLength: 200 })),
    client_uri: t.Optional(t.Nullable(t.String({ maxLength: 2000 }))),
    logo_uri: t.Optional(t.Nullable(t.String({ maxLength: 2000 }))),
  }),
  'oauth.secret': secret,
  'oauth.secrets': t.Array(secret),
  'oauth.createdSecret': t.Composite([
    secret,
    t.Object({ client_secret: t.String({ description: 'Shown once; only its hash is stored' }) }),
  ]),
  'oauth.grant': grant,
  'oauth.grants': t.Array(grant),
  'oauth.settings': t.Object({ dynamic_registration: t.Boolean({ description: 'Whether /oauth2/register is open' }) }),
}
