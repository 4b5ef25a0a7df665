import { type Cookie, Elysia } from 'elysia'
import { generateSecret, constantTimeEqual } from './token.ts'
import { basePathOf } from '../config.ts'
import type { AppDeps } from '../deps.ts'
import { ApiError } from '../http/errors.ts'
import { safeReturnTo } from '../http/return-to.ts'
import { currentRequestContext } from '../ops/request-context.ts'
import { renderLoginPage, renderSignedInPage } from '../pages/login.ts'
import { authenticateToken, loginWithPassword } from './auth.service.ts'
import {
  assertSameOrigin,
  clearCookie,
  cookieAttributes,
  cookieNamesFor,
  loginPathOf,
  setSessionCookie,
} from './cookies.ts'

function field(body: unknown, name: string): string {
  const value = (body as Record<string, unknown> | undefined)?.[name]
  return typeof value === 'string' ? value : ''
}

/**
 * The sign-in page people see when an OAuth client sends them here. Server-rendered, no scripts.
 * The form carries a CSRF token that must equal a cookie set with the page, and a post from
 * another site is refused outright (login CSRF).
 */
export const loginPageModule = (deps: AppDeps) => {
  const { publicUrl } = deps.config
  const loginPath = loginPathOf(publicUrl)
  const names = cookieNamesFor(publicUrl)
  // Strict: only this page's own form post reads it.
  const formCookie = cookieAttributes(publicUrl, loginPath, 'strict')
  const offered = (next: string) => ({
    passwordLogin: deps.config.passwordLogin,
    providers: [...deps.identityProviders.values()].map((provider) => ({
      name: provider.displayName,
      url: `${basePathOf(publicUrl)}/login/${provider.id}?return_to=${encodeURIComponent(next)}`,
    })),
  })
  const setFormCookie = (cookie: Record<string, Cookie<unknown>>, value: string) =>
    cookie[names.loginCsrf].set({ value, ...formCookie })
  return new Elysia({ name: 'login.page', detail: { tags: ['pages'] } })
    .get(
      '/login',
      async ({ query, cookie, redirect }) => {
        const next = safeReturnTo(query.next, publicUrl, loginPath)
        const session = cookie[names.session]?.value
        const principal = typeof session === 'string' && session ? await authenticateToken(deps, session) : undefined
        if (principal) return next === loginPath ? renderSignedInPage(principal.user.username) : redirect(next, 303)
        const csrf = generateSecret()
        setFormCookie(cookie, csrf)
        return renderLoginPage({ action: loginPath, next, csrf, ...offered(next) })
      },
      { detail: { summary: 'Sign-in page' } },
    )
    .post(
      '/login',
      async ({ body, cookie, headers, redirect, request }) => {
        const next = safeReturnTo(field(body, 'next'), publicUrl, loginPath)
        const login = field(body, 'login')
        const expected = cookie[names.loginCsrf]?.value
        const csrf = generateSecret()
        const retry = (status: number, error: string) => {
          setFormCookie(cookie, csrf)
          return renderLoginPage({ action: loginPath, next, csrf, error, login, status, ...offered(next) })
        }
        try {
          assertSameOrigin(request, publicUrl)
          if (typeof expected !== 'string' || !constantTimeEqual(field(body, 'csrf_token'), expected))
            return retry(403, 'Your sign-in form expired. Please try again.')
          const result = await loginWithPassword(deps, {
            login,
            password: field(body, 'password'),
            ip: currentRequestContext()?.clientIp ?? 'unknown',
            userAgent: headers['user-agent'] ?? null,
          })
          setSessionCookie(cookie, publicUrl, result)
          clearCookie(cookie[names.loginCsrf], formCookie)
          return redirect(next, 303)
        } catch (error) {
          if (error instanceof ApiError) return retry(error.status, error.message)
          throw error
        }
      },
      { detail: { summary: 'Sign in from the page (form post)' } },
    )
}
