import { Elysia } from 'elysia'
import { authenticateToken, presentedCredential } from '../auth/auth.service.ts'
import { cookieNamesFor } from '../auth/cookies.ts'
import type { Principal } from '../auth/index.ts'
import { constantTimeEqual } from '../auth/token.ts'
import { basePathOf } from '../config.ts'
import type { AppDeps } from '../deps.ts'
import { renderConsentPage } from '../pages/consent.ts'
import { renderErrorPage } from '../pages/html.ts'
import {
  approve,
  authorizationRedirect,
  AuthorizePageError,
  AuthorizeRedirectError,
  consentTokenFor,
  hasConsent,
  scopesFor,
  validateAuthorizeRequest,
  type AuthorizeDeps,
} from './authorize.service.ts'
import { formOf } from './http.ts'
import { formatScope, SCOPES, type Scope } from './scope.ts'
import { OAuthError } from './errors.ts'

function redirectTo(location: string, status = 302): Response {
  return new Response(null, {
    status,
    headers: { location, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' },
  })
}

/**
 * Turns a refusal into what the browser should get: a page before the redirect URI is trusted, a
 * redirect after (303 after a POST, so the browser follows with a GET).
 */
function refusal(deps: AppDeps, error: unknown, redirectStatus = 302): Response {
  if (error instanceof AuthorizePageError)
    return renderErrorPage(error.status, 'This sign-in request cannot be completed', error.message)
  if (error instanceof AuthorizeRedirectError)
    return redirectTo(
      authorizationRedirect(deps.config, error.redirectUri, {
        error: error.error,
        error_description: error.description,
        state: error.state,
      }),
      redirectStatus,
    )
  if (error instanceof OAuthError)
    return renderErrorPage(400, 'This sign-in request cannot be completed', error.description)
  throw error
}

/** A session (cookie or bearer) or API token (bearer) may authorize; OAuth tokens may not mint more. */
async function signedInUser(
  deps: AppDeps,
  authorization: string | undefined,
  sessionCookie: unknown,
): Promise<{ principal: Principal; token: string; viaCookie: boolean } | undefined> {
  const credential = presentedCredential(authorization, sessionCookie)
  if (!credential) return undefined
  const principal = await authenticateToken(deps, credential.token)
  return principal && principal.via !== 'oauth' ? { principal, ...credential } : undefined
}

/**
 * The request's parameters from the query string and (for a POST) the form body, and the names
 * given more than once, in either or across both: Elysia's parsed query keeps one value of a
 * repeated name, so the raw query string is read.
 */
function authorizeParamsOf(url: string, body?: unknown): { params: Record<string, string>; repeated: string[] } {
  const params: Record<string, string> = {}
  const repeated = new Set<string>()
  const add = (name: string, value: string) => {
    if (name in params) repeated.add(name)
    params[name] = value
  }
  for (const [name, value] of new URL(url).searchParams) add(name, value)
  for (const [name, value] of Object.entries(formOf(body))) if (value !== undefined) add(name, value)
  return { params, repeated: [...repeated] }
}

/**
 * GET /oauth2/authorize shows the consent page (after sign-in); POST decides (`decision=deny`
 * denies, anything else approves). A decision posted with the session cookie must carry the
 * page's consent token, bound to the session and to the exact request the page showed; one
 * authenticated by a bearer token needs none, as no browser attaches that on its own.
 */
export const authorizeRoutes = (deps: AppDeps, authorizeDeps: AuthorizeDeps) => {
  const base = basePathOf(deps.config.publicUrl)
  const sessionCookie = cookieNamesFor(deps.config.publicUrl).session
  return new Elysia({ name: 'oauth.authorize', detail: { tags: ['oauth'] } })
    .get(
      '/oauth2/authorize',
      async ({ headers, cookie, request }) => {
        try {
          const { params, repeated } = authorizeParamsOf(request.url)
          const authorization = await validateAuthorizeRequest(authorizeDeps, params, repeated)
          const signedIn = await signedInUser(deps, headers.authorization, cookie[sessionCookie]?.value)
          if (!signedIn) {
            const url = new URL(request.url)
            return redirectTo(`${base}/login?next=${encodeURIComponent(base + url.pathname + url.search)}`)
          }
          const user = signedIn.principal.user
          const scopes = scopesFor(authorization, user)
          if (await hasConsent(deps.db, authorization, user, scopes))
            return redirectTo(await approve(authorizeDeps, authorization, user, scopes))
          return renderConsentPage({
            action: `${base}/oauth2/authorize`,
            clientName: authorization.client.name,
            clientId: authorization.client.id,
            redirectUri: authorization.redirectUri,
            scopes: scopes.map((scope: Scope) => ({ name: scope, description: SCOPES[scope] })),
            resource: authorization.resource,
            username: user.username,
            csrf: signedIn.viaCookie ? consentTokenFor(signedIn.token, authorization, scopes) : '',
            fields: {
              response_type: 'code',
              client_id: authorization.client.id,
              redirect_uri: authorization.redirectUri,
              state: authorization.state,
              scope: formatScope(scopes),
              code_challenge: authorization.codeChallenge,
              code_challenge_method: 'S256',
              resource: authorization.resource,
            },
          })
        } catch (error) {
          return refusal(deps, error)
        }
      },
      { detail: { summary: 'Authorization endpoint: sign-in, then the consent page', security: [] } },
    )
    .post(
      '/oauth2/authorize',
      async ({ body, headers, cookie, request }) => {
        try {
          // Parameters may come in the body (our consent form) or the query (a client posting to
          // the authorization URL itself, as scripted clients do), but each only once.
          const { params, repeated } = authorizeParamsOf(request.url, body)
          const authorization = await validateAuthorizeRequest(authorizeDeps, params, repeated)
          const signedIn = await signedInUser(deps, headers.authorization, cookie[sessionCookie]?.value)
          if (!signedIn)
            throw new AuthorizePageError(401, 'You are not signed in. Start the sign-in from the application again.')
          const scopes = scopesFor(authorization, signedIn.principal.user)
          if (
            signedIn.viaCookie &&
            !constantTimeEqual(params.csrf_token ?? '', consentTokenFor(signedIn.token, authorization, scopes))
          )
            throw new AuthorizePageError(
              403,
              'The consent form expired, or was not the one shown for this request. Start again from the application.',
            )
          if (params.decision === 'deny')
            throw new AuthorizeRedirectError(
              authorization.redirectUri,
              'access_denied',
              'the user denied the request',
              authorization.state,
            )
          return redirectTo(await approve(authorizeDeps, authorization, signedIn.principal.user, scopes), 303)
        } catch (error) {
          return refusal(deps, error, 303)
        }
      },
      { detail: { summary: 'Approve or deny an authorization request', security: [] } },
    )
}
