import type { Kysely } from 'kysely'
import { nowSeconds } from '../db/index.ts'
import type { Database, OAuthClientRow } from '../db/schema.ts'
import { OutboundError, type OutboundFetch } from '../http/outbound.ts'
import { RateLimiter } from '../http/rate-limit.ts'
import { readStreamWithin } from '../http/read-within.ts'
import { currentRequestContext } from '../ops/request-context.ts'
import { findDefaultOrganization } from '../orgs/org.repository.ts'
import { parseClientMetadata, type ClientMetadata } from './client-metadata.ts'
import { findClientById, upsertMetadataDocumentClient } from './client.repository.ts'
import { metadataToRow } from './client.service.ts'
import { OAuthError } from './errors.ts'
import { isDynamicRegistrationEnabled } from './register.routes.ts'

/**
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, used by the MCP
 * authorization spec from 2025-11-25): a `client_id` that is an https URL names a JSON document
 * describing the client. Accepting one is a self-service registration, so the dynamic
 * registration switch covers it too (and the metadata's `client_id_metadata_document_supported`
 * says so).
 *
 * A document is fetched through the outbound guard, must name itself as its `client_id`, and
 * describes a public client. Because any visitor can name any URL, fetches are bounded: a
 * document is kept as long as its `Cache-Control` allows (`no-store` is fetched every time),
 * concurrent requests for one document share one fetch, and documents not seen before are fetched
 * at most `newDocumentsPerHour` times per client address. A failure is not remembered, so a
 * document that comes back is used on the next sign-in: those two bounds already cap what a
 * failing URL costs. Only an error answer that sets its own `max-age` is kept that long.
 */
const MAX_DOCUMENT_BYTES = 5 * 1024
const FETCH_TIMEOUT_MS = 5000
const DEFAULT_TTL_SECONDS = 300
const MAX_TTL_SECONDS = 86400
const MAX_ENTRIES = 1000
/** Shared-secret methods: a document cannot carry a secret, so a client asking for one is refused. */
const SHARED_SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'client_secret_jwt'])

export function isMetadataDocumentClientId(clientId: string): boolean {
  return clientId.startsWith('https://')
}

/** Seconds a document may be reused: `no-store`/`no-cache` not at all, `max-age` up to a day, else five minutes. */
export function cacheSecondsOf(cacheControl: string | null): number {
  if (!cacheControl) return DEFAULT_TTL_SECONDS
  const directives = cacheControl
    .toLowerCase()
    .split(',')
    .map((directive) => directive.trim())
  if (directives.includes('no-store') || directives.includes('no-cache')) return 0
  const maxAge = directives.find((directive) => directive.startsWith('max-age='))
  if (!maxAge) return DEFAULT_TTL_SECONDS
  const seconds = Number(maxAge.slice('max-age='.length).replaceAll('"', ''))
  if (!Number.isInteger(seconds) || seconds < 0) return DEFAULT_TTL_SECONDS
  return Math.min(MAX_TTL_SECONDS, seconds)
}

/**
 * Seconds an error answer may be reused: only what its own `max-age` says (capped like a
 * document's). Without one it is not kept, since a 404 or a bot wall is often fixed in minutes.
 */
export function failureCacheSecondsOf(cacheControl: string | null): number {
  if (
    !cacheControl
      ?.toLowerCase()
      .split(',')
      .some((directive) => directive.trim().startsWith('max-age='))
  )
    return 0
  return cacheSecondsOf(cacheControl)
}

function documentError(description: string): OAuthError {
  return new OAuthError('invalid_client', description, 401)
}

function fetchFailure(reason: string): OAuthError {
  return documentError(`the client metadata document could not be fetched: ${reason}`)
}

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key)
  if (map.size >= MAX_ENTRIES) map.delete(map.keys().next().value!)
  map.set(key, value)
}

export interface MetadataDocumentDeps {
  db: Kysely<Database>
  /** The outbound guard (`AppDeps.outboundFetch`). */
  fetch: OutboundFetch
  /** Fetches of documents that are not stored yet, per client address per hour. */
  newDocumentsPerHour: number
  /** The clock of the caches, in milliseconds. */
  now?: () => number
}

export class MetadataDocumentResolver {
  private readonly documents = new Map<string, { metadata: ClientMetadata; expiresAt: number }>()
  private readonly failures = new Map<string, { error: OAuthError; expiresAt: number }>()
  private readonly inFlight = new Map<string, Promise<ClientMetadata>>()
  private readonly limiter: RateLimiter
  private readonly now: () => number

  constructor(private readonly deps: MetadataDocumentDeps) {
    this.limiter = new RateLimiter(deps.newDocumentsPerHour, 3600_000)
    this.now = deps.now ?? Date.now
  }

  /**
   * The stored client for a metadata document URL, fetched (or taken from the cache) and stored
   * first. Refusals are `OAuthError`s whose description can be shown to the user.
   */
  async resolveClient(clientId: string): Promise<OAuthClientRow> {
    if (!(await isDynamicRegistrationEnabled(this.deps)))
      throw new OAuthError(
        'access_denied',
        'this server does not accept client ID metadata documents while dynamic client registration is turned off; ask an admin to register the application',
        403,
      )
    // The client_id is the caller's say-so: `https://`, a port past 65535 or an unclosed `[` do not parse.
    const url = URL.parse(clientId)
    if (!url || url.protocol !== 'https:' || url.pathname === '/' || url.hash)
      throw documentError('a client ID metadata document URL must be https, with a path and no fragment')
    const cached = this.documents.get(clientId)
    if (cached && cached.expiresAt > this.now()) {
      const row = await findClientById(this.deps.db, clientId)
      if (row) return row
      return this.store(clientId, cached.metadata)
    }
    const failed = this.failures.get(clientId)
    if (failed && failed.expiresAt > this.now()) throw failed.error
    return this.store(clientId, await this.fetchShared(clientId))
  }

  /** One fetch per document at a time: concurrent requests for it wait for the same answer. */
  private async fetchShared(clientId: string): Promise<ClientMetadata> {
    const pending = this.inFlight.get(clientId)
    if (pending) return pending
    const started = this.fetchAndRemember(clientId)
    this.inFlight.set(clientId, started)
    try {
      return await started
    } finally {
      this.inFlight.delete(clientId)
    }
  }

  private async fetchAndRemember(clientId: string): Promise<ClientMetadata> {
    if (!(await findClientById(this.deps.db, clientId))) {
      const taken = this.limiter.take(currentRequestContext()?.clientIp ?? 'unknown', this.now())
      if (!taken.allowed)
        throw new OAuthError(
          'temporarily_unavailable',
          'too many new client metadata documents from this address; try again later',
          429,
          { 'retry-after': String(taken.retryAfterSeconds) },
        )
    }
    try {
      const { metadata, cacheSeconds } = await this.download(clientId)
      this.failures.delete(clientId)
      if (cacheSeconds > 0)
        remember(this.documents, clientId, { metadata, expiresAt: this.now() + cacheSeconds * 1000 })
      else this.documents.delete(clientId)
      return metadata
    } catch (error) {
      if (error instanceof OAuthError) this.documents.delete(clientId)
      throw error
    }
  }

  /** Keeps an error answer for the time its own Cache-Control names, so a CDN's cached 404 is not asked again. */
  private rememberFailure(clientId: string, error: OAuthError, cacheControl: string | null): OAuthError {
    const seconds = failureCacheSecondsOf(cacheControl)
    if (seconds > 0) remember(this.failures, clientId, { error, expiresAt: this.now() + seconds * 1000 })
    else this.failures.delete(clientId)
    return error
  }

  private async download(clientId: string): Promise<{ metadata: ClientMetadata; cacheSeconds: number }> {
    let body: Uint8Array | undefined
    let cacheControl: string | null
    try {
      const response = await this.deps.fetch(clientId, {
        redirect: 'manual',
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      })
      if (response.status >= 300 && response.status < 400) {
        await response.body?.cancel().catch(() => {})
        throw fetchFailure(`answered with a redirect (${response.status}), which is not followed`)
      }
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => {})
        throw this.rememberFailure(
          clientId,
          fetchFailure(`answered ${response.status}, not 200`),
          response.headers.get('cache-control'),
        )
      }
      cacheControl = response.headers.get('cache-control')
      if (Number(response.headers.get('content-length') ?? 0) > MAX_DOCUMENT_BYTES) {
        await response.body?.cancel().catch(() => {})
        body = undefined
      } else body = response.body ? await readStreamWithin(response.body, MAX_DOCUMENT_BYTES) : new Uint8Array()
    } catch (error) {
      if (error instanceof OAuthError) throw error
      if (error instanceof OutboundError) throw fetchFailure(error.message)
      if (error instanceof Error && error.name === 'TimeoutError')
        throw fetchFailure(`no answer within ${FETCH_TIMEOUT_MS} ms`)
      throw fetchFailure('the request failed')
    }
    if (!body) throw fetchFailure(`the response is larger than ${MAX_DOCUMENT_BYTES} bytes`)
    return { metadata: parseDocument(clientId, body), cacheSeconds: cacheSecondsOf(cacheControl) }
  }

  /**
   * Records the document's client. When its redirect URIs changed, consent remembered for a
   * redirect URI it no longer lists is dropped, so putting that URI back later asks the user again.
   */
  private async store(clientId: string, metadata: ClientMetadata): Promise<OAuthClientRow> {
    const organization = await findDefaultOrganization(this.deps.db)
    const row = metadataToRow(metadata, {
      id: clientId,
      organizationId: organization.id,
      kind: 'metadata_document',
      createdBy: null,
      now: nowSeconds(),
    })
    await this.deps.db.transaction().execute(async (trx) => {
      await upsertMetadataDocumentClient(trx, row)
      await trx
        .deleteFrom('oauth_consents')
        .where('client_id', '=', clientId)
        .where('redirect_uri', 'not in', metadata.redirectUris)
        .execute()
    })
    return (await findClientById(this.deps.db, clientId)) ?? row
  }
}

/** Validates a fetched document. A client that prefers an auth method we lack (`private_key_jwt`) is served as public. */
function parseDocument(clientId: string, body: Uint8Array): ClientMetadata {
  let document: unknown
  try {
    document = JSON.parse(new TextDecoder().decode(body))
  } catch {
    throw documentError('the client metadata document is not JSON')
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document))
    throw documentError('the client metadata document must be a JSON object')
  const fields = document as Record<string, unknown>
  if (fields.client_id !== clientId)
    throw documentError('the client metadata document must name its own URL as client_id')
  const method = fields.token_endpoint_auth_method ?? 'none'
  if (typeof method !== 'string') throw documentError('token_endpoint_auth_method must be a string')
  if (SHARED_SECRET_METHODS.has(method))
    throw documentError(
      `a client metadata document cannot use a shared secret (token_endpoint_auth_method ${method}); use none`,
    )
  try {
    return parseClientMetadata({ ...fields, token_endpoint_auth_method: 'none' })
  } catch (error) {
    if (error instanceof OAuthError)
      throw documentError(`the client metadata document is invalid: ${error.description}`)
    throw error
  }
}
