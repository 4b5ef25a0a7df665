import { Elysia } from 'elysia'
import type { AppDeps } from '../deps.ts'
import { authenticateClient, isPublicClient } from './client.service.ts'
import { OAuthError, invalidClient } from './errors.ts'
import { formOf, handleOAuth, oauthJson, preflight } from './http.ts'
import { introspectToken, revokeToken } from './revocation.service.ts'
import { exchangeAuthorizationCode, refreshTokens } from './token.service.ts'

/** /oauth2/token (RFC 6749 §3.2), /oauth2/revoke (RFC 7009), /oauth2/introspect (RFC 7662). */
export const tokenRoutes = (deps: AppDeps) =>
  new Elysia({ name: 'oauth.token', detail: { tags: ['oauth'] } })
    .options('/oauth2/token', preflight, { detail: { hide: true } })
    .options('/oauth2/revoke', preflight, { detail: { hide: true } })
    .post(
      '/oauth2/token',
      ({ body, headers }) =>
        handleOAuth(async () => {
          const form = formOf(body)
          if (!form.grant_type) throw new OAuthError('invalid_request', 'grant_type is required')
          if (form.grant_type !== 'authorization_code' && form.grant_type !== 'refresh_token')
            throw new OAuthError('unsupported_grant_type', `grant_type ${form.grant_type} is not supported`)
          const client = await authenticateClient(deps.db, form, headers.authorization)
          const tokens =
            form.grant_type === 'authorization_code'
              ? await exchangeAuthorizationCode(deps, client, form)
              : await refreshTokens(deps, client, form)
          return oauthJson(tokens, { cors: true })
        }, true),
      { detail: { summary: 'Token endpoint: authorization_code (with PKCE) and refresh_token grants', security: [] } },
    )
    .post(
      '/oauth2/revoke',
      ({ body, headers }) =>
        handleOAuth(async () => {
          const form = formOf(body)
          const client = await authenticateClient(deps.db, form, headers.authorization)
          if (!form.token) throw new OAuthError('invalid_request', 'token is required')
          await revokeToken(deps, client, form.token)
          return oauthJson({}, { cors: true })
        }, true),
      { detail: { summary: 'Revoke an access or refresh token (RFC 7009); always 200', security: [] } },
    )
    .post(
      '/oauth2/introspect',
      ({ body, headers }) =>
        handleOAuth(async () => {
          const form = formOf(body)
          const client = await authenticateClient(deps.db, form, headers.authorization)
          if (isPublicClient(client)) throw invalidClient('introspection is for confidential clients', false)
          if (!form.token) throw new OAuthError('invalid_request', 'token is required')
          return oauthJson(await introspectToken(deps.db, deps.config, client, form.token))
        }),
      { detail: { summary: "Introspect one of the calling client's tokens (RFC 7662)", security: [] } },
    )
