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
 * CSRF: a foreign page signing the victim into the attacker's account). Browsers that send
 * `Sec-Fetch-Site` are judged by it alone, since they send `Origin: null` for their own form
 * posts from a no-referrer page; a sibling host (`same-site`) is refused too. Without it, an
 * `Origin` must be the public URL's or the request's own; no `Origin` is no browser.
 */
export function assertSameOrigin(request: Request, publicUrl: string): void {
  const fetchSite = request.headers.get('sec-fetch-site')
  const origin = request.headers.get('origin')
  const allowed =
    fetchSite !== null
      ? fetchSite === 'same-origin' || fetchSite === 'none'
      : origin === null || origin === new URL(publicUrl).origin || origin === new URL(request.url).origin
  if (!allowed)
    throw new ApiError(403, 'Cross-site sign-in refused', `Sign in from ${new URL(publicUrl).origin} itself`)
}

/** The path the sign-in form's cookie is scoped to. */
export function loginPathOf(publicUrl: string): string {
  return `${basePathOf(publicUrl)}/login`
}
