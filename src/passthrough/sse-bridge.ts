import type { JSONRPCMessage, SSEClientTransport } from '@modelcontextprotocol/client'
import type { McpServerRow } from '../db/schema.ts'
import { exceedsJsonDepth, MAX_JSON_DEPTH } from '../http/json-depth.ts'
import type { OutboundFetch } from '../http/outbound.ts'
import { type OutboundCapacity, type StreamLease, StreamRefused } from '../http/outbound-capacity.ts'

/**
 * Upstreams on the deprecated HTTP+SSE transport (MCP 2024-11-05), served to clients as
 * Streamable HTTP: each client session holds one SSE connection upstream through the SDK's
 * `SSEClientTransport`. This is the one place the passthrough keeps state, because that
 * transport has it: a session lives in the process that opened it (another replica answers
 * 404 and the client starts a new one, as Streamable HTTP prescribes), and ends on DELETE, on
 * the upstream closing, when its server changes, or after it has been idle for `IDLE_MS`.
 *
 * A session belongs to the user who opened it, on the server (as configured then) it was opened
 * for: a request naming it from anyone else, through another slug, or after the server changed
 * is answered as for a session that does not exist. Each request brings its user's current
 * credential, so a refreshed token is used and a disconnected one is not. The session's upstream
 * stream takes a slot of the stream budget; what the upstream sends while the client has no
 * stream open waits in a bounded backlog, and a session whose backlog overflows is ended.
 */
const IDLE_MS = 10 * 60_000
/** Messages that may wait for the client's stream; past it the session ends. */
export const MAX_BACKLOG_MESSAGES = 1000
const SSE_COMMENT = ': gatehouse\n\n'

interface Session {
  userId: string
  serverId: string
  /** The server's `updated_at` when the session opened: a later edit ends it. */
  serverVersion: number
  transport: SSEClientTransport
  /** The credential headers of the latest request, which every upstream request carries. */
  credentials: Record<string, string>
  lease: StreamLease
  /** Requests waiting for their response, by JSON-RPC id. */
  pending: Map<string, (message: JSONRPCMessage) => void>
  /** The client's GET stream for what the upstream sends on its own, or what waits for one. */
  stream?: ReadableStreamDefaultController<Uint8Array>
  backlog: JSONRPCMessage[]
  backlogBytes: number
  idle?: ReturnType<typeof setTimeout>
}

const encoder = new TextEncoder()

function keyOf(id: unknown): string {
  return JSON.stringify(id)
}

function isResponse(message: JSONRPCMessage): message is JSONRPCMessage & { id: unknown } {
  return 'id' in message && ('result' in message || 'error' in message) && !('method' in message)
}

function isRequest(message: JSONRPCMessage): message is JSONRPCMessage & { id: unknown; method: string } {
  return 'id' in message && 'method' in message
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return Response.json(body, { status, headers })
}

const sessionNotFound = () =>
  json(404, { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null })

export interface BridgeInput {
  request: Request
  body: Uint8Array | null
  server: McpServerRow
  userId: string
  credentials: Record<string, string>
}

export interface BridgeOptions {
  fetch: OutboundFetch
  capacity: OutboundCapacity
  timeoutMs: number
  /** Largest message the upstream may send (one SSE event), and the backlog's byte bound. */
  maxMessageBytes: number
}

export class SseBridge {
  private readonly sessions = new Map<string, Session>()

  constructor(private readonly options: BridgeOptions) {}

  /** Ends the sessions of a server (all, or one user's): it changed, or the user's connection did. */
  endSessionsOf(serverId: string, userId?: string): void {
    for (const [id, session] of this.sessions)
      if (session.serverId === serverId && (userId === undefined || session.userId === userId)) void this.end(id)
  }

  async close(): Promise<void> {
    await Promise.all([...this.sessions.keys()].map((id) => this.end(id)))
  }

  get size(): number {
    return this.sessions.size
  }

  /** One Streamable HTTP request of a client, answered through its session's SSE connection. */
  async handle(input: BridgeInput): Promise<Response> {
    const { request } = input
    const sessionId = request.headers.get('mcp-session-id')
    const existing = sessionId ? this.sessionFor(sessionId, input) : undefined
    if (sessionId && !existing) return sessionNotFound()
    if (existing) existing.credentials = input.credentials
    if (request.method === 'DELETE') {
      if (sessionId) await this.end(sessionId)
      return new Response(null, { status: 204 })
    }
    if (request.method === 'GET') {
      if (!existing || !sessionId) return sessionNotFound()
      return this.openStream(sessionId, existing)
    }

    const text = new TextDecoder().decode(input.body ?? new Uint8Array())
    // The bridge serialises what it is sent again: deep nesting would overflow the stack there.
    if (exceedsJsonDepth(text))
      return json(400, {
        jsonrpc: '2.0',
        error: { code: -32600, message: `Invalid request: the body nests deeper than ${MAX_JSON_DEPTH} levels` },
        id: null,
      })
    let messages: JSONRPCMessage[]
    let batch: boolean
    try {
      const parsed = JSON.parse(text)
      batch = Array.isArray(parsed)
      messages = batch ? parsed : [parsed]
    } catch {
      return json(400, { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null })
    }
    if (!existing && !messages.some((message) => isRequest(message) && message.method === 'initialize'))
      return json(400, {
        jsonrpc: '2.0',
        error: { code: -32600, message: 'The first request must be initialize' },
        id: null,
      })
    const id = sessionId ?? crypto.randomUUID()
    const session = existing ?? (await this.open(id, input))
    this.touch(id, session)

    const waits = messages.filter(isRequest).map(
      (message) =>
        new Promise<JSONRPCMessage>((resolve) => {
          const key = keyOf(message.id)
          const timer = setTimeout(() => {
            session.pending.delete(key)
            resolve({
              jsonrpc: '2.0',
              id: message.id,
              error: { code: -32001, message: 'The upstream did not answer in time' },
            } as JSONRPCMessage)
          }, this.options.timeoutMs)
          session.pending.set(key, (answer) => {
            clearTimeout(timer)
            resolve(answer)
          })
        }),
    )
    for (const message of messages) await session.transport.send(message)
    const headers = { 'mcp-session-id': id }
    if (waits.length === 0) return new Response(null, { status: 202, headers })
    const answers = await Promise.all(waits)
    return json(200, batch ? answers : answers[0], headers)
  }

  /** The session the ID names, if it is this user's, on this server as it is configured now. */
  private sessionFor(id: string, input: BridgeInput): Session | undefined {
    const session = this.sessions.get(id)
    if (!session) return undefined
    if (session.userId !== input.userId || session.serverId !== input.server.id) return undefined
    if (session.serverVersion !== input.server.updated_at) {
      void this.end(id)
      return undefined
    }
    return session
  }

  private openStream(id: string, session: Session): Response {
    this.touch(id, session)
    // One client stream at a time: a new GET replaces the old one, which ends.
    try {
      session.stream?.close()
    } catch {}
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        session.stream = controller
        controller.enqueue(encoder.encode(SSE_COMMENT))
        const waiting = session.backlog.splice(0)
        session.backlogBytes = 0
        for (const message of waiting) this.deliver(id, session, message)
      },
      cancel: () => {
        session.stream = undefined
      },
    })
    return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } })
  }

  private touch(id: string, session: Session): void {
    clearTimeout(session.idle)
    session.idle = setTimeout(() => void this.end(id), IDLE_MS)
    ;(session.idle as { unref?: () => void }).unref?.()
  }

  private async end(id: string): Promise<void> {
    const session = this.sessions.get(id)
    if (!session) return
    this.sessions.delete(id)
    clearTimeout(session.idle)
    session.lease.release()
    try {
      session.stream?.close()
    } catch {}
    await session.transport.close().catch(() => {})
  }

  private deliver(id: string, session: Session, message: JSONRPCMessage): void {
    if (isResponse(message)) {
      const waiter = session.pending.get(keyOf(message.id))
      if (waiter) {
        session.pending.delete(keyOf(message.id))
        waiter(message)
        return
      }
    }
    const text = JSON.stringify(message)
    if (!session.stream) {
      session.backlogBytes += text.length
      if (session.backlog.length >= MAX_BACKLOG_MESSAGES || session.backlogBytes > this.options.maxMessageBytes) {
        void this.end(id)
        return
      }
      session.backlog.push(message)
      return
    }
    session.stream.enqueue(encoder.encode(`event: message\ndata: ${text}\n\n`))
  }

  private async open(id: string, input: BridgeInput): Promise<Session> {
    const { SSEClientTransport } = await import('@modelcontextprotocol/client')
    const { capacity, fetch, maxMessageBytes } = this.options
    let lease: StreamLease
    try {
      lease = capacity.acquire({ userId: input.userId, serverId: input.server.id })
    } catch (error) {
      if (error instanceof StreamRefused) throw new BridgeRefused(error.message)
      throw error
    }
    const session: Session = {
      userId: input.userId,
      serverId: input.server.id,
      serverVersion: input.server.updated_at,
      transport: undefined as unknown as SSEClientTransport,
      credentials: input.credentials,
      lease,
      pending: new Map(),
      backlog: [],
      backlogBytes: 0,
    }
    // Every request of the session carries the credential of the latest client request; the
    // event stream is watched, so a silent or oversized one ends the session.
    const fetchWithCredentials: OutboundFetch = async (url, init) => {
      const headers = new Headers(init?.headers)
      for (const [name, value] of Object.entries(session.credentials)) headers.set(name, value)
      const response = await fetch(url, { ...init, headers, redirect: 'error' })
      if ((init?.method ?? 'GET').toUpperCase() !== 'GET' || !response.body) return response
      return capacity.watchResponse(response, lease, { maxEventBytes: maxMessageBytes })
    }
    const transport = new SSEClientTransport(new URL(input.server.url), { fetch: fetchWithCredentials })
    session.transport = transport
    transport.onmessage = (message) => this.deliver(id, session, message)
    transport.onclose = () => void this.end(id)
    try {
      await transport.start()
    } catch (error) {
      lease.release()
      throw error
    }
    this.sessions.set(id, session)
    return session
  }
}

/** No stream slot for a new session; the message says which bound was reached. */
export class BridgeRefused extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'BridgeRefused'
  }
}
