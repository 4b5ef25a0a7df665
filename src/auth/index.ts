import { Elysia } from 'elysia'
import { constantTimeEqual } from './token.ts'
import { authenticateToken, CSRF_HEADER, csrfTokenFor, presentedCredential, type AuthDeps } from './auth.service.ts'
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

/**
 * `auth: true | 'admin' | 'owner'` on a route resolves `principal` from the bearer token or the
 * session cookie. Cookie-authenticated state changes must also carry the session's CSRF token in
 * `X-CSRF-Token`; bearer requests need none (a browser never attaches them on its own).
 * One parameterised macro on purpose: resolve types do not flow between sibling macros in Elysia 1.4.
 */
export const authPlugin = (deps: AuthDeps) => {
  const sessionCookie = cookieNamesFor(deps.config.publicUrl).session
  return new Elysia({ name: 'auth', seed: deps.config.publicUrl }).macro({
    auth: (requirement: AuthRequirement) => ({
      async resolve({ headers, cookie, request, status, set }) {
        const credential = presentedCredential(headers.authorization, cookie[sessionCookie]?.value)
        const token = credential?.token
        const principal = token ? await authenticateToken(deps, token) : undefined
        const apiAudience = resourcesOf(deps.config.publicUrl).api
        if (principal?.oauth && principal.oauth.audience !== apiAudience) {
          set.headers['www-authenticate'] =
            'Bearer realm="gatehouse", error="invalid_token", error_description="the token is for another resource"'
          return status(401, {
            message: 'This access token was issued for another resource',
            detail: `The management API accepts OAuth access tokens issued for ${apiAudience}`,
          })
        }
        if (principal?.oauth && !principal.oauth.scopes.includes('api')) {
          set.headers['www-authenticate'] = 'Bearer realm="gatehouse", error="insufficient_scope", scope="api"'
          return status(403, { message: 'This access token lacks the api scope' })
        }
        if (!principal) {
          set.headers['www-authenticate'] = token
            ? 'Bearer realm="gatehouse", error="invalid_token"'
            : 'Bearer realm="gatehouse"'
          return status(401, {
            message: token ? 'The session or token is invalid, expired or revoked' : 'Authentication required',
          })
        }
        if (credential?.viaCookie && !SAFE_METHODS.has(request.method)) {
          const presented = headers[CSRF_HEADER]
          if (!presented || !constantTimeEqual(presented, csrfTokenFor(token!)))
            return status(403, {
              message: 'Missing or invalid CSRF token',
              detail: `Requests authenticated by the session cookie must send the ${CSRF_HEADER} header returned at login`,
            })
        }
        const required = typeof requirement === 'object' ? requirement.role : requirement
        if (typeof requirement === 'object' && principal.via === 'oauth')
          return status(403, {
            message: 'An OAuth access token cannot create credentials or grant rights',
            detail:
              'Use a session or an API token: what this creates would outlive the OAuth grant the token belongs to',
          })
        if (!roleAllows(principal.user.role, required))
          return status(403, { message: `This action requires the ${required} role` })
        return { principal }
      },
    }),
  })
}
