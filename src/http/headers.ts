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
