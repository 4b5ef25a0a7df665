import type { Config } from '../config.ts'

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]'])

function hostnameOf(host: string): string | undefined {
  try {
    return new URL(`http://${host}`).hostname
  } catch {
    return undefined
  }
}

/**
 * DNS-rebinding protection for `/mcp` (MCP transport spec, "Security Warning"): a browser page on a
 * foreign origin must not drive the endpoint. A request that carries an Origin must come from the
 * public URL's origin; requests without one (native clients, agents) pass. When the public URL is
 * a loopback one, the Host header must name a loopback host too, which defeats a rebound DNS name.
 * The check returns the reason to refuse, or undefined.
 */
export function originAndHostCheck(config: Config): (request: Request) => string | undefined {
  const publicUrl = new URL(config.publicUrl)
  const loopback = LOOPBACK_HOSTS.has(publicUrl.hostname)
  return (request) => {
    const origin = request.headers.get('origin')
    if (origin && origin !== publicUrl.origin) return `requests from origin ${origin} are not allowed`
    if (loopback) {
      const host = request.headers.get('host')
      if (host && !LOOPBACK_HOSTS.has(hostnameOf(host) ?? '')) return `host ${host} is not allowed`
    }
    return undefined
  }
}
