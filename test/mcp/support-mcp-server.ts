// Shared by the MCP endpoint suites: a real server whose public URL is the URL the tests use, the
// SDK client pointed at it, and raw JSON-RPC over fetch for the wire-level checks.

import {
  Client,
  StreamableHTTPClientTransport,
  type ClientOptions,
  type StreamableHTTPClientTransportOptions,
} from '@modelcontextprotocol/client'
import type { Config } from '../../src/config.ts'
import { bootstrapOwner, createUserAndLogin, startTestServer } from '../setup.ts'
import { obtainTokens } from '../oauth/helpers.ts'
import { findFreePort } from '../fixtures/cli-process.ts'
import { remote } from '../fixtures/http.ts'

/** Every raw request is bounded, so a hung server fails its test instead of the whole run. */
export const REQUEST_TIMEOUT_MS = 10_000

/** The revision the raw requests speak unless told otherwise. */
export const RAW_PROTOCOL_VERSION = '2025-06-18'

export const REVISIONS = ['2025-03-26', '2025-06-18', '2025-11-25', '2026-07-28'] as const
export type Revision = (typeof REVISIONS)[number]

export type McpServer = Awaited<ReturnType<typeof startMcpServer>>

/**
 * A real server on a loopback port whose public URL is `http://127.0.0.1:<port>`, so the 401
 * challenge and the Host check agree with what the client uses, with the owner signed up.
 */
export async function startMcpServer(overrides: Partial<Config> = {}) {
  const port = await findFreePort()
  const publicUrl = `http://127.0.0.1:${port}`
  const server = await startTestServer({ port, publicUrl, ...overrides })
  const ctx = remote(server.url)
  const owner = await bootstrapOwner(ctx).catch(async (error) => {
    await server.close()
    throw error
  })
  return {
    url: server.url,
    publicUrl,
    ctx,
    owner,
    deps: server.deps,
    db: server.deps.db,
    /** An owner-created user of the given role, signed in. */
    createUser: (username: string, role: 'admin' | 'member' = 'member') =>
      createUserAndLogin(ctx, owner.token, username, role),
    /** An OAuth access token from a full flow with `sessionToken`; the resource defaults to the MCP endpoint. */
    oauthToken: (sessionToken: string, options: { scope?: string; resource?: string } = {}) =>
      obtainTokens(ctx, sessionToken, options),
    close: () => server.close(),
  }
}

/** A personal API token of the user behind `sessionToken` (POST /api/v1/tokens). */
export async function createApiToken(
  server: Pick<McpServer, 'url'>,
  sessionToken: string,
): Promise<{ id: string; token: string }> {
  const response = await fetch(`${server.url}/api/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${sessionToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'mcp test' }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  if (response.status !== 201) throw new Error(`api token: ${response.status} ${await response.text()}`)
  return response.json()
}

/** A management API call with a bearer token; the status and the parsed body (or text). */
export async function callApi(
  server: Pick<McpServer, 'url'>,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  const text = await response.text()
  try {
    return { status: response.status, body: JSON.parse(text) }
  } catch {
    return { status: response.status, body: text }
  }
}

/** Client options that make the SDK client speak exactly `revision`. */
export function pinRevision(revision: Revision): ClientOptions {
  return revision === '2026-07-28'
    ? { versionNegotiation: { mode: { pin: '2026-07-28' } } }
    : { supportedProtocolVersions: [revision] }
}

/** Clients opened through `connectClient`; `closeClients()` in afterEach closes whatever is left. */
const openClients = new Set<Client>()

/** The official SDK client, connected to `<url>/mcp` with `token` as bearer. */
export async function connectClient(
  url: string,
  token: string | undefined,
  options: ClientOptions = {},
  transportOptions: StreamableHTTPClientTransportOptions = {},
): Promise<Client> {
  const client = new Client({ name: 'gatehouse-test-client', version: '1.0.0' }, options)
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {}
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
    requestInit: { headers },
    ...transportOptions,
  })
  openClients.add(client)
  try {
    await client.connect(transport)
  } catch (error) {
    openClients.delete(client)
    await client.close().catch(() => {})
    throw error
  }
  return client
}

export async function closeClients(): Promise<void> {
  const clients = [...openClients]
  openClients.clear()
  await Promise.all(clients.map((client) => client.close().catch(() => {})))
}

/** The text of a tool result's one text block, parsed as JSON. */
export function textJson(result: { content?: unknown }): any {
  const content = result.content as { type: string; text?: string }[]
  const block = content.find((item) => item.type === 'text')
  if (!block?.text) throw new Error(`no text content in ${JSON.stringify(result)}`)
  return JSON.parse(block.text)
}

/** The text of a tool result's first text block. */
export function textOf(result: { content?: unknown }): string {
  const content = result.content as { type: string; text?: string }[]
  return content.find((item) => item.type === 'text')?.text ?? ''
}

export interface RawResponse {
  status: number
  headers: Headers
  /** The JSON-RPC message: the JSON body, or the last `data:` line of an SSE body; else the text. */
  body: any
}

/** Reads a JSON or SSE (one `event: message`) answer of the MCP endpoint. */
export async function readRaw(response: Response): Promise<RawResponse> {
  const text = await response.text()
  let body: unknown = text
  const data = text
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice('data:'.length).trim())
  try {
    body = JSON.parse(data.length > 0 ? data.at(-1)! : text)
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body }
}

export const MCP_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': RAW_PROTOCOL_VERSION,
}

/**
 * A raw POST to `<url>/mcp`: `body` is sent as is when a string, else as JSON. Headers default to
 * what a 2025-06-18 client sends, plus the bearer token when one is given; `headers` override them.
 */
export async function postMcp(
  url: string,
  token: string | undefined,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const response = await fetch(`${url}/mcp`, {
    method: 'POST',
    headers: { ...MCP_HEADERS, ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  return readRaw(response)
}

let nextId = 1

/** A JSON-RPC request message. */
export function rpc(method: string, params?: Record<string, unknown>): Record<string, unknown> {
  return { jsonrpc: '2.0', id: nextId++, method, ...(params === undefined ? {} : { params }) }
}

export function toolCall(name: string, args: Record<string, unknown> = {}): Record<string, unknown> {
  return rpc('tools/call', { name, arguments: args })
}

/** The parameters of a `WWW-Authenticate: Bearer …` challenge, by name. */
export function challengeParams(header: string | null): Record<string, string> {
  const params: Record<string, string> = {}
  for (const match of (header ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
    params[match[1]] = match[2].replace(/\\(.)/g, '$1')
  return params
}
