import { t, type UnwrapSchema } from 'elysia'
import { apiErrorSchema } from '../http/errors.ts'

const timestamp = t.String({ format: 'date-time' })

const user = t.Object({
  id: t.String(),
  email: t.String(),
  username: t.String(),
  display_name: t.String(),
  status: t.Union([t.Literal('active'), t.Literal('suspended')]),
  role: t.Union([t.Literal('owner'), t.Literal('admin'), t.Literal('member')]),
  login_type: t.Union([t.Literal('password'), t.Literal('none'), t.Literal('oidc'), t.Literal('github')], {
    description: 'How the user signs in: the identity provider last used, else password (or none)',
  }),
  created_at: timestamp,
  last_seen_at: t.Nullable(timestamp),
})

export const usernameSchema = t.String({
  minLength: 1,
  maxLength: 32,
  pattern: '^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,30}[A-Za-z0-9])?$',
  description: 'Letters, digits, `.`, `_` and `-`; stored lower-case',
})
export const passwordSchema = t.String({ minLength: 8, maxLength: 256 })
const displayName = t.String({ maxLength: 128 })

export const UsersModel = {
  'users.user': user,
  'users.me': t.Composite([user, t.Object({ organization_ids: t.Array(t.String()) })]),
  'users.list': t.Object({ users: t.Array(user), next_after: t.Nullable(t.String()) }),
  'users.createFirst': t.Object({
    email: t.String({ format: 'email', maxLength: 254 }),
    username: usernameSchema,
    password: passwordSchema,
    display_name: t.Optional(displayName),
  }),
  'users.create': t.Object({
    email: t.String({ format: 'email', maxLength: 254 }),
    username: usernameSchema,
    password: t.Optional(passwordSchema),
    display_name: t.Optional(displayName),
    role: t.Optional(t.Union([t.Literal('admin'), t.Literal('member')])),
  }),
  'users.setRole': t.Object({ role: t.Union([t.Literal('admin'), t.Literal('member')]) }),
  'users.error': apiErrorSchema,
  'users.links': t.Array(
    t.Object({
      provider: t.Union([t.Literal('oidc'), t.Literal('github')]),
      subject: t.String({ description: "The provider's ID for the user" }),
      email: t.String(),
      expires_at: t.Nullable(timestamp),
      has_refresh_token: t.Boolean(),
      claims: t.Record(t.String(), t.Unknown(), { description: 'ID-token claims (OIDC) or the profile (GitHub)' }),
      created_at: timestamp,
      updated_at: timestamp,
    }),
  ),
}

export type UsersModel = { [K in keyof typeof UsersModel]: UnwrapSchema<(typeof UsersModel)[K]> }
export type UserDto = UsersModel['users.user']
