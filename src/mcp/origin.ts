import type { Config } from '../config.ts'
import { createOriginPolicy, type OriginPolicy } from '../http/cors.ts'
import { memoizedByValue } from '../http/headers.ts'
import { isLoopbackHostname } from '../http/loopback.ts'

const isLoopbackHost = memoizedByValue((host: string) => {
  try {
    return isLoopbackHostname(new URL(`http://${host}`).hostname)
  } catch {
    return false
  }
})

/** The browser origins allowed to call `/mcp` (see `createOriginPolicy`). */
export function mcpOriginPolicy(config: Pick<Config, 'publicUrl' | 'allowedOrigins'>): OriginPolicy {
  return createOriginPolicy({ publicUrl: config.publicUrl, allowedOrigins: config.allowedOrigins })
}

/**
 * DNS-rebinding protection for `/mcp` (MCP transport spec, "Security Warning"): a browser page on a
 * foreign origin must not drive the endpoint. A request that carries an Origin must come from an
 * allowed origin (the public URL's, `GATEHOUSE_ALLOWED_ORIGINS`, any loopback one for a loopback
 * public URL); requests without one (native clients, agents) pass. When the public URL is a
 * loopback one, the Host header must name a loopback host too, which defeats a rebound DNS name.
 * The check returns the reason to refuse, or undefined.
 */
export function originAndHostCheck(
  config: Pick<Config, 'publicUrl' | 'allowedOrigins'>,
): (request: Request) => string | undefined {
  const loopback = isLoopbackHostname(new URL(config.publicUrl).hostname)
  const allowsOrigin = mcpOriginPolicy(config)
  return (request) => {
    const origin = request.headers.get('origin')
    if (origin && !allowsOrigin(origin)) return `requests from origin ${origin} are not allowed`
    if (loopback) {
      const host = request.headers.get('host')
      if (host && !isLoopbackHost(host)) return `host ${host} is not allowed`
    }
    return undefined
  }
}
