import { GATEHOUSE_VERSION } from '../aggregate/index.ts'
import { type CallToolResult, compileSchema, createMcpEndpoint, type ToolDefinition } from '../mcp/transport.ts'

/**
 * What `/mcp/servers/{slug}` serves while the user has not connected the server's oauth2 sign-in
 * (or must connect again). An error at `initialize` ends a 2025 client before it can show anything
 * (mcp-remote exits, and the link lands in a log file), so the passthrough answers as a small MCP
 * server of its own instead: the handshake succeeds, and its one tool, `connect`, answers with the
 * link, as `<slug>__connect` does on `/mcp`. Any other request is a JSON-RPC error whose message
 * carries the link (URL elicitation for a 2025-11-25 `tools/call`). Once connected, the client's
 * next session reaches the real server.
 */

export interface StandInContext {
  serverName: string
  connectUrl: string
  reason: string
}

/** What the stand-in answers itself: the handshake, its tool list, and its one tool. */
const HANDSHAKE = new Set(['initialize', 'ping', 'server/discover', 'tools/list'])

const CONNECT_TOOL: ToolDefinition<StandInContext> = {
  name: 'connect',
  title: 'Connect this server',
  description:
    'This server needs you to sign in before its tools are available. Call this tool for the link to open; after connecting, reconnect this server in your client.',
  input: compileSchema({ type: 'object', properties: {} }),
  output: compileSchema({
    type: 'object',
    properties: { connect_url: { type: 'string' } },
    required: ['connect_url'],
  }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  run: async (context): Promise<CallToolResult> => ({
    content: [{ type: 'text', text: connectMessage(context) }],
    structuredContent: { connect_url: context.connectUrl },
  }),
}

export function connectMessage({ serverName, connectUrl, reason }: StandInContext): string {
  return `${reason}. Open ${connectUrl} to connect ${serverName}, then reconnect this server in your client.`
}

/** Whether the stand-in answers this body: one message of the handshake, a notification, or `connect`. */
export function isStandInMessage(message: unknown): boolean {
  if (!message || typeof message !== 'object' || Array.isArray(message)) return false
  const { method, id, params } = message as { method?: unknown; id?: unknown; params?: { name?: unknown } }
  if (typeof method !== 'string') return false
  if (id === undefined) return method.startsWith('notifications/')
  return HANDSHAKE.has(method) || (method === 'tools/call' && params?.name === CONNECT_TOOL.name)
}

export function createConnectStandIn(maxBodyBytes: number) {
  const endpoint = createMcpEndpoint<StandInContext>({
    name: 'gatehouse-connect',
    version: GATEHOUSE_VERSION,
    maxBodyBytes,
    toolsFor: () => [CONNECT_TOOL],
  })
  return {
    handle: (request: Request, message: unknown, context: StandInContext) =>
      endpoint.handle(request, { token: '', clientId: 'gatehouse', scopes: ['mcp'] }, context, message),
    close: () => endpoint.close(),
  }
}
