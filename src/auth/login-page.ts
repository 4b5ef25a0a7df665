import { Elysia } from 'elysia'
import { generateSecret, constantTimeEqual } from './token.ts'
import { basePathOf } from '../config.ts'
import type { AppDeps } from '../deps.ts'
import { ApiError } from '../http/errors.ts'
import { safeReturnTo } from '../http/return-to.ts'
import { currentRequestContext } from '../ops/request-context.ts'
import { renderLoginPage, renderSignedInPage } from '../pages/login.ts'
import { authenticateToken, loginWithPassword, SESSION_COOKIE } from './auth.service.ts'
import { CSRF_COOKIE } from './routes.ts'

const LOGIN_CSRF_COOKIE = 'gatehouse_login_csrf'

function field(body: unknown, name: string): string {
  const value = (body as Record<string, unknown> | undefined)?.[name]
  return typeof value === 'string' ? value : ''
}

/**
 * The sign-in page people see when an OAuth client sends them here. Server-rendered, no scripts.
 * The form carries a CSRF token that must equal a cookie set with the page (login CSRF).
 */
export const loginPageModule = (deps: AppDeps) => {
  const secure = deps.config.publicUrl.startsWith('https://')
  const loginPath = `${basePathOf(deps.config.publicUrl)}/login`
  return new Elysia({ name: 'login.page', detail: { tags: ['pages'] } })
    .get(
      '/login',
      async ({ query, cookie, redirect }) => {
        const next = safeReturnTo(query.next, deps.config.publicUrl, loginPath)
        const session = cookie[SESSION_COOKIE]?.value
        const principal = typeof session === 'string' && session ? await authenticateToken(deps, session) : undefined
        if (principal) return next === loginPath ? renderSignedInPage(principal.user.username) : redirect(next, 303)
        const csrf = generateSecret()
        cookie[LOGIN_CSRF_COOKIE].set({ value: csrf, httpOnly: true, secure, sameSite: 'lax', path: loginPath })
        return renderLoginPage({ action: loginPath, next, csrf })
      },
      { detail: { summary: 'Sign-in page' } },
    )
    .post(
      '/login',
      async ({ body, cookie, headers, redirect }) => {
        const next = safeReturnTo(field(body, 'next'), deps.config.publicUrl, loginPath)
        const login = field(body, 'login')
        const expected = cookie[LOGIN_CSRF_COOKIE]?.value
        const csrf = generateSecret()
        const retry = (status: number, error: string) => {
          cookie[LOGIN_CSRF_COOKIE].set({ value: csrf, httpOnly: true, secure, sameSite: 'lax', path: loginPath })
          return renderLoginPage({ action: loginPath, next, csrf, error, login, status })
        }
        if (typeof expected !== 'string' || !constantTimeEqual(field(body, 'csrf_token'), expected))
          return retry(403, 'Your sign-in form expired. Please try again.')
        try {
          const result = await loginWithPassword(deps, {
            login,
            password: field(body, 'password'),
            ip: currentRequestContext()?.clientIp ?? 'unknown',
            userAgent: headers['user-agent'] ?? null,
          })
          const expires = new Date(result.expiresAt * 1000)
          cookie[SESSION_COOKIE].set({
            value: result.sessionToken,
            httpOnly: true,
            secure,
            sameSite: 'lax',
            path: '/',
            expires,
          })
          cookie[CSRF_COOKIE].set({
            value: result.csrfToken,
            httpOnly: false,
            secure,
            sameSite: 'lax',
            path: '/',
            expires,
          })
          cookie[LOGIN_CSRF_COOKIE].remove()
          return redirect(next, 303)
        } catch (error) {
          if (error instanceof ApiError) return retry(error.status, error.message)
          throw error
        }
      },
      { detail: { summary: 'Sign in from the page (form post)' } },
    )
}
