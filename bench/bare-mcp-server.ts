// The ceiling for bench/mcp.ts: a bare Bun.serve that answers POST /mcp with the very bytes Gatehouse answered to
// the same tools/call (captured by the benchmark from a real Gatehouse response), with the same content-type.
// It reads the request body, as any server must, and picks the answer by the mcp-protocol-version header; it does
// no routing framework, authentication, JSON-RPC parsing, MCP SDK or tool work: what is left is the HTTP floor.
// Started the same way as Gatehouse (a `bun` child process), configured by PORT, GATEHOUSE_HOST and
// BARE_MCP_RESPONSES: a JSON file { "<protocol version>": { "contentType": "...", "body": "..." } }. A request whose
// version is not in the file gets the first entry's answer.

export {} // a module, so its names stay out of the global scope the type checker shares with the other benches

const port = Number(process.env.PORT ?? '3000')
const hostname = process.env.GATEHOUSE_HOST ?? '127.0.0.1'
const path = process.env.BARE_MCP_RESPONSES
if (!path) {
  process.stderr.write('bare-mcp-server: BARE_MCP_RESPONSES is required\n')
  process.exit(2)
}

interface Answer {
  contentType: string
  body: string
}

const answers = (await Bun.file(path).json()) as Record<string, Answer>
const byVersion = new Map(
  Object.entries(answers).map(([version, answer]) => [
    version,
    { type: answer.contentType, bytes: new TextEncoder().encode(answer.body) },
  ]),
)
const fallback = byVersion.values().next().value
if (!fallback) {
  process.stderr.write(`bare-mcp-server: no answers in ${path}\n`)
  process.exit(2)
}

const server = Bun.serve({
  port,
  hostname,
  async fetch(request) {
    const { pathname } = new URL(request.url)
    if (pathname === '/mcp' && request.method === 'POST') {
      await request.arrayBuffer()
      const answer = byVersion.get(request.headers.get('mcp-protocol-version') ?? '') ?? fallback
      return new Response(answer.bytes, { headers: { 'content-type': answer.type } })
    }
    if (pathname === '/healthz') return Response.json({ status: 'ok' })
    return new Response('not found', { status: 404 })
  },
})

const stop = () => {
  void server.stop().then(() => process.exit(0))
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
