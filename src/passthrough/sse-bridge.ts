import type { JSONRPCMessage, SSEClientTransport } from '@modelcontextprotocol/client'
import { exceedsJsonDepth, MAX_JSON_DEPTH } from '../http/json-depth.ts'
import type { OutboundFetch } from '../http/outbound.ts'

/**
 * Upstreams on the deprecated HTTP+SSE transport (MCP 2024-11-05), served to clients as
 * Streamable HTTP: each client session holds one SSE connection upstream through the SDK's
 * `SSEClientTransport`. This is the one place the passthrough keeps state, because that
 * transport has it: a session lives in the process that opened it (another replica answers
 * 404 and the client starts a new one, as Streamable HTTP prescribes), and ends on DELETE, on
 * the upstream closing, or after it has been idle for `IDLE_MS`.
 */
const IDLE_MS = 10 * 60_000
const SSE_COMMENT = ': gatehouse\n\n'

interface Session {
  transport: SSEClientTransport
  /** Requests waiting for their response, by JSON-RPC id. */
  pending: Map<string, (message: JSONRPCMessage) => void>
  /** The client's GET stream for what the upstream sends on its own, or what waits for one. */
  stream?: ReadableStreamDefaultController<Uint8Array>
  backlog: JSONRPCMessage[]
  idle?: ReturnType<typeof setTimeout>
}

const sessions = new Map<string, Session>()
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

function touch(id: string, session: Session): void {
  clearTimeout(session.idle)
  session.idle = setTimeout(() => void endSession(id), IDLE_MS)
  ;(session.idle as { unref?: () => void }).unref?.()
}

async function endSession(id: string): Promise<void> {
  const session = sessions.get(id)
  if (!session) return
  sessions.delete(id)
  clearTimeout(session.idle)
  try {
    session.stream?.close()
  } catch {}
  await session.transport.close().catch(() => {})
}

function deliver(session: Session, message: JSONRPCMessage): void {
  if (isResponse(message)) {
    const waiter = session.pending.get(keyOf(message.id))
    if (waiter) {
      session.pending.delete(keyOf(message.id))
      waiter(message)
      return
    }
  }
  if (!session.stream) {
    session.backlog.push(message)
    return
  }
  session.stream.enqueue(encoder.encode(`event: message\ndata: ${JSON.stringify(message)}\n\n`))
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return Response.json(body, { status, headers })
}

export interface BridgeInput {
  request: Request
  body: Uint8Array | null
  url: string
  credentials: Record<string, string>
  fetch: OutboundFetch
  timeoutMs: number
}

/** One Streamable HTTP request of a client, answered through its session's SSE connection. */
export async function handleSseUpstream(input: BridgeInput): Promise<Response> {
  const { request } = input
  const sessionId = request.headers.get('mcp-session-id')
  if (request.method === 'DELETE') {
    if (sessionId) await endSession(sessionId)
    return new Response(null, { status: 204 })
  }
  if (request.method === 'GET') {
    const session = sessionId ? sessions.get(sessionId) : undefined
    if (!session || !sessionId)
      return json(404, { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null })
    touch(sessionId, session)
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        session.stream = controller
        controller.enqueue(encoder.encode(SSE_COMMENT))
        for (const message of session.backlog.splice(0)) deliver(session, message)
      },
      cancel() {
        session.stream = undefined
      },
    })
    return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } })
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

  const existing = sessionId ? sessions.get(sessionId) : undefined
  if (sessionId && !existing)
    return json(404, { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null })
  if (!existing && !messages.some((message) => isRequest(message) && message.method === 'initialize'))
    return json(400, {
      jsonrpc: '2.0',
      error: { code: -32600, message: 'The first request must be initialize' },
      id: null,
    })
  const id = sessionId ?? crypto.randomUUID()
  const session = existing ?? (await openSession(id, input))
  touch(id, session)

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
        }, input.timeoutMs)
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

async function openSession(id: string, input: BridgeInput): Promise<Session> {
  const { SSEClientTransport } = await import('@modelcontextprotocol/client')
  // Every request of the session, the event stream included, carries the user's credential.
  const fetchWithCredentials: OutboundFetch = (url, init) => {
    const headers = new Headers(init?.headers)
    for (const [name, value] of Object.entries(input.credentials)) headers.set(name, value)
    return input.fetch(url, { ...init, headers })
  }
  const transport = new SSEClientTransport(new URL(input.url), { fetch: fetchWithCredentials })
  const session: Session = { transport, pending: new Map(), backlog: [] }
  transport.onmessage = (message) => deliver(session, message)
  transport.onclose = () => void endSession(id)
  await transport.start()
  sessions.set(id, session)
  return session
}
