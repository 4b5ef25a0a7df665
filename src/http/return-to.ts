/**
 * A path that starts with two slashes or backslashes, also percent-encoded: as a `Location` a
 * browser reads `//host` and `/\host` as another host, and a proxy that decodes the path before
 * redirecting would turn `/%2f/host` into one.
 */
const HOST_RELATIVE = /^\/(?:[/\\]|%2f|%5c)/i

/**
 * A place to send the browser after sign-in (`next`, `return_to`): accepted only when it
 * resolves, by the WHATWG URL rules browsers apply, to a URL of the public URL's own origin.
 * Checking the string's prefix is not enough: browsers drop tabs and newlines and read `\` as `/`,
 * so `/\t/evil.example` and `/\evil.example` lead off-site, and dot segments collapse, so
 * `/.//evil.example` resolves to the path `//evil.example`. The result is the resolved path,
 * query and fragment, starting with exactly one `/`, so the `Location` header never carries what
 * the browser would reinterpret.
 */
export function safeReturnTo(value: unknown, publicUrl: string, fallback: string): string {
  if (typeof value !== 'string' || value === '' || value.length > 2048) return fallback
  // Only paths: an absolute URL, even one of our own origin, is not needed by any caller.
  if (!value.startsWith('/')) return fallback
  let resolved: URL
  try {
    resolved = new URL(value, `${publicUrl}/`)
  } catch {
    return fallback
  }
  if (resolved.origin !== new URL(publicUrl).origin) return fallback
  const path = `${resolved.pathname}${resolved.search}${resolved.hash}`
  if (!path.startsWith('/') || HOST_RELATIVE.test(path)) return fallback
  // What the browser will make of the result must be what was checked.
  if (new URL(path, `${publicUrl}/`).href !== resolved.href) return fallback
  return path
}
