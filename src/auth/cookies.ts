import type { Cookie } from 'elysia'
import { basePathOf } from '../config.ts'
import { ApiError } from '../http/errors.ts'

export interface CookieNames {
  session: string
  csrf: string
  loginCsrf: string
}

/**
 * Cookie names for a deployment. Behind https the session and CSRF cookies take the `__Host-`
 * prefix, which browsers accept only when Secure, host-only and for path `/`, so a sibling
 * subdomain cannot plant or shadow them (RFC 6265bis §4.1.3.2). The sign-in form's cookie is
 * scoped to the login path, so it can carry `__Secure-` only.
 */
export function cookieNamesFor(publicUrl: string): CookieNames {
  if (!publicUrl.startsWith('https://'))
    return { session: 'gatehouse_session', csrf: 'gatehouse_csrf', loginCsrf: 'gatehouse_login_csrf' }
  return {
    session: '__Host-gatehouse_session',
    csrf: '__Host-gatehouse_csrf',
    loginCsrf: '__Secure-gatehouse_login_csrf',
  }
}

/** The session cookie (HttpOnly) and its CSRF companion (readable by page scripts), set together. */
export function setSessionCookies(
  cookie: Record<string, Cookie<unknown>>,
  publicUrl: string,
  session: { sessionToken: string; csrfToken: string; expiresAt: number },
): void {
  const names = cookieNamesFor(publicUrl)
  const secure = publicUrl.startsWith('https://')
  const expires = new Date(session.expiresAt * 1000)
  const common = { secure, sameSite: 'lax' as const, path: '/', expires }
  cookie[names.session].set({ value: session.sessionToken, httpOnly: true, ...common })
  cookie[names.csrf].set({ value: session.csrfToken, httpOnly: false, ...common })
}

/**
 * Refuses a browser request from another site to a route that sets a session cookie (login
 * CSRF: a foreign page signing the victim into the attacker's account). A request without
 * `Origin` is not a cross-site browser request; one with it must come from the public URL's
 * origin or the origin the request itself was made to.
 */
export function assertSameOrigin(request: Request, publicUrl: string): void {
  const origin = request.headers.get('origin')
  const fetchSite = request.headers.get('sec-fetch-site')
  const allowed = new Set([new URL(publicUrl).origin, new URL(request.url).origin])
  if ((origin !== null && !allowed.has(origin)) || fetchSite === 'cross-site')
    throw new ApiError(403, 'Cross-site sign-in refused', `Sign in from ${new URL(publicUrl).origin} itself`)
}

/** The path the sign-in form's cookie is scoped to. */
export function loginPathOf(publicUrl: string): string {
  return `${basePathOf(publicUrl)}/login`
}
