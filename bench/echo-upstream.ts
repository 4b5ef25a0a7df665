// The upstream for bench/gateway.ts: minimal MCP servers on the v2 SDK, `createMcpHandler` in stateless mode (the
// 2026-07-28 revision, and the 2025 revisions without initialize or session) served by one Bun.serve. No
// authentication: Gatehouse registers each with auth_type none. Started the way Gatehouse is (a `bun` child process),
// configured by PORT and GATEHOUSE_HOST, plus BENCH_LIST_SERVERS and BENCH_LIST_TOOLS (both 0 unless set):
// - POST /mcp: one tool, `echo`, that returns its `text` argument;
// - POST /list/1 … /list/<BENCH_LIST_SERVERS>: each its own MCP server (`bench-list-<n>`) with BENCH_LIST_TOOLS
//   tools `tool_01`, `tool_02`, … (a description and a one-string input schema each; a call returns the tool's name),
//   for the aggregated tools/list: Gatehouse registers each path as a server of its own;
// - GET /healthz: {"status":"ok"}; GET /stats: {"echo": <POSTs to /mcp>, "list": <POSTs to /list/*>}, so the
//   benchmark can tell that Gatehouse answered its lists from its cache and did not ask here.
// Every server answers tools/list with a cache hint of 60 s (the SDK's `cacheHints`, sent as `ttlMs` to 2026-07-28
// clients, which Gatehouse's upstream client is), so Gatehouse's list cache stays warm for a whole run. The schemas
// are compiled once at start, as Gatehouse's own are (src/mcp/transport.ts), so what a request costs here is the
// SDK's per-request work, not schema compilation.

import { createMcpHandler, fromJsonSchema, McpServer, preloadSchemas } from '@modelcontextprotocol/server'
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/server/validators/ajv'

const port = Number(process.env.PORT ?? '3000')
const hostname = process.env.GATEHOUSE_HOST ?? '127.0.0.1'
const listServers = Number(process.env.BENCH_LIST_SERVERS ?? '0')
const listTools = Number(process.env.BENCH_LIST_TOOLS ?? '0')
for (const [name, value] of [
  ['BENCH_LIST_SERVERS', listServers],
  ['BENCH_LIST_TOOLS', listTools],
] as const)
  if (!Number.isInteger(value) || value < 0 || value > 99) {
    process.stderr.write(`echo-upstream: ${name} must be a whole number from 0 to 99\n`)
    process.exit(2)
  }

/** How long Gatehouse may keep a tools/list answer. */
const LIST_TTL_MS = 60_000
const cacheHints = { 'tools/list': { ttlMs: LIST_TTL_MS } }

const validator = new AjvJsonSchemaValidator()
const textInput = fromJsonSchema(
  { type: 'object', properties: { text: { type: 'string', description: 'Any text' } }, required: ['text'] },
  validator,
)
preloadSchemas()

/** The name of the n-th tool (1-based) of a list server. */
const listToolName = (n: number) => `tool_${String(n).padStart(2, '0')}`

const echoHandler = createMcpHandler(
  () => {
    const server = new McpServer(
      { name: 'bench-echo', version: '1.0.0' },
      { jsonSchemaValidator: validator, capabilities: { tools: {} }, cacheHints },
    )
    server.registerTool('echo', { description: 'Returns its text', inputSchema: textInput }, (args: unknown) => ({
      content: [{ type: 'text', text: String((args as { text?: unknown }).text) }],
    }))
    return server
  },
  { legacy: 'stateless' },
)

const listHandlers = Array.from({ length: listServers }, (_, index) =>
  createMcpHandler(
    () => {
      const server = new McpServer(
        { name: `bench-list-${index + 1}`, version: '1.0.0' },
        { jsonSchemaValidator: validator, capabilities: { tools: {} }, cacheHints },
      )
      for (let n = 1; n <= listTools; n++) {
        const name = listToolName(n)
        server.registerTool(
          name,
          {
            description: `Tool ${n} of bench list server ${index + 1}: takes a text and returns its own name`,
            inputSchema: textInput,
          },
          () => ({ content: [{ type: 'text', text: name }] }),
        )
      }
      return server
    },
    { legacy: 'stateless' },
  ),
)

const counts = { echo: 0, list: 0 }

const server = Bun.serve({
  port,
  hostname,
  // Gatehouse's upstream client holds a quiet event stream open for list_changed; Bun's default 10 s idle timeout
  // would cut it, and Gatehouse would then drop its client and the lists cached with it.
  idleTimeout: 0,
  fetch(request) {
    const { pathname } = new URL(request.url)
    if (pathname === '/mcp') {
      counts.echo++
      return echoHandler.fetch(request)
    }
    if (pathname.startsWith('/list/')) {
      const handler = listHandlers[Number(pathname.slice('/list/'.length)) - 1]
      if (handler) {
        counts.list++
        return handler.fetch(request)
      }
    }
    if (pathname === '/healthz') return Response.json({ status: 'ok' })
    if (pathname === '/stats') return Response.json(counts)
    return new Response('not found', { status: 404 })
  },
})

const stop = () => {
  void Promise.all([echoHandler.close(), ...listHandlers.map((handler) => handler.close()), server.stop()]).then(() =>
    process.exit(0),
  )
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
