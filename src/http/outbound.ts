import { lookup } from 'node:dns/promises'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { rootCertificates } from 'node:tls'
import type { Config } from '../config.ts'
import { AddressPolicy } from './address-policy.ts'
import type { OutboundCapacity } from './outbound-capacity.ts'

/**
 * The outbound guard: every fetch the server makes on a URL that a user, a client or an admin
 * supplied (client metadata documents, upstream MCP servers and every URL discovered from them)
 * goes through `createOutboundFetch`. It is a WHATWG-`fetch`-compatible function, so the MCP SDK
 * client's OAuth functions and transports take it as their `fetch`.
 *
 * What it enforces:
 * - http and https only, no credentials in the URL. Plain http is allowed because internal
 *   upstreams often are; callers that need https (client metadata documents) check that themselves.
 * - Each destination's addresses are checked by `AddressPolicy` (link-local and metadata always
 *   refused, private ranges only when the operator opened them), and the connection goes to the
 *   address that was checked (see `fetchPinned`).
 * - Redirects are never followed blindly: `follow` (the default) re-checks every hop, at most 5;
 *   `manual` returns the 3xx response as is; `error` rejects.
 * - A time limit to the response headers of each hop and one for the whole exchange, body
 *   included, and a cap on the body size; the body stream errors when either is passed.
 *
 * A refused destination rejects with `OutboundError` naming only the host as written, never what
 * it resolved to, so error pages cannot be used to map internal DNS.
 */
export class OutboundError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'OutboundError'
  }
}

export type OutboundFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

/** Resolves a host name to its IP addresses. */
export type Resolve = (hostname: string) => Promise<string[]>

export interface OutboundPolicy {
  /** Let private and loopback destinations through (link-local and metadata stay refused). */
  allowPrivate: boolean
  /** Host names, `*.suffix` wildcards, addresses and CIDRs whose private addresses are let through. */
  allowHosts?: readonly string[]
  /** PEM file of certificate authorities trusted in addition to the built-in ones. */
  caFile?: string
  /** The resolver; node:dns `lookup` (the system resolver, /etc/hosts included) unless a test injects one. */
  resolve?: Resolve
}

export interface OutboundLimits {
  /** Largest response body; the stream errors past it. Default 10 MiB. */
  maxResponseBytes?: number
  /** Time from sending a request until its response headers arrive (DNS, connect, TLS, the server's wait). Default 10 s. */
  connectTimeoutMs?: number
  /** Time for the whole exchange, redirects and body included; `Infinity` for long-lived streams. Default 60 s. */
  totalTimeoutMs?: number
  /** Redirects followed in `follow` mode. Default 5. */
  maxRedirects?: number
  /**
   * Decode compressed bodies (default true). A proxy passes them on as they came instead: Bun
   * decodes but keeps `Content-Encoding`, so the client would decode them a second time.
   */
  decompress?: boolean
  /**
   * How long a host name's resolved and allowed addresses are reused (default 5 s). Requests still
   * go to the address that was checked, so this gives DNS rebinding nothing to steer.
   */
  checkedHostMs?: number
}

const DEFAULT_LIMITS: Required<OutboundLimits> = {
  maxResponseBytes: 10 * 1024 * 1024,
  connectTimeoutMs: 10_000,
  totalTimeoutMs: 60_000,
  maxRedirects: 5,
  decompress: true,
  checkedHostMs: 5000,
}

const encoder = new TextEncoder()

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308])
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304])
/** Errors after which nothing was sent, so the next address of the host may be tried. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ConnectionRefused'])
/** Headers a redirect to another origin must not carry (WHATWG fetch §4.4, plus cookies). */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization']
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']

/** The policy the configuration describes. */
export function outboundPolicyOf(
  config: Pick<Config, 'outboundAllowPrivate' | 'outboundAllowHosts' | 'outboundCaFile'>,
): OutboundPolicy {
  return {
    allowPrivate: config.outboundAllowPrivate,
    allowHosts: config.outboundAllowHosts,
    caFile: config.outboundCaFile,
  }
}

async function resolveWithDns(hostname: string): Promise<string[]> {
  const answers = await lookup(hostname, { all: true, verbatim: true })
  return answers.map((answer) => answer.address)
}

/** The CA file is read once, when the guard is built, so a missing file stops start-up instead of every fetch. */
function trustedCasOf(caFile: string | undefined): string[] | undefined {
  if (!caFile) return undefined
  let pem: string
  try {
    pem = readFileSync(caFile, 'utf8')
  } catch (error) {
    throw new Error(`GATEHOUSE_OUTBOUND_CA_FILE ${caFile} cannot be read: ${(error as NodeJS.ErrnoException).code}`)
  }
  // In Node `ca` replaces the built-in roots; passing them along keeps public hosts trusted either way.
  return [...rootCertificates, pem]
}

function reasonOf(error: unknown): string {
  const code = (error as { code?: unknown })?.code
  if (typeof code !== 'string') return 'the request failed'
  if (code === 'ECONNREFUSED' || code === 'ConnectionRefused') return 'the connection was refused'
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'its certificate does not name this host'
  if (/CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code)) return 'its certificate is not trusted'
  return /^[A-Za-z_]+$/.test(code) ? code : 'the request failed'
}

/** One exchange's abort signal: the caller's, the total deadline, and the current hop's header deadline. */
class Deadline {
  readonly controller = new AbortController()
  private total?: ReturnType<typeof setTimeout>
  private hop?: ReturnType<typeof setTimeout>
  private readonly onCallerAbort?: () => void

  constructor(
    private readonly caller: AbortSignal | null | undefined,
    host: string,
    totalMs: number,
    /** Called once the exchange is over, or its response is handed on unwatched. */
    readonly onDone: () => void = () => {},
  ) {
    if (caller?.aborted) this.controller.abort(caller.reason)
    else if (caller) {
      this.onCallerAbort = () => this.controller.abort(caller.reason)
      caller.addEventListener('abort', this.onCallerAbort, { once: true })
    }
    if (Number.isFinite(totalMs))
      this.total = unref(
        setTimeout(
          () => this.controller.abort(new OutboundError(`${host} did not finish answering within ${totalMs} ms`)),
          totalMs,
        ),
      )
  }

  /** Whether a total deadline runs, which the body must be watched for. */
  get hasTotal(): boolean {
    return this.total !== undefined
  }

  get signal(): AbortSignal {
    return this.controller.signal
  }

  startHop(host: string, ms: number): void {
    clearTimeout(this.hop)
    if (Number.isFinite(ms))
      this.hop = unref(
        setTimeout(() => this.controller.abort(new OutboundError(`${host} did not answer within ${ms} ms`)), ms),
      )
  }

  endHop(): void {
    clearTimeout(this.hop)
  }

  /** The exchange is over (body read, cancelled or failed): drop the timers and the caller's listener. */
  finish(): void {
    this.onDone()
    clearTimeout(this.hop)
    clearTimeout(this.total)
    if (this.onCallerAbort) this.caller?.removeEventListener('abort', this.onCallerAbort)
  }
}

/** A resolver has no signal of its own; the lookup is left to finish while the caller moves on. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

function unref(timer: ReturnType<typeof setTimeout>): ReturnType<typeof setTimeout> {
  ;(timer as { unref?: () => void }).unref?.()
  return timer
}

/** Wraps a response body so it errors once it passes `maxBytes` or the deadline, and frees the timers when done. */
function capBody(
  source: ReadableStream<Uint8Array>,
  host: string,
  maxBytes: number,
  deadline: Deadline,
): ReadableStream<Uint8Array> {
  const reader = source.getReader()
  let total = 0
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: Awaited<ReturnType<typeof reader.read>>
      try {
        chunk = await reader.read()
      } catch {
        const reason = deadline.signal.aborted
          ? deadline.signal.reason
          : new OutboundError(`${host} broke off its answer`)
        deadline.finish()
        controller.error(reason)
        return
      }
      if (chunk.done) {
        deadline.finish()
        controller.close()
        return
      }
      total += chunk.value.byteLength
      if (total > maxBytes) {
        deadline.finish()
        await reader.cancel().catch(() => {})
        controller.error(new OutboundError(`the answer from ${host} is larger than ${maxBytes} bytes`))
        return
      }
      controller.enqueue(chunk.value)
    },
    async cancel(reason) {
      deadline.finish()
      await reader.cancel(reason).catch(() => {})
    },
  })
}

interface Hop {
  url: URL
  method: string
  headers: Headers
  body: Uint8Array | null
}

/**
 * Builds the guard. What is pinned, and how it was verified on Bun 1.4.5:
 *
 * The host name is resolved once (`policy.resolve`, node:dns `lookup` by default), every address
 * is checked, and the request goes to an address that passed, written into the URL as an IP
 * literal, so the runtime never resolves the name itself and an answer that changes between the
 * check and the connection (DNS rebinding) has nothing to steer. The name travels in the `Host`
 * header (Bun sends a caller-set `Host` unchanged, verified against a loopback server) and, for
 * https, as `tls.serverName`: Bun sends it as SNI (a server with one certificate per name
 * answered each name with its own) and checks the certificate against it, not against the IP
 * (a certificate without the name fails with ERR_TLS_CERT_ALTNAME_INVALID, also on a kept-alive
 * connection that an earlier request to another name on the same address opened). Each redirect
 * hop is resolved, checked and pinned the same way. With `HTTP_PROXY`/`HTTPS_PROXY` set, Bun
 * sends the request through that proxy, which is then asked for the pinned address.
 */
export function createOutboundFetch(
  policy: OutboundPolicy,
  limits: OutboundLimits = {},
  /** Counts each request while it waits for its answer (and reads a capped body), for `/readyz`. */
  capacity?: OutboundCapacity,
): OutboundFetch {
  const { maxResponseBytes, connectTimeoutMs, totalTimeoutMs, maxRedirects, decompress, checkedHostMs } = {
    ...DEFAULT_LIMITS,
    ...limits,
  }
  const addresses = new AddressPolicy({ allowPrivate: policy.allowPrivate, allowHosts: policy.allowHosts })
  const resolve = policy.resolve ?? resolveWithDns
  const ca = trustedCasOf(policy.caFile)

  /** Host names whose addresses were resolved and allowed a moment ago: no lookup per request on hot paths. */
  const checkedHosts = new Map<string, { addresses: string[]; until: number }>()

  /** The addresses of the URL's host that may be reached; refuses when any of them may not. */
  async function checkedAddressesOf(url: URL, signal: AbortSignal): Promise<string[]> {
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new OutboundError(`only http and https URLs are fetched, not ${url.protocol}`)
    if (url.username || url.password) throw new OutboundError('URLs with credentials are not fetched')
    const now = Date.now()
    const cached = checkedHosts.get(url.hostname)
    if (cached && cached.until > now) return cached.addresses
    const literal = url.hostname.replace(/^\[|\]$/g, '')
    let found: string[]
    if (isIP(literal)) found = [literal]
    else
      found = await untilAborted(
        resolve(url.hostname).catch(() => []),
        signal,
      )
    if (found.length === 0) throw new OutboundError(`${url.hostname} does not resolve`)
    if (!found.every((address) => addresses.allows(url.hostname, address)))
      throw new OutboundError(`${url.hostname} is not an allowed destination`)
    if (checkedHosts.size >= 1000) checkedHosts.clear()
    if (checkedHostMs > 0) checkedHosts.set(url.hostname, { addresses: found, until: now + checkedHostMs })
    return found
  }

  /** Sends one request to the first checked address that accepts a connection. */
  async function fetchPinned(hop: Hop, checked: string[], deadline: Deadline): Promise<Response> {
    const headers = new Headers(hop.headers)
    headers.set('host', hop.url.host)
    const name = hop.url.hostname
    const tls =
      hop.url.protocol === 'https:' ? { ...(isIP(name) ? {} : { serverName: name }), ...(ca ? { ca } : {}) } : undefined
    let lastError: unknown
    for (const address of checked) {
      const target = new URL(hop.url)
      target.hostname = isIP(address) === 6 ? `[${address}]` : address
      try {
        return await fetch(target, {
          method: hop.method,
          headers,
          body: hop.body,
          redirect: 'manual',
          signal: deadline.signal,
          decompress,
          ...(tls ? { tls } : {}),
        } as RequestInit)
      } catch (error) {
        if (deadline.signal.aborted) throw deadline.signal.reason
        lastError = error
        if (!UNREACHABLE_CODES.has((error as { code?: string })?.code ?? '')) break
      }
    }
    throw new OutboundError(`${name} could not be reached: ${reasonOf(lastError)}`)
  }

  /** The first hop of a request: read from `init` directly in the common case (no Request built). */
  async function firstHop(input: string | URL | Request, init: RequestInit | undefined): Promise<Hop> {
    const body = init?.body
    if (!(input instanceof Request) && (body == null || typeof body === 'string' || body instanceof Uint8Array))
      return {
        url: new URL(input),
        method: (init?.method ?? 'GET').toUpperCase(),
        headers: new Headers(init?.headers),
        body: body == null ? null : typeof body === 'string' ? encoder.encode(body) : body,
      }
    const request = new Request(input, init)
    return {
      url: new URL(request.url),
      method: request.method,
      headers: new Headers(request.headers),
      body: request.body ? new Uint8Array(await request.arrayBuffer()) : null,
    }
  }

  return async function outboundFetch(input, init) {
    const callerSignal = init?.signal ?? (input instanceof Request ? input.signal : undefined)
    const mode = init?.redirect ?? (input instanceof Request ? input.redirect : 'follow')
    let hop = await firstHop(input, init)
    const deadline = new Deadline(callerSignal, hop.url.hostname, totalTimeoutMs, capacity?.startRequest())
    try {
      for (let redirects = 0; ; redirects++) {
        if (deadline.signal.aborted) throw deadline.signal.reason
        deadline.startHop(hop.url.hostname, connectTimeoutMs)
        const checked = await checkedAddressesOf(hop.url, deadline.signal)
        const response = await fetchPinned(hop, checked, deadline)
        deadline.endHop()
        const location = response.headers.get('location')
        if (!REDIRECT_STATUSES.has(response.status) || location === null || mode === 'manual')
          return wrapResponse(response, hop.url, redirects > 0, maxResponseBytes, deadline)
        await response.body?.cancel().catch(() => {})
        if (mode === 'error')
          throw new OutboundError(
            `${hop.url.hostname} answered with a redirect (${response.status}), which is not followed`,
          )
        if (redirects >= maxRedirects) throw new OutboundError(`more than ${maxRedirects} redirects`)
        hop = nextHop(hop, response.status, location)
      }
    } catch (error) {
      deadline.finish()
      throw error
    }
  }
}

/** The request a redirect asks for (WHATWG fetch §4.4 "HTTP-redirect fetch"). */
function nextHop(hop: Hop, status: number, location: string): Hop {
  let url: URL
  try {
    url = new URL(location, hop.url)
  } catch {
    throw new OutboundError(`${hop.url.hostname} redirected to something that is not a URL`)
  }
  const headers = new Headers(hop.headers)
  let { method, body } = hop
  if ((status === 303 && method !== 'HEAD') || ((status === 301 || status === 302) && method === 'POST')) {
    method = 'GET'
    body = null
    for (const name of BODY_HEADERS) headers.delete(name)
  }
  if (url.origin !== hop.url.origin) for (const name of CREDENTIAL_HEADERS) headers.delete(name)
  return { url, method, headers, body }
}

function wrapResponse(response: Response, url: URL, redirected: boolean, maxBytes: number, deadline: Deadline) {
  const declared = Number(response.headers.get('content-length') ?? 0)
  if (declared > maxBytes) {
    void response.body?.cancel().catch(() => {})
    throw new OutboundError(`the answer from ${url.hostname} is larger than ${maxBytes} bytes`)
  }
  // Without a size cap or a total deadline (a proxied stream) there is nothing to watch: the
  // runtime's response is handed on as it is, its body never turned into a script stream (which
  // costs more than the rest of a small exchange), only naming the URL the caller asked for.
  if (maxBytes === Number.POSITIVE_INFINITY && !deadline.hasTotal) {
    if (NULL_BODY_STATUSES.has(response.status)) deadline.finish()
    else deadline.onDone()
    Object.defineProperty(response, 'url', { value: url.href })
    Object.defineProperty(response, 'redirected', { value: redirected })
    return response
  }
  const hasBody = response.body !== null && !NULL_BODY_STATUSES.has(response.status)
  if (!hasBody) {
    void response.body?.cancel().catch(() => {})
    deadline.finish()
  }
  const body = hasBody ? capBody(response.body!, url.hostname, maxBytes, deadline) : null
  const wrapped = new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  })
  // The runtime's response names the IP it was sent to; callers see the URL they asked for.
  Object.defineProperty(wrapped, 'url', { value: url.href })
  Object.defineProperty(wrapped, 'redirected', { value: redirected })
  return wrapped
}
