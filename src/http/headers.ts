/**
 * RFC 9110 §7.6.1 hop-by-hop headers (and the framing a runtime sets for each connection): they
 * belong to one connection, so a proxy never forwards them and an admin never configures them.
 */
export const HOP_BY_HOP_HEADERS = [
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
]

/**
 * A pure function of one header value, remembered for the few values clients actually send
 * (their `Accept`, their `Host`), so a hot path parses each only once.
 */
export function memoizedByValue<T>(compute: (value: string) => T, max = 256): (value: string) => T {
  const seen = new Map<string, T>()
  return (value) => {
    const known = seen.get(value)
    if (known !== undefined || seen.has(value)) return known as T
    const computed = compute(value)
    if (seen.size >= max) seen.clear()
    seen.set(value, computed)
    return computed
  }
}
