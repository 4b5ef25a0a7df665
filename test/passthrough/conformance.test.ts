import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createTempDir, findFreePort, ROOT, withTimeout } from '../fixtures/cli-process.ts'
import { type EverythingServer, startEverythingServer } from '../fixtures/everything-server.ts'
import { remote } from '../fixtures/http.ts'
import { bootstrapOwner, startTestServer } from '../setup.ts'

/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance`, server mode, every
 * scenario of `--suite all`) against an everything server directly, then through
 * `/mcp/servers/{slug}`: a transparent passthrough passes exactly what its upstream passes.
 *
 * The suite's CLI cannot send an `Authorization` header, so the run through Gatehouse goes via a
 * small loopback forwarder that adds `Authorization: Bearer <session token>` and passes
 * everything else (method, headers including Host and Origin, body, streamed answer) unchanged.
 * The CLI needs Node 22's `fs.globSync`; it runs under Bun, which has it.
 */

const CONFORMANCE_CLI = join(ROOT, 'node_modules/@modelcontextprotocol/conformance/dist/index.js')
/** One whole suite run takes about a second on loopback; this bounds a hung scenario. */
const RUN_TIMEOUT_MS = 25_000
/**
 * Scenarios the everything server fails directly, left out of both runs: none with 0.1.16.
 * (`server-sse-polling` passes with warnings only: 0.1.16 sends `MCP-Protocol-Version: 2025-03-26`
 * on its raw requests, for which the SDK sends no priming event and offers no stream to resume.)
 */
const EXCLUDED: string[] = []

type Verdict = 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO' | 'SKIPPED'
interface Check {
  id: string
  status: Verdict
  errorMessage?: string
}
interface SuiteRun {
  output: string
  /** Scenario name → its checks, from the CLI's `-o` directory (`server-<scenario>-<timestamp>/checks.json`). */
  scenarios: Map<string, Check[]>
}

async function runSuite(url: string): Promise<SuiteRun> {
  const results = createTempDir()
  const child = Bun.spawn(
    [process.execPath, CONFORMANCE_CLI, 'server', '--url', url, '--suite', 'all', '-o', results.path],
    {
      cwd: results.path,
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    },
  )
  let output = ''
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) output += decoder.decode(chunk, { stream: true })
  }
  try {
    await withTimeout(
      Promise.all([child.exited, collect(child.stdout), collect(child.stderr)]),
      RUN_TIMEOUT_MS,
      `the conformance suite against ${url}`,
    ).catch((error: Error) => {
      const running = [...output.matchAll(/=== Running scenario: (\S+) ===/g)].at(-1)?.[1]
      throw new Error(`${error.message}; it was running ${running ?? 'no scenario yet'}`)
    })
    const scenarios = new Map<string, Check[]>()
    for (const entry of readdirSync(results.path)) {
      const name = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(entry)?.[1]
      if (!name) continue
      // A scenario that threw leaves its directory without checks.json; the CLI counts it failed.
      const file = join(results.path, entry, 'checks.json')
      const checks: Check[] = existsSync(file)
        ? JSON.parse(readFileSync(file, 'utf8'))
        : [{ id: name, status: 'FAILURE', errorMessage: 'the scenario did not finish' }]
      scenarios.set(name, checks)
    }
    return { output, scenarios }
  } finally {
    child.kill('SIGKILL')
    results.remove()
  }
}

/** The CLI's own rule: a scenario passes when none of its checks failed. */
function passing(run: SuiteRun): string[] {
  return [...run.scenarios]
    .filter(([name, checks]) => !EXCLUDED.includes(name) && !checks.some((check) => check.status === 'FAILURE'))
    .map(([name]) => name)
    .sort()
}

/** Every check's verdict, `scenario/check-id: STATUS`, for the checks that judge something. */
function verdicts(run: SuiteRun): string[] {
  return [...run.scenarios]
    .filter(([name]) => !EXCLUDED.includes(name))
    .flatMap(([name, checks]) =>
      checks.filter((check) => check.status !== 'INFO').map((check) => `${name}/${check.id}: ${check.status}`),
    )
    .sort()
}

/** What the checks that did not succeed said, for the failure message. */
function complaints(run: SuiteRun): string {
  return [...run.scenarios]
    .flatMap(([name, checks]) =>
      checks
        .filter((check) => check.status === 'FAILURE' || check.status === 'WARNING')
        .map((check) => `${name}/${check.id}: ${check.status} ${check.errorMessage ?? ''}`),
    )
    .join('\n')
}

interface SseEvent {
  id?: string
  retry?: number
  data: string
}

/**
 * The events of an SSE body (comments skipped), read until `enough` says so or the stream ends;
 * bounded, so a stream that never delivers fails the test instead of hanging it.
 */
async function readEvents(response: Response, enough: (events: SseEvent[]) => boolean = () => false) {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  const events: SseEvent[] = []
  let buffer = ''
  const read = async () => {
    while (!enough(events)) {
      const { value, done } = await reader.read()
      if (done) return
      buffer += value
      let end = buffer.indexOf('\n\n')
      while (end !== -1) {
        const event: SseEvent = { data: '' }
        let fields = 0
        for (const line of buffer.slice(0, end).split('\n')) {
          if (line.startsWith(':')) continue
          const [field, ...rest] = line.split(':')
          const value = rest.join(':').replace(/^ /, '')
          fields++
          if (field === 'id') event.id = value
          else if (field === 'retry') event.retry = Number(value)
          else if (field === 'data') event.data += value
        }
        if (fields > 0) events.push(event)
        buffer = buffer.slice(end + 2)
        end = buffer.indexOf('\n\n')
      }
    }
  }
  try {
    await withTimeout(read(), 5_000, 'SSE events')
  } finally {
    await reader.cancel().catch(() => {})
  }
  return events
}

/** Forwards every request to `target` as it came, plus the bearer token; the answer streams back. */
function startAuthorizingForwarder(target: string, token: string) {
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    idleTimeout: 0,
    async fetch(request) {
      const headers = new Headers(request.headers)
      headers.set('authorization', `Bearer ${token}`)
      const body = request.body ? await request.arrayBuffer() : undefined
      return fetch(target, {
        method: request.method,
        headers,
        body,
        redirect: 'manual',
        signal: request.signal,
        decompress: false,
      })
    },
  })
  return { url: `http://127.0.0.1:${server.port}/mcp`, close: () => server.stop(true) }
}

describe('the MCP conformance suite through /mcp/servers/{slug}', () => {
  let gatehouse: Awaited<ReturnType<typeof startTestServer>>
  let everything: EverythingServer
  let forwarder: ReturnType<typeof startAuthorizingForwarder>
  let token: string

  beforeAll(async () => {
    everything = await startEverythingServer()
    const port = await findFreePort()
    gatehouse = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}`, outboundAllowPrivate: true })
    const owner = await bootstrapOwner(remote(gatehouse.url))
    token = owner.token
    const created = await fetch(`${gatehouse.url}/api/v1/mcp/servers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ display_name: 'Everything', slug: 'everything', url: everything.url, enabled: true }),
      signal: AbortSignal.timeout(5_000),
    })
    if (created.status !== 201) throw new Error(`register: ${created.status} ${await created.text()}`)
    forwarder = startAuthorizingForwarder(`${gatehouse.url}/mcp/servers/everything`, owner.token)
  })
  afterAll(async () => {
    await forwarder?.close()
    await gatehouse?.close()
    await everything?.close()
  })

  it('passes the same scenarios through Gatehouse as directly, with the same verdict on every check', async () => {
    const direct = await runSuite(everything.url)
    const through = await runSuite(forwarder.url)

    expect(direct.scenarios.size, direct.output).toBeGreaterThan(0)
    expect(passing(direct).length).toBeGreaterThan(0)
    expect([...direct.scenarios.keys()].sort()).toEqual([...through.scenarios.keys()].sort())
    expect(verdicts(through), `through Gatehouse:\n${complaints(through)}`).toEqual(verdicts(direct))
    expect(passing(through)).toEqual(passing(direct))
  }, 60_000)

  it('passes them all the same way through a server with allow and deny lists, whose traffic Gatehouse reads', async () => {
    // A deny list that names none of the upstream's tools: every request is read and every list
    // answer rewritten, and nothing the suite checks may change.
    const created = await fetch(`${gatehouse.url}/api/v1/mcp/servers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        display_name: 'Everything, listed',
        slug: 'everything-listed',
        url: everything.url,
        enabled: true,
        tool_deny_list: ['no_such_tool'],
      }),
      signal: AbortSignal.timeout(5_000),
    })
    expect(created.status).toBe(201)
    const listed = startAuthorizingForwarder(`${gatehouse.url}/mcp/servers/everything-listed`, token)
    try {
      const direct = await runSuite(everything.url)
      const through = await runSuite(listed.url)
      expect(verdicts(through), `through Gatehouse:\n${complaints(through)}`).toEqual(verdicts(direct))
      expect(passing(through)).toEqual(passing(direct))
    } finally {
      listed.close()
    }
  }, 60_000)

  // The suite's server-sse-polling (0.1.16) asks at 2025-03-26, for which the SDK neither primes
  // nor closes a stream, so resumption itself is checked here, as 0.2's version of that scenario does.
  it('resumes a stream the upstream closed mid-call when the client comes back with Last-Event-ID', async () => {
    const endpoint = `${gatehouse.url}/mcp/servers/everything`
    const post = (message: object, sessionId?: string) =>
      fetch(endpoint, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-11-25',
          ...(sessionId ? { 'mcp-session-id': sessionId } : {}),
        },
        body: JSON.stringify({ jsonrpc: '2.0', ...message }),
        signal: AbortSignal.timeout(5_000),
      })
    const initialized = await post({
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'resume-test', version: '1.0.0' },
      },
    })
    const sessionId = initialized.headers.get('mcp-session-id')!
    expect(sessionId).toBeString()
    await initialized.body?.cancel()
    expect((await post({ method: 'notifications/initialized' }, sessionId)).status).toBe(202)

    // The upstream primes the stream (an event ID and a retry hint), then closes it before answering.
    const call = await post(
      { id: 7, method: 'tools/call', params: { name: 'test_reconnection', arguments: {} } },
      sessionId,
    )
    expect(call.headers.get('content-type')).toStartWith('text/event-stream')
    const before = await readEvents(call)
    expect(before).toEqual([{ id: expect.any(String), retry: 500, data: '' }])

    const resumed = await fetch(endpoint, {
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'text/event-stream',
        'mcp-protocol-version': '2025-11-25',
        'mcp-session-id': sessionId,
        'last-event-id': before[0].id!,
      },
      signal: AbortSignal.timeout(5_000),
    })
    expect(resumed.status).toBe(200)
    const after = await readEvents(resumed, (events) => events.some((event) => event.data.includes('"id":7')))
    const answer = after.find((event) => event.data.includes('"id":7'))
    expect(JSON.parse(answer!.data)).toEqual({
      jsonrpc: '2.0',
      id: 7,
      result: { content: [{ type: 'text', text: 'Reconnection test completed successfully.' }] },
    })
  })
})
