/**
 * Connected MCP SDK clients to upstream servers, one per (server, user), reused across
 * requests: a 2026 upstream's discovery, a 2025 upstream's session and its event stream are set up
 * once, not per call. Everything here is a cache that any replica may lose: a dropped client is
 * connected again on the next use, and a 2025 session that the upstream forgot is started anew.
 */
import {
  Client,
  type FetchLike,
  ProtocolError,
  ProtocolErrorCode,
  SSEClientTransport,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client'
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/client/validators/ajv'
import type { McpServerRow, UserRow } from '../db/schema.ts'
import type { OutboundFetch } from '../http/outbound.ts'
import { type OutboundCapacity, StreamRefused } from '../http/outbound-capacity.ts'
import { type Tracing, traceUpstream } from '../ops/tracing.ts'
import { type CredentialDeps, upstreamHeaders } from '../upstreams/credentials.ts'
import { sendWithRefresh, UpstreamTokenError } from '../upstreams/upstream-tokens.ts'

export type PoolUser = Pick<UserRow, 'id' | 'email' | 'username'>

/**
 * One connection per (server, user): a 2025 upstream keeps state per session, which one user's
 * calls must never share with another's, even when they send the same credential.
 */
export function connectionKeyOf(server: McpServerRow, userId: string): string {
  return `${server.id}@${server.updated_at}/${userId}`
}

/** Whose credential a server is called with (what its lists are cached by): each user's own, or one shared by all. */
export function credentialKeyOf(server: McpServerRow, userId: string): string {
  const perUser =
    server.auth_type === 'oauth2' || server.auth_type === 'user_oidc' || server.forward_identity_headers === 1
  return `${server.id}@${server.updated_at}${perUser ? `/${userId}` : ''}`
}

interface PooledClient {
  client: Promise<Client>
  lastUsed: number
  /** Where and how its 2025 session is ended once it is closed. */
  url: string
  fetch: FetchLike
}

/** How long ending a closed client's 2025 session at the upstream may take. */
const SESSION_END_TIMEOUT_MS = 5000

export interface UpstreamPoolOptions {
  deps: CredentialDeps
  /** Answers as they come: event streams, and the fast path (which reads within the caps itself). */
  fetch: OutboundFetch
  /** What SDK clients' requests use: an answer larger than `maxMessageBytes` errors. */
  cappedFetch: OutboundFetch
  capacity: OutboundCapacity
  /** Largest answer or single event an upstream may send. */
  maxMessageBytes: number
  version: string
  publicUrl: string
  /** How long one request to an upstream may take before it is abandoned. */
  requestTimeoutMs: number
  /** An upstream said its tool, prompt or resource list changed: the credential key of its lists. */
  onListChanged: (credentialKey: string) => void
  /** When set, each request (but the long-lived event stream) is a client span of the current request. */
  tracing?: Tracing
  maxClients?: number
  idleMs?: number
}

const validator = new AjvJsonSchemaValidator()

export class UpstreamPool {
  private readonly clients = new Map<string, PooledClient>()
  private readonly fetches = new Map<string, FetchLike>()
  private readonly maxClients: number
  private readonly idleMs: number
  private sweeper: ReturnType<typeof setInterval> | undefined

  constructor(private readonly options: UpstreamPoolOptions) {
    this.maxClients = options.maxClients ?? 1000
    this.idleMs = options.idleMs ?? 10 * 60_000
  }

  /** The connected client for this server and user's credential, connecting it when needed. */
  client(server: McpServerRow, user: PoolUser): Promise<Client> {
    const key = connectionKeyOf(server, user.id)
    const pooled = this.clients.get(key)
    if (pooled) {
      pooled.lastUsed = Date.now()
      return pooled.client
    }
    if (this.clients.size >= this.maxClients) this.evictOldest()
    const client = this.connect(key, server, user)
    const entry: PooledClient = { client, lastUsed: Date.now(), url: server.url, fetch: this.fetchFor(server, user) }
    this.clients.set(key, entry)
    // A failed connection is not kept: the next use tries again.
    client.catch(() => this.forget(key, entry))
    this.sweeper ??= setInterval(() => this.sweep(), Math.min(this.idleMs, 60_000))
    ;(this.sweeper as { unref?: () => void }).unref?.()
    return client
  }

  /** The fetch that carries this user's credential to this server (the SDK client's and the fast path's). */
  fetchFor(server: McpServerRow, user: PoolUser): FetchLike {
    const key = connectionKeyOf(server, user.id)
    let fetch = this.fetches.get(key)
    if (!fetch) {
      if (this.fetches.size >= this.maxClients) this.fetches.clear()
      fetch = credentialFetch(this.options.deps, this.options.fetch, server, user, this.options.tracing)
      this.fetches.set(key, fetch)
    }
    return fetch
  }

  /** Closes and forgets the client of a key (after a failure, so the next use reconnects). */
  drop(server: McpServerRow, userId: string): void {
    const key = connectionKeyOf(server, userId)
    const entry = this.clients.get(key)
    if (entry) this.forget(key, entry)
  }

  /** Closes the clients (and forgets the credential fetches) of the keys `concerned` picks. */
  dropWhere(concerned: (key: string) => boolean): void {
    for (const [key, entry] of this.clients) if (concerned(key)) this.forget(key, entry)
    for (const key of this.fetches.keys()) if (concerned(key)) this.fetches.delete(key)
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper)
    this.sweeper = undefined
    const entries = [...this.clients.entries()]
    this.clients.clear()
    await Promise.all(entries.map(([, entry]) => this.closeClient(entry)))
  }

  private forget(key: string, entry: PooledClient): void {
    if (this.clients.get(key) !== entry) return
    this.clients.delete(key)
    void this.closeClient(entry)
  }

  /**
   * Closes a client at once, which ends its event stream and frees that connection; a 2025
   * session is then ended at the upstream in the background (not left for it to expire), so
   * closing never waits on the network.
   */
  private async closeClient(entry: PooledClient): Promise<void> {
    let connected: Client
    try {
      connected = await entry.client
    } catch {
      return // never connected: nothing to close
    }
    connected.onclose = undefined
    const transport = connected.transport as StreamableHTTPClientTransport | undefined
    const sessionId = transport?.sessionId
    const version = connected.getNegotiatedProtocolVersion()
    await connected.close().catch(() => {})
    if (!sessionId) return
    const headers: Record<string, string> = { 'mcp-session-id': sessionId }
    if (version) headers['mcp-protocol-version'] = version
    void entry
      .fetch(entry.url, { method: 'DELETE', headers, signal: AbortSignal.timeout(SESSION_END_TIMEOUT_MS) })
      .then((response) => response.body?.cancel())
      .catch(() => {})
  }

  /**
   * The SDK client's fetch: requests' answers capped in size; the event stream (GET) takes a slot
   * of the stream budget (a 2025 Streamable HTTP upstream's only when one is spare: without it,
   * list changes are seen when the lists' time to live runs out) and is watched for idleness and
   * oversized events.
   */
  private clientFetch(server: McpServerRow, user: PoolUser): FetchLike {
    const { deps, fetch, cappedFetch, capacity, maxMessageBytes } = this.options
    const capped = credentialFetch(deps, cappedFetch, server, user, this.options.tracing)
    const streaming = credentialFetch(deps, fetch, server, user)
    const required = server.transport === 'sse'
    return async (input, init) => {
      if ((init?.method ?? 'GET').toUpperCase() !== 'GET') return capped(input, init)
      let lease: ReturnType<OutboundCapacity['acquire']>
      try {
        lease = capacity.acquire({ userId: user.id, serverId: server.id }, { optional: !required })
      } catch (error) {
        if (required || !(error instanceof StreamRefused)) throw error
        return new Response(null, { status: 405 })
      }
      let response: Response
      try {
        response = await streaming(input, init)
      } catch (error) {
        lease.release()
        throw error
      }
      if (response.ok) return capacity.watchResponse(response, lease, { maxEventBytes: maxMessageBytes })
      lease.release()
      return response
    }
  }

  private evictOldest(): void {
    let oldest: [string, PooledClient] | undefined
    for (const item of this.clients) if (!oldest || item[1].lastUsed < oldest[1].lastUsed) oldest = item
    if (oldest) this.forget(oldest[0], oldest[1])
  }

  private sweep(): void {
    const cutoff = Date.now() - this.idleMs
    for (const [key, entry] of this.clients) if (entry.lastUsed < cutoff) this.forget(key, entry)
    if (this.clients.size === 0 && this.sweeper) {
      clearInterval(this.sweeper)
      this.sweeper = undefined
    }
  }

  private async connect(key: string, server: McpServerRow, user: PoolUser): Promise<Client> {
    const { deps, onListChanged } = this.options
    const changed = () => onListChanged(credentialKeyOf(server, user.id))
    const client = new Client(
      { name: 'gatehouse', version: this.options.version },
      {
        jsonSchemaValidator: validator,
        versionNegotiation: { mode: 'auto' },
        // Input requests of 2026 upstreams are relayed to the caller, never answered here.
        inputRequired: { autoFulfill: false },
        listChanged: {
          tools: { autoRefresh: false, debounceMs: 0, onChanged: changed },
          prompts: { autoRefresh: false, debounceMs: 0, onChanged: changed },
          resources: { autoRefresh: false, debounceMs: 0, onChanged: changed },
        },
        // Declared so a 2025 upstream that asks hears why it cannot be answered (below); 2026
        // upstreams see the caller's own capabilities in each request instead.
        capabilities: { elicitation: { form: {}, url: {} }, sampling: {} },
      },
    )
    // A 2025 upstream asking the caller for input mid-call would need the call held open across
    // the caller's requests, which a stateless `/mcp` cannot do: the answer says where it works.
    const unrelayable = (method: string) => () => {
      throw new ProtocolError(
        ProtocolErrorCode.InvalidRequest,
        unrelayableMessage(this.options.publicUrl, server, method),
      )
    }
    client.setRequestHandler('elicitation/create', unrelayable('elicitation/create'))
    client.setRequestHandler('sampling/createMessage', unrelayable('sampling/createMessage'))
    const fetch = this.clientFetch(server, user)
    const url = new URL(server.url)
    const transport =
      server.transport === 'sse'
        ? new SSEClientTransport(url, { fetch })
        : new StreamableHTTPClientTransport(url, { fetch, reconnectionOptions: NO_RECONNECT })
    // A connection that ends (the upstream restarted or timed out its idle event stream, its
    // session expired) is forgotten; the next use connects again. The lists stay: they are as
    // good as their time to live, and a change the upstream announces is heard on the new one.
    client.onclose = () => {
      const entry = this.clients.get(key)
      if (entry) this.forget(key, entry)
    }
    await client.connect(transport, { timeout: this.options.requestTimeoutMs })
    return client
  }
}

/** A standalone event stream that ends is not reopened in a loop: the client is connected again on next use. */
const NO_RECONNECT = {
  initialReconnectionDelay: 1000,
  maxReconnectionDelay: 30_000,
  reconnectionDelayGrowFactor: 1.5,
  maxRetries: 0,
}

/**
 * The transport's fetch: every request to the upstream carries the user's credential (the same
 * headers as the passthrough, never the MCP client's own token) and goes through the outbound
 * guard, and is refused if the upstream answers with a redirect. A 401 from an oauth2 upstream
 * refreshes the user's token once and sends the request again.
 */
function credentialFetch(
  deps: CredentialDeps,
  fetch: OutboundFetch,
  server: McpServerRow,
  user: PoolUser,
  tracing?: Tracing,
): FetchLike {
  return async (input, init) =>
    sendWithRefresh(deps, server, user.id, await upstreamHeaders(deps, server, user), (credentials) => {
      const headers = new Headers(init?.headers)
      for (const [name, value] of Object.entries(credentials)) headers.set(name, value)
      // A redirect would carry the credential headers (an API key, the identity headers) and the
      // request's arguments to wherever it points: never followed.
      const send = () => fetch(input, { ...init, headers, redirect: 'error' })
      const method = init?.method ?? 'GET'
      return tracing && method !== 'GET' ? traceUpstream(server.id, method, server.url, headers, send) : send()
    })
}

/** Why a 2025 upstream's request for input in the middle of a call cannot reach the caller, and where it can. */
export function unrelayableMessage(
  publicUrl: string,
  server: Pick<McpServerRow, 'display_name' | 'slug'>,
  method: string,
): string {
  return `Gatehouse's /mcp cannot pass ${method} from ${server.display_name} to the user's client: it keeps no session with a server of a 2025 protocol revision. Connect to ${publicUrl}/mcp/servers/${server.slug}, which carries every request.`
}

/**
 * The credential problem behind an SDK error, if that is what it is: the transport wraps what its
 * fetch threw (the user must connect or reconnect) in its own errors.
 */
export function credentialProblemOf(error: unknown): UpstreamTokenError | undefined {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    if (current instanceof UpstreamTokenError) return current.reason === 'unavailable' ? undefined : current
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}
