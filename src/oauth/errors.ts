/** RFC 6749 §5.2 / RFC 7591 §3.2.2 / RFC 8707 / RFC 6750 error codes this server emits. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'unsupported_response_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'access_denied'
  | 'server_error'
  | 'invalid_redirect_uri'
  | 'invalid_client_metadata'
  | 'invalid_token'
  | 'temporarily_unavailable'
  | 'slow_down'

/**
 * An OAuth protocol error. Serialises to RFC 6749 JSON with `Cache-Control: no-store`; an
 * `invalid_client` after HTTP Basic authentication carries the `WWW-Authenticate` challenge
 * RFC 6749 §5.2 asks for.
 */
export class OAuthError extends Error {
  constructor(
    readonly error: OAuthErrorCode,
    readonly description: string,
    readonly status = 400,
    readonly headers: Record<string, string> = {},
  ) {
    super(description)
    this.name = 'OAuthError'
  }

  toResponse(): Response {
    return Response.json(
      { error: this.error, error_description: this.description },
      { status: this.status, headers: { 'cache-control': 'no-store', pragma: 'no-cache', ...this.headers } },
    )
  }
}

export function invalidClient(description: string, usedBasic: boolean): OAuthError {
  return new OAuthError(
    'invalid_client',
    description,
    401,
    usedBasic ? { 'www-authenticate': 'Basic realm="gatehouse", charset="UTF-8"' } : {},
  )
}
