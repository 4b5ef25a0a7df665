// The ceiling for bench/startup.ts: the least a Bun process can do to answer /healthz.
// Started the same way as Gatehouse (a `bun` child process) and configured by the same PORT and GATEHOUSE_HOST.

export {} // a module, so its names stay out of the global scope the type checker shares with bench/startup.ts

const port = Number(process.env.PORT ?? '3000')
const hostname = process.env.GATEHOUSE_HOST ?? '127.0.0.1'

const server = Bun.serve({
  port,
  hostname,
  fetch(request) {
    if (new URL(request.url).pathname === '/healthz') return Response.json({ status: 'ok' })
    return new Response('not found', { status: 404 })
  },
})

const stop = () => {
  void server.stop().then(() => process.exit(0))
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
