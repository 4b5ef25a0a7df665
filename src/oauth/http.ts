import { OAuthError } from './errors.ts'

/**
 * CORS for the endpoints browser-based clients call directly (metadata, registration, token,
 * revocation). They use no cookies, so any origin may call them.
 */
export const CORS_HEADERS: Record<string, string> = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers': 'authorization, content-type, mcp-protocol-version',
  'access-control-max-age': '86400',
}

export function preflight(): Response {
  return new Response(null, { status: 204, headers: CORS_HEADERS })
}

export function withHeaders(response: Response, headers: Record<string, string>): Response {
  for (const [name, value] of Object.entries(headers)) response.headers.set(name, value)
  return response
}

/** A JSON response of an OAuth endpoint: never cached, CORS-enabled when asked. */
export function oauthJson(body: unknown, init: { status?: number; cors?: boolean } = {}): Response {
  return Response.json(body, {
    status: init.status ?? 200,
    headers: { 'cache-control': 'no-store', pragma: 'no-cache', ...(init.cors ? CORS_HEADERS : {}) },
  })
}

/** Runs an OAuth endpoint; protocol errors become RFC 6749 JSON (with CORS where the endpoint has it). */
export async function handleOAuth(run: () => Promise<Response>, cors = false): Promise<Response> {
  try {
    return await run()
  } catch (error) {
    if (!(error instanceof OAuthError)) throw error
    const response = error.toResponse()
    return cors ? withHeaders(response, CORS_HEADERS) : response
  }
}

/**
 * The parameters of a form (or JSON) body as single strings. RFC 6749 §3.1: a parameter must
 * not appear twice, so a repeated one is an `invalid_request` naming it.
 */
export function formOf(body: unknown): Record<string, string | undefined> {
  if (body === undefined || body === null || body === '') return {}
  if (typeof body !== 'object' || Array.isArray(body))
    throw new OAuthError('invalid_request', 'the body must be application/x-www-form-urlencoded')
  const form: Record<string, string | undefined> = {}
  for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
    if (Array.isArray(value)) throw new OAuthError('invalid_request', `parameter ${name} is repeated`)
    if (value === undefined || value === null) continue
    if (typeof value === 'object') throw new OAuthError('invalid_request', `parameter ${name} must be a string`)
    form[name] = String(value)
  }
  return form
}
