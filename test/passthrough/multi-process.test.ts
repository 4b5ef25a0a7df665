import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { remote, signUpOwner } from '../fixtures/http.ts'
import { startTwoProcesses, type TwoProcesses } from '../fixtures/two-processes.ts'
import { startV1SessionMcpServer } from '../fixtures/upstreams.ts'

/**
 * Gatehouse keeps no MCP state for a passthrough session: a 2025-era session begun through one
 * process goes on through the other, because the upstream's Mcp-Session-Id travels with the client.
 */
describe.skipIf(!process.env.TEST_DATABASE_URL)('a passthrough session across two gatehouse processes', () => {
  let processes: TwoProcesses
  let upstream: Awaited<ReturnType<typeof startV1SessionMcpServer>>
  let token: string

  beforeAll(async () => {
    upstream = await startV1SessionMcpServer()
    processes = await startTwoProcesses((port) => `http://127.0.0.1:${port}`, {
      GATEHOUSE_OUTBOUND_ALLOW_PRIVATE: 'true',
    })
    token = await signUpOwner(processes.a.url)
    const created = await remote(processes.a.url).app.handle(
      new Request(`${processes.a.url}/api/v1/mcp/servers`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ display_name: 'Sessions', slug: 'sessions', url: upstream.url, enabled: true }),
      }),
    )
    if (created.status !== 201) throw new Error(`create: ${created.status} ${await created.text()}`)
  }, 60_000)
  afterAll(async () => {
    await processes?.close()
    await upstream?.close()
  })

  it('continues on B a session that began on A', async () => {
    const onA = new StreamableHTTPClientTransport(new URL(`${processes.a.url}/mcp/servers/sessions`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    })
    const first = new Client({ name: 'two-processes', version: '1.0.0' })
    await first.connect(onA)
    const sessionId = onA.sessionId!
    expect(sessionId).toBeString()

    const onB = new StreamableHTTPClientTransport(new URL(`${processes.b.url}/mcp/servers/sessions`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
      sessionId,
      protocolVersion: onA.protocolVersion,
    })
    const second = new Client({ name: 'two-processes', version: '1.0.0' })
    await second.connect(onB, { prior: { kind: 'legacy' } })
    expect((await second.callTool({ name: 'add', arguments: { a: 20, b: 22 } })).content).toEqual([
      { type: 'text', text: '42' },
    ])
    expect(new Set(upstream.requests.map((request) => request.sessionId).filter(Boolean))).toEqual(new Set([sessionId]))
    await first.close()
    await second.close()
  }, 30_000)
})
