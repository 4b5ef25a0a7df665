// Raw JSON-RPC over fetch with the owner's session token: every way a request can be wrong gets the
// status and error a client can act on, and none of them is a server error.

import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { createApp } from '../../src/app.ts'
import {
  MCP_HEADERS,
  postMcp,
  readRaw,
  REQUEST_TIMEOUT_MS,
  rpc,
  startMcpServer,
  toolCall,
  type McpServer,
  type RawResponse,
} from './support-mcp-server.ts'

const MAX_BODY_BYTES = 4096

describe('MCP endpoint errors', () => {
  let server: McpServer
  /** Every status these tests saw, to check at the end that none was a 5xx. */
  const seen: { what: string; status: number }[] = []

  beforeAll(async () => {
    server = await startMcpServer({ maxBodyBytes: MAX_BODY_BYTES })
  })
  afterAll(async () => {
    await server.close()
  })

  function record(what: string, response: RawResponse): RawResponse {
    seen.push({ what, status: response.status })
    return response
  }

  async function send(what: string, method: 'GET' | 'DELETE'): Promise<RawResponse> {
    const response = await fetch(`${server.url}/mcp`, {
      method,
      headers: { authorization: `Bearer ${server.owner.token}`, accept: 'application/json, text/event-stream' },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    })
    return record(what, { status: response.status, headers: response.headers, body: await response.text() })
  }

  it('answers malformed JSON with 400 and a JSON-RPC parse error', async () => {
    const response = record('malformed JSON', await postMcp(server.url, server.owner.token, '{"jsonrpc":"2.0","id":1,'))
    expect(response.status).toBe(400)
    expect(response.body).toMatchObject({ jsonrpc: '2.0', error: { code: -32700 }, id: null })
  })

  it('answers a body over the size limit with 413', async () => {
    const body = JSON.stringify(rpc('tools/list', { padding: 'x'.repeat(MAX_BODY_BYTES * 2) }))
    const response = record('body over the limit', await postMcp(server.url, server.owner.token, body))
    expect(response.status).toBe(413)
  })

  it('answers a client that accepts only application/json with 406', async () => {
    const response = record(
      'Accept: application/json',
      await postMcp(server.url, server.owner.token, rpc('tools/list'), { accept: 'application/json' }),
    )
    expect(response.status).toBe(406)
    expect(response.body.error.message).toContain('text/event-stream')
  })

  it('answers a text/plain body with 415', async () => {
    const response = record(
      'Content-Type: text/plain',
      await postMcp(server.url, server.owner.token, rpc('tools/list'), { 'content-type': 'text/plain' }),
    )
    expect(response.status).toBe(415)
  })

  it('answers invalid tool arguments with an error result naming the argument', async () => {
    const response = record(
      'invalid arguments',
      await postMcp(server.url, server.owner.token, toolCall('list_users', { limit: 'x' })),
    )
    expect(response.status).toBe(200)
    expect(response.body.result.isError).toBe(true)
    expect(response.body.result.content[0].text).toContain('limit')
  })

  it('answers a call of an unknown tool with an error naming it', async () => {
    const response = record('unknown tool', await postMcp(server.url, server.owner.token, toolCall('no_such_tool')))
    expect(response.body.error.message).toContain('no_such_tool')
  })

  it('answers GET /mcp with 405, as there is no server-initiated stream', async () => {
    const response = await send('GET /mcp', 'GET')
    expect(response.status).toBe(405)
  })

  it('answers DELETE /mcp with 405, as there is no session to end', async () => {
    const response = await send('DELETE /mcp', 'DELETE')
    expect(response.status).toBe(405)
  })

  it('answered none of the requests above with a server error', () => {
    expect(seen.length).toBeGreaterThan(0)
    expect(seen.filter(({ status }) => status >= 500)).toEqual([])
  })
})

/**
 * A plain `tools/call` is answered without the SDK (src/mcp/fast-path.ts), which promises the bytes
 * the SDK would send. Calls the SDK refuses must therefore be refused the same way: each case is
 * sent to the real server and to the same app with the fast path off, and both answers must agree.
 */
describe('tools/call answered alike with and without the fast path', () => {
  let server: McpServer
  let sdkOnly: ReturnType<typeof createApp>
  beforeAll(async () => {
    server = await startMcpServer()
    sdkOnly = createApp({ ...server.deps, config: { ...server.deps.config, mcpFastPath: false } })
  })
  afterAll(async () => {
    await server.close()
  })

  async function both(body: string, headers: Record<string, string> = {}) {
    const fast = await postMcp(server.url, server.owner.token, body, headers)
    const sdk = await readRaw(
      await sdkOnly.handle(
        new Request(`${server.url}/mcp`, {
          method: 'POST',
          headers: { ...MCP_HEADERS, authorization: `Bearer ${server.owner.token}`, ...headers },
          body,
        }),
      ),
    )
    return { fast: { status: fast.status, body: fast.body }, sdk: { status: sdk.status, body: sdk.body } }
  }

  const call = (envelope: string) =>
    `{"jsonrpc":"2.0",${envelope}"method":"tools/call","params":{"name":"get_authenticated_user","arguments":{}}}`

  it('refuses a call whose arguments are null as the SDK does', async () => {
    const { fast, sdk } = await both(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_authenticated_user","arguments":null}}',
    )
    expect(sdk.body.error.code).toBe(-32602)
    expect(fast).toEqual(sdk)
  })

  it('refuses a call with a fractional request id as the SDK does', async () => {
    const { fast, sdk } = await both(call('"id":1.5,'))
    expect(sdk.status).toBe(400)
    expect(fast).toEqual(sdk)
  })

  it('refuses a call with a request id beyond the safe integers as the SDK does', async () => {
    const { fast, sdk } = await both(call('"id":1152921504606846976,'))
    expect(sdk.status).toBe(400)
    expect(fast).toEqual(sdk)
  })

  it('refuses a call with an unknown top-level member as the SDK does', async () => {
    const { fast, sdk } = await both(call('"id":1,"extra":true,'))
    expect(sdk.status).toBe(400)
    expect(fast).toEqual(sdk)
  })

  it('answers a client that sends Accept: */* as the SDK does', async () => {
    const { fast, sdk } = await both(call('"id":1,'), { accept: '*/*' })
    expect(fast.status).toBe(sdk.status)
  })
})
