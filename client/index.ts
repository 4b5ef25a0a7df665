import { treaty, type Treaty } from '@elysia/eden'
import type { App } from '../src/app.ts'

export type { App }
export type Client = Treaty.Create<App>

export interface ClientOptions extends Treaty.Config {
  /** A session token, API token or OAuth access token, sent as `Authorization: Bearer`. */
  token?: string
}

/**
 * A typed client for the Gatehouse API: routes, bodies and responses are checked at compile time.
 *
 *     const gatehouse = createClient('https://gatehouse.example.com', { token })
 *     const { data, error } = await gatehouse.api.v1.users.me.get()
 */
export function createClient(baseUrl: string, { token, ...config }: ClientOptions = {}): Client {
  const headers = token ? { authorization: `Bearer ${token}` } : undefined
  return treaty<App>(baseUrl, { ...config, headers: mergeHeaders(headers, config.headers) })
}

function mergeHeaders(
  first: Record<string, string> | undefined,
  rest: Treaty.Config['headers'],
): Treaty.Config['headers'] {
  if (!first) return rest
  if (!rest) return first
  return [first, ...(Array.isArray(rest) ? rest : [rest])]
}
