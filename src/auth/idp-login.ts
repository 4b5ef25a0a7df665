import { decodeBase64urlIgnorePadding, encodeBase64urlNoPadding } from '@oslojs/encoding'
import { generateCodeVerifier } from 'arctic'
import { type Cookie, Elysia, t } from 'elysia'
import { basePathOf } from '../config.ts'
import type { AppDeps } from '../deps.ts'
import { ApiError } from '../http/errors.ts'
import { safeReturnTo } from '../http/return-to.ts'
import { currentRequestContext } from '../ops/request-context.ts'
import { renderErrorPage } from '../pages/html.ts'
import { startSession } from './auth.service.ts'
import { clearCookie, cookieAttributes, cookieNamesFor, setSessionCookie } from './cookies.ts'
import { LoginProviderError, type ProviderId } from './identity-providers.ts'
import { signInWith } from './idp.service.ts'
import { constantTimeEqual, generateSecret } from './token.ts'

/** A sign-in at a provider must come back within this long. */
const FLOW_TTL_SECONDS = 600

interface PendingLogin {
  state: string
  codeVerifier: string
  nonce: string
  returnTo: string
}

/**
 * The flow's secrets ride in a cookie scoped to the callback (`CookieNames.identityFlow`): they
 * belong to this browser alone (an attacker altering their own cookie only spoils their own
 * sign-in), any replica reads them, and nothing is stored for flows that are never finished.
 */
function readPending(cookie: Cookie<unknown> | undefined): PendingLogin | undefined {
  const value = cookie?.value
  if (typeof value !== 'string') return undefined
  try {
    const parsed = JSON.parse(new TextDecoder().decode(decodeBase64urlIgnorePadding(value)))
    if (
      typeof parsed?.state === 'string' &&
      typeof parsed.codeVerifier === 'string' &&
      typeof parsed.nonce === 'string'
    )
      return { returnTo: '', ...parsed }
  } catch {}
  return undefined
}

function encodePending(pending: PendingLogin): string {
  return encodeBase64urlNoPadding(new TextEncoder().encode(JSON.stringify(pending)))
}

/**
 * `GET /login/{provider}` sends the browser to the identity provider (PKCE S256, `state`, and for
 * OpenID Connect a `nonce`); `GET /login/{provider}/callback` verifies what comes back, signs the
 * user in (linking or creating the account) and returns to `return_to`, a path on this server.
 */
export const identityLoginModule = (deps: AppDeps) => {
  const { publicUrl } = deps.config
  const base = basePathOf(publicUrl)
  const flowCookieName = cookieNamesFor(publicUrl).identityFlow
  // Lax: the provider sends the browser back with a top-level navigation from its own site.
  const flowCookie = (provider: ProviderId) => cookieAttributes(publicUrl, `${base}/login/${provider}/callback`, 'lax')
  const providerOf = (id: string) => deps.identityProviders.get(id as ProviderId)
  const notConfigured = () => renderErrorPage(404, 'Sign-in failed', 'This sign-in method is not configured here.')
  return new Elysia({ name: 'login.providers', detail: { tags: ['pages'] } })
    .get(
      '/login/:provider',
      async ({ params, query, cookie, redirect }) => {
        const provider = providerOf(params.provider)
        if (!provider) return notConfigured()
        const pending: PendingLogin = {
          state: generateSecret(),
          codeVerifier: generateCodeVerifier(),
          nonce: generateSecret(),
          returnTo: safeReturnTo(query.return_to ?? query.next, publicUrl, `${base}/login`),
        }
        let url: URL
        try {
          url = await provider.authorizationUrl(pending)
        } catch (error) {
          if (!(error instanceof LoginProviderError)) throw error
          return renderErrorPage(502, 'Sign-in failed', `${provider.displayName} is not available: ${error.message}.`)
        }
        cookie[flowCookieName(provider.id)].set({
          value: encodePending(pending),
          maxAge: FLOW_TTL_SECONDS,
          ...flowCookie(provider.id),
        })
        return redirect(url.href, 302)
      },
      {
        params: t.Object({ provider: t.String({ maxLength: 32 }) }),
        query: t.Object({
          return_to: t.Optional(t.String({ maxLength: 2048 })),
          next: t.Optional(t.String({ maxLength: 2048 })),
        }),
        detail: { summary: 'Sign in with an identity provider (oidc, github)' },
      },
    )
    .get(
      '/login/:provider/callback',
      async ({ params, query, cookie, headers, redirect }) => {
        const provider = providerOf(params.provider)
        if (!provider) return notConfigured()
        const name = flowCookieName(provider.id)
        const pending = readPending(cookie[name])
        clearCookie(cookie[name], flowCookie(provider.id))
        const fail = (status: number, message: string) => renderErrorPage(status, 'Sign-in failed', message)
        if (query.error)
          return fail(
            400,
            `${provider.displayName} refused the sign-in: ${query.error.replace(/[^\x20-\x7e]/g, '').slice(0, 200)}.`,
          )
        if (!pending || !query.state || !constantTimeEqual(query.state, pending.state))
          return fail(400, 'This sign-in expired or was not started in this browser. Please sign in again.')
        if (!query.code) return fail(400, `${provider.displayName} sent no sign-in code. Please sign in again.`)
        try {
          const result = await provider.finish({
            code: query.code,
            codeVerifier: pending.codeVerifier,
            nonce: pending.nonce,
          })
          const user = await signInWith(deps, provider, result)
          const session = await startSession(deps, user, {
            ip: currentRequestContext()?.clientIp ?? 'unknown',
            userAgent: headers['user-agent'] ?? null,
          })
          setSessionCookie(cookie, publicUrl, session)
          deps.logger.info('signed in through an identity provider', { user_id: user.id, provider: provider.id })
          return redirect(safeReturnTo(pending.returnTo, publicUrl, `${base}/login`), 303)
        } catch (error) {
          if (error instanceof LoginProviderError)
            return fail(
              502,
              `${error.message.startsWith(provider.displayName) ? '' : `${provider.displayName}: `}${error.message}.`,
            )
          if (error instanceof ApiError) return fail(error.status, error.message)
          throw error
        }
      },
      {
        params: t.Object({ provider: t.String({ maxLength: 32 }) }),
        query: t.Object({
          code: t.Optional(t.String({ maxLength: 4096 })),
          state: t.Optional(t.String({ maxLength: 512 })),
          error: t.Optional(t.String({ maxLength: 512 })),
          error_description: t.Optional(t.String({ maxLength: 2048 })),
          iss: t.Optional(t.String({ maxLength: 2048 })),
          scope: t.Optional(t.String({ maxLength: 2048 })),
          session_state: t.Optional(t.String({ maxLength: 2048 })),
        }),
        detail: { summary: 'Where the identity provider sends the browser back (register this as its redirect URI)' },
      },
    )
}
