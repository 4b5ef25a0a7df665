import { lookup } from 'node:dns/promises'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { readStreamWithin } from './read-within.ts'

/**
 * Fetches of URLs that a user or client supplied (client metadata documents, later upstream
 * discovery) go through here: https only, no redirects followed, a 200 or nothing, a size cap,
 * a time cap, and no private, loopback or link-local destinations unless an admin allows them.
 *
 * Known limit: the address is checked on our own DNS lookup and the runtime's fetch resolves the
 * name again, so a resolver that answers differently within milliseconds (DNS rebinding) could
 * still steer the request. Pinning the address needs a custom connector the runtimes do not offer.
 */
export class OutboundError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'OutboundError'
  }
}

export interface OutboundPolicy {
  allowPrivate: boolean
  caFile?: string
}

export interface OutboundRequest {
  maxBytes: number
  timeoutMs: number
  accept?: string
}

export interface OutboundResponse {
  headers: Headers
  body: Uint8Array
}

function ipv4ToNumber(address: string): number {
  return address.split('.').reduce((value, part) => value * 256 + Number(part), 0)
}

const PRIVATE_V4: [string, number][] = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
]

function isPrivateIpv4(address: string): boolean {
  const value = ipv4ToNumber(address)
  return PRIVATE_V4.some(([base, bits]) => {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
    return (value & mask) >>> 0 === (ipv4ToNumber(base) & mask) >>> 0
  })
}

/** The eight 16-bit groups of an IPv6 address, with `::` expanded and a trailing dotted quad folded in. */
function ipv6Groups(address: string): number[] {
  let text = address
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (dotted) {
    const value = ipv4ToNumber(dotted[1])
    text = `${text.slice(0, -dotted[1].length)}${(value >>> 16).toString(16)}:${(value & 0xffff).toString(16)}`
  }
  const [head, tail] = text.split('::')
  const parse = (part: string | undefined) => (part ? part.split(':').map((group) => Number.parseInt(group, 16)) : [])
  const left = parse(head)
  const right = parse(tail)
  return tail === undefined ? left : [...left, ...new Array(8 - left.length - right.length).fill(0), ...right]
}

function ipv4FromGroups(high: number, low: number): string {
  return [high >>> 8, high & 0xff, low >>> 8, low & 0xff].join('.')
}

/**
 * True for any address that is not globally routable: loopback, private, link-local, CGNAT,
 * unique-local, multicast, documentation, and IPv4 addresses wrapped in IPv6 (mapped, NAT64,
 * compatible) in either notation, since URL parsing rewrites `::ffff:127.0.0.1` as `::ffff:7f00:1`.
 */
export function isPrivateAddress(address: string): boolean {
  const plain = address.replace(/^\[|\]$/g, '').toLowerCase()
  if (isIP(plain) === 4) return isPrivateIpv4(plain)
  if (isIP(plain) !== 6) return true
  const g = ipv6Groups(plain)
  const zeroPrefix = (n: number) => g.slice(0, n).every((group) => group === 0)
  if (zeroPrefix(5) && g[5] === 0xffff) return isPrivateIpv4(ipv4FromGroups(g[6], g[7])) // ::ffff:0:0/96
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0))
    return isPrivateIpv4(ipv4FromGroups(g[6], g[7]))
  if (zeroPrefix(6)) return true // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
  return (
    (g[0] & 0xfe00) === 0xfc00 || // fc00::/7 unique local
    (g[0] & 0xffc0) === 0xfe80 || // fe80::/10 link-local
    (g[0] & 0xff00) === 0xff00 || // ff00::/8 multicast
    (g[0] === 0x2001 && g[1] === 0x0db8) // 2001:db8::/32 documentation
  )
}

async function assertPublicDestination(hostname: string, policy: OutboundPolicy): Promise<void> {
  if (policy.allowPrivate) return
  const host = hostname.replace(/^\[|\]$/g, '')
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address)
  if (addresses.length === 0) throw new OutboundError(`${hostname} does not resolve`)
  const blocked = addresses.find(isPrivateAddress)
  if (blocked)
    throw new OutboundError(`${hostname} resolves to a private or loopback address (${blocked}), which is not allowed`)
}

let caCache: { file: string; pem: string } | undefined

function caOf(policy: OutboundPolicy): string | undefined {
  if (!policy.caFile) return undefined
  if (caCache?.file !== policy.caFile) caCache = { file: policy.caFile, pem: readFileSync(policy.caFile, 'utf8') }
  return caCache.pem
}

async function readCapped(response: Response, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get('content-length') ?? 0)
  if (declared > maxBytes) throw new OutboundError(`the response is larger than ${maxBytes} bytes`)
  if (!response.body) return new Uint8Array()
  const body = await readStreamWithin(response.body, maxBytes)
  if (!body) throw new OutboundError(`the response is larger than ${maxBytes} bytes`)
  return body
}

export async function guardedFetch(
  rawUrl: string,
  policy: OutboundPolicy,
  request: OutboundRequest,
): Promise<OutboundResponse> {
  let url: URL
  try {
    url = new URL(rawUrl)
  } catch {
    throw new OutboundError('not an absolute URL')
  }
  if (url.protocol !== 'https:') throw new OutboundError('only https URLs are fetched')
  if (url.username || url.password) throw new OutboundError('URLs with credentials are not fetched')
  await assertPublicDestination(url.hostname, policy)
  const ca = caOf(policy)
  let response: Response
  try {
    response = await fetch(url, {
      redirect: 'manual',
      signal: AbortSignal.timeout(request.timeoutMs),
      headers: { accept: request.accept ?? 'application/json' },
      ...(ca ? { tls: { ca } } : {}),
    } as RequestInit)
  } catch (error) {
    const reason =
      error instanceof Error && error.name === 'TimeoutError'
        ? `no answer within ${request.timeoutMs} ms`
        : 'the request failed'
    throw new OutboundError(reason)
  }
  if (response.status >= 300 && response.status < 400) {
    await response.body?.cancel().catch(() => {})
    throw new OutboundError(`answered with a redirect (${response.status}), which is not followed`)
  }
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => {})
    throw new OutboundError(`answered ${response.status}, not 200`)
  }
  return { headers: response.headers, body: await readCapped(response, request.maxBytes) }
}
