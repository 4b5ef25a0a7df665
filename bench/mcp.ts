// MCP endpoint benchmark: `tools/call` of get_authenticated_user against a real `gatehouse serve` (SQLite) at /mcp,
// and against a bare Bun.serve that answers the same POST with the same bytes (bench/bare-mcp-server.ts) as the
// ceiling, for two wire formats:
// - 2025-06-18: a stateless POST without initialize (mcp-protocol-version: 2025-06-18); Gatehouse answers SSE;
// - 2026-07-28: mcp-protocol-version, mcp-method and mcp-name headers, and the protocol version and client
//   capabilities in params._meta; Gatehouse answers JSON.
//
//   bun bench/mcp.ts [--seconds N] [--concurrency 1,16,64]
//
// Setup, untimed: Gatehouse starts on a fresh temp data dir (SQLite, GATEHOUSE_LOG_LEVEL=warn); through its HTTP API
// the first user is created and signed in, and the session token is the bearer of every /mcp request. One real
// answer per wire format is captured from Gatehouse (content-type and body bytes) and the bare server is started to
// return exactly those. Both servers then stay up, and the phases alternate between them (same wire format, same
// concurrency, Gatehouse then bare) so that drift on the machine hits both alike.
//
// Per phase: C workers, each a loop of keep-alive fetch POSTs (one at a time per worker), for 1 s of warm-up and then
// N s measured. Every answer must be 200 and carry the user's username in result.structuredContent (JSON, or SSE
// `event: message` / `data: {...}`; both are parsed), and Gatehouse's must carry the request's id (the bare server's
// fixed bytes carry the captured one); any failure fails the benchmark after the phase. Latency is from the fetch to
// the last byte of the body. Everything runs on 127.0.0.1, each step is bounded in time, children are killed and the
// temp dir is removed.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { Subprocess } from 'bun'

const ROOT = resolve(import.meta.dir, '..')
const HOST = '127.0.0.1'
const POLL_MS = 20
const HEALTH_TIMEOUT_MS = 20_000
const REQUEST_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 5_000
const WARMUP_MS = 1_000
const USER = { email: 'bench@example.com', username: 'bench', password: 'bench-password-1' }
const TOOL = 'get_authenticated_user'
/** Targets printed next to the figures. */
const TARGET_RATIO_CONCURRENCY = 16
const TARGET_RATIO = 0.3
const TARGET_ADDED_P50_CONCURRENCY = 1
const TARGET_ADDED_P50_US = 100
/** Log lines a start of Gatehouse on a fresh data dir always writes at warn; anything else is shown. */
const EXPECTED_LOG = /GATEHOUSE_ENCRYPTION_KEYS is not set/

type Kind = 'gatehouse' | 'bare'
const VERSIONS = ['2025-06-18', '2026-07-28'] as const
type Version = (typeof VERSIONS)[number]

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '1,16,64' },
  },
})
const seconds = Number(values.seconds)
const levels = values.concurrency.split(',').map((part) => Number(part.trim()))
if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 300) {
  process.stderr.write(`mcp: --seconds must be a number from 0 to 300, got "${values.seconds}"\n`)
  process.exit(2)
}
if (levels.length === 0 || levels.length > 10 || levels.some((c) => !Number.isInteger(c) || c < 1 || c > 1024)) {
  process.stderr.write(`mcp: --concurrency must be 1 to 10 whole numbers from 1 to 1024, separated by commas, got "${values.concurrency}"\n`)
  process.exit(2)
}

const liveChildren = new Set<Subprocess>()
let tempDir: string | undefined

async function cleanup() {
  for (const child of liveChildren) child.kill('SIGKILL')
  await Promise.all([...liveChildren].map((child) => child.exited))
  liveChildren.clear()
  if (tempDir) await rm(tempDir, { recursive: true, force: true })
  tempDir = undefined
}

async function abort(message: string, code = 1): Promise<never> {
  process.stderr.write(`mcp: ${message}\n`)
  await cleanup()
  process.exit(code)
}

// Bounded as a whole: setup, two starts and stops, and per phase its warm-up, its measured time and a request timeout
// at each end.
const phaseCount = 2 * VERSIONS.length * levels.length
const budgetMs = 60_000 + 2 * (HEALTH_TIMEOUT_MS + STOP_TIMEOUT_MS) + phaseCount * (WARMUP_MS + seconds * 1000 + 2 * REQUEST_TIMEOUT_MS + 5_000)
setTimeout(() => void abort(`gave up after ${Math.round(budgetMs / 1000)} s`), budgetMs).unref()
process.on('SIGINT', () => void abort('interrupted', 130))
process.on('SIGTERM', () => void abort('terminated', 143))

function freePort(): number {
  const listener = Bun.listen({ hostname: HOST, port: 0, socket: { data() {} } })
  const port = listener.port
  listener.stop(true)
  return port
}

/** The parent's environment without any Gatehouse settings, so nothing leaks in (a DATABASE_URL, real keys…). */
function childEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || name.startsWith('GATEHOUSE_') || name === 'DATABASE_URL' || name === 'PORT') continue
    env[name] = value
  }
  return { ...env, GATEHOUSE_HOST: HOST, GATEHOUSE_LOG_LEVEL: 'warn', ...extra }
}

interface Running {
  kind: Kind
  child: Subprocess<'ignore', 'pipe', 'pipe'>
  base: string
  output: Promise<string[]>
}

async function start(kind: Kind, env: (port: number) => Record<string, string>): Promise<Running> {
  const port = freePort()
  const command =
    kind === 'gatehouse'
      ? [process.execPath, join(ROOT, 'src/cli.ts'), 'serve']
      : [process.execPath, join(ROOT, 'bench/bare-mcp-server.ts')]
  const child = Bun.spawn(command, {
    cwd: ROOT,
    env: childEnv({ PORT: String(port), ...env(port) }),
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  liveChildren.add(child)
  const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()])
  const base = `http://${HOST}:${port}`
  const started = performance.now()
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${kind} exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${(await output).join('')}`)
    try {
      const response = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1_000) })
      await response.body?.cancel()
      if (response.ok) return { kind, child, base, output }
    } catch {
      // not listening yet
    }
    if (performance.now() - started > HEALTH_TIMEOUT_MS) throw new Error(`${kind} was not healthy within ${HEALTH_TIMEOUT_MS} ms`)
    await Bun.sleep(POLL_MS)
  }
}

async function stop(server: Running) {
  const { child } = server
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
  const exited = await Promise.race([child.exited.then(() => true), Bun.sleep(STOP_TIMEOUT_MS).then(() => false)])
  if (!exited) {
    process.stderr.write(`mcp: ${server.kind} (pid ${child.pid}) ignored SIGTERM for ${STOP_TIMEOUT_MS} ms, killing it\n`)
    child.kill('SIGKILL')
    await child.exited
  }
  liveChildren.delete(child)
  const [stdout, stderr] = await server.output
  const logged = stdout
    .split('\n')
    .filter((line) => line.trim() && !EXPECTED_LOG.test(line))
  if (logged.length)
    process.stderr.write(`mcp: ${server.kind} logged ${logged.length} line(s), the first:\n${logged.slice(0, 5).join('\n')}\n`)
  if (stderr.trim()) process.stderr.write(`mcp: ${server.kind} wrote to stderr:\n${stderr.trim()}\n`)
}

const CLOCK_TICKS = Number(Bun.spawnSync(['getconf', 'CLK_TCK']).stdout.toString().trim()) || 100

/** User plus system CPU seconds a process has used (all its threads), from /proc/<pid>/stat. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // fields[0] is field 3 (state)
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS // utime (14), stime (15)
}

/** Busy and total jiffies of the whole machine, from the first line of /proc/stat. */
async function machineTicks(): Promise<{ busy: number; total: number }> {
  const [, ...fields] = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/)
  const ticks = fields.map(Number)
  const total = ticks.slice(0, 8).reduce((sum, tick) => sum + tick, 0) // user … steal; guest is inside user
  return { busy: total - ticks[3] - ticks[4], total } // minus idle and iowait
}

async function call(base: string, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${base}${path}`, { redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), ...init })
}

async function expectStatus(response: Response, status: number, what: string): Promise<Response> {
  if (response.status !== status) throw new Error(`${what}: ${response.status} ${await response.text()}`)
  return response
}

/** First user and a login through Gatehouse's HTTP API; the session token is the bearer for /mcp. */
async function signIn(base: string): Promise<string> {
  const json = { 'content-type': 'application/json' }
  await expectStatus(await call(base, '/api/v1/users/first', { method: 'POST', headers: json, body: JSON.stringify(USER) }), 201, 'first user')
  const login = await expectStatus(
    await call(base, '/api/v1/auth/login', { method: 'POST', headers: json, body: JSON.stringify({ login: USER.username, password: USER.password }) }),
    200,
    'login',
  )
  const token = ((await login.json()) as { session_token?: string }).session_token
  if (!token) throw new Error('login answered without a session_token')
  return token
}

/** The headers and body of one tools/call in a wire format. */
function requestFor(version: Version, token: string): { headers: Record<string, string>; body: (id: number) => string } {
  const headers: Record<string, string> = {
    authorization: `Bearer ${token}`,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': version,
  }
  if (version === '2025-06-18')
    return {
      headers,
      body: (id) => `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"${TOOL}","arguments":{}}}`,
    }
  const meta = JSON.stringify({ 'io.modelcontextprotocol/protocolVersion': version, 'io.modelcontextprotocol/clientCapabilities': {} })
  return {
    headers: { ...headers, 'mcp-method': 'tools/call', 'mcp-name': TOOL },
    body: (id) => `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"${TOOL}","arguments":{},"_meta":${meta}}}`,
  }
}

interface RpcMessage {
  id?: unknown
  result?: { structuredContent?: { username?: unknown }; isError?: boolean }
  error?: unknown
}

/** The JSON-RPC messages of an answer: a JSON body, or the data of each SSE `message` event. */
function messagesOf(contentType: string, text: string): RpcMessage[] {
  if (!contentType.toLowerCase().startsWith('text/event-stream')) return [JSON.parse(text)]
  const messages: RpcMessage[] = []
  for (const block of text.replaceAll('\r\n', '\n').split('\n\n')) {
    let event = 'message'
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim()
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
    }
    if (event === 'message' && data.length) messages.push(JSON.parse(data.join('\n')))
  }
  return messages
}

/** Why an answer is not the expected tools/call result, or undefined when it is. */
function check(status: number, contentType: string, text: string, id: number | undefined): string | undefined {
  if (status !== 200) return `status ${status}: ${text.slice(0, 300)}`
  let messages: RpcMessage[]
  try {
    messages = messagesOf(contentType, text)
  } catch {
    return `unparsable ${contentType} body: ${text.slice(0, 300)}`
  }
  const answer = messages.find((message) => 'result' in message || 'error' in message)
  if (!answer) return `no JSON-RPC answer in the ${contentType} body: ${text.slice(0, 300)}`
  if (id !== undefined && answer.id !== id) return `answer id ${JSON.stringify(answer.id)} for request id ${id}`
  if (answer.error || answer.result?.isError) return `an error answer: ${text.slice(0, 300)}`
  if (answer.result?.structuredContent?.username !== USER.username) return `no username "${USER.username}" in: ${text.slice(0, 300)}`
  return undefined
}

interface PhaseResult {
  requests: number
  failures: number
  firstFailures: string[]
  elapsedS: number
  rate: number
  p50: number
  p99: number
  serverCpuS: number
  clientCpuS: number
  /** Share of all the machine's cores that was busy (anything, not only these two processes). */
  machineBusy: number
}

let nextId = 1

/** `concurrency` workers, each POSTing one tools/call after another until `ms` is up; every answer is checked. */
async function run(server: Running, version: Version, token: string, concurrency: number, ms: number): Promise<PhaseResult> {
  const url = `${server.base}/mcp`
  const { headers, body } = requestFor(version, token)
  const checkId = server.kind === 'gatehouse' // the bare server's fixed bytes carry the id of the captured answer
  const latencies: number[] = []
  const firstFailures: string[] = []
  let failures = 0
  const fail = (reason: string) => {
    failures++
    if (firstFailures.length < 3) firstFailures.push(reason)
  }
  const cpuBefore = await cpuSeconds(server.child.pid)
  const clientBefore = await cpuSeconds(process.pid)
  const machineBefore = await machineTicks()
  const started = performance.now()
  const deadline = started + ms

  async function worker() {
    while (performance.now() < deadline) {
      const id = nextId++
      const requestStarted = performance.now()
      try {
        const response = await fetch(url, { method: 'POST', headers, body: body(id), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
        const text = await response.text()
        latencies.push(performance.now() - requestStarted)
        const problem = check(response.status, response.headers.get('content-type') ?? '', text, checkId ? id : undefined)
        if (problem) fail(problem)
      } catch (error) {
        latencies.push(performance.now() - requestStarted)
        fail(error instanceof Error ? `${error.name}: ${error.message}` : String(error))
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))

  const elapsedS = (performance.now() - started) / 1000
  const serverCpuS = (await cpuSeconds(server.child.pid)) - cpuBefore
  const clientCpuS = (await cpuSeconds(process.pid)) - clientBefore
  const machineAfter = await machineTicks()
  latencies.sort((a, b) => a - b)
  return {
    requests: latencies.length,
    failures,
    firstFailures,
    elapsedS,
    rate: latencies.length / elapsedS,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    serverCpuS,
    clientCpuS,
    machineBusy: (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total),
  }
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN // nearest rank
}

function assertNoFailures(server: Running, version: Version, concurrency: number, result: PhaseResult) {
  if (result.failures)
    throw new Error(
      `${server.kind} ${version} c=${concurrency}: ${result.failures} of ${result.requests} tools/call failed, the first:\n  ` +
        result.firstFailures.join('\n  '),
    )
}

/** Warm-up, then the measured phase; a failure in either fails the benchmark. */
async function measure(server: Running, version: Version, token: string, concurrency: number): Promise<PhaseResult> {
  assertNoFailures(server, version, concurrency, await run(server, version, token, concurrency, WARMUP_MS))
  const result = await run(server, version, token, concurrency, seconds * 1000)
  assertNoFailures(server, version, concurrency, result)
  return result
}

const int = (value: number) => Math.round(value).toLocaleString('en-US')
const ms = (value: number) => (value < 1 ? value.toFixed(3) : value < 10 ? value.toFixed(2) : value.toFixed(1))
const us = (value: number) => `${value >= 0 ? '+' : '−'}${int(Math.abs(value) * 1000)} µs`

async function main() {
  process.stdout.write(
    `mcp: bun ${Bun.version}, ${cpus().length} CPU(s), SQLite, tools/call ${TOOL}, concurrency ${levels.join(', ')}, ` +
      `${seconds} s per phase after ${WARMUP_MS / 1000} s of warm-up, ${HOST} only\n`,
  )
  tempDir = await mkdtemp(join(tmpdir(), 'gatehouse-bench-mcp-'))
  const dir = tempDir
  const gatehouse = await start('gatehouse', (port) => ({
    GATEHOUSE_DATA_DIR: join(dir, 'gatehouse'),
    GATEHOUSE_PUBLIC_URL: `http://${HOST}:${port}`,
  }))
  let bare: Running | undefined
  try {
    const token = await signIn(gatehouse.base)

    // One real answer per wire format, for the bare server to return byte for byte.
    const captured: Record<string, { contentType: string; body: string }> = {}
    for (const version of VERSIONS) {
      const { headers, body } = requestFor(version, token)
      const id = nextId++
      const response = await call(gatehouse.base, '/mcp', { method: 'POST', headers, body: body(id) })
      const text = await response.text()
      const contentType = response.headers.get('content-type') ?? ''
      const problem = check(response.status, contentType, text, id)
      if (problem) throw new Error(`gatehouse ${version}: the first tools/call failed: ${problem}`)
      captured[version] = { contentType, body: text }
    }
    const responsesPath = join(dir, 'bare-responses.json')
    await writeFile(responsesPath, JSON.stringify(captured))
    bare = await start('bare', () => ({ BARE_MCP_RESPONSES: responsesPath }))
    for (const version of VERSIONS) {
      const { headers, body } = requestFor(version, token)
      const response = await call(bare.base, '/mcp', { method: 'POST', headers, body: body(nextId++) })
      const text = await response.text()
      if (text !== captured[version].body || response.headers.get('content-type') !== captured[version].contentType)
        throw new Error(`bare ${version}: did not answer the captured bytes`)
    }
    process.stdout.write(
      '  setup: 1 user signed in through the HTTP API, its session token as bearer; captured answers: ' +
        VERSIONS.map((v) => `${v} ${captured[v].contentType}, ${captured[v].body.length} bytes`).join('; ') +
        '\n',
    )

    const results = new Map<string, PhaseResult>()
    const key = (kind: Kind, version: Version, c: number) => `${kind} ${version} ${c}`
    for (const version of VERSIONS)
      for (const c of levels)
        for (const server of [gatehouse, bare]) {
          const result = await measure(server, version, token, c)
          results.set(key(server.kind, version, c), result)
          process.stdout.write(
            `  ${server.kind.padEnd(9)} ${version} c=${String(c).padEnd(3)} ${int(result.rate).padStart(7)}/s, ` +
              `p50 ${ms(result.p50)} ms, p99 ${ms(result.p99)} ms\n`,
          )
        }

    const header = ['server', 'version', 'c', 'requests', 'req/s', 'p50', 'p99', 'server CPU', 'per core', 'client CPU', 'other', 'machine busy']
    const rows: string[][] = []
    for (const version of VERSIONS)
      for (const c of levels)
        for (const kind of ['gatehouse', 'bare'] as const) {
          const r = results.get(key(kind, version, c))!
          const serverPct = (100 * r.serverCpuS) / r.elapsedS
          const clientPct = (100 * r.clientCpuS) / r.elapsedS
          const otherPct = Math.max(0, 100 * r.machineBusy * cpus().length - serverPct - clientPct)
          rows.push([
            kind,
            version,
            String(c),
            int(r.requests),
            `${int(r.rate)}/s`,
            `${ms(r.p50)} ms`,
            `${ms(r.p99)} ms`,
            `${Math.round(serverPct)}%`,
            r.serverCpuS > 0 ? `${int(r.requests / r.serverCpuS)}/s` : '-',
            `${Math.round(clientPct)}%`,
            `${Math.round(otherPct)}%`,
            `${Math.round(100 * r.machineBusy)}% of ${cpus().length}`,
          ])
        }
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((cells) => cells[i].length)))
    const line = (cells: string[]) => cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')
    process.stdout.write(`\n${line(header)}\n${rows.map(line).join('\n')}\n\n`)
    process.stdout.write(
      '  server CPU: user+system time of the server process over the phase, in % of one core (its JS runs on one\n' +
        '  thread). per core: requests per CPU-second of the server process. client CPU: this load generator, which\n' +
        '  shares the machine with the server; other: everything else (kernel loopback work, other processes), in %\n' +
        '  of one core; machine busy: all cores, from /proc/stat. Near 100% busy the rates are bounded by the machine,\n' +
        '  the bare ceiling first of all (its client works harder than it does); "per core" survives that.\n\n',
    )

    for (const version of VERSIONS) {
      const parts = levels.map((c) => {
        const g = results.get(key('gatehouse', version, c))!
        const b = results.get(key('bare', version, c))!
        return `c=${c} gatehouse ${int(g.rate)}/s vs bare ${int(b.rate)}/s (${(g.rate / b.rate).toFixed(2)}), p50 ${us(g.p50 - b.p50)}`
      })
      const targets: string[] = []
      if (levels.includes(TARGET_RATIO_CONCURRENCY)) {
        const g = results.get(key('gatehouse', version, TARGET_RATIO_CONCURRENCY))!
        const b = results.get(key('bare', version, TARGET_RATIO_CONCURRENCY))!
        const ratio = g.rate / b.rate
        targets.push(`ratio ${ratio.toFixed(2)} at c=${TARGET_RATIO_CONCURRENCY} (target ≥ ${TARGET_RATIO}: ${ratio >= TARGET_RATIO ? 'met' : 'MISSED'})`)
      }
      if (levels.includes(TARGET_ADDED_P50_CONCURRENCY)) {
        const g = results.get(key('gatehouse', version, TARGET_ADDED_P50_CONCURRENCY))!
        const b = results.get(key('bare', version, TARGET_ADDED_P50_CONCURRENCY))!
        const added = (g.p50 - b.p50) * 1000
        targets.push(
          `added p50 ${us(g.p50 - b.p50)} at c=${TARGET_ADDED_P50_CONCURRENCY} ` +
            `(target < ${TARGET_ADDED_P50_US} µs: ${added < TARGET_ADDED_P50_US ? 'met' : 'MISSED'})`,
        )
      }
      process.stdout.write(`mcp ${version}: ${parts.join('; ')}\n`)
      if (targets.length) process.stdout.write(`mcp ${version} targets: ${targets.join('; ')}\n`)
    }
  } finally {
    if (bare) await stop(bare)
    await stop(gatehouse)
  }
}

try {
  await main()
} catch (error) {
  await abort(error instanceof Error ? error.message : String(error))
}
await cleanup()
process.exit(0)
