import { openapi } from '@elysia/openapi'
import { Elysia, ValidationError } from 'elysia'
import { cookieNamesFor } from './auth/cookies.ts'
import { basePathOf } from './config.ts'
import { authModule } from './auth/routes.ts'
import type { AppDeps } from './deps.ts'
import { bodyTooLarge, declaresTooLargeBody, hasBody } from './http/body-limit.ts'
import { ApiError, jsonError } from './http/errors.ts'
import { checkBodyForNul, findNulInUrl, NUL_MESSAGE } from './http/reject-nul.ts'
import { identityLoginModule } from './auth/idp-login.ts'
import { loginPageModule } from './auth/login-page.ts'
import { mcpModule } from './mcp/index.ts'
import { passthroughModule } from './passthrough/index.ts'
import { appsModule } from './oauth/apps.routes.ts'
import { oauthModule } from './oauth/index.ts'
import { OAuthError } from './oauth/errors.ts'
import { CORS_HEADERS, withHeaders } from './oauth/http.ts'
import { opsModule } from './ops/index.ts'
import { currentRequestContext } from './ops/request-context.ts'
import { orgsModule } from './orgs/index.ts'
import { renderApiReferenceBody, renderApiReferencePage } from './pages/api-reference.ts'
import { tokensModule } from './tokens/index.ts'
import { connectionsPageModule } from './upstreams/connections-page.ts'
import { upstreamsModule } from './upstreams/index.ts'
import { usersModule } from './users/index.ts'

const VERSION = '0.1.0'

/** A NUL anywhere is bad input (see reject-nul.ts); OAuth endpoints answer in RFC 6749 form. */
export function refuseNul(url: string, where: string): Response {
  if (URL.parse(url)?.pathname.startsWith('/oauth2/'))
    return withHeaders(new OAuthError('invalid_request', `${NUL_MESSAGE} (in the ${where})`).toResponse(), CORS_HEADERS)
  return jsonError(400, { message: NUL_MESSAGE, detail: where })
}

function validationDetails(error: Pick<ValidationError, 'all' | 'type'>) {
  return error.all.map((issue) => ({
    field: ('path' in issue && issue.path ? issue.path.replace(/^\//, '').replaceAll('/', '.') : '') || error.type,
    detail: issue.summary ?? issue.message,
  }))
}

/**
 * The whole HTTP surface. Dependencies arrive through closures, which keeps Kysely and runtime
 * types out of `App` so the typed client stays light.
 */
export function createApp(deps: AppDeps) {
  const { config, logger } = deps
  const app = new Elysia({ name: 'gatehouse' })
    .onRequest(async (context) => {
      const { request } = context
      if (declaresTooLargeBody(request, config.maxBodyBytes))
        return bodyTooLarge(config.maxBodyBytes, Number(request.headers.get('content-length')))
      const inUrl = findNulInUrl(request.url)
      if (inUrl) return refuseNul(request.url, inUrl)
      if (!hasBody(request)) return
      const checked = await checkBodyForNul(request)
      if (checked.hasNul) return refuseNul(request.url, 'body')
      context.request = checked.request
    })
    .onTransform({ as: 'global' }, ({ route }) => {
      const context = currentRequestContext()
      if (context) context.route = route
    })
    .onError({ as: 'global' }, ({ code, error, request, path, route }) => {
      const context = currentRequestContext()
      if (context && route && !context.route) context.route = route
      if (error instanceof ApiError) return error.toResponse()
      // A route's own parser refusing a body (415 for a content type it does not take) arrives wrapped.
      if (code === 'PARSE' && error.cause instanceof ApiError) return error.cause.toResponse()
      if (path.startsWith('/oauth2/') && (code === 'PARSE' || code === 'VALIDATION'))
        return withHeaders(
          new OAuthError(
            'invalid_request',
            code === 'PARSE' ? 'the request body could not be parsed' : error.message,
          ).toResponse(),
          CORS_HEADERS,
        )
      switch (code) {
        case 'NOT_FOUND':
          return jsonError(404, { message: `No route for ${request.method} ${path}` })
        case 'PARSE':
          return jsonError(400, {
            message: 'Malformed request body',
            detail:
              error.cause instanceof Error
                ? error.cause.message
                : 'The body could not be parsed as its content type says',
          })
        case 'VALIDATION':
          return jsonError(422, { message: `Invalid request ${error.type}`, validations: validationDetails(error) })
        case 'INVALID_COOKIE_SIGNATURE':
        case 'INVALID_FILE_TYPE':
          return jsonError(400, { message: error.message })
      }
      logger.error('unhandled error', { error, method: request.method, path })
      return jsonError(500, {
        message: 'Internal server error',
        detail: `request ${currentRequestContext()?.requestId ?? ''}`.trim(),
      })
    })
    .use(
      openapi({
        path: '/openapi',
        // Its page loads a script from a CDN; /openapi is rendered below from the document instead.
        provider: null,
        // Route paths with a dot (/.well-known/…) would otherwise be taken for static files and left out.
        exclude: { staticFile: false },
        documentation: {
          info: {
            title: 'Gatehouse API',
            version: VERSION,
            description: 'Management API of the Gatehouse MCP gateway',
          },
          components: {
            securitySchemes: {
              bearer: { type: 'http', scheme: 'bearer', description: 'Session token, API token or OAuth access token' },
              cookie: { type: 'apiKey', in: 'cookie', name: cookieNamesFor(config.publicUrl).session },
            },
          },
          security: [{ bearer: [] }, { cookie: [] }],
        },
      }),
    )
    .use(opsModule(deps))
    .use(mcpModule(deps))
    .use(passthroughModule(deps))
    .use(oauthModule(deps))
    .use(loginPageModule(deps))
    .use(identityLoginModule(deps))
    .use(authModule(deps))
    .use(usersModule(deps))
    .use(tokensModule(deps))
    .use(orgsModule(deps))
    .use(appsModule(deps))
    .use(upstreamsModule(deps))
    .use(connectionsPageModule(deps))
  // The API reference, built once from the app's own document: the routes do not change while serving.
  const documentPath = `${basePathOf(config.publicUrl)}/openapi/json`
  let referenceBody: string | undefined
  return app.get(
    '/openapi',
    async () => {
      if (!referenceBody) {
        const document = await app.handle(new Request('http://localhost/openapi/json'))
        referenceBody = renderApiReferenceBody(await document.json(), documentPath)
      }
      return renderApiReferencePage('API reference', referenceBody)
    },
    { detail: { hide: true } },
  )
}

export type App = ReturnType<typeof createApp>
