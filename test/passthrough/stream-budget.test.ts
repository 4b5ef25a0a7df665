import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { connect, type Socket } from 'node:net'
import {
  type Account,
  type AggregateGatehouse,
  eventually,
  startAggregateGatehouse,
  startV1Upstream,
  upstreamToolNames,
  within,
} from '../fixtures/aggregate.ts'

/**
 * The budget of long-lived upstream streams (src/http/outbound-capacity.ts). The runtime's fetch
 * serves 256 requests at once per process, and an open upstream stream holds one of them; these
 * tests hold more streams than that as one member, over raw sockets so the test's own fetch
 * slots are not the ones used up, and check that everyone else is still served.
 */

/** An upstream whose GET event stream stays open and silent, as SDK servers' do; `hang` never answers. */
function startHoldingUpstream() {
  let open = 0
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(request) {
      if (request.method === 'GET') {
        open++
        let closed = false
        const close = () => {
          if (!closed) open--
          closed = true
        }
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode(': open\n\n'))
          },
          cancel: close,
        })
        request.signal.addEventListener('abort', close, { once: true })
        return new Response(body, { headers: { 'content-type': 'text/event-stream' } })
      }
      const message = await request.json()
      if (message.method === 'hang') return new Promise<Response>(() => {})
      return Response.json({
        jsonrpc: '2.0',
        id: message.id,
        result: { content: [{ type: 'text', text: 'answered' }] },
      })
    },
  })
  return { url: `http://127.0.0.1:${server.port}/mcp`, open: () => open, close: () => server.stop(true) }
}

/** Opens a passthrough GET stream over a raw socket; resolves with the status once the head arrives. */
function openStream(base: string, slug: string, token: string): Promise<{ status: number; socket: Socket }> {
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname)
    let head = ''
    socket.setEncoding('latin1')
    socket.on('error', reject)
    socket.on('data', (chunk: string) => {
      head += chunk
      const match = /^HTTP\/1\.1 (\d{3})/.exec(head)
      if (match) {
        socket.removeAllListeners('data')
        socket.on('data', () => {})
        resolve({ status: Number(match[1]), socket })
      }
    })
    socket.write(
      `GET /mcp/servers/${slug} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\nMcp-Protocol-Version: 2025-06-18\r\n\r\n`,
    )
  })
}

async function call(base: string, slug: string, token: string, method = 'tools/call'): Promise<Response> {
  return fetch(`${base}/mcp/servers/${slug}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-06-18',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { name: 'echo', arguments: {} } }),
  })
}

function gauge(metrics: string, name: string): number {
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1])
}

describe('long-lived upstream streams', () => {
  let gatehouse: AggregateGatehouse
  let upstream: ReturnType<typeof startHoldingUpstream>
  let alice: Account
  let bob: Account

  beforeAll(async () => {
    upstream = startHoldingUpstream()
    gatehouse = await startAggregateGatehouse()
    await gatehouse.register('hold', { url: upstream.url })
    alice = await gatehouse.createUser('alice')
    bob = await gatehouse.createUser('bob')
  })
  afterAll(async () => {
    await gatehouse?.close()
    upstream?.close()
  })

  it('refuses one member’s streams past their bound with 429, and another user’s call still answers', async () => {
    const sockets: Socket[] = []
    try {
      const opened = await Promise.all(
        Array.from({ length: 300 }, () => openStream(gatehouse.url, 'hold', alice.token)),
      )
      sockets.push(...opened.map((stream) => stream.socket))
      const statuses = opened.map((stream) => stream.status)
      expect(statuses.filter((status) => status === 200)).toHaveLength(gatehouse.deps.config.upstreamMaxStreamsPerUser)
      expect(statuses.filter((status) => status === 429)).toHaveLength(
        300 - gatehouse.deps.config.upstreamMaxStreamsPerUser,
      )

      const refused = await call(gatehouse.url, 'hold', alice.token, 'tools/call')
      expect(refused.status).toBe(200) // short requests are not streams: alice is still served
      const answered = await within(call(gatehouse.url, 'hold', bob.token), 10_000, 'bob’s call')
      expect(answered.status).toBe(200)
      expect(JSON.stringify(await answered.json())).toContain('answered')
    } finally {
      for (const socket of sockets) socket.destroy()
    }
  })

  it('names the bound that refused the stream', async () => {
    const sockets: Socket[] = []
    try {
      for (let i = 0; i < gatehouse.deps.config.upstreamMaxStreamsPerUser; i++)
        sockets.push((await openStream(gatehouse.url, 'hold', bob.token)).socket)
      const response = await fetch(`${gatehouse.url}/mcp/servers/hold`, {
        headers: { authorization: `Bearer ${bob.token}`, accept: 'text/event-stream' },
      })
      expect(response.status).toBe(429)
      expect(response.headers.get('retry-after')).toBe('5')
      const body = await response.json()
      expect(body.error.message).toContain(`${gatehouse.deps.config.upstreamMaxStreamsPerUser} open upstream streams`)
    } finally {
      for (const socket of sockets) socket.destroy()
    }
  })

  it('gives a closed stream’s slot back, so the member can open streams again', async () => {
    await eventually(async () => {
      const metrics = await (await fetch(`${gatehouse.url}/metrics`)).text()
      return gauge(metrics, 'gatehouse_outbound_streams') === 0 ? true : undefined
    }, 'the streams to be released')
    const again = await openStream(gatehouse.url, 'hold', alice.token)
    again.socket.destroy()
    expect(again.status).toBe(200)
  })
})

describe('idle streams and readiness', () => {
  let gatehouse: AggregateGatehouse
  let upstream: ReturnType<typeof startHoldingUpstream>
  let alice: Account

  beforeAll(async () => {
    upstream = startHoldingUpstream()
    // A runtime of 4 connections: at most 2 streams, and 2 hanging requests take the rest.
    gatehouse = await startAggregateGatehouse({ outboundRuntimeLimit: 4, upstreamStreamIdleSeconds: 0.5 })
    await gatehouse.register('hold', { url: upstream.url })
    alice = await gatehouse.createUser('alice')
  })
  afterAll(async () => {
    await gatehouse?.close()
    upstream?.close()
  })

  it('closes a stream that delivers nothing, at the upstream too', async () => {
    const stream = await openStream(gatehouse.url, 'hold', alice.token)
    expect(stream.status).toBe(200)
    // The chunked body's last chunk, or the connection's end: either way the stream is over.
    const ended = new Promise<void>((resolve) => {
      let seen = ''
      stream.socket.on('data', (chunk: string) => {
        seen += chunk
        if (seen.includes('0\r\n\r\n')) resolve()
      })
      stream.socket.on('end', () => resolve())
    })
    await within(ended, 5000, 'the idle stream to end')
    stream.socket.destroy()
    await eventually(
      async () => (upstream.open() === 0 ? true : undefined),
      `the upstream stream to close (${upstream.open()} open)`,
    )
  })

  it('reports not ready while every outbound connection is held, and ready again after', async () => {
    const first = await openStream(gatehouse.url, 'hold', alice.token)
    const second = await openStream(gatehouse.url, 'hold', alice.token)
    expect([first.status, second.status]).toEqual([200, 200])
    const hanging = new AbortController()
    const calls = [0, 1].map(() =>
      fetch(`${gatehouse.url}/mcp/servers/hold`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${alice.token}`,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'hang' }),
        signal: hanging.signal,
      }).catch(() => undefined),
    )
    try {
      const unready = await eventually(async () => {
        const response = await fetch(`${gatehouse.url}/readyz`)
        return response.status === 503 ? await response.json() : undefined
      }, 'readiness to fail')
      expect(unready.detail).toContain('outbound capacity exhausted')
    } finally {
      hanging.abort()
      first.socket.destroy()
      second.socket.destroy()
      await Promise.all(calls)
    }
    await eventually(
      async () => ((await fetch(`${gatehouse.url}/readyz`)).status === 200 ? true : undefined),
      'readiness to come back',
    )
  })
})

describe('one user’s /mcp with many session-based upstreams', () => {
  let gatehouse: AggregateGatehouse
  let upstream: Awaited<ReturnType<typeof startV1Upstream>>
  let holding: ReturnType<typeof startHoldingUpstream>
  let alice: Account

  beforeAll(async () => {
    upstream = await startV1Upstream()
    holding = startHoldingUpstream()
    gatehouse = await startAggregateGatehouse()
    for (let i = 0; i < 24; i++) await gatehouse.register(`v1-${i}`, { url: upstream.url, availability: 'force_on' })
    await gatehouse.register('hold', { url: holding.url })
    alice = await gatehouse.createUser('alice')
  })
  afterAll(async () => {
    await gatehouse?.close()
    await upstream?.close()
    holding?.close()
  })

  it('lists every server, holds event streams only within the budget, and leaves the user their own', async () => {
    const client = await gatehouse.mcp(alice.token)
    const names = await upstreamToolNames(client)
    for (let i = 0; i < 24; i++) expect(names).toContain(`v1-${i}__echo`)
    const metrics = await (await fetch(`${gatehouse.url}/metrics`)).text()
    expect(gauge(metrics, 'gatehouse_outbound_streams')).toBeLessThanOrEqual(
      gatehouse.deps.config.upstreamMaxStreamsPerUser,
    )
    const own = await openStream(gatehouse.url, 'hold', alice.token)
    own.socket.destroy()
    expect(own.status).toBe(200)
  })
})
