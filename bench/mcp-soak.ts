// MCP soak: `tools/call` of get_authenticated_user against a real `gatehouse serve` (SQLite) at /mcp for minutes on
// end, watching the server process's memory for growth that tracks the number of requests served (a leak).
//
//   bun bench/mcp-soak.ts [--minutes 10] [--concurrency 16]
//
// Setup, untimed: Gatehouse starts on a fresh temp data dir (SQLite, GATEHOUSE_LOG_LEVEL=warn); through its HTTP API
// the first user is created and signed in, and the session token is the bearer of every /mcp request. Then C workers
// POST tools/call one after another over keep-alive connections, alternating the 2025-06-18 wire format (stateless
// POST, SSE answer) and the 2026-07-28 one (mcp-* headers and params._meta, JSON answer). Every answer must be 200
// and carry the user's username; the run stops at the 10th failure and fails.
//
// Memory is sampled every second: the JavaScript heap in use from the server's own /metrics
// (gatehouse_process_heap_used_bytes), and VmRSS (resident now) and VmHWM (resident peak) from /proc/<pid>/status,
// with a line every 30 s (more often on runs shorter than 4 minutes). The first minute (half the run when it is
// shorter than 2 minutes) is warm-up: JIT, caches and the heap settling. Over the readings after it, a least-squares
// line of heap (and of RSS) against requests served gives the growth in KiB per 1,000 requests. Both rise and fall
// with the garbage collector's cycles, so single readings are noisy: the slope's standard error is printed next to
// it, and the verdict (on the heap) is "flat" below ~1 KiB per 1,000 requests, "GROWING" when the growth exceeds that
// by two standard errors, and
// "UNCLEAR" in between (run longer). Everything runs on 127.0.0.1, the run is bounded in time, the child is killed
// and the temp dir is removed.

import { mkdtemp, readFile, rm } from 'node:fs/promises'
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
const READ_EVERY_MS = 1_000
const REPORT_EVERY_MS = 30_000
const WARMUP_MS = 60_000
const FLAT_KIB_PER_1000 = 1
const MAX_FAILURES = 10
const USER = { email: 'bench@example.com', username: 'bench', password: 'bench-password-1' }
const TOOL = 'get_authenticated_user'
/** Log lines a start of Gatehouse on a fresh data dir always writes at warn; anything else is shown. */
const EXPECTED_LOG = /GATEHOUSE_ENCRYPTION_KEYS is not set/

const VERSIONS = ['2025-06-18', '2026-07-28'] as const
type Version = (typeof VERSIONS)[number]

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    minutes: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '16' },
  },
})
const minutes = Number(values.minutes)
const concurrency = Number(values.concurrency)
if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60) {
  process.stderr.write(`mcp-soak: --minutes must be a number from 0 to 1440, got "${values.minutes}"\n`)
  process.exit(2)
}
if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) {
  process.stderr.write(`mcp-soak: --concurrency must be a whole number from 1 to 1024, got "${values.concurrency}"\n`)
  process.exit(2)
}
const durationMs = minutes * 60_000
const warmupMs = Math.min(WARMUP_MS, durationMs / 2)
/** Short runs report more often than every 30 s, so that there are about 8 lines. */
const reportEveryMs = Math.max(5_000, Math.min(REPORT_EVERY_MS, durationMs / 8))

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
  process.stderr.write(`mcp-soak: ${message}\n`)
  await cleanup()
  process.exit(code)
}

// Bounded as a whole: setup, the run, the last requests' timeout and the stop.
const budgetMs = durationMs + 60_000 + HEALTH_TIMEOUT_MS + 2 * REQUEST_TIMEOUT_MS + STOP_TIMEOUT_MS
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
  child: Subprocess<'ignore', 'pipe', 'pipe'>
  base: string
  output: Promise<string[]>
}

async function start(dataDir: string): Promise<Running> {
  const port = freePort()
  const base = `http://${HOST}:${port}`
  const child = Bun.spawn([process.execPath, join(ROOT, 'src/cli.ts'), 'serve'], {
    cwd: ROOT,
    env: childEnv({ PORT: String(port), GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_PUBLIC_URL: base }),
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  liveChildren.add(child)
  const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()])
  const started = performance.now()
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`gatehouse exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${(await output).join('')}`)
    try {
      const response = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1_000) })
      await response.body?.cancel()
      if (response.ok) return { child, base, output }
    } catch {
      // not listening yet
    }
    if (performance.now() - started > HEALTH_TIMEOUT_MS) throw new Error(`gatehouse was not healthy within ${HEALTH_TIMEOUT_MS} ms`)
    await Bun.sleep(POLL_MS)
  }
}

async function stop(server: Running) {
  const { child } = server
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
  const exited = await Promise.race([child.exited.then(() => true), Bun.sleep(STOP_TIMEOUT_MS).then(() => false)])
  if (!exited) {
    process.stderr.write(`mcp-soak: gatehouse (pid ${child.pid}) ignored SIGTERM for ${STOP_TIMEOUT_MS} ms, killing it\n`)
    child.kill('SIGKILL')
    await child.exited
  }
  liveChildren.delete(child)
  const [stdout, stderr] = await server.output
  const logged = stdout.split('\n').filter((line) => line.trim() && !EXPECTED_LOG.test(line))
  if (logged.length) process.stderr.write(`mcp-soak: gatehouse logged ${logged.length} line(s), the first:\n${logged.slice(0, 5).join('\n')}\n`)
  if (stderr.trim()) process.stderr.write(`mcp-soak: gatehouse wrote to stderr:\n${stderr.trim()}\n`)
}

const CLOCK_TICKS = Number(Bun.spawnSync(['getconf', 'CLK_TCK']).stdout.toString().trim()) || 100

/** User plus system CPU seconds a process has used (all its threads), from /proc/<pid>/stat. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // fields[0] is field 3 (state)
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS // utime (14), stime (15)
}

/** The server's JavaScript heap in use, in KiB, from its own /metrics. */
async function heapKiB(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).text()
  const match = /^gatehouse_process_heap_used_bytes (\d+)$/m.exec(text)
  if (!match) throw new Error('no gatehouse_process_heap_used_bytes in /metrics')
  return Number(match[1]) / 1024
}

/** Resident memory now and at its peak, in KiB, from /proc/<pid>/status. */
async function memoryKiB(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, 'm').exec(status)
    if (!match) throw new Error(`no ${name} in /proc/${pid}/status`)
    return Number(match[1])
  }
  return { rss: field('VmRSS'), hwm: field('VmHWM') }
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
function check(status: number, contentType: string, text: string, id: number): string | undefined {
  if (status !== 200) return `status ${status}: ${text.slice(0, 300)}`
  let messages: RpcMessage[]
  try {
    messages = messagesOf(contentType, text)
  } catch {
    return `unparsable ${contentType} body: ${text.slice(0, 300)}`
  }
  const answer = messages.find((message) => 'result' in message || 'error' in message)
  if (!answer) return `no JSON-RPC answer in the ${contentType} body: ${text.slice(0, 300)}`
  if (answer.id !== id) return `answer id ${JSON.stringify(answer.id)} for request id ${id}`
  if (answer.error || answer.result?.isError) return `an error answer: ${text.slice(0, 300)}`
  if (answer.result?.structuredContent?.username !== USER.username) return `no username "${USER.username}" in: ${text.slice(0, 300)}`
  return undefined
}

interface Sample {
  ms: number
  requests: number
  rss: number
  hwm: number
  heap: number
}

/** Least-squares line y = a + b x, with the standard error of b. */
function fit(points: { x: number; y: number }[]): { slope: number; slopeError: number } {
  const n = points.length
  const meanX = points.reduce((sum, p) => sum + p.x, 0) / n
  const meanY = points.reduce((sum, p) => sum + p.y, 0) / n
  let sxx = 0
  let sxy = 0
  for (const p of points) {
    sxx += (p.x - meanX) ** 2
    sxy += (p.x - meanX) * (p.y - meanY)
  }
  const slope = sxy / sxx
  const intercept = meanY - slope * meanX
  const residuals = points.reduce((sum, p) => sum + (p.y - intercept - slope * p.x) ** 2, 0)
  return { slope, slopeError: n > 2 ? Math.sqrt(residuals / (n - 2) / sxx) : NaN }
}

const int = (value: number) => Math.round(value).toLocaleString('en-US')
const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`
const clock = (ms: number) => {
  const s = Math.round(ms / 1000)
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
}

async function main() {
  process.stdout.write(
    `mcp-soak: bun ${Bun.version}, ${cpus().length} CPU(s), SQLite, tools/call ${TOOL} (${VERSIONS.join(' and ')} alternating), ` +
      `${minutes} min at concurrency ${concurrency}, memory read every ${READ_EVERY_MS / 1000} s and reported every ${Math.round(reportEveryMs / 1000)} s, ` +
      `the first ${Math.round(warmupMs / 1000)} s warm-up, ${HOST} only\n`,
  )
  tempDir = await mkdtemp(join(tmpdir(), 'gatehouse-bench-mcp-soak-'))
  const server = await start(join(tempDir, 'gatehouse'))
  const pid = server.child.pid
  try {
    const token = await signIn(server.base)
    const requests = VERSIONS.map((version) => requestFor(version, token))
    const url = `${server.base}/mcp`
    const idle = await memoryKiB(pid)
    process.stdout.write(`  setup: 1 user signed in through the HTTP API; idle RSS ${mib(idle.rss)}, HWM ${mib(idle.hwm)}, pid ${pid}\n`)

    let nextId = 1
    let served = 0
    let failures = 0
    const firstFailures: string[] = []
    const started = performance.now()
    const deadline = started + durationMs
    const cpuBefore = await cpuSeconds(pid)

    async function worker() {
      while (performance.now() < deadline && failures < MAX_FAILURES) {
        const id = nextId++
        const { headers, body } = requests[id % requests.length]
        let problem: string | undefined
        try {
          const response = await fetch(url, { method: 'POST', headers, body: body(id), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
          problem = check(response.status, response.headers.get('content-type') ?? '', await response.text(), id)
        } catch (error) {
          problem = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
        }
        if (problem) {
          failures++
          if (firstFailures.length < 3) firstFailures.push(problem)
        } else served++
      }
    }

    const samples: Sample[] = []
    let reported = { ms: 0, requests: 0, count: 0 }
    function report(now: Sample) {
      const window = samples.slice(reported.count)
      const low = Math.min(...window.map((sample) => sample.rss))
      const high = Math.max(...window.map((sample) => sample.rss))
      process.stdout.write(
        `  ${clock(now.ms)}  ${int(now.requests).padStart(11)} requests  ` +
          `${int(((now.requests - reported.requests) * 1000) / (now.ms - reported.ms)).padStart(7)}/s  ` +
          `RSS ${mib(now.rss).padStart(10)} (${mib(low)} to ${mib(high)})  HWM ${mib(now.hwm).padStart(10)}  heap ${mib(now.heap).padStart(9)}` +
          `${now.ms < warmupMs - 1 ? '  (warm-up)' : ''}\n`,
      )
      reported = { ms: now.ms, requests: now.requests, count: samples.length }
    }
    async function sampler() {
      let nextReport = started + reportEveryMs
      for (let next = started + READ_EVERY_MS; ; next += READ_EVERY_MS) {
        const at = Math.min(next, deadline)
        await Bun.sleep(Math.max(0, at - performance.now()))
        if (failures >= MAX_FAILURES) return // the workers have stopped
        const sample = { ms: performance.now() - started, requests: served, ...(await memoryKiB(pid)), heap: await heapKiB(server.base) }
        samples.push(sample)
        if (at >= nextReport - 1 || at >= deadline) {
          report(sample)
          nextReport += reportEveryMs
        }
        if (at >= deadline) return
      }
    }
    await Promise.all([sampler(), ...Array.from({ length: concurrency }, worker)])
    const elapsedS = (performance.now() - started) / 1000
    const serverCpuS = (await cpuSeconds(pid)) - cpuBefore
    const end = await memoryKiB(pid)

    if (failures)
      throw new Error(`${failures} tools/call failed (stopped at ${MAX_FAILURES}) after ${int(served)} good ones, the first:\n  ${firstFailures.join('\n  ')}`)

    const steady = samples.filter((sample) => sample.ms >= warmupMs - 1)
    if (steady.length < 3) throw new Error(`only ${steady.length} sample(s) after the warm-up: run for longer`)
    const rssFit = fit(steady.map((sample) => ({ x: sample.requests, y: sample.rss })))
    const { slope, slopeError } = fit(steady.map((sample) => ({ x: sample.requests, y: sample.heap })))
    const growth = slope * 1000
    const growthError = slopeError * 1000
    const first = steady[0]
    const last = steady[steady.length - 1]
    // Flat below the threshold; growing only when the growth stands clear of the threshold by two standard errors.
    const verdict = growth < FLAT_KIB_PER_1000 ? 'flat' : growth - 2 * growthError >= FLAT_KIB_PER_1000 ? 'GROWING' : 'UNCLEAR (within noise; run longer)'
    process.stdout.write(
      `\n  ${int(served)} requests in ${elapsedS.toFixed(0)} s (${int(served / elapsedS)}/s), 0 failures; ` +
        `server CPU ${Math.round((100 * serverCpuS) / elapsedS)}% of one core\n` +
        `  RSS: idle ${mib(idle.rss)}, after warm-up ${mib(first.rss)} at ${int(first.requests)} requests, ` +
        `end ${mib(end.rss)} at ${int(served)} requests; peak (HWM) ${mib(end.hwm)}\n` +
        `  heap: after warm-up ${mib(first.heap)}, end ${mib(last.heap)}\n` +
        `  fit over ${steady.length} samples after the warm-up (${int(last.requests - first.requests)} requests): ` +
        `heap ${growth >= 0 ? '+' : '−'}${Math.abs(growth).toFixed(3)} ± ${growthError.toFixed(3)} KiB per 1,000 requests ` +
        `(${growth >= 0 ? '+' : '−'}${mib(Math.abs(slope) * 1_000_000)} per million); ` +
        `RSS ${rssFit.slope >= 0 ? '+' : '−'}${Math.abs(rssFit.slope * 1000).toFixed(3)} ± ${(rssFit.slopeError * 1000).toFixed(3)} KiB per 1,000\n\n`,
    )
    process.stdout.write(
      `mcp-soak: ${verdict} — heap ${growth >= 0 ? '+' : '−'}${Math.abs(growth).toFixed(3)} KiB per 1,000 requests ` +
        `(flat below ${FLAT_KIB_PER_1000}), heap ${mib(first.heap)} → ${mib(last.heap)}, RSS ${mib(first.rss)} → ${mib(end.rss)} over ${int(served)} requests in ${minutes} min ` +
        `at concurrency ${concurrency}, peak ${mib(end.hwm)}\n`,
    )
  } finally {
    await stop(server)
  }
}

try {
  await main()
} catch (error) {
  await abort(error instanceof Error ? error.message : String(error))
}
await cleanup()
process.exit(0)
