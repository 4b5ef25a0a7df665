import { Elysia } from 'elysia'
import type { AppDeps } from '../deps.ts'
import { authorizeRoutes } from './authorize.routes.ts'
import { CORS_HEADERS, preflight } from './http.ts'
import { authorizationServerMetadata, metadataPaths } from './metadata.ts'
import { MetadataDocumentResolver } from './metadata-document.ts'
import { isDynamicRegistrationEnabled, registerRoutes } from './register.routes.ts'
import { rootAliasRoutes } from './root-aliases.routes.ts'
import { tokenRoutes } from './token.routes.ts'

/** The OAuth 2.1 authorization server: metadata, authorize, token, register, revoke, introspect. */
export const oauthModule = (deps: AppDeps) => {
  const metadataDocuments = new MetadataDocumentResolver({
    db: deps.db,
    fetch: deps.outboundFetch,
    newDocumentsPerHour: deps.config.registrationRateLimit,
  })
  // Read per request: the dynamic registration switch (which covers metadata documents) lives in the database.
  const serveMetadata = async () =>
    Response.json(
      authorizationServerMetadata(deps.config, { metadataDocuments: await isDynamicRegistrationEnabled(deps) }),
      { headers: { ...CORS_HEADERS, 'cache-control': 'public, max-age=300' } },
    )
  let module = new Elysia({ name: 'oauth', detail: { tags: ['oauth'] } })
  for (const path of metadataPaths(deps.config.publicUrl))
    module = module
      .get(path, serveMetadata, { detail: { summary: 'Authorization server metadata (RFC 8414)', security: [] } })
      .options(path, preflight, { detail: { hide: true } })
  return module
    .use(authorizeRoutes(deps, { db: deps.db, config: deps.config, metadataDocuments }))
    .use(tokenRoutes(deps))
    .use(registerRoutes(deps))
    .use(rootAliasRoutes(deps))
}
