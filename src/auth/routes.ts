import { Elysia, t } from 'elysia'
import type { AppDeps } from '../deps.ts'
import { ApiError, ErrorModel } from '../http/errors.ts'
import { currentRequestContext } from '../ops/request-context.ts'
import { UsersModel } from '../users/model.ts'
import { rowToUser } from '../users/user.service.ts'
import { csrfTokenFor, loginWithPassword, logout } from './auth.service.ts'
import { assertSameOrigin, clearSessionCookie, cookieNamesFor, setSessionCookie } from './cookies.ts'
import { authPlugin } from './index.ts'

const loginResponse = t.Object({
  session_token: t.String({ description: 'Send as `Authorization: Bearer`; also set as an HttpOnly cookie' }),
  csrf_token: t.String({
    description: 'Send as `X-CSRF-Token` on state changes authenticated by the cookie; `GET /auth/csrf` gives it again',
  }),
  expires_at: t.String({ format: 'date-time' }),
  user: UsersModel['users.user'],
})

/** Password login, logout and the current session, under /api/v1/auth. */
export const authModule = (deps: AppDeps) => {
  const names = cookieNamesFor(deps.config.publicUrl)
  return new Elysia({ name: 'auth.routes', prefix: '/api/v1/auth', detail: { tags: ['auth'] } })
    .use(authPlugin(deps))
    .model({
      ...ErrorModel,
      'auth.login': t.Object({
        login: t.String({ minLength: 1, maxLength: 254, description: 'Email or username' }),
        password: t.String({ minLength: 1, maxLength: 256 }),
      }),
      'auth.session': loginResponse,
    })
    .post(
      '/login',
      async ({ body, cookie, headers, request }) => {
        assertSameOrigin(request, deps.config.publicUrl)
        const result = await loginWithPassword(deps, {
          login: body.login,
          password: body.password,
          ip: currentRequestContext()?.clientIp ?? 'unknown',
          userAgent: headers['user-agent'] ?? null,
        })
        setSessionCookie(cookie, deps.config.publicUrl, result)
        return {
          session_token: result.sessionToken,
          csrf_token: result.csrfToken,
          expires_at: new Date(result.expiresAt * 1000).toISOString(),
          user: rowToUser(result.user),
        }
      },
      {
        // JSON only: a cross-site HTML form can send urlencoded or multipart bodies, never JSON
        // without a CORS preflight, so refusing the others closes login CSRF at the parser.
        parse: ({ contentType }) => {
          if (!contentType?.toLowerCase().startsWith('application/json'))
            throw new ApiError(415, 'The sign-in body must be JSON', 'Send Content-Type: application/json')
        },
        body: 'auth.login',
        response: { 200: 'auth.session', 401: 'api.error', 403: 'api.error', 415: 'api.error', 429: 'api.error' },
        detail: { summary: 'Sign in with a password', security: [] },
      },
    )
    .post(
      '/logout',
      async ({ principal, cookie, set }) => {
        await logout(deps, principal)
        clearSessionCookie(cookie, deps.config.publicUrl)
        set.status = 204
      },
      { auth: true, detail: { summary: 'End the current session (a no-op for API tokens)' } },
    )
    .get(
      '/csrf',
      ({ principal, cookie, status }) => {
        const token = cookie[names.session]?.value
        if (principal.via !== 'session' || typeof token !== 'string')
          return status(400, { message: 'Only a session cookie has a CSRF token' })
        return { csrf_token: csrfTokenFor(token) }
      },
      {
        auth: true,
        response: { 200: t.Object({ csrf_token: t.String() }), 400: 'api.error' },
        detail: { summary: "The session cookie's CSRF token, for a page that lost it" },
      },
    )
}
