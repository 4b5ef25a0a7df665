/**
 * U+0000 is refused once, at the edge: Postgres cannot store it in text (it answers "invalid byte
 * sequence"), no identifier, URL or name this API takes may hold it, and letting it through made
 * every route that reaches the database a 500. Framework-free so the check is easy to test.
 */

const NUL = 0x00
const BACKSLASH = 0x5c
const PERCENT = 0x25
const ZERO = 0x30
const LOWER_U = 0x75

export const NUL_MESSAGE = 'The request contains a NUL character'

/** Where the URL holds a NUL: `path`, `query parameter <name>`, or undefined when it holds none. */
export function findNulInUrl(url: string): string | undefined {
  // The URL parser percent-encodes control characters, so an encoded NUL is always `%00`.
  if (!url.includes('%00') && !url.includes('\0')) return undefined
  const queryStart = url.indexOf('?')
  const path = queryStart === -1 ? url : url.slice(0, queryStart)
  if (path.includes('%00') || path.includes('\0')) return 'path'
  for (const [name, value] of new URLSearchParams(url.slice(queryStart + 1)))
    if (name.includes('\0')) return 'query parameter name'
    else if (value.includes('\0')) return `query parameter ${name.slice(0, 100)}`
  return 'query string'
}

/** True when the bytes hold `%` `0` `0`, which in a form body always decodes to NUL. */
function hasPercentEncodedNul(bytes: Uint8Array): boolean {
  for (let i = bytes.indexOf(PERCENT); i !== -1; i = bytes.indexOf(PERCENT, i + 1))
    if (bytes[i + 1] === ZERO && bytes[i + 2] === ZERO) return true
  return false
}

/**
 * True when JSON text holds the escape `\u0000`. A backslash run of even length is escaped
 * backslashes, so `\\u0000` (a literal backslash, then `u0000`) is not a NUL.
 */
function hasJsonNulEscape(bytes: Uint8Array): boolean {
  let i = bytes.indexOf(BACKSLASH)
  while (i !== -1) {
    let end = i
    while (bytes[end] === BACKSLASH) end++
    if (
      (end - i) % 2 === 1 &&
      bytes[end] === LOWER_U &&
      bytes[end + 1] === ZERO &&
      bytes[end + 2] === ZERO &&
      bytes[end + 3] === ZERO &&
      bytes[end + 4] === ZERO
    )
      return true
    i = bytes.indexOf(BACKSLASH, end)
  }
  return false
}

/**
 * Whether a body holds a NUL as its content type would decode it: a raw 0x00 byte in any body,
 * `%00` in a form, the `\u0000` escape in JSON (and in bodies of no declared type, which a route
 * may still parse as JSON). A byte scan, so it stays cheap on the /mcp path.
 */
export function bodyHasNul(bytes: Uint8Array, contentType: string | null): boolean {
  if (bytes.indexOf(NUL) !== -1) return true
  const type = contentType?.toLowerCase() ?? ''
  if (type.includes('application/x-www-form-urlencoded')) return hasPercentEncodedNul(bytes)
  if (type.includes('multipart/form-data')) return false
  return hasJsonNulEscape(bytes)
}

/**
 * Reads the body once and checks it. Reading consumes the stream, so the caller continues with
 * the returned request, which carries the same bytes. The body is already size-limited.
 */
export async function checkBodyForNul(request: Request): Promise<{ request: Request; hasNul: boolean }> {
  const bytes = new Uint8Array(await request.arrayBuffer())
  const rebuilt = new Request(request.url, {
    method: request.method,
    headers: request.headers,
    body: bytes,
    signal: request.signal,
  })
  return { request: rebuilt, hasNul: bodyHasNul(bytes, request.headers.get('content-type')) }
}
