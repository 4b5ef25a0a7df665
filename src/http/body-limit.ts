import { jsonError } from './errors.ts'
import { readStreamWithin } from './read-within.ts'

export function bodyTooLarge(limit: number, size?: number): Response {
  const detail = `The limit is ${limit} bytes${size === undefined ? '' : `; this body is ${size}`}`
  return jsonError(413, { message: 'Request body too large', detail })
}

/**
 * Whether a request carries a body. A declared length answers without touching `request.body`:
 * asking a runtime's request for its body stream builds one, which costs more on a hot path than
 * everything else a small request needs.
 */
export function hasBody(request: Request): boolean {
  const length = request.headers.get('content-length')
  return length !== null ? length !== '0' : request.body !== null
}

/** True when a declared Content-Length is over the limit. */
export function declaresTooLargeBody(request: Request, limit: number): boolean {
  return Number(request.headers.get('content-length') ?? 0) > limit
}

/**
 * A body sent without Content-Length (chunked) is read here, up to the limit, so an oversized one
 * gets the same JSON 413 as a declared one instead of the runtime's bare refusal. Bodies with a
 * Content-Length pass through untouched and are checked by the app.
 */
export async function readChunkedBodyWithin(request: Request, limit: number): Promise<Request | undefined> {
  // Content-Length first: asking a runtime's request for its body stream builds one.
  if (request.headers.has('content-length') || !request.body) return request
  const body = await readStreamWithin(request.body, limit)
  if (!body) return undefined
  const headers = new Headers(request.headers)
  headers.delete('transfer-encoding')
  headers.set('content-length', String(body.byteLength))
  return new Request(request.url, { method: request.method, headers, body, signal: request.signal })
}
