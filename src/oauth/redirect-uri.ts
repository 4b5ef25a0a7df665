import { isLoopbackHostname } from '../http/loopback.ts'

/**
 * Redirect URI rules (OAuth 2.1 §2.3.1/§7.5.3, RFC 8252 §7). A registered URI must be absolute,
 * without a fragment, and not a scheme that runs code in the browser. https is always fine;
 * http only for loopback (native apps); private-use schemes (`cursor://`, `vscode://`,
 * `com.example.app:/cb`) only for public clients, which have no secret to protect anyway.
 */
const FORBIDDEN_SCHEMES = new Set(['javascript:', 'data:', 'vbscript:', 'file:', 'blob:', 'about:'])

export type RedirectUriProblem = string

function parse(uri: string): URL | undefined {
  try {
    return new URL(uri)
  } catch {
    return undefined
  }
}

export function isLoopbackRedirect(url: URL): boolean {
  return url.protocol === 'http:' && isLoopbackHostname(url.hostname)
}

/** Why a redirect URI may not be registered, or undefined when it may. */
export function checkRedirectUri(uri: string, options: { publicClient: boolean }): RedirectUriProblem | undefined {
  if (uri.length > 2000) return 'is longer than 2000 characters'
  if (uri.includes('#')) return 'must not contain a fragment'
  const url = parse(uri)
  if (!url) return 'is not an absolute URI'
  if (FORBIDDEN_SCHEMES.has(url.protocol)) return `uses the forbidden scheme ${url.protocol.slice(0, -1)}`
  if (url.protocol === 'https:') return url.hostname ? undefined : 'has no host'
  if (url.protocol === 'http:')
    return isLoopbackRedirect(url) ? undefined : 'must use https (plain http is allowed only for loopback addresses)'
  if (!options.publicClient) return 'may use a private-use scheme only for public clients'
  // RFC 8252 §7.1: private-use schemes are reverse-domain or app names; a dot-less name like
  // cursor or vscode is what real clients send, so accept any plausible scheme name.
  if (!/^[a-z][a-z0-9+.-]*:$/.test(url.protocol)) return 'has an invalid scheme'
  return undefined
}

/**
 * Whether a redirect URI presented at /authorize or /token matches a registered one: exact string
 * match, except for loopback http URIs, where the port may differ (RFC 8252 §7.3) because native
 * apps listen on an ephemeral port.
 */
export function redirectUriMatches(registered: string, presented: string): boolean {
  if (registered === presented) return true
  const a = parse(registered)
  const b = parse(presented)
  if (!a || !b || !isLoopbackRedirect(a) || !isLoopbackRedirect(b)) return false
  return (
    a.hostname === b.hostname &&
    a.pathname === b.pathname &&
    a.search === b.search &&
    a.username === '' &&
    b.username === '' &&
    b.hash === ''
  )
}

export function findMatchingRedirectUri(registered: string[], presented: string): string | undefined {
  return registered.find((uri) => redirectUriMatches(uri, presented))
}
