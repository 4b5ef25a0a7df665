import { createHash } from 'node:crypto'

/**
 * How upstream names appear in the aggregated `/mcp` (DESIGN.md, "Serving upstreams"). Tool and
 * prompt names are `<slug>__<name>`: at most 64 characters of `[A-Za-z0-9_.-]`, which is what the
 * strictest clients accept. A name that is too long or holds other characters is cut and ended
 * with `_` and 6 hex characters of a SHA-256 of the whole name, so it is the same on every
 * replica and after every restart, and two names that differ only past the cut stay apart.
 * Slugs are unique and `__` cannot occur in one, so two servers can never produce the same name.
 */
export const MAX_NAME_LENGTH = 64
const HASH_LENGTH = 6
const VALID_NAME = /^[A-Za-z0-9_.-]+$/

export function exposedName(slug: string, upstreamName: string): string {
  const whole = `${slug}__${upstreamName}`
  if (whole.length <= MAX_NAME_LENGTH && VALID_NAME.test(whole)) return whole
  const hash = createHash('sha256').update(whole).digest('hex').slice(0, HASH_LENGTH)
  const safe = whole.replace(/[^A-Za-z0-9_.-]/g, '_')
  return `${safe.slice(0, MAX_NAME_LENGTH - HASH_LENGTH - 1)}_${hash}`
}

/** The tool that links a user to an oauth2 server they have not connected yet. */
export const connectToolName = (slug: string) => `${slug}__connect`

const RESOURCE_SCHEME = 'gatehouse://'

/** `gatehouse://<slug>/<percent-encoded upstream URI>`: routes a resource back to its server. */
export function wrapResourceUri(slug: string, uri: string): string {
  return `${RESOURCE_SCHEME}${slug}/${encodeURIComponent(uri)}`
}

/** The server and upstream URI a wrapped URI names, or undefined for anything else. */
export function unwrapResourceUri(uri: string): { slug: string; uri: string } | undefined {
  if (!uri.startsWith(RESOURCE_SCHEME)) return undefined
  const rest = uri.slice(RESOURCE_SCHEME.length)
  const slash = rest.indexOf('/')
  if (slash <= 0) return undefined
  try {
    return { slug: rest.slice(0, slash), uri: decodeURIComponent(rest.slice(slash + 1)) }
  } catch {
    return undefined
  }
}

/**
 * A resource template's URI template, wrapped like a resource URI. The template's own variables
 * stay expandable: the literal parts are percent-encoded and each `{…}` expression is kept, so a
 * URI the client expands from it unwraps to the URI the upstream's template would give.
 */
export function wrapUriTemplate(slug: string, template: string): string {
  const parts = template.split(/(\{[^}]*\})/)
  return `${RESOURCE_SCHEME}${slug}/${parts.map((part) => (part.startsWith('{') ? part : encodeURIComponent(part))).join('')}`
}

/**
 * Upstream tool names longer than this are dropped: no client needs one, and a name is matched
 * against every allow and deny entry on every view build, so an upstream must not choose its size.
 */
export const MAX_TOOL_NAME_LENGTH = 256

/** Whether an upstream sent a name Gatehouse keeps: a string of 1 to `MAX_TOOL_NAME_LENGTH` characters. */
export function isAcceptableUpstreamName(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && name.length <= MAX_TOOL_NAME_LENGTH
}

/**
 * Whether `name` matches an allow/deny entry: the whole name, with `*` standing for any run of
 * characters (line breaks too) and every other character literal. Greedy, backing up only to the
 * last `*`, so the time grows with the name's length times the pattern's, never exponentially as a
 * backtracking regular expression does on upstream-chosen names like `aaaa…` against `*a*a*a*b`.
 */
function matches(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name
  let p = 0
  let n = 0
  /** The last `*` seen, and where in the name the run it stands for ends so far. */
  let star = -1
  let resume = 0
  while (n < name.length) {
    if (p < pattern.length && pattern[p] === '*') {
      star = p++
      resume = n
    } else if (p < pattern.length && pattern[p] === name[n]) {
      p++
      n++
    } else if (star >= 0) {
      p = star + 1
      n = ++resume
    } else return false
  }
  while (p < pattern.length && pattern[p] === '*') p++
  return p === pattern.length
}

/** A non-empty allow list lets only its tools through; then the deny list removes. */
export function passesLists(name: string, allow: readonly string[], deny: readonly string[]): boolean {
  if (allow.length > 0 && !allow.some((pattern) => matches(pattern, name))) return false
  return !deny.some((pattern) => matches(pattern, name))
}
