// The ceiling for the proxied rows of bench/gateway.ts: a bare Bun.serve that forwards every POST to UPSTREAM_URL
// with the runtime's fetch (the method, the request's content-type, accept and mcp-protocol-version headers, the body
// as bytes) and answers with the upstream's status, content-type and body as they come. No authentication, routing,
// checks or parsing: one server exchange plus one fetch exchange, the least any Bun proxy costs.
// Started the same way as Gatehouse (a `bun` child process), configured by PORT, GATEHOUSE_HOST and UPSTREAM_URL
// (the upstream's full MCP URL, e.g. http://127.0.0.1:4000/mcp). GET /healthz answers {"status":"ok"} here, so the
// benchmark can tell it is up.

export {} // a module, so its names stay out of the global scope the type checker shares with the other benches

const port = Number(process.env.PORT ?? '3000')
const hostname = process.env.GATEHOUSE_HOST ?? '127.0.0.1'
const upstreamUrl = process.env.UPSTREAM_URL
if (!upstreamUrl) {
  process.stderr.write('bare-proxy: UPSTREAM_URL is required\n')
  process.exit(2)
}

/** The request headers passed on: what an MCP POST needs, nothing else. */
const FORWARDED = ['content-type', 'accept', 'mcp-protocol-version']

const server = Bun.serve({
  port,
  hostname,
  async fetch(request) {
    if (request.method === 'POST') {
      const headers: Record<string, string> = {}
      for (const name of FORWARDED) {
        const value = request.headers.get(name)
        if (value !== null) headers[name] = value
      }
      const upstream = await fetch(upstreamUrl, {
        method: request.method,
        headers,
        body: await request.arrayBuffer(),
      })
      const contentType = upstream.headers.get('content-type')
      return new Response(upstream.body, {
        status: upstream.status,
        headers: contentType === null ? {} : { 'content-type': contentType },
      })
    }
    if (new URL(request.url).pathname === '/healthz') return Response.json({ status: 'ok' })
    return new Response('not found', { status: 404 })
  },
})

const stop = () => {
  void server.stop().then(() => process.exit(0))
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
