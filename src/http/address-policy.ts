import { isIP } from 'node:net'
import ipaddr from 'ipaddr.js'

/**
 * Which network destinations the outbound guard lets through, decided per resolved address.
 *
 * - `public`: globally routable; always allowed.
 * - `internal`: loopback, private, CGNAT, unique-local, documentation and other non-routable
 *   unicast ranges; allowed only when the operator opens them (`GATEHOUSE_OUTBOUND_ALLOW_PRIVATE`,
 *   or a host or CIDR in `GATEHOUSE_OUTBOUND_ALLOW_HOSTS`).
 * - `forbidden`: link-local (169.254.0.0/16, fe80::/10), cloud metadata endpoints, the
 *   unspecified, broadcast and multicast addresses, and IPv6 forms that embed a non-public IPv4
 *   address (IPv4-mapped, IPv4-translated, NAT64, 6to4, Teredo, IPv4-compatible). No setting
 *   opens these: nothing legitimate lives there, and the embedded forms only ever serve to smuggle
 *   a private address past a check that looks at the IPv6 ranges alone.
 *
 * The ranges come from ipaddr.js's maintained tables rather than our own list.
 */
export type AddressClass = 'public' | 'internal' | 'forbidden'

type Address = ipaddr.IPv4 | ipaddr.IPv6
type Cidr = [Address, number]

/** Cloud metadata and platform endpoints outside the link-local range. */
const FORBIDDEN_CIDRS: Cidr[] = [
  '100.100.100.200/32', // Alibaba Cloud metadata (in the CGNAT range)
  '168.63.129.16/32', // Azure WireServer (a public-looking address answered by the host)
  '192.0.0.192/32', // Oracle Cloud Classic metadata
  'fd00:ec2::/32', // AWS IPv6 metadata (fd00:ec2::254), DNS and time sync (in the unique-local range)
].map((cidr) => ipaddr.parseCIDR(cidr))

const PUBLIC_V4_RANGES = new Set(['unicast', 'as112', 'amt'])
const FORBIDDEN_V4_RANGES = new Set(['linkLocal', 'unspecified', 'broadcast', 'multicast'])
const PUBLIC_V6_RANGES = new Set(['unicast', 'as112v6', 'amt'])
const FORBIDDEN_V6_RANGES = new Set(['linkLocal', 'unspecified', 'multicast'])

function ipv4FromGroups(high: number, low: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([(high >> 8) & 0xff, high & 0xff, (low >> 8) & 0xff, low & 0xff])
}

function matchesAny(address: Address, cidrs: readonly Cidr[]): boolean {
  return cidrs.some(([network, bits]) => network.kind() === address.kind() && address.match(network, bits))
}

function classifyIpv4(address: ipaddr.IPv4): AddressClass {
  if (matchesAny(address, FORBIDDEN_CIDRS)) return 'forbidden'
  const range = address.range()
  if (FORBIDDEN_V4_RANGES.has(range)) return 'forbidden'
  return PUBLIC_V4_RANGES.has(range) ? 'public' : 'internal'
}

/** An IPv6 address that carries an IPv4 one is as good as that address when it is public, else forbidden. */
function classifyEmbedded(...embedded: ipaddr.IPv4[]): AddressClass {
  return embedded.every((v4) => classifyIpv4(v4) === 'public') ? 'public' : 'forbidden'
}

function classifyIpv6(address: ipaddr.IPv6): AddressClass {
  if (matchesAny(address, FORBIDDEN_CIDRS)) return 'forbidden'
  const p = address.parts
  switch (address.range()) {
    case 'ipv4Mapped': // ::ffff:a.b.c.d
    case 'rfc6145': // ::ffff:0:a.b.c.d
      return classifyEmbedded(ipv4FromGroups(p[6], p[7]))
    case 'rfc6052':
      // 64:ff9b::/96 carries the address in its last 32 bits; the local-use 64:ff9b:1::/48 places
      // it by a prefix length only the local translator knows, so it cannot be checked.
      return p[2] === 0 ? classifyEmbedded(ipv4FromGroups(p[6], p[7])) : 'forbidden'
    case '6to4': // 2002:AABB:CCDD::/48
      return classifyEmbedded(ipv4FromGroups(p[1], p[2]))
    case 'teredo': // 2001:0:server:server:flags:port:~client:~client
      return classifyEmbedded(ipv4FromGroups(p[2], p[3]), ipv4FromGroups(~p[6], ~p[7]))
  }
  const range = address.range()
  if (FORBIDDEN_V6_RANGES.has(range)) return 'forbidden'
  // ::/96 other than :: and ::1 is the deprecated IPv4-compatible form (ipaddr.js calls it unicast).
  if (p.slice(0, 6).every((group) => group === 0) && range !== 'loopback') return 'forbidden'
  return PUBLIC_V6_RANGES.has(range) ? 'public' : 'internal'
}

/** Classifies an IP address literal (dotted IPv4, or IPv6 with or without brackets). Anything else is forbidden. */
export function classifyAddress(literal: string): AddressClass {
  const plain = literal.replace(/^\[|\]$/g, '')
  if (!isIP(plain.replace(/%.*$/, ''))) return 'forbidden'
  const address = ipaddr.parse(plain)
  return address.kind() === 'ipv4' ? classifyIpv4(address as ipaddr.IPv4) : classifyIpv6(address as ipaddr.IPv6)
}

const HOST_NAME = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/

/**
 * Normalises a `GATEHOUSE_OUTBOUND_ALLOW_HOSTS` value: entries separated by commas or spaces,
 * each a host name (`mcp.internal`), a wildcard (`*.corp.example`, any name below it), an IP
 * address or a CIDR (`10.1.0.0/16`, `fd12::/48`). Throws with the offending entry.
 */
export function parseAllowHosts(raw: string): string[] {
  const entries: string[] = []
  for (const entry of raw.split(/[\s,]+/).filter(Boolean)) {
    const value = entry.toLowerCase().replace(/\.$/, '')
    if (/^[0-9a-f.:]+\/\d+$/.test(value)) {
      if (!isIP(value.split('/')[0]) || !ipaddr.isValidCIDR(value)) throw new Error(`"${entry}" is not a valid CIDR`)
      entries.push(value)
    } else if (isIP(value.replace(/^\[|\]$/g, ''))) entries.push(value.replace(/^\[|\]$/g, ''))
    else if (HOST_NAME.test(value)) entries.push(value)
    else throw new Error(`"${entry}" is not a host name, IP address or CIDR`)
  }
  return entries
}

export interface AddressPolicyOptions {
  /** Let every internal address through (link-local and metadata stay refused). */
  allowPrivate: boolean
  /** Entries as `parseAllowHosts` returns them: internal addresses they cover are let through. */
  allowHosts?: readonly string[]
}

/** Decides whether a host name (as written in the URL) may be reached at one of its addresses. */
export class AddressPolicy {
  private readonly names = new Set<string>()
  private readonly suffixes: string[] = []
  private readonly cidrs: Cidr[] = []
  private readonly allowPrivate: boolean

  constructor(options: AddressPolicyOptions) {
    this.allowPrivate = options.allowPrivate
    for (const entry of options.allowHosts ?? []) {
      if (entry.includes('/')) this.cidrs.push(ipaddr.parseCIDR(entry))
      else if (isIP(entry)) this.cidrs.push([ipaddr.parse(entry), entry.includes(':') ? 128 : 32])
      else if (entry.startsWith('*.')) this.suffixes.push(entry.slice(1))
      else this.names.add(entry)
    }
  }

  private isNameAllowed(hostname: string): boolean {
    const name = hostname.toLowerCase().replace(/\.$/, '')
    return this.names.has(name) || this.suffixes.some((suffix) => name.endsWith(suffix))
  }

  /** True when `address` (one the host resolved to, or the host itself when it is a literal) may be reached. */
  allows(hostname: string, address: string): boolean {
    const kind = classifyAddress(address)
    if (kind === 'public') return true
    if (kind === 'forbidden') return false
    if (this.allowPrivate || this.isNameAllowed(hostname)) return true
    return matchesAny(ipaddr.parse(address.replace(/^\[|\]$/g, '')), this.cidrs)
  }
}
