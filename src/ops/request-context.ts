import { AsyncLocalStorage } from 'node:async_hooks'
import type { RequestSpan } from './tracing.ts'

export interface RequestContext {
  requestId: string
  /** The client address as the server saw it (or from X-Forwarded-For behind a trusted proxy). */
  clientIp: string
  /** The matched route pattern, filled in by the app once routing is done. */
  route?: string
  /** The request's trace span, when tracing is on and the request is an MCP one. */
  span?: RequestSpan
}

const storage = new AsyncLocalStorage<RequestContext>()

export function runWithRequestContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn)
}

export function currentRequestContext(): RequestContext | undefined {
  return storage.getStore()
}

/** Accept a caller's request ID only when it is short and plain; otherwise mint one. */
export function requestIdFrom(header: string | null): string {
  if (header && /^[A-Za-z0-9._:-]{1,128}$/.test(header)) return header
  return crypto.randomUUID()
}
