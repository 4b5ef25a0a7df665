import { isIP } from 'node:net'
import { classifyAddress } from '../http/address-policy.ts'
import { ApiError, invalidField } from '../http/errors.ts'
import { HOP_BY_HOP_HEADERS } from '../http/headers.ts'
import { CUSTOM_HEADERS_MAX_COUNT, HEADER_NAME_MAX_LENGTH, SLUG_MAX_LENGTH } from './limits.ts'

/** DESIGN.md: lowercase `[a-z0-9-]`, at most `SLUG_MAX_LENGTH`; it names the server in tool names and URLs. */
const SLUG = new RegExp(`^[a-z0-9](?:[a-z0-9-]{0,${SLUG_MAX_LENGTH - 2}}[a-z0-9])?$`)

/** RFC 9110 §5.6.2 token characters. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/**
 * Headers an admin may not set: hop-by-hop ones (RFC 9110 §7.6.1), framing, `Host`, cookies, and
 * the MCP transport's own, which Gatehouse and the client manage.
 */
const RESERVED_HEADERS = new Set([
  ...HOP_BY_HOP_HEADERS,
  'content-type',
  'cookie',
  'accept',
  'mcp-session-id',
  'mcp-protocol-version',
  'last-event-id',
])

export function normalizeSlug(raw: string): string {
  const slug = raw.trim()
  if (!SLUG.test(slug))
    throw invalidField(
      'slug',
      `must be 1 to ${SLUG_MAX_LENGTH} lower-case letters, digits or "-", starting and ending with a letter or digit`,
    )
  return slug
}

/** An absolute http(s) URL without credentials or fragment, trimmed; '' when allowed and empty. */
export function normalizeUrl(field: string, raw: string, options: { allowEmpty?: boolean } = {}): string {
  const value = raw.trim()
  if (value === '' && options.allowEmpty) return ''
  const url = URL.parse(value)
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
    throw invalidField(field, 'must be an absolute http or https URL')
  if (url.username || url.password) throw invalidField(field, 'must not contain credentials')
  if (url.hash || value.includes('#')) throw invalidField(field, 'must not contain a fragment')
  // A link-local or cloud-metadata address is never reachable through the outbound guard; say so now.
  const host = url.hostname.replace(/^\[|\]$/g, '')
  if (isIP(host) && classifyAddress(host) === 'forbidden')
    throw invalidField(field, 'must not point at a link-local or cloud metadata address')
  return value
}

/** A header name an upstream may be sent; `Authorization` only where it carries the credential itself. */
export function checkHeaderName(field: string, name: string, options: { allowAuthorization: boolean }): string {
  const trimmed = name.trim()
  if (trimmed.length > HEADER_NAME_MAX_LENGTH)
    throw invalidField(field, `a header name must be at most ${HEADER_NAME_MAX_LENGTH} characters`)
  if (!HEADER_NAME.test(trimmed)) throw invalidField(field, `"${trimmed.slice(0, 64)}" is not a valid header name`)
  const lower = trimmed.toLowerCase()
  if (RESERVED_HEADERS.has(lower)) throw invalidField(field, `${trimmed} cannot be set`)
  if (lower === 'authorization' && !options.allowAuthorization)
    throw invalidField(field, 'Authorization can be set only with auth_type custom_headers (or api_key)')
  if (lower.startsWith('x-gatehouse-')) throw invalidField(field, `${trimmed} is set by Gatehouse itself`)
  return trimmed
}

/** What RFC 9110 §5.5 lets a field value hold: HTAB, SP, VCHAR and obs-text (0x80-0xFF). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

/**
 * A header value, trimmed: no CR, LF or NUL (header injection), and nothing else a header cannot
 * carry. Refused when written, since a stored value that `Headers` refuses would fail every
 * request to the upstream later.
 */
export function checkHeaderValue(field: string, value: string): string {
  const trimmed = value.trim()
  if (/[\r\n\0]/.test(trimmed)) throw invalidField(field, 'must not contain line breaks or NUL')
  if (!FIELD_VALUE.test(trimmed))
    throw invalidField(
      field,
      'must hold only characters an HTTP header can carry: visible ASCII, space, tab, or Latin-1 (U+0080 to U+00FF)',
    )
  if (trimmed === '') throw invalidField(field, 'must not be empty')
  return trimmed
}

export function checkCustomHeaders(
  headers: Record<string, string>,
  allowAuthorization: boolean,
): Record<string, string> {
  const checked: Record<string, string> = {}
  const seen = new Set<string>()
  for (const [name, value] of Object.entries(headers)) {
    const header = checkHeaderName('custom_headers', name, { allowAuthorization })
    if (seen.has(header.toLowerCase())) throw invalidField('custom_headers', `${header} is given twice`)
    seen.add(header.toLowerCase())
    checked[header] = checkHeaderValue(`custom_headers.${header}`, value)
  }
  if (Object.keys(checked).length > CUSTOM_HEADERS_MAX_COUNT)
    throw invalidField('custom_headers', `at most ${CUSTOM_HEADERS_MAX_COUNT} headers`)
  return checked
}

/** Trimmed entries, empty ones dropped, duplicates removed; `*` globs stay as written. */
export function normalizeToolList(list: string[]): string[] {
  return [...new Set(list.map((entry) => entry.trim()).filter(Boolean))]
}

/** The cross-field rules of DESIGN.md, checked on the merged state so PATCH and POST agree. */
export function checkAuthFields(state: {
  auth_type: string
  oauth2_client_id: string
  oauth2_auth_url: string
  oauth2_token_url: string
  api_key_header: string
  hasApiKey: boolean
  customHeaderCount: number
}): 'manual' | 'discover' | undefined {
  if (state.auth_type === 'oauth2') {
    const given = [state.oauth2_client_id, state.oauth2_auth_url, state.oauth2_token_url].filter(Boolean).length
    if (given === 3) return 'manual'
    if (given === 0) return 'discover'
    throw new ApiError(
      400,
      'OAuth2 needs either all of oauth2_client_id, oauth2_auth_url and oauth2_token_url (manual configuration), or none of them (automatic discovery and registration)',
    )
  }
  if (state.auth_type === 'api_key' && (!state.api_key_header || !state.hasApiKey))
    throw new ApiError(400, 'The api_key auth type needs both api_key_header and api_key_value')
  if (state.auth_type === 'custom_headers' && state.customHeaderCount === 0)
    throw new ApiError(400, 'The custom_headers auth type needs at least one header in custom_headers')
  return undefined
}
