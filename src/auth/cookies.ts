import type { Cookie } from 'elysia'
import { basePathOf } from '../config.ts'
import { ApiError } from '../http/errors.ts'
import { hashToken } from './token.ts'

export interface CookieNames {
  session: string
  loginCsrf: string
  /** The cookie that carries one identity provider's sign-in flow to its callback. */
  identityFlow: (provider: string) => string
}

/**
 * Cookie names for a deployment. Behind https the session cookie takes the `__Host-` prefix,
 * which browsers accept only when Secure, host-only and for path `/`, so a sibling subdomain
 * cannot plant or shadow it (RFC 6265bis §4.1.3.2); the cookies scoped to a path can carry
 * `__Secure-` only. Over plain http a name ends in 6 hex characters of a hash of the public URL:
 * cookies ignore ports (RFC 6265 §8.5), so two Gatehouses on one host name (a local upstream
 * on another port, say) would otherwise replace each other's session.
 */
export function cookieNamesFor(publicUrl: string): CookieNames {
  if (publicUrl.startsWith('https://'))
    return {
      session: '__Host-gatehouse_session',
      loginCsrf: '__Secure-gatehouse_login_csrf',
      identityFlow: (provider) => `__Secure-gatehouse_idp_${provider}`,
    }
  const suffix = hashToken(publicUrl).slice(0, 6)
  return {
    session: `gatehouse_session_${suffix}`,
    loginCsrf: `gatehouse_login_csrf_${suffix}`,
    identityFlow: (provider) => `gatehouse_idp_${provider}_${suffix}`,
  }
}

export interface CookieAttributes {
  httpOnly: true
  secure: boolean
  sameSite: 'lax' | 'strict'
  path: string
}

/**
 * What every Gatehouse cookie carries: HttpOnly, because no script needs one (the pages are
 * rendered by the server with their CSRF tokens in the forms, and API clients get the token in
 * JSON); Secure behind https; and a SameSite that fits its use: `lax` for cookies that must
 * arrive on a top-level navigation from another site (the session, on the way back from an
 * upstream's or identity provider's sign-in), `strict` for one only this site's own form posts.
 */
export function cookieAttributes(publicUrl: string, path: string, sameSite: 'lax' | 'strict'): CookieAttributes {
  return { httpOnly: true, secure: publicUrl.startsWith('https://'), sameSite, path }
}

/**
 * Expires a cookie with the attributes it was set with. Elysia's `remove()` sends a bare cookie,
 * which a browser takes for another cookie (it defaults the path to the request's) and refuses
 * outright for a `__Host-` name, since it lacks Secure.
 */
export function clearCookie(cookie: Cookie<unknown>, attributes: CookieAttributes): void {
  cookie.set({ value: '', maxAge: 0, expires: new Date(0), ...attributes })
}

/** The session cookie, for the whole site, living as long as the session. */
export function setSessionCookie(
  cookie: Record<string, Cookie<unknown>>,
  publicUrl: string,
  session: { sessionToken: string; expiresAt: number },
): void {
  cookie[cookieNamesFor(publicUrl).session].set({
    value: session.sessionToken,
    expires: new Date(session.expiresAt * 1000),
    ...cookieAttributes(publicUrl, '/', 'lax'),
  })
}

export function clearSessionCookie(cookie: Record<string, Cookie<unknown>>, publicUrl: string): void {
  clearCookie(cookie[cookieNamesFor(publicUrl).session], cookieAttributes(publicUrl, '/', 'lax'))
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
