// Tracing with the real OpenTelemetry SDK on this runtime: a Gatehouse exporting to a small
// OTLP/HTTP collector on loopback (JSON encoding, so the test reads the spans as sent), a real
// upstream MCP server, and calls through the passthrough and the aggregated /mcp. Also the upstream
// metrics of /mcp, with tracing off.
import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import type { TracingConfig } from '../../src/config.ts'
import {
  type AggregateGatehouse,
  startAggregateGatehouse,
  startV2Upstream,
  type V2Upstream,
} from '../fixtures/aggregate.ts'

interface OtlpAttribute {
  key: string
  value: { stringValue?: string; intValue?: number | string; boolValue?: boolean }
}
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: OtlpAttribute[]
}

const SERVER = 2
const CLIENT = 3
const SECRET_ARGUMENT = 'an-argument-no-span-may-hold'

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, '0')).join('')
}

function attributesOf(span: OtlpSpan): Record<string, unknown> {
  return Object.fromEntries(
    span.attributes.map(({ key, value }) => [key, value.stringValue ?? value.intValue ?? value.boolValue]),
  )
}

/** The collector: records every export's spans, with their service name. */
function startCollector() {
  const spans: (OtlpSpan & { service: string })[] = []
  const contentTypes: string[] = []
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      if (request.method !== 'POST' || new URL(request.url).pathname !== '/v1/traces')
        return new Response(null, { status: 404 })
      contentTypes.push(request.headers.get('content-type') ?? '')
      const body = (await request.json()) as {
        resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { spans: OtlpSpan[] }[] }[]
      }
      for (const resourceSpans of body.resourceSpans) {
        const service =
          resourceSpans.resource.attributes.find((attribute) => attribute.key === 'service.name')?.value.stringValue ??
          ''
        for (const scope of resourceSpans.scopeSpans) for (const span of scope.spans) spans.push({ ...span, service })
      }
      return Response.json({})
    },
  })
  return { url: `http://127.0.0.1:${server.port}/v1/traces`, spans, contentTypes, close: () => server.stop(true) }
}

function toolCall(url: string, token: string, name: string, traceparent?: string) {
  return fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-06-18',
      ...(traceparent ? { traceparent, tracestate: 'client=kept-out' } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name, arguments: { text: SECRET_ARGUMENT } },
    }),
    signal: AbortSignal.timeout(10_000),
  })
}

describe('tracing over OTLP/HTTP', () => {
  let collector: ReturnType<typeof startCollector>
  let upstream: V2Upstream
  let gatehouse: AggregateGatehouse
  let serverId: string

  beforeAll(async () => {
    collector = startCollector()
    upstream = await startV2Upstream()
    const tracing: TracingConfig = {
      url: collector.url,
      headers: { 'x-collector-key': 'collector-key' },
      serviceName: 'gatehouse-test',
      sampler: 'parentbased_always_on',
      samplerRatio: 1,
    }
    gatehouse = await startAggregateGatehouse({ tracing })
    serverId = (await gatehouse.register('echo', { url: upstream.url, availability: 'default_on' })).id
  })
  afterAll(async () => {
    await gatehouse?.close()
    await upstream?.close()
    collector?.close()
  })

  /** The spans of one trace, once the exporter has sent them. */
  async function spansOf(traceId: string) {
    await gatehouse.deps.tracing!.flush()
    return collector.spans.filter((span) => span.traceId === traceId)
  }

  it('makes a passthrough call a child of the client span and sends its own traceparent upstream', async () => {
    const traceId = randomHex(16)
    const clientSpanId = randomHex(8)
    const answer = await toolCall(
      `${gatehouse.url}/mcp/servers/echo`,
      gatehouse.owner.token,
      'echo',
      `00-${traceId}-${clientSpanId}-01`,
    )
    expect(answer.status).toBe(200)
    expect(await answer.text()).toContain(SECRET_ARGUMENT)

    const spans = await spansOf(traceId)
    const server = spans.find((span) => span.kind === SERVER)
    expect(server).toBeDefined()
    expect(server!.service).toBe('gatehouse-test')
    expect(server!.name).toBe('tools/call echo')
    expect(server!.parentSpanId).toBe(clientSpanId)
    expect(attributesOf(server!)).toMatchObject({
      'http.route': '/mcp/servers/{slug}',
      'mcp.method.name': 'tools/call',
      'gen_ai.tool.name': 'echo',
      'gatehouse.server.id': serverId,
      'gatehouse.server.slug': 'echo',
      'gatehouse.outcome': 'ok',
      'user.id': gatehouse.owner.id,
      'http.response.status_code': 200,
    })
    const client = spans.find((span) => span.kind === CLIENT)
    expect(client).toBeDefined()
    expect(client!.parentSpanId).toBe(server!.spanId)
    expect(attributesOf(client!)).toMatchObject({ 'gatehouse.server.id': serverId, 'http.request.method': 'POST' })

    // The upstream saw Gatehouse's client span, in the client's trace, and the trace's state carried
    // on as W3C Trace Context asks (parsed and written again, never the client's header as is).
    const seen = upstream.calls.at(-1)!.headers
    expect(seen.get('traceparent')).toBe(`00-${traceId}-${client!.spanId}-01`)
    expect(seen.get('tracestate')).toBe('client=kept-out')
  })

  it('traces an aggregated tools/call and its upstream request', async () => {
    const traceId = randomHex(16)
    const clientSpanId = randomHex(8)
    const answer = await toolCall(
      `${gatehouse.url}/mcp`,
      gatehouse.owner.token,
      'echo__echo',
      `00-${traceId}-${clientSpanId}-01`,
    )
    expect(answer.status).toBe(200)
    expect(await answer.text()).toContain(SECRET_ARGUMENT)

    const spans = await spansOf(traceId)
    const server = spans.find((span) => span.kind === SERVER)
    expect(server?.name).toBe('tools/call echo__echo')
    expect(server!.parentSpanId).toBe(clientSpanId)
    expect(attributesOf(server!)).toMatchObject({
      'http.route': '/mcp',
      'mcp.method.name': 'tools/call',
      'gen_ai.tool.name': 'echo__echo',
      'gatehouse.server.id': serverId,
      'gatehouse.outcome': 'ok',
      'user.id': gatehouse.owner.id,
    })
    const clients = spans.filter((span) => span.kind === CLIENT)
    expect(clients.length).toBeGreaterThan(0)
    for (const client of clients) {
      expect(client.parentSpanId).toBe(server!.spanId)
      expect(attributesOf(client)['gatehouse.server.id']).toBe(serverId)
    }
    const seen = upstream.calls.at(-1)!.headers.get('traceparent')
    expect(seen?.split('-')[1]).toBe(traceId)
    expect(clients.map((client) => client.spanId)).toContain(seen!.split('-')[2])
  })

  it('starts a trace of its own for a client that sent none', async () => {
    const before = collector.spans.length
    const answer = await toolCall(`${gatehouse.url}/mcp`, gatehouse.owner.token, 'echo__echo')
    expect(answer.status).toBe(200)
    await answer.text()
    await gatehouse.deps.tracing!.flush()
    const server = collector.spans.slice(before).find((span) => span.kind === SERVER)
    expect(server?.parentSpanId || undefined).toBeUndefined()
    expect(upstream.calls.at(-1)!.headers.get('traceparent')?.split('-')[1]).toBe(server!.traceId)
  })

  it('puts no token or argument in any span, and sends JSON to the collector', async () => {
    await gatehouse.deps.tracing!.flush()
    expect(collector.spans.length).toBeGreaterThan(0)
    const everything = JSON.stringify(collector.spans)
    expect(everything).not.toContain(gatehouse.owner.token)
    expect(everything).not.toContain(SECRET_ARGUMENT)
    expect(collector.contentTypes.every((type) => type.startsWith('application/json'))).toBe(true)
  })
})

describe('upstream metrics of /mcp, tracing off', () => {
  let upstream: V2Upstream
  let gatehouse: AggregateGatehouse
  let serverId: string

  beforeAll(async () => {
    upstream = await startV2Upstream()
    gatehouse = await startAggregateGatehouse()
    serverId = (await gatehouse.register('echo', { url: upstream.url, availability: 'default_on' })).id
  })
  afterAll(async () => {
    await gatehouse?.close()
    await upstream?.close()
  })

  it('counts an aggregated tool call by server ID and outcome, with its latency', async () => {
    expect(gatehouse.deps.tracing).toBeUndefined()
    const answer = await toolCall(`${gatehouse.url}/mcp`, gatehouse.owner.token, 'echo__echo')
    expect(answer.status).toBe(200)
    await answer.text()
    const metrics = await (await fetch(`${gatehouse.url}/metrics`)).text()
    expect(metrics).toContain(`gatehouse_upstream_requests_total{server_id="${serverId}",outcome="ok"} 1`)
    expect(metrics).toContain(`gatehouse_upstream_response_seconds_count{server_id="${serverId}"} 1`)
  })

  it('counts a call through the SDK path too (a client asking for progress)', async () => {
    const client = await gatehouse.mcp(gatehouse.owner.token)
    const result = await client.callTool({ name: 'echo__echo', arguments: { text: 'hi' }, _meta: { progressToken: 7 } })
    expect(result.isError).toBeFalsy()
    const metrics = await (await fetch(`${gatehouse.url}/metrics`)).text()
    expect(metrics).toContain(`gatehouse_upstream_requests_total{server_id="${serverId}",outcome="ok"} 2`)
  })

  it('passes a client’s traceparent through the passthrough unchanged when tracing is off', async () => {
    const traceparent = `00-${randomHex(16)}-${randomHex(8)}-01`
    const answer = await toolCall(`${gatehouse.url}/mcp/servers/echo`, gatehouse.owner.token, 'echo', traceparent)
    expect(answer.status).toBe(200)
    await answer.text()
    expect(upstream.calls.at(-1)!.headers.get('traceparent')).toBe(traceparent)
  })
})
