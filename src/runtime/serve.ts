/** A listening HTTP server, whichever runtime started it. */
export interface RunningServer {
  url: string
  port: number
  /** Stops accepting connections and resolves once in-flight requests have finished. */
  drain(): Promise<void>
  /** Drops every connection at once. */
  close(): Promise<void>
}

export type FetchHandler = (request: Request, clientIp: string) => Promise<Response>

export interface ServeOptions {
  port: number
  hostname: string
  maxBodyBytes: number
  fetch: FetchHandler
}

/** Bun.serve on Bun, Deno.serve on Deno: the only place that knows which one runs us. */
export async function serve(options: ServeOptions): Promise<RunningServer> {
  if (typeof Bun !== 'undefined') return serveWithBun(options)
  if ('Deno' in globalThis) return serveWithDeno(options)
  throw new Error('Gatehouse runs on Bun or Deno')
}

function serveWithBun({ port, hostname, maxBodyBytes, fetch }: ServeOptions): RunningServer {
  const server = Bun.serve({
    port,
    hostname,
    // A backstop only: the app answers oversized bodies itself with a JSON 413; Bun's own
    // refusal (a bare 413) is for bodies far past the limit.
    maxRequestBodySize: Math.max(maxBodyBytes * 2, maxBodyBytes + 1024 * 1024),
    // Long-lived MCP streams stay open; Bun's keep-alive pings still detect dead peers.
    idleTimeout: 0,
    fetch: (request, bunServer) => fetch(request, bunServer.requestIP(request)?.address ?? 'unknown'),
  })
  const url = `http://${hostname === '0.0.0.0' || hostname === '::' ? 'localhost' : hostname}:${server.port}`
  return {
    url,
    port: server.port!,
    drain: () => server.stop(false),
    close: () => server.stop(true),
  }
}

interface DenoServer {
  addr: { port: number }
  shutdown(): Promise<void>
  finished: Promise<void>
}
interface DenoRuntime {
  serve(
    options: { port: number; hostname: string; onListen?: () => void; signal?: AbortSignal },
    handler: (request: Request, info: { remoteAddr: { hostname: string } }) => Promise<Response>,
  ): DenoServer
}

function serveWithDeno({ port, hostname, fetch }: ServeOptions): RunningServer {
  const deno = (globalThis as unknown as { Deno: DenoRuntime }).Deno
  const abort = new AbortController()
  const server = deno.serve({ port, hostname, onListen() {}, signal: abort.signal }, (request, info) =>
    fetch(request, info.remoteAddr.hostname),
  )
  return {
    url: `http://${hostname === '0.0.0.0' ? 'localhost' : hostname}:${server.addr.port}`,
    port: server.addr.port,
    drain: () => server.shutdown(),
    close: async () => {
      abort.abort()
      await server.finished
    },
  }
}
