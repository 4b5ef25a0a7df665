import { createSelfSignedCertificate } from '../fixtures/tls.ts'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import { discoverOAuthProtectedResourceMetadata } from '@modelcontextprotocol/client'
import { loadConfig } from '../../src/config.ts'
import { classifyAddress, parseAllowHosts } from '../../src/http/address-policy.ts'
import { createOutboundFetch, OutboundError, type OutboundPolicy, type Resolve } from '../../src/http/outbound.ts'
import { closeClients, connectClient, startMcpServer } from '../mcp/support-mcp-server.ts'

/**
 * The outbound guard against real servers on loopback. Host names are resolved by a resolver the
 * test hands the guard (no DNS), which is also how a rebinding resolver is played: one that
 * answers differently on every call.
 */

type Handler = (request: Request) => Response | Promise<Response>

/** A plain http server on `hostname`; records the requests it got. */
function startServer(handler: Handler, hostname = '127.0.0.1', port = 0) {
  const requests: Request[] = []
  const server = Bun.serve({
    port,
    hostname,
    fetch(request) {
      requests.push(request)
      return handler(request)
    },
  })
  return { server, port: server.port as number, requests }
}

const servers: { server: ReturnType<typeof Bun.serve> }[] = []
function serve(handler: Handler, hostname?: string, port?: number) {
  const started = startServer(handler, hostname, port)
  servers.push(started)
  return started
}
afterEach(() => {
  for (const { server } of servers.splice(0)) server.stop(true)
})

/** A resolver from a fixed table, counting its calls; an array of answers is used one per call. */
function resolverOf(table: Record<string, string[] | string[][]>): Resolve & { calls: string[] } {
  const calls: string[] = []
  const resolve = async (hostname: string) => {
    const answers = table[hostname]
    const index = calls.filter((name) => name === hostname).length
    calls.push(hostname)
    if (!answers) return []
    return (
      Array.isArray(answers[0]) ? (answers as string[][])[Math.min(index, answers.length - 1)] : answers
    ) as string[]
  }
  return Object.assign(resolve, { calls })
}

function guard(policy: Partial<OutboundPolicy> = {}, limits = {}) {
  return createOutboundFetch({ allowPrivate: false, ...policy }, limits)
}

async function refusal(promise: Promise<unknown>): Promise<OutboundError> {
  const error = await promise.then(
    () => undefined,
    (error) => error,
  )
  expect(error).toBeInstanceOf(OutboundError)
  return error as OutboundError
}

describe('address classification', () => {
  for (const address of [
    '169.254.169.254',
    '169.254.0.1',
    'fe80::1',
    'fd00:ec2::254',
    '100.100.100.200',
    '0.0.0.0',
    '::',
    '224.0.0.1',
    '::ffff:169.254.169.254',
    '::ffff:7f00:1',
    '::ffff:0:7f00:1',
    '2002:7f00:1::',
    '2002:a9fe:a9fe::',
    '64:ff9b::7f00:1',
    '64:ff9b::a9fe:a9fe',
    '64:ff9b:1::a00:1',
    '2001:0:4136:e378:8000:63bf:80ff:fffe',
    '::7f00:1',
  ])
    it(`always refuses ${address}`, () => {
      expect(classifyAddress(address)).toBe('forbidden')
    })

  for (const address of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '100.64.0.1', '::1', 'fd12::1'])
    it(`treats ${address} as internal`, () => {
      expect(classifyAddress(address)).toBe('internal')
    })

  for (const address of ['8.8.8.8', '2606:4700::1111', '::ffff:808:808', '2002:808:808::', '64:ff9b::808:808'])
    it(`treats ${address} as public`, () => {
      expect(classifyAddress(address)).toBe('public')
    })
})

describe('GATEHOUSE_OUTBOUND_ALLOW_HOSTS values', () => {
  it('takes host names, wildcards, addresses and CIDRs separated by commas or spaces', () => {
    expect(parseAllowHosts('MCP.internal, *.corp.example 10.1.0.0/16,fd12::/48 [::1] 10.0.0.5')).toEqual([
      'mcp.internal',
      '*.corp.example',
      '10.1.0.0/16',
      'fd12::/48',
      '::1',
      '10.0.0.5',
    ])
  })

  it('is read from the environment, and a bad entry stops start-up naming the variable', () => {
    const env = { DATABASE_URL: ':memory:', GATEHOUSE_OUTBOUND_ALLOW_HOSTS: 'mcp.internal,10.0.0.0/8' }
    expect(loadConfig(env).outboundAllowHosts).toEqual(['mcp.internal', '10.0.0.0/8'])
    expect(loadConfig({ DATABASE_URL: ':memory:' }).outboundAllowHosts).toEqual([])
    expect(() => loadConfig({ ...env, GATEHOUSE_OUTBOUND_ALLOW_HOSTS: 'a b/c' })).toThrow(
      'GATEHOUSE_OUTBOUND_ALLOW_HOSTS: "b/c" is not a host name, IP address or CIDR',
    )
  })

  it('names the entry it cannot read', () => {
    expect(() => parseAllowHosts('ok.example, 10.0.0.0/99')).toThrow('"10.0.0.0/99" is not a valid CIDR')
    expect(() => parseAllowHosts('http://x.example')).toThrow('"http://x.example" is not a host name')
  })
})

describe('outbound guard destinations', () => {
  it('refuses link-local and metadata addresses even when private destinations are allowed', async () => {
    const fetchOut = guard({ allowPrivate: true, allowHosts: ['169.254.0.0/16', 'fd00::/8'] })
    for (const url of [
      'http://169.254.169.254/latest/meta-data/',
      'http://[fd00:ec2::254]/latest/meta-data/',
      'http://[::ffff:169.254.169.254]/',
      'http://[fe80::1]/',
    ]) {
      const error = await refusal(fetchOut(url))
      expect(error.message).toBe(`${new URL(url).hostname} is not an allowed destination`)
    }
  })

  it('refuses a name that resolves to a metadata address without saying what it resolved to', async () => {
    const fetchOut = guard({
      allowPrivate: true,
      resolve: resolverOf({ 'metadata.google.internal': ['169.254.169.254'] }),
    })
    const error = await refusal(fetchOut('http://metadata.google.internal/computeMetadata/v1/'))
    expect(error.message).toBe('metadata.google.internal is not an allowed destination')
    expect(error.message).not.toContain('169.254')
  })

  it('refuses the IPv6 forms that embed a loopback IPv4 address, without reaching the loopback server', async () => {
    const { port, requests } = serve(() => new Response('reached'))
    const fetchOut = guard({ allowPrivate: true })
    for (const host of [
      '[::ffff:7f00:1]',
      '[::ffff:127.0.0.1]',
      '[::ffff:0:7f00:1]',
      '[2002:7f00:1::]',
      '[64:ff9b::7f00:1]',
    ])
      await refusal(fetchOut(`http://${host}:${port}/`))
    expect(requests).toHaveLength(0)
  })

  it('refuses loopback by default, with a message that names only the host', async () => {
    const { port, requests } = serve(() => new Response('reached'))
    const fetchOut = guard({ resolve: resolverOf({ 'internal.test': ['127.0.0.1'] }) })
    expect((await refusal(fetchOut(`http://127.0.0.1:${port}/`))).message).toBe(
      '127.0.0.1 is not an allowed destination',
    )
    const error = await refusal(fetchOut(`http://internal.test:${port}/`))
    expect(error.message).toBe('internal.test is not an allowed destination')
    expect(requests).toHaveLength(0)
  })

  it('lets one allowed host through without opening other private destinations', async () => {
    const { port, requests } = serve((request) => new Response(`hello ${request.headers.get('host')}`))
    const resolve = resolverOf({
      'mcp.internal': ['127.0.0.1'],
      'api.corp.test': ['127.0.0.1'],
      'other.internal': ['127.0.0.1'],
    })
    const fetchOut = guard({ allowHosts: ['mcp.internal', '*.corp.test'], resolve })
    expect(await (await fetchOut(`http://mcp.internal:${port}/`)).text()).toBe(`hello mcp.internal:${port}`)
    expect(await (await fetchOut(`http://api.corp.test:${port}/`)).text()).toBe(`hello api.corp.test:${port}`)
    await refusal(fetchOut(`http://other.internal:${port}/`))
    await refusal(fetchOut(`http://127.0.0.1:${port}/`))
    expect(requests).toHaveLength(2)
  })

  it('lets the addresses of an allowed CIDR through', async () => {
    const { port } = serve(() => new Response('in range'))
    const fetchOut = guard({ allowHosts: ['127.0.0.0/8'] })
    expect(await (await fetchOut(`http://127.0.0.1:${port}/`)).text()).toBe('in range')
    await refusal(guard({ allowHosts: ['10.0.0.0/8'] })(`http://127.0.0.1:${port}/`))
  })

  it('refuses a host when any of its addresses is not allowed', async () => {
    const { port, requests } = serve(() => new Response('reached'))
    const fetchOut = guard({
      allowHosts: ['127.0.0.1'],
      resolve: resolverOf({ 'mixed.test': ['127.0.0.1', '10.0.0.1'] }),
    })
    await refusal(fetchOut(`http://mixed.test:${port}/`))
    expect(requests).toHaveLength(0)
  })

  it('refuses other schemes and URLs with credentials', async () => {
    const fetchOut = guard({ allowPrivate: true })
    expect((await refusal(fetchOut('file:///etc/passwd'))).message).toContain('only http and https')
    expect((await refusal(fetchOut('http://user:pass@127.0.0.1/'))).message).toContain('credentials')
  })
})

describe('outbound guard pinning', () => {
  it('connects to the address it checked, so a rebinding resolver cannot steer the request', async () => {
    const checked = serve((request) => new Response(`checked ${request.headers.get('host')}`))
    // The same port on another loopback address stands for the internal service DNS rebinds to.
    const internal = serve(() => new Response('internal'), '127.0.0.2', checked.port)
    const resolve = resolverOf({ 'rebind.test': [['127.0.0.1'], ['127.0.0.2']] })
    const fetchOut = guard({ allowHosts: ['127.0.0.1'], resolve }, { checkedHostMs: 0 })
    const response = await fetchOut(`http://rebind.test:${checked.port}/`)
    expect(await response.text()).toBe(`checked rebind.test:${checked.port}`)
    expect(response.url).toBe(`http://rebind.test:${checked.port}/`)
    expect(resolve.calls).toEqual(['rebind.test'])
    expect(internal.requests).toHaveLength(0)
    // The second answer is checked like the first, and refused.
    await refusal(fetchOut(`http://rebind.test:${checked.port}/`))
    expect(internal.requests).toHaveLength(0)
  })

  it('reuses a checked answer for a few seconds, still connecting to the address it checked', async () => {
    const checked = serve((request) => new Response(`checked ${request.headers.get('host')}`))
    const internal = serve(() => new Response('internal'), '127.0.0.2', checked.port)
    const resolve = resolverOf({ 'rebind.test': [['127.0.0.1'], ['127.0.0.2']] })
    const fetchOut = guard({ allowHosts: ['127.0.0.1'], resolve })
    for (let i = 0; i < 3; i++)
      expect(await (await fetchOut(`http://rebind.test:${checked.port}/`)).text()).toBe(
        `checked rebind.test:${checked.port}`,
      )
    expect(resolve.calls).toEqual(['rebind.test'])
    expect(internal.requests).toHaveLength(0)
  })

  describe('over https', () => {
    let certificate: ReturnType<typeof createSelfSignedCertificate>
    let caFile: string
    let tlsServer: ReturnType<typeof Bun.serve>
    beforeAll(() => {
      certificate = createSelfSignedCertificate('pinned.test', 'DNS:pinned.test')
      caFile = certificate.certPath
      tlsServer = Bun.serve({
        port: 0,
        hostname: '127.0.0.1',
        tls: { cert: certificate.cert, key: certificate.key },
        fetch: (request) => new Response(`tls ${request.headers.get('host')}`),
      })
    })
    afterAll(() => {
      tlsServer.stop(true)
      certificate.remove()
    })

    const resolve = () => resolverOf({ 'pinned.test': ['127.0.0.1'], 'wrong.test': ['127.0.0.1'] })

    it('connects to the checked address and checks the certificate against the host name', async () => {
      const fetchOut = guard({ allowHosts: ['pinned.test', 'wrong.test'], caFile, resolve: resolve() })
      const response = await fetchOut(`https://pinned.test:${tlsServer.port}/`)
      expect(await response.text()).toBe(`tls pinned.test:${tlsServer.port}`)
      const error = await refusal(fetchOut(`https://wrong.test:${tlsServer.port}/`))
      expect(error.message).toBe('wrong.test could not be reached: its certificate does not name this host')
    })

    it('does not trust the certificate without the CA file', async () => {
      const fetchOut = guard({ allowHosts: ['pinned.test'], resolve: resolve() })
      const error = await refusal(fetchOut(`https://pinned.test:${tlsServer.port}/`))
      expect(error.message).toBe('pinned.test could not be reached: its certificate is not trusted')
    })

    it('refuses to start with a CA file it cannot read', () => {
      expect(() => guard({ caFile: `${caFile}.missing` })).toThrow('cannot be read')
    })
  })
})

describe('outbound guard as fetch', () => {
  const fetchLoopback = (limits = {}, resolve?: Resolve) =>
    guard({ allowHosts: ['127.0.0.1', 'one.test', 'two.test'], resolve }, limits)

  it('sends any method with its body and headers, and returns every status as a Response', async () => {
    const { port } = serve(async (request) => {
      const path = new URL(request.url).pathname
      if (path === '/missing') return new Response('nope', { status: 404 })
      if (path === '/broken') return Response.json({ error: 'boom' }, { status: 500 })
      if (path === '/empty') return new Response(null, { status: 204 })
      return Response.json({
        method: request.method,
        body: await request.text(),
        type: request.headers.get('content-type'),
        custom: request.headers.get('x-custom'),
      })
    })
    const fetchOut = fetchLoopback()
    const base = `http://127.0.0.1:${port}`
    const posted = await fetchOut(`${base}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-custom': 'yes' },
      body: JSON.stringify({ hello: 'world' }),
    })
    expect(await posted.json()).toEqual({
      method: 'POST',
      body: '{"hello":"world"}',
      type: 'application/json',
      custom: 'yes',
    })
    const put = await fetchOut(new Request(`${base}/echo`, { method: 'PUT', body: 'replaced' }))
    expect(await put.json()).toMatchObject({ method: 'PUT', body: 'replaced' })
    expect((await (await fetchOut(`${base}/echo`, { method: 'DELETE' })).json()).method).toBe('DELETE')
    const missing = await fetchOut(`${base}/missing`)
    expect(missing.status).toBe(404)
    expect(await missing.text()).toBe('nope')
    const broken = await fetchOut(`${base}/broken`)
    expect(broken.status).toBe(500)
    expect(await broken.json()).toEqual({ error: 'boom' })
    expect((await fetchOut(`${base}/empty`)).status).toBe(204)
  })

  describe('redirects', () => {
    function redirectServer() {
      const started = serve((request) => {
        const url = new URL(request.url)
        const to = url.searchParams.get('to')
        if (url.pathname === '/go')
          return new Response(null, {
            status: Number(url.searchParams.get('status') ?? 302),
            headers: { location: to! },
          })
        if (url.pathname === '/loop') return new Response(null, { status: 302, headers: { location: '/loop' } })
        return Response.json({
          path: url.pathname,
          method: request.method,
          body: request.body ? 'present' : 'none',
          authorization: request.headers.get('authorization'),
        })
      })
      return started
    }

    it('follows redirects by default, re-checking every hop', async () => {
      const { port, requests } = redirectServer()
      const internal = serve(() => new Response('internal'), '127.0.0.2', port)
      const resolve = resolverOf({ 'one.test': ['127.0.0.1'], 'two.test': ['127.0.0.1'], 'evil.test': ['127.0.0.2'] })
      const fetchOut = fetchLoopback({}, resolve)
      const base = `http://one.test:${port}`
      const followed = await fetchOut(`${base}/go?to=/target`)
      expect(await followed.json()).toMatchObject({ path: '/target' })
      expect(followed.redirected).toBe(true)
      expect(followed.url).toBe(`${base}/target`)

      await refusal(fetchOut(`${base}/go?to=${encodeURIComponent(`http://evil.test:${port}/`)}`))
      await refusal(fetchOut(`${base}/go?to=${encodeURIComponent('http://169.254.169.254/latest/meta-data/')}`))
      expect(internal.requests).toHaveLength(0)
      expect(resolve.calls).toContain('evil.test')
      expect(requests.length).toBe(4)
    })

    it('stops after five redirects', async () => {
      const { port } = redirectServer()
      const error = await refusal(fetchLoopback()(`http://127.0.0.1:${port}/loop`))
      expect(error.message).toBe('more than 5 redirects')
    })

    it('returns the redirect itself with redirect: manual, and rejects with redirect: error', async () => {
      const { port, requests } = redirectServer()
      const url = `http://127.0.0.1:${port}/go?to=/target`
      const manual = await fetchLoopback()(url, { redirect: 'manual' })
      expect(manual.status).toBe(302)
      expect(manual.headers.get('location')).toBe('/target')
      await refusal(fetchLoopback()(url, { redirect: 'error' }))
      expect(requests).toHaveLength(2)
    })

    it('drops credentials on a redirect to another origin and keeps them on the same one', async () => {
      const { port } = redirectServer()
      const fetchOut = fetchLoopback({}, resolverOf({ 'one.test': ['127.0.0.1'], 'two.test': ['127.0.0.1'] }))
      const headers = { authorization: 'Bearer upstream-secret' }
      const same = await fetchOut(`http://one.test:${port}/go?to=/target`, { headers })
      expect((await same.json()).authorization).toBe('Bearer upstream-secret')
      const other = encodeURIComponent(`http://two.test:${port}/target`)
      const cross = await fetchOut(`http://one.test:${port}/go?to=${other}`, { headers })
      expect((await cross.json()).authorization).toBeNull()
    })

    it('turns a POST into a GET on 303 and keeps method and body on 307', async () => {
      const { port } = redirectServer()
      const fetchOut = fetchLoopback()
      const post = (status: number) =>
        fetchOut(`http://127.0.0.1:${port}/go?status=${status}&to=/target`, { method: 'POST', body: 'payload' })
      expect(await (await post(303)).json()).toMatchObject({ method: 'GET', body: 'none' })
      expect(await (await post(307)).json()).toMatchObject({ method: 'POST', body: 'present' })
    })
  })

  describe('caps', () => {
    function chunkedServer(chunks: number, pauseMs = 1) {
      return serve(
        () =>
          new Response(
            new ReadableStream({
              async start(controller) {
                for (let i = 0; i < chunks; i++) {
                  controller.enqueue(new Uint8Array(1024).fill(120))
                  await Bun.sleep(pauseMs)
                }
                controller.close()
              },
            }),
          ),
      )
    }

    it('errors the body stream once it passes the size cap', async () => {
      const { port } = chunkedServer(8)
      const response = await fetchLoopback({ maxResponseBytes: 4096 })(`http://127.0.0.1:${port}/`)
      expect(response.status).toBe(200)
      const error = await refusal(response.text())
      expect(error.message).toBe('the answer from 127.0.0.1 is larger than 4096 bytes')
    })

    it('rejects an answer whose declared length passes the cap', async () => {
      const { port } = serve(() => new Response('x'.repeat(8192)))
      const error = await refusal(fetchLoopback({ maxResponseBytes: 4096 })(`http://127.0.0.1:${port}/`))
      expect(error.message).toContain('larger than 4096 bytes')
    })

    it('gives up on a server that does not answer in time', async () => {
      const { port } = serve(async () => {
        await Bun.sleep(2000)
        return new Response('late')
      })
      const error = await refusal(fetchLoopback({ connectTimeoutMs: 100 })(`http://127.0.0.1:${port}/`))
      expect(error.message).toBe('127.0.0.1 did not answer within 100 ms')
    })

    it('gives up on a resolver that does not answer in time', async () => {
      const hanging: Resolve = () => new Promise(() => {})
      const error = await refusal(
        guard({ allowPrivate: true, resolve: hanging }, { connectTimeoutMs: 100 })('http://slow-dns.test/'),
      )
      expect(error.message).toBe('slow-dns.test did not answer within 100 ms')
    })

    it('errors a body that is still arriving at the total deadline', async () => {
      const { port } = chunkedServer(50, 100)
      const response = await fetchLoopback({ totalTimeoutMs: 300 })(`http://127.0.0.1:${port}/`)
      const error = await refusal(response.arrayBuffer())
      expect(error.message).toBe('127.0.0.1 did not finish answering within 300 ms')
    })

    it("stops when the caller's signal aborts", async () => {
      const { port } = serve(async () => {
        await Bun.sleep(2000)
        return new Response('late')
      })
      const error = await fetchLoopback()(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(100) }).catch(
        (error) => error,
      )
      expect(error.name).toBe('TimeoutError')
    })
  })

  describe('with the MCP SDK client', () => {
    let server: Awaited<ReturnType<typeof startMcpServer>>
    beforeAll(async () => {
      server = await startMcpServer()
    })
    afterAll(async () => {
      await closeClients()
      await server.close()
    })

    it("serves as the fetch of the SDK's discovery functions and its Streamable HTTP transport", async () => {
      const fetchOut = guard({ allowHosts: ['127.0.0.1'] })
      const metadata = await discoverOAuthProtectedResourceMetadata(`${server.publicUrl}/mcp`, {}, fetchOut)
      expect(metadata.resource).toBe(`${server.publicUrl}/mcp`)
      const client = await connectClient(server.url, server.owner.token, {}, { fetch: fetchOut })
      const { tools } = await client.listTools()
      expect(tools.length).toBeGreaterThan(0)
    })

    it('keeps the SDK from reaching Gatehouse on loopback when nothing allows it', async () => {
      const fetchOut = guard()
      await expect(discoverOAuthProtectedResourceMetadata(`${server.publicUrl}/mcp`, {}, fetchOut)).rejects.toThrow(
        '127.0.0.1 is not an allowed destination',
      )
    })
  })
})
