import { Elysia } from 'elysia'
import { constantTimeEqual } from './token.ts'
import {
  authenticateToken,
  CSRF_HEADER,
  csrfTokenFor,
  presentedCredential,
  type AuthDeps,
  type Principal,
} from './auth.service.ts'
import { resourcesOf } from '../oauth/resource.ts'
import { cookieNamesFor } from './cookies.ts'

export type { Principal } from './auth.service.ts'

/** The role a route needs: any signed-in user (`true`), a site admin (owners count) or the owner. */
export type RequiredRole = true | 'admin' | 'owner'

/**
 * What a route needs: a role, or a role plus `firstParty` for routes that create credentials or
 * confer rights (API tokens, client secrets, users, roles). Those refuse OAuth access tokens: a
 * token is delegated, and ends with its grant, so it must not mint anything that outlives it.
 */
export type AuthRequirement = RequiredRole | { role: RequiredRole; firstParty: true }

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

function roleAllows(role: 'owner' | 'admin' | 'member', required: RequiredRole): boolean {
  if (required === true) return true
  if (required === 'owner') return role === 'owner'
  return role === 'owner' || role === 'admin'
}

/** Why a request is not let through, as the `auth` macro answers it. */
export interface AuthFailure {
  status: 401 | 403
  body: { message: string; detail?: string }
  /** RFC 6750 §3 challenge, for the 401s and the insufficient scope. */
  wwwAuthenticate?: string
}

export interface PresentedRequest {
  method: string
  authorization: string | undefined
  sessionCookie: unknown
  csrfToken: string | undefined
}

/**
 * The principal behind a request's bearer token or session cookie, held to `requirement`.
 * Cookie-authenticated state changes must also carry the session's CSRF token in
 * `X-CSRF-Token`; bearer requests need none (a browser never attaches them on its own).
 * Framework-free, so a route a browser lands on can answer a failure with a page.
 */
export async function authenticateRequest(
  deps: AuthDeps,
  request: PresentedRequest,
  requirement: AuthRequirement,
): Promise<{ principal: Principal } | { failure: AuthFailure }> {
  const credential = presentedCredential(request.authorization, request.sessionCookie)
  const token = credential?.token
  const principal = token ? await authenticateToken(deps, token) : undefined
  const apiAudience = resourcesOf(deps.config.publicUrl).api
  if (principal?.oauth && principal.oauth.audience !== apiAudience)
    return {
      failure: {
        status: 401,
        body: {
          message: 'This access token was issued for another resource',
          detail: `The management API accepts OAuth access tokens issued for ${apiAudience}`,
        },
        wwwAuthenticate:
          'Bearer realm="gatehouse", error="invalid_token", error_description="the token is for another resource"',
      },
    }
  if (principal?.oauth && !principal.oauth.scopes.includes('api'))
    return {
      failure: {
        status: 403,
        body: { message: 'This access token lacks the api scope' },
        wwwAuthenticate: 'Bearer realm="gatehouse", error="insufficient_scope", scope="api"',
      },
    }
  if (!principal)
    return {
      failure: {
        status: 401,
        body: { message: token ? 'The session or token is invalid, expired or revoked' : 'Authentication required' },
        wwwAuthenticate: token ? 'Bearer realm="gatehouse", error="invalid_token"' : 'Bearer realm="gatehouse"',
      },
    }
  if (credential?.viaCookie && !SAFE_METHODS.has(request.method)) {
    const presented = request.csrfToken
    if (!presented || !constantTimeEqual(presented, csrfTokenFor(token!)))
      return {
        failure: {
          status: 403,
          body: {
            message: 'Missing or invalid CSRF token',
            detail: `Requests authenticated by the session cookie must send the ${CSRF_HEADER} header returned at login`,
          },
        },
      }
  }
  const required = typeof requirement === 'object' ? requirement.role : requirement
  if (typeof requirement === 'object' && principal.via === 'oauth')
    return {
      failure: {
        status: 403,
        body: {
          message: 'An OAuth access token cannot create credentials or grant rights',
          detail: 'Use a session or an API token: what this creates would outlive the OAuth grant the token belongs to',
        },
      },
    }
  if (!roleAllows(principal.user.role, required))
    return { failure: { status: 403, body: { message: `This action requires the ${required} role` } } }
  return { principal }
}

/**
 * `auth: true | 'admin' | 'owner'` on a route resolves `principal` from the bearer token or the
 * session cookie, as `authenticateRequest` judges it, and answers a failure in JSON.
 * One parameterised macro on purpose: resolve types do not flow between sibling macros in Elysia 1.4.
 */
export const authPlugin = (deps: AuthDeps) => {
  const sessionCookie = cookieNamesFor(deps.config.publicUrl).session
  return new Elysia({ name: 'auth', seed: deps.config.publicUrl }).macro({
    auth: (requirement: AuthRequirement) => ({
      async resolve({ headers, cookie, request, status, set }) {
        const result = await authenticateRequest(
          deps,
          {
            method: request.method,
            authorization: headers.authorization,
            sessionCookie: cookie[sessionCookie]?.value,
            csrfToken: headers[CSRF_HEADER],
          },
          requirement,
        )
        if ('principal' in result) return { principal: result.principal }
        const { failure } = result
        if (failure.wwwAuthenticate) set.headers['www-authenticate'] = failure.wwwAuthenticate
        if (failure.status === 401) return status(401, failure.body)
        return status(403, failure.body)
      },
    }),
  })
}
