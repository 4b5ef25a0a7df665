// The upstream for bench/gateway.ts: a minimal MCP server on the v2 SDK, `createMcpHandler` in stateless mode (the
// 2026-07-28 revision, and the 2025 revisions without initialize or session) served by Bun.serve, with one tool,
// `echo`, that returns its `text` argument. No authentication: Gatehouse registers it with auth_type none. Its
// tool's schema is compiled once at start, as Gatehouse's own are (src/mcp/transport.ts), so what a call costs here
// is the SDK's per-request work, not schema compilation. Started the way Gatehouse is (a `bun` child process),
// configured by PORT and GATEHOUSE_HOST; POST /mcp is the MCP endpoint, GET /healthz answers {"status":"ok"}.

import { createMcpHandler, fromJsonSchema, McpServer, preloadSchemas } from '@modelcontextprotocol/server'
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/server/validators/ajv'

const port = Number(process.env.PORT ?? '3000')
const hostname = process.env.GATEHOUSE_HOST ?? '127.0.0.1'

const validator = new AjvJsonSchemaValidator()
const echoInput = fromJsonSchema(
  { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
  validator,
)
preloadSchemas()

const handler = createMcpHandler(
  () => {
    const server = new McpServer(
      { name: 'bench-echo', version: '1.0.0' },
      { jsonSchemaValidator: validator, capabilities: { tools: {} } },
    )
    server.registerTool('echo', { description: 'Returns its text', inputSchema: echoInput }, (args: unknown) => ({
      content: [{ type: 'text', text: String((args as { text?: unknown }).text) }],
    }))
    return server
  },
  { legacy: 'stateless' },
)

const server = Bun.serve({
  port,
  hostname,
  fetch(request) {
    const { pathname } = new URL(request.url)
    if (pathname === '/mcp') return handler.fetch(request)
    if (pathname === '/healthz') return Response.json({ status: 'ok' })
    return new Response('not found', { status: 404 })
  },
})

const stop = () => {
  void Promise.all([handler.close(), server.stop()]).then(() => process.exit(0))
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
