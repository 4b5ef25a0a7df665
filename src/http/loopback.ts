/**
 * The host names that always mean "this machine", as WHATWG URL writes them (`hostname`, IPv6 in
 * brackets). RFC 8252 §7.3 names `127.0.0.1` and `[::1]`; `localhost` is what most clients and
 * dev servers use, so it counts too.
 */
const LOOPBACK_HOSTNAMES: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]'])

/**
 * Whether `hostname` (a URL's `hostname`) is a loopback name. One list for loopback redirect URIs,
 * the Host check on `/mcp`, the CORS origins of a loopback public URL and the consent warning.
 */
export function isLoopbackHostname(hostname: string): boolean {
  return LOOPBACK_HOSTNAMES.has(hostname)
}
