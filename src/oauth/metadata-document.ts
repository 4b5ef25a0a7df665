import { guardedFetch, OutboundError, type OutboundPolicy } from '../http/outbound.ts'
import { parseClientMetadata, type ClientMetadata } from './client-metadata.ts'
import { OAuthError } from './errors.ts'

/**
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, used by the MCP
 * authorization spec from 2025-11-25): a `client_id` that is an https URL names a JSON document
 * describing the client. The document is fetched through the SSRF guard, must name itself as its
 * `client_id`, and describes a public client. Good documents are cached within bounds; failures
 * are not cached, so a fixed document works on the next try.
 */
const MAX_DOCUMENT_BYTES = 5 * 1024
const FETCH_TIMEOUT_MS = 5000
const DEFAULT_TTL_SECONDS = 300
const MIN_TTL_SECONDS = 60
const MAX_TTL_SECONDS = 86400
const MAX_ENTRIES = 1000

interface CacheEntry {
  metadata: ClientMetadata
  expiresAt: number
}

export function isMetadataDocumentClientId(clientId: string): boolean {
  return clientId.startsWith('https://')
}

function ttlFrom(cacheControl: string | null): number {
  if (cacheControl && /no-store|no-cache/i.test(cacheControl)) return MIN_TTL_SECONDS
  const maxAge = /max-age=(\d+)/i.exec(cacheControl ?? '')
  const seconds = maxAge ? Number(maxAge[1]) : DEFAULT_TTL_SECONDS
  return Math.min(MAX_TTL_SECONDS, Math.max(MIN_TTL_SECONDS, seconds))
}

export class MetadataDocumentResolver {
  private readonly cache = new Map<string, CacheEntry>()

  constructor(private readonly policy: OutboundPolicy) {}

  async resolve(clientId: string): Promise<ClientMetadata> {
    const cached = this.cache.get(clientId)
    if (cached && cached.expiresAt > Date.now()) return cached.metadata
    this.cache.delete(clientId)

    const url = new URL(clientId)
    if (url.pathname === '/' || url.hash)
      throw new OAuthError('invalid_client', 'a client ID metadata document URL needs a path and no fragment', 401)
    let response
    try {
      response = await guardedFetch(clientId, this.policy, {
        maxBytes: MAX_DOCUMENT_BYTES,
        timeoutMs: FETCH_TIMEOUT_MS,
      })
    } catch (error) {
      if (error instanceof OutboundError)
        throw new OAuthError(
          'invalid_client',
          `the client metadata document could not be fetched: ${error.message}`,
          401,
        )
      throw error
    }
    let document: Record<string, unknown>
    try {
      document = JSON.parse(new TextDecoder().decode(response.body))
    } catch {
      throw new OAuthError('invalid_client', 'the client metadata document is not JSON', 401)
    }
    if (typeof document !== 'object' || document === null || document.client_id !== clientId)
      throw new OAuthError('invalid_client', 'the client metadata document must name its own URL as client_id', 401)
    const method = document.token_endpoint_auth_method ?? 'none'
    if (method !== 'none')
      throw new OAuthError(
        'invalid_client',
        'a client metadata document client must be public (token_endpoint_auth_method none)',
        401,
      )
    let metadata: ClientMetadata
    try {
      metadata = parseClientMetadata({ ...document, token_endpoint_auth_method: 'none' })
    } catch (error) {
      if (error instanceof OAuthError)
        throw new OAuthError('invalid_client', `the client metadata document is invalid: ${error.description}`, 401)
      throw error
    }
    if (this.cache.size >= MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!)
    this.cache.set(clientId, {
      metadata,
      expiresAt: Date.now() + ttlFrom(response.headers.get('cache-control')) * 1000,
    })
    return metadata
  }
}
