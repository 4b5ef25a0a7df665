// What the benchmarks in bench/ have in common: starting a server (Gatehouse or a bare ceiling) as a `bun` child on
// a free port of 127.0.0.1 with a clean environment, waiting for /healthz, stopping it, keeping every run bounded and
// tidy (children killed, temp dirs removed, on success, failure, timeout and Ctrl-C alike), reading CPU time from
// /proc, running wrk with a script that checks every answer, summarising latencies and printing tables, plus the MCP
// wire formats bench/mcp.ts, bench/mcp-soak.ts and bench/gateway.ts send. Each benchmark is its own process, so the
// children and temp dirs to clean up are this module's state.

import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Subprocess } from 'bun'

export const ROOT = resolve(import.meta.dir, '..')
/** Nothing a benchmark starts or calls leaves this address. */
export const HOST = '127.0.0.1'
export const HEALTH_TIMEOUT_MS = 20_000
export const REQUEST_TIMEOUT_MS = 10_000
export const STOP_TIMEOUT_MS = 5_000
/** The first user every benchmark that signs in creates on its fresh database. */
export const USER = { email: 'bench@example.com', username: 'bench', password: 'bench-password-1' }
/** `bun src/cli.ts serve`, the real server under test. */
export const GATEHOUSE = [process.execPath, join(ROOT, 'src/cli.ts'), 'serve']

/** The command that runs one of the bare ceilings in bench/ the way Gatehouse is run: a `bun` child. */
export function bareCommand(file: string): string[] {
  return [process.execPath, join(ROOT, 'bench', file)]
}

/** Prefixed to every message, so a line on stderr says which benchmark wrote it; set by `bound`. */
let benchName = 'bench'
const liveChildren = new Set<Subprocess>()
const tempDirs = new Set<string>()

/** Kills what is still running and removes every temp dir; the way out of every run, good or bad. */
export async function cleanup() {
  for (const child of liveChildren) child.kill('SIGKILL')
  await Promise.all([...liveChildren].map((child) => child.exited))
  liveChildren.clear()
  await Promise.all([...tempDirs].map((dir) => rm(dir, { recursive: true, force: true })))
  tempDirs.clear()
}

export async function abort(message: string, code = 1): Promise<never> {
  process.stderr.write(`${benchName}: ${message}\n`)
  await cleanup()
  process.exit(code)
}

/**
 * Names the benchmark and bounds it as a whole: after `budgetMs`, or on SIGINT / SIGTERM, it aborts and cleans up,
 * so a hung server or request never leaves a benchmark (or its children) running.
 */
export function bound(name: string, budgetMs: number) {
  benchName = name
  setTimeout(() => void abort(`gave up after ${Math.round(budgetMs / 1000)} s`), budgetMs).unref()
  process.on('SIGINT', () => void abort('interrupted', 130))
  process.on('SIGTERM', () => void abort('terminated', 143))
}

/** Runs the benchmark's body, aborts (exit 1, with the error's message) if it throws, and exits 0 after cleaning up. */
export async function runBench(main: () => Promise<void>): Promise<never> {
  try {
    await main()
  } catch (error) {
    await abort(error instanceof Error ? error.message : String(error))
  }
  await cleanup()
  process.exit(0)
}

/** A fresh empty dir under the system's temp dir, removed by `cleanup` if `removeTempDir` has not done it first. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}

export async function removeTempDir(dir: string) {
  await rm(dir, { recursive: true, force: true })
  tempDirs.delete(dir)
}

/** A port the kernel just handed out on 127.0.0.1; the tiny window before the child binds it is acceptable here. */
export function freePort(): number {
  const listener = Bun.listen({ hostname: HOST, port: 0, socket: { data() {} } })
  const port = listener.port
  listener.stop(true)
  return port
}

/** The parent's environment without any Gatehouse settings, so nothing leaks in (a DATABASE_URL, real keys…). */
export function childEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || name.startsWith('GATEHOUSE_') || name === 'DATABASE_URL' || name === 'PORT') continue
    env[name] = value
  }
  return { ...env, GATEHOUSE_HOST: HOST, GATEHOUSE_LOG_LEVEL: 'warn', ...extra }
}

export interface Server<Kind extends string = string> {
  kind: Kind
  child: Subprocess<'ignore', 'pipe', 'pipe'>
  base: string
  /** The child's stdout and stderr, read to the end in the background so it never blocks on a full pipe. */
  output: Promise<string[]>
  /** From the spawn to the first healthy answer. */
  startMs: number
}

/**
 * Whether /healthz answers 200 with `{"status":"ok"}`. Each probe closes its connection, so no idle keep-alive
 * connection of the parent's is held open on the server (and counted in what startup.ts measures).
 */
async function healthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { headers: { connection: 'close' }, signal: AbortSignal.timeout(1_000) })
    if (!response.ok) {
      await response.body?.cancel()
      return false
    }
    const body = (await response.json()) as { status?: unknown }
    return body.status === 'ok'
  } catch {
    return false // connection refused (not listening yet), reset or timeout: not yet
  }
}

/**
 * Spawns `command` on a free port with `childEnv` plus PORT and `env(port, base)` and polls /healthz every `pollMs`
 * until it is healthy; throws with the child's output if it exits first, or after HEALTH_TIMEOUT_MS. The child is
 * registered for `cleanup` as soon as it exists, so a failed start still ends with it killed.
 */
export async function start<Kind extends string>(
  kind: Kind,
  command: string[],
  env: (port: number, base: string) => Record<string, string>,
  pollMs = 20,
): Promise<Server<Kind>> {
  const port = freePort()
  const base = `http://${HOST}:${port}`
  const url = `${base}/healthz`
  const started = performance.now()
  const child = Bun.spawn(command, {
    cwd: ROOT,
    env: childEnv({ PORT: String(port), ...env(port, base) }),
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  liveChildren.add(child)
  const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()])
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `${kind} exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${(await output).join('')}`,
      )
    if (await healthy(url)) return { kind, child, base, output, startMs: performance.now() - started }
    if (performance.now() - started > HEALTH_TIMEOUT_MS)
      throw new Error(`${kind} was not healthy on ${url} within ${HEALTH_TIMEOUT_MS} ms`)
    await Bun.sleep(pollMs)
  }
}

/**
 * What a stopped server printed that the benchmark shows on stderr: nothing, its stderr, or its stderr and the
 * stdout lines that `expected` does not match (the log lines every start writes).
 */
export type ShowOutput = 'nothing' | 'stderr' | { expected: RegExp }

/** SIGTERM, then SIGKILL if the server has not exited after STOP_TIMEOUT_MS; then shows its output as `show` says. */
export async function stop(server: Server, show: ShowOutput = 'stderr') {
  const { child } = server
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
  const exited = await Promise.race([child.exited.then(() => true), Bun.sleep(STOP_TIMEOUT_MS).then(() => false)])
  if (!exited) {
    process.stderr.write(
      `${benchName}: ${server.kind} (pid ${child.pid}) ignored SIGTERM for ${STOP_TIMEOUT_MS} ms, killing it\n`,
    )
    child.kill('SIGKILL')
    await child.exited
  }
  liveChildren.delete(child)
  if (show === 'nothing') return
  const [stdout, stderr] = await server.output
  if (show !== 'stderr') {
    const logged = stdout.split('\n').filter((line) => line.trim() && !show.expected.test(line))
    if (logged.length)
      process.stderr.write(
        `${benchName}: ${server.kind} logged ${logged.length} line(s), the first:\n${logged.slice(0, 5).join('\n')}\n`,
      )
  }
  if (stderr.trim()) process.stderr.write(`${benchName}: ${server.kind} wrote to stderr:\n${stderr.trim()}\n`)
}

/** What `runTool` saw of a command run to its end. */
export interface ToolRun {
  code: number | null
  stdout: string
  stderr: string
  /** User plus system CPU seconds the command used, from its resource usage. */
  cpuS: number
}

/**
 * Runs a command that is not a server (a load generator) to its end in ROOT with the parent's environment, killed
 * after `timeoutMs` or by `cleanup` if the benchmark is aborted meanwhile, so it never outlives the run.
 */
export async function runTool(command: string[], timeoutMs: number): Promise<ToolRun> {
  const child = Bun.spawn(command, { cwd: ROOT, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  liveChildren.add(child)
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  try {
    const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()])
    await child.exited
    const cpu = child.resourceUsage()?.cpuTime
    const cpuS = cpu ? Number(cpu.user + cpu.system) / 1e6 : Number.NaN
    if (child.signalCode === 'SIGKILL') throw new Error(`${command[0]} did not finish within ${timeoutMs} ms`)
    return { code: child.exitCode, stdout, stderr, cpuS }
  } finally {
    clearTimeout(timer)
    liveChildren.delete(child)
  }
}

// wrk, the load generator of bench/gateway.ts and bench/mcp.ts: a C program on one thread, so it leaves the cores to
// the servers under test, which a JS load generator in the benchmark's own process would not.

/**
 * The path of wrk, or exits 1 saying how to install it: without its load generator the benchmark cannot run.
 * Named by `bound` first, so the message says which benchmark needs it.
 */
export function requireWrk(): string {
  const wrk = Bun.which('wrk')
  if (wrk) return wrk
  process.stderr.write(
    `${benchName}: wrk is not installed; it is the load generator of this benchmark.\n` +
      '  Debian/Ubuntu: sudo apt-get install -y wrk\n' +
      '  elsewhere: your package manager’s wrk, or build it from https://github.com/wg/wrk\n',
  )
  process.exit(1)
}

/** The version wrk reports, for the benchmark's first line. */
export function wrkVersion(wrk: string): string {
  return /wrk (\S+)/.exec(Bun.spawnSync([wrk, '--version']).stdout.toString())?.[1] ?? '?'
}

/** Slack per wrk run beyond its duration: its start, its last requests (wrk --timeout) and its exit. */
export const WRK_SLACK_S = 5

/** A Lua string literal of a printable ASCII string (JSON's escapes for `"` and `\` are Lua's too). */
function luaString(value: string): string {
  if (!/^[\x20-\x7e]*$/.test(value)) throw new Error(`not printable ASCII: ${value}`)
  return JSON.stringify(value)
}

/** The one request a wrk run sends over and over, and what every answer to it must contain. */
export interface WrkRequest {
  headers: Record<string, string>
  body: string
  /** Substrings every answer's body must contain (status 200 is checked too). */
  expected: string[]
}

/**
 * The wrk script of a POST: method, headers, body; every answer checked (status 200, each expected substring in the
 * body), and at the end one line per wrk thread with how many failed and the first that did. wrk takes a response's
 * latency before it calls `response`, so the check is not in the figures.
 */
export function wrkScript(request: WrkRequest): string {
  if (request.expected.length === 0) throw new Error('a wrk script must check its answers for something')
  return [
    'wrk.method = "POST"',
    `wrk.body = ${luaString(request.body)}`,
    ...Object.entries(request.headers).map(([name, value]) => `wrk.headers[${luaString(name)}] = ${luaString(value)}`),
    `local expected = { ${request.expected.map(luaString).join(', ')} }`,
    'local threads = {}',
    'function setup(thread) table.insert(threads, thread) end',
    'function init(args) bad = 0; first = "" end',
    'function response(status, headers, body)',
    '  local ok = status == 200',
    '  if ok then',
    '    for _, text in ipairs(expected) do',
    '      if not string.find(body, text, 1, true) then ok = false; break end',
    '    end',
    '  end',
    '  if not ok then',
    '    bad = bad + 1',
    '    if first == "" then first = status .. " " .. string.sub(body, 1, 300) end',
    '  end',
    'end',
    'function done(summary, latency, requests)',
    '  for _, thread in ipairs(threads) do',
    '    local f = string.gsub(thread:get("first"), "%s+", " ")',
    '    io.write("BENCH-CHECK bad=" .. thread:get("bad") .. " first=" .. f .. "\\n")',
    '  end',
    'end',
    '',
  ].join('\n')
}

export interface WrkResult {
  requests: number
  rate: number
  p50Us: number
  p99Us: number
  /** User plus system CPU seconds wrk itself used. */
  wrkCpuS: number
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 }

/** A time as wrk prints it (`87.00us`, `1.23ms`, `2.00s`), in µs. */
function wrkTimeUs(value: string, unit: string): number {
  const factor = UNIT_US[unit]
  if (factor === undefined) throw new Error(`wrk printed a time in an unknown unit: ${value}${unit}`)
  return Number(value) * factor
}

/**
 * Runs wrk (one thread, `connections` keep-alive connections) with `script` against `url` for `durationS` and parses
 * its summary (p50 and p99 from --latency); throws on any answer its script refused, any non-2xx count or socket
 * error, or no request at all.
 */
export async function runWrk(
  wrk: string,
  url: string,
  script: string,
  connections: number,
  durationS: number,
): Promise<WrkResult> {
  const command = [wrk, '-t1', `-c${connections}`, `-d${durationS}s`, '--timeout', '5s', '--latency', '-s', script, url]
  const run = await runTool(command, (durationS + WRK_SLACK_S) * 1000)
  const out = run.stdout
  const what = `wrk -c${connections} ${url}`
  if (run.code !== 0) throw new Error(`${what} exited ${run.code}:\n${out}${run.stderr}`)
  const requests = /^\s*(\d+) requests in /m.exec(out)
  const rate = /^Requests\/sec:\s+([\d.]+)/m.exec(out)
  const p50 = /^\s*50%\s+([\d.]+)(us|ms|s|m|h)\s*$/m.exec(out)
  const p99 = /^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$/m.exec(out)
  if (!requests || !rate || !p50 || !p99) throw new Error(`${what}: could not parse its output:\n${out}${run.stderr}`)
  const problems: string[] = []
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)
  if (non2xx) problems.push(`${non2xx[1]} non-2xx or 3xx responses`)
  const socket = /Socket errors: (.*)$/m.exec(out)
  if (socket) problems.push(`socket errors: ${socket[1]}`)
  const checks = [...out.matchAll(/^BENCH-CHECK bad=(\d+) first=(.*)$/gm)]
  if (checks.length === 0) throw new Error(`${what}: its script did not report its checks:\n${out}${run.stderr}`)
  for (const [, bad, first] of checks)
    if (Number(bad) > 0) problems.push(`${bad} answers without the expected text, the first: ${first}`)
  if (Number(requests[1]) === 0) problems.push('no request completed')
  if (problems.length) throw new Error(`${what}: ${problems.join('; ')}`)
  return {
    requests: Number(requests[1]),
    rate: Number(rate[1]),
    p50Us: wrkTimeUs(p50[1], p50[2]),
    p99Us: wrkTimeUs(p99[1], p99[2]),
    wrkCpuS: run.cpuS,
  }
}

/** A request to a server under test: redirects not followed, bounded in time. */
export async function call(base: string, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${base}${path}`, { redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), ...init })
}

export async function expectStatus(response: Response, status: number, what: string): Promise<Response> {
  if (response.status !== status) throw new Error(`${what}: ${response.status} ${await response.text()}`)
  return response
}

/** First user and a login through Gatehouse's HTTP API; returns the session token, the bearer of what follows. */
export async function signIn(base: string): Promise<string> {
  const json = { 'content-type': 'application/json' }
  await expectStatus(
    await call(base, '/api/v1/users/first', { method: 'POST', headers: json, body: JSON.stringify(USER) }),
    201,
    'first user',
  )
  const login = await expectStatus(
    await call(base, '/api/v1/auth/login', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ login: USER.username, password: USER.password }),
    }),
    200,
    'login',
  )
  const token = ((await login.json()) as { session_token?: string }).session_token
  if (!token) throw new Error('login answered without a session_token')
  return token
}

let clockTicks: number | undefined

/** User plus system CPU seconds a process has used (all its threads), from /proc/<pid>/stat. */
export async function cpuSeconds(pid: number): Promise<number> {
  clockTicks ??= Number(Bun.spawnSync(['getconf', 'CLK_TCK']).stdout.toString().trim()) || 100
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // fields[0] is field 3 (state)
  return (Number(fields[11]) + Number(fields[12])) / clockTicks // utime (14), stime (15)
}

/** Resident memory now and at its peak, in KiB, from /proc/<pid>/status. */
export async function memoryKiB(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, 'm').exec(status)
    if (!match) throw new Error(`no ${name} in /proc/${pid}/status`)
    return Number(match[1])
  }
  return { rss: field('VmRSS'), hwm: field('VmHWM') }
}

/** Busy and total jiffies of the whole machine, from the first line of /proc/stat. */
export async function machineTicks(): Promise<{ busy: number; total: number }> {
  const [, ...fields] = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/)
  const ticks = fields.map(Number)
  const total = ticks.slice(0, 8).reduce((sum, tick) => sum + tick, 0) // user … steal; guest is inside user
  return { busy: total - ticks[3] - ticks[4], total } // minus idle and iowait
}

/** Where the CPU went over a phase, to tell a server-bound rate from a machine-bound one. */
export interface CpuUsage {
  elapsedS: number
  serverCpuS: number
  clientCpuS: number
  /** Share of all the machine's cores that was busy (anything, not only these two processes). */
  machineBusy: number
}

/** Starts measuring the server's, this process's and the whole machine's CPU time; the function it returns ends it. */
export async function measureCpu(serverPid: number): Promise<() => Promise<CpuUsage>> {
  const cpuBefore = await cpuSeconds(serverPid)
  const clientBefore = await cpuSeconds(process.pid)
  const machineBefore = await machineTicks()
  const started = performance.now()
  return async () => {
    const elapsedS = (performance.now() - started) / 1000
    const serverCpuS = (await cpuSeconds(serverPid)) - cpuBefore
    const clientCpuS = (await cpuSeconds(process.pid)) - clientBefore
    const machineAfter = await machineTicks()
    const machineBusy = (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total)
    return { elapsedS, serverCpuS, clientCpuS, machineBusy }
  }
}

/** The nearest-rank quantile of ascending `sorted`; NaN when it is empty. */
export function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN
}

/** Request count, rate, p50 and p99 of a phase's latencies (sorted in place). */
export function latencyStats(latencies: number[], elapsedS: number) {
  latencies.sort((a, b) => a - b)
  return {
    requests: latencies.length,
    rate: latencies.length / elapsedS,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
  }
}

/** A whole number with thousands separators: 12,345. */
export const int = (value: number) => Math.round(value).toLocaleString('en-US')

/** The headers of `cpuColumns`, in its order. */
export const CPU_HEADER = ['server CPU', 'per core', 'client CPU', 'other', 'machine busy']

/**
 * The CPU columns of a results table: server CPU in % of one core, the server's requests per CPU-second, client CPU
 * and the rest of the machine's busy time in % of one core, and how busy all its cores were.
 */
export function cpuColumns(r: CpuUsage & { requests: number }, cores: number): string[] {
  const serverPct = (100 * r.serverCpuS) / r.elapsedS
  const clientPct = (100 * r.clientCpuS) / r.elapsedS
  const otherPct = Math.max(0, 100 * r.machineBusy * cores - serverPct - clientPct)
  return [
    `${Math.round(serverPct)}%`,
    r.serverCpuS > 0 ? `${int(r.requests / r.serverCpuS)}/s` : '-',
    `${Math.round(clientPct)}%`,
    `${Math.round(otherPct)}%`,
    `${Math.round(100 * r.machineBusy)}% of ${cores}`,
  ]
}

/** A text table, a blank line before and after: the first `leftColumns` columns left-aligned, the rest right-aligned. */
export function table(header: string[], rows: string[][], leftColumns: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((cells) => cells[i].length)))
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i < leftColumns ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')
  return `\n${line(header)}\n${rows.map(line).join('\n')}\n\n`
}

// The MCP request bench/mcp.ts and bench/mcp-soak.ts send, and the check of its answer.

export const TOOL = 'get_authenticated_user'
export const VERSIONS = ['2025-06-18', '2026-07-28'] as const
export type Version = (typeof VERSIONS)[number]
/** Log lines a start of Gatehouse on a fresh data dir always writes at warn; anything else is shown. */
export const EXPECTED_LOG = /GATEHOUSE_ENCRYPTION_KEYS is not set/

/** The headers and body of one tools/call in a wire format. */
export function requestFor(
  version: Version,
  token: string,
): { headers: Record<string, string>; body: (id: number) => string } {
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
  const meta = JSON.stringify({
    'io.modelcontextprotocol/protocolVersion': version,
    'io.modelcontextprotocol/clientCapabilities': {},
  })
  return {
    headers: { ...headers, 'mcp-method': 'tools/call', 'mcp-name': TOOL },
    body: (id) =>
      `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"${TOOL}","arguments":{},"_meta":${meta}}}`,
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

/**
 * Why an answer is not the expected tools/call result (200, the signed-in user's username in structuredContent and,
 * unless `id` is undefined, the request's id), or undefined when it is.
 */
export function checkAnswer(
  status: number,
  contentType: string,
  text: string,
  id: number | undefined,
): string | undefined {
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
  if (answer.result?.structuredContent?.username !== USER.username)
    return `no username "${USER.username}" in: ${text.slice(0, 300)}`
  return undefined
}
