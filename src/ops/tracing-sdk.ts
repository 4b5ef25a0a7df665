/**
 * The OpenTelemetry SDK behind src/ops/tracing.ts, imported only when tracing is configured. No
 * global provider, context manager or propagator is registered: the request's span travels in
 * Gatehouse's own request context (src/ops/request-context.ts), so nothing else in the process
 * changes behaviour when tracing is on.
 */
import { type Context, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources'
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace'
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_FULL,
} from '@opentelemetry/semantic-conventions'
import type { SamplerName, TracingConfig } from '../config.ts'
import type { Logger } from './logger.ts'
import type { RequestSpan, SpanAttributes, Tracing, UpstreamSpan } from './tracing.ts'

const VERSION = '0.1.0'

const headersGetter = {
  get: (headers: Headers, key: string) => headers.get(key) ?? undefined,
  keys: (headers: Headers) => [...headers.keys()],
}
const recordSetter = {
  set: (carrier: Record<string, string>, key: string, value: string) => {
    carrier[key] = value
  },
}

function samplerOf(name: SamplerName, ratio: number): Sampler {
  const root = name.endsWith('always_on')
    ? new AlwaysOnSampler()
    : name.endsWith('always_off')
      ? new AlwaysOffSampler()
      : new TraceIdRatioBasedSampler(ratio)
  return name.startsWith('parentbased_') ? new ParentBasedSampler({ root }) : root
}

/** Outcomes that mean the upstream failed the request, whatever status the client got. */
const FAILED_OUTCOMES = new Set(['upstream_error', 'unavailable'])

export function createTracing(config: TracingConfig, logger: Logger): Tracing {
  // The exporter's requests go to the collector the operator configured, with the runtime's own
  // HTTP client: not through the outbound guard (src/http/outbound.ts), which is for URLs that
  // users and admins supply, and which would refuse a collector on a private address.
  const exporter = new OTLPTraceExporter({ url: config.url, headers: config.headers })
  const provider = new TracerProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName, [ATTR_SERVICE_VERSION]: VERSION }),
    ),
    sampler: samplerOf(config.sampler, config.samplerRatio),
    spanProcessors: [new BatchSpanProcessor({ exporter })],
  })
  const tracer = provider.getTracer('gatehouse', VERSION)
  const propagator = new W3CTraceContextPropagator()
  logger.info('tracing on: spans of MCP requests are exported over OTLP/HTTP', {
    endpoint: new URL(config.url).origin,
    service: config.serviceName,
    sampler: config.sampler,
  })

  function startUpstream(parent: Context, serverId: string, method: string, url: string): UpstreamSpan {
    const target = new URL(url)
    const span = tracer.startSpan(
      method,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: method,
          // Without the query, which may hold a key an admin put in the server's URL.
          [ATTR_URL_FULL]: `${target.origin}${target.pathname}`,
          [ATTR_SERVER_ADDRESS]: target.hostname,
          [ATTR_SERVER_PORT]: Number(target.port) || (target.protocol === 'https:' ? 443 : 80),
          'gatehouse.server.id': serverId,
        },
      },
      parent,
    )
    const headers: Record<string, string> = {}
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, recordSetter)
    return {
      headers,
      end(status, error) {
        if (status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status)
        if (error !== undefined || (status !== undefined && status >= 400)) {
          span.setAttribute(
            ATTR_ERROR_TYPE,
            error instanceof Error ? error.name : status === undefined ? 'error' : String(status),
          )
          span.setStatus({ code: SpanStatusCode.ERROR })
        }
        span.end()
      },
    }
  }

  return {
    startRequest(request, route) {
      const parent = propagator.extract(ROOT_CONTEXT, request.headers, headersGetter)
      const span: Span = tracer.startSpan(
        `${request.method} ${route}`,
        {
          kind: SpanKind.SERVER,
          attributes: { [ATTR_HTTP_REQUEST_METHOD]: request.method, [ATTR_HTTP_ROUTE]: route },
        },
        parent,
      )
      const own = trace.setSpan(parent, span)
      let outcome: string | undefined
      const requestSpan: RequestSpan = {
        annotate(attributes: SpanAttributes) {
          span.setAttributes(attributes)
          const method = attributes['mcp.method.name']
          const tool = attributes['gen_ai.tool.name']
          // The MCP conventions' span name: the method, and the tool a call is for.
          if (typeof method === 'string') span.updateName(typeof tool === 'string' ? `${method} ${tool}` : method)
          if (typeof attributes['gatehouse.outcome'] === 'string') outcome = attributes['gatehouse.outcome']
        },
        startUpstream: (serverId, method, url) => startUpstream(own, serverId, method, url),
        end(status) {
          span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status)
          if (outcome === undefined) span.setAttribute('gatehouse.outcome', status < 400 ? 'ok' : 'refused')
          if (status >= 500 || (outcome !== undefined && FAILED_OUTCOMES.has(outcome))) {
            span.setStatus({ code: SpanStatusCode.ERROR })
            if (status >= 500) span.setAttribute(ATTR_ERROR_TYPE, String(status))
          }
          span.end()
        },
      }
      return requestSpan
    },
    async flush() {
      await provider.forceFlush().catch((error) => logger.warn('tracing: spans could not be sent', { error }))
    },
    async shutdown() {
      await provider.shutdown().catch((error) => logger.warn('tracing: spans could not be sent', { error }))
    },
  }
}
