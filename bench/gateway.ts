// Passthrough benchmark: `tools/call` of an `echo` tool on a real upstream MCP server (bench/echo-upstream.ts, the v2
// SDK's createMcpHandler on Bun.serve, stateless), sent direct to the upstream and through a real `gatehouse serve`
// (SQLite) at /mcp/servers/echo, at 1 and 16 connections, with wrk as the load generator: a C program on one thread,
// so it leaves the cores to the two servers, which a JS load generator in this process would not.
//
//   bun bench/gateway.ts [--seconds 10] [--warmup 2] [--connections 1,16]
//
// Needs wrk (Debian's package: `sudo apt-get install -y wrk`); without it the benchmark says so and exits 1.
//
// Setup, untimed: the upstream and Gatehouse start as `bun` children on free ports of 127.0.0.1, Gatehouse on a fresh
// temp data dir (SQLite, GATEHOUSE_LOG_LEVEL=warn so no per-request log line is written, and
// GATEHOUSE_OUTBOUND_ALLOW_PRIVATE=true so it may reach a loopback upstream). Through Gatehouse's HTTP API the first
// user is created and signed in, and registers the upstream (slug `echo`, auth_type none, enabled); the session token
// is the bearer of every request through Gatehouse. One request each way is checked with fetch before any load: 200,
// the request's id, the echoed text, with no initialize first (both answer the 2025 revisions statelessly).
//
// The request is what a 2025-06-18 client sends after initialize, without the session it would not need here: a POST
// with content-type application/json, accept application/json and text/event-stream, mcp-protocol-version
// 2025-06-18, and a tools/call body; both answer it as SSE. A wrk Lua script sets the method, headers and body, and
// checks every answer: status 200 and the echoed text in the body; any other answer, a non-2xx count or a socket
// error fails the benchmark.
//
// Per phase (direct, then through Gatehouse, at each connection count, so drift on the machine hits both alike):
// a wrk run of --warmup seconds, checked and discarded, then one of --seconds measured. Across the measured run the
// user+system CPU time of Gatehouse's and of the upstream's process is read from /proc/<pid>/stat and divided by the
// request count wrk reports: CPU time per request does not depend on how much of the machine the process got, so it
// holds up on a shared or busy machine where req/s and latency do not. p50 and p99 are wrk's (--latency); req/s is
// its Requests/sec. Everything runs on 127.0.0.1, the run is bounded in time, children are stopped and the temp dir is
// removed on any exit.

import { writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  bareCommand,
  bound,
  call,
  cpuSeconds,
  EXPECTED_LOG,
  expectStatus,
  GATEHOUSE,
  HOST,
  int,
  machineTicks,
  runBench,
  runTool,
  type Server,
  signIn,
  start,
  stop,
  table,
  tempDir,
} from './support.ts'

/** The targets of the issue, printed with pass/fail next to the figures. */
const TARGET_ADDED_P50_CONNECTIONS = 1
const TARGET_ADDED_P50_US = 100
const TARGET_GATEHOUSE_CPU_US = 60

const VERSION = '2025-06-18'
const SLUG = 'echo'
/** What the echo tool is asked to return; its answer must carry it. */
const ECHO_TEXT = 'gatehouse-bench-echo'
const REQUEST_ID = 1
const BODY = JSON.stringify({
  jsonrpc: '2.0',
  id: REQUEST_ID,
  method: 'tools/call',
  params: { name: 'echo', arguments: { text: ECHO_TEXT } },
})
/** The tool's result as the SDK serialises it, looked for in every answer's body. */
const EXPECTED_CONTENT = JSON.stringify({ content: [{ type: 'text', text: ECHO_TEXT }] })
const MCP_HEADERS: Record<string, string> = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': VERSION,
}

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '1,16' },
  },
})
const seconds = Number(values.seconds)
const warmup = Number(values.warmup)
const levels = values.connections.split(',').map((part) => Number(part.trim()))
function usage(message: string): never {
  process.stderr.write(`gateway: ${message}\n`)
  process.exit(2)
}
if (!Number.isInteger(seconds) || seconds < 1 || seconds > 120)
  usage(`--seconds must be a whole number from 1 to 120, got "${values.seconds}"`)
if (!Number.isInteger(warmup) || warmup < 1 || warmup > 30)
  usage(`--warmup must be a whole number from 1 to 30, got "${values.warmup}"`)
if (levels.length === 0 || levels.length > 6 || levels.some((c) => !Number.isInteger(c) || c < 1 || c > 1024))
  usage(`--connections must be 1 to 6 whole numbers from 1 to 1024, separated by commas, got "${values.connections}"`)

const WRK = Bun.which('wrk')
if (!WRK) {
  process.stderr.write(
    'gateway: wrk is not installed; it is the load generator of this benchmark.\n' +
      '  Debian/Ubuntu: sudo apt-get install -y wrk\n' +
      '  elsewhere: your package manager’s wrk, or build it from https://github.com/wg/wrk\n',
  )
  process.exit(1)
}

/** Slack per wrk run beyond its duration: its start, its last requests (wrk --timeout) and its exit. */
const RUN_SLACK_S = 5
// Bounded as a whole: two starts, setup and stops, then per phase its warm-up and measured wrk runs.
const phaseCount = 2 * levels.length
bound('gateway', 40_000 + phaseCount * (warmup + seconds + 2 * RUN_SLACK_S) * 1000)

type Mode = 'direct' | 'gateway'
const MODES: Mode[] = ['direct', 'gateway']
const LABEL: Record<Mode, string> = { direct: 'direct', gateway: 'via gateway' }

/** A Lua string literal of a printable ASCII string (JSON's escapes for `"` and `\` are Lua's too). */
function luaString(value: string): string {
  if (!/^[\x20-\x7e]*$/.test(value)) throw new Error(`not printable ASCII: ${value}`)
  return JSON.stringify(value)
}

/**
 * The wrk script: method, headers, body; every answer checked (status 200, the echoed content in the body), and at
 * the end one line per wrk thread with how many failed and the first that did. wrk takes a response's latency before
 * it calls `response`, so the check is not in the figures.
 */
function wrkScript(headers: Record<string, string>): string {
  return [
    'wrk.method = "POST"',
    `wrk.body = ${luaString(BODY)}`,
    ...Object.entries(headers).map(([name, value]) => `wrk.headers[${luaString(name)}] = ${luaString(value)}`),
    `local expected = ${luaString(EXPECTED_CONTENT)}`,
    'local threads = {}',
    'function setup(thread) table.insert(threads, thread) end',
    'function init(args) bad = 0; first = "" end',
    'function response(status, headers, body)',
    '  if status ~= 200 or not string.find(body, expected, 1, true) then',
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

interface WrkResult {
  requests: number
  rate: number
  p50Us: number
  p99Us: number
  wrkCpuS: number
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 }

/** A time as wrk prints it (`87.00us`, `1.23ms`, `2.00s`), in µs. */
function wrkTimeUs(value: string, unit: string): number {
  const factor = UNIT_US[unit]
  if (factor === undefined) throw new Error(`wrk printed a time in an unknown unit: ${value}${unit}`)
  return Number(value) * factor
}

/** Runs wrk against `url` and parses its summary; throws on any failed answer, non-2xx count or socket error. */
async function wrk(url: string, script: string, connections: number, durationS: number): Promise<WrkResult> {
  const command = [
    WRK!,
    '-t1',
    `-c${connections}`,
    `-d${durationS}s`,
    '--timeout',
    '5s',
    '--latency',
    '-s',
    script,
    url,
  ]
  const run = await runTool(command, (durationS + RUN_SLACK_S) * 1000)
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
    if (Number(bad) > 0) problems.push(`${bad} answers without the echoed text, the first: ${first}`)
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

interface PhaseResult extends WrkResult {
  elapsedS: number
  gatehouseCpuS: number
  upstreamCpuS: number
  /** Share of all the machine's cores that was busy over the run. */
  machineBusy: number
}

/** The measured run of a phase, with the CPU time both servers and the machine used across it. */
async function measured(
  url: string,
  script: string,
  connections: number,
  gatehouse: Server,
  upstream: Server,
): Promise<PhaseResult> {
  const gatehouseBefore = await cpuSeconds(gatehouse.child.pid)
  const upstreamBefore = await cpuSeconds(upstream.child.pid)
  const machineBefore = await machineTicks()
  const started = performance.now()
  const result = await wrk(url, script, connections, seconds)
  const elapsedS = (performance.now() - started) / 1000
  const gatehouseCpuS = (await cpuSeconds(gatehouse.child.pid)) - gatehouseBefore
  const upstreamCpuS = (await cpuSeconds(upstream.child.pid)) - upstreamBefore
  const machineAfter = await machineTicks()
  const machineBusy = (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total)
  return { ...result, elapsedS, gatehouseCpuS, upstreamCpuS, machineBusy }
}

/** One answer checked with fetch: 200, SSE or JSON, the request's id and the echoed text. */
async function checkOnce(base: string, path: string, headers: Record<string, string>, what: string) {
  const response = await call(base, path, { method: 'POST', headers, body: BODY })
  const text = await response.text()
  const contentType = response.headers.get('content-type') ?? ''
  if (response.status !== 200) throw new Error(`${what}: status ${response.status}: ${text.slice(0, 300)}`)
  const messages = contentType.startsWith('text/event-stream')
    ? text
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => JSON.parse(line.slice(5)))
    : [JSON.parse(text)]
  const answer = messages.find((message) => 'result' in message || 'error' in message)
  const content = answer?.result?.content?.[0]?.text
  if (answer?.id !== REQUEST_ID || content !== ECHO_TEXT)
    throw new Error(`${what}: not the echo answer to request ${REQUEST_ID}: ${text.slice(0, 300)}`)
  return `${contentType.split(';')[0]}, ${text.length} bytes`
}

const us = (value: number) => `${int(value)} µs`
const perRequestUs = (cpuS: number, requests: number) => (cpuS * 1e6) / requests
const signed = (value: number) => `${value >= 0 ? '+' : '−'}${int(Math.abs(value))} µs`
const verdict = (met: boolean) => (met ? 'met' : 'MISSED')

async function main() {
  const wrkVersion = /wrk (\S+)/.exec(Bun.spawnSync([WRK!, '--version']).stdout.toString())?.[1] ?? '?'
  process.stdout.write(
    `gateway: bun ${Bun.version}, wrk ${wrkVersion} (1 thread), ${cpus().length} CPU(s), SQLite, tools/call echo ` +
      `(${VERSION}, stateless), connections ${levels.join(', ')}, ${seconds} s per run after ${warmup} s of warm-up, ` +
      `${HOST} only\n`,
  )
  const dir = await tempDir('gatehouse-bench-gateway-')
  const upstream = await start('upstream', bareCommand('echo-upstream.ts'), () => ({}))
  let gatehouse: Server | undefined
  try {
    gatehouse = await start('gatehouse', GATEHOUSE, (_, base) => ({
      GATEHOUSE_DATA_DIR: join(dir, 'gatehouse'),
      GATEHOUSE_PUBLIC_URL: base,
      GATEHOUSE_LOG_LEVEL: 'warn',
      GATEHOUSE_OUTBOUND_ALLOW_PRIVATE: 'true',
    }))
    const token = await signIn(gatehouse.base)
    await expectStatus(
      await call(gatehouse.base, '/api/v1/mcp/servers', {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ display_name: 'Bench echo', slug: SLUG, url: `${upstream.base}/mcp`, enabled: true }),
      }),
      201,
      'registering the upstream',
    )

    const targets: Record<Mode, { base: string; path: string; headers: Record<string, string> }> = {
      direct: { base: upstream.base, path: '/mcp', headers: MCP_HEADERS },
      gateway: {
        base: gatehouse.base,
        path: `/mcp/servers/${SLUG}`,
        headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` },
      },
    }
    const scripts = {} as Record<Mode, string>
    const checked: string[] = []
    for (const mode of MODES) {
      const { base, path, headers } = targets[mode]
      checked.push(`${LABEL[mode]} ${await checkOnce(base, path, headers, `${LABEL[mode]} tools/call`)}`)
      scripts[mode] = join(dir, `${mode}.lua`)
      await writeFile(scripts[mode], wrkScript(headers))
    }
    process.stdout.write(
      `  setup: upstream registered as /mcp/servers/${SLUG} by the first user, its session token as bearer; ` +
        `tools/call without initialize answered: ${checked.join('; ')}\n`,
    )

    const results = new Map<string, PhaseResult>()
    const key = (mode: Mode, c: number) => `${mode} ${c}`
    for (const c of levels)
      for (const mode of MODES) {
        const url = `${targets[mode].base}${targets[mode].path}`
        await wrk(url, scripts[mode], c, warmup)
        const r = await measured(url, scripts[mode], c, gatehouse, upstream)
        results.set(key(mode, c), r)
        process.stdout.write(
          `  ${LABEL[mode].padEnd(11)} c=${String(c).padEnd(3)} ${int(r.rate).padStart(7)}/s, p50 ${us(r.p50Us)}, ` +
            `p99 ${us(r.p99Us)}, gatehouse ${perRequestUs(r.gatehouseCpuS, r.requests).toFixed(1)} µs/req, ` +
            `upstream ${perRequestUs(r.upstreamCpuS, r.requests).toFixed(1)} µs/req\n`,
        )
      }

    const header = [
      'mode',
      'c',
      'requests',
      'req/s',
      'p50',
      'p99',
      'gatehouse CPU/req',
      'upstream CPU/req',
      'wrk CPU',
      'machine busy',
    ]
    const rows: string[][] = []
    for (const c of levels)
      for (const mode of MODES) {
        const r = results.get(key(mode, c))!
        rows.push([
          LABEL[mode],
          String(c),
          int(r.requests),
          `${int(r.rate)}/s`,
          us(r.p50Us),
          us(r.p99Us),
          `${perRequestUs(r.gatehouseCpuS, r.requests).toFixed(1)} µs`,
          `${perRequestUs(r.upstreamCpuS, r.requests).toFixed(1)} µs`,
          `${Math.round((100 * r.wrkCpuS) / r.elapsedS)}%`,
          `${Math.round(100 * r.machineBusy)}% of ${cpus().length}`,
        ])
      }
    process.stdout.write(table(header, rows, 1))
    process.stdout.write(
      '  CPU/req: user+system time of the process over the measured run (/proc/<pid>/stat), divided by the requests\n' +
        '  wrk completed; direct, Gatehouse is idle and its figure is its background. wrk CPU: the load generator,\n' +
        '  in % of one core; machine busy: all cores, from /proc/stat. When the machine is busy, req/s and latency are\n' +
        '  bounded by it; CPU/req is not.\n\n',
    )

    for (const c of levels) {
      const d = results.get(key('direct', c))!
      const g = results.get(key('gateway', c))!
      const gatehouseUs = perRequestUs(g.gatehouseCpuS, g.requests)
      const upstreamUs = perRequestUs(g.upstreamCpuS, g.requests)
      process.stdout.write(
        `gateway c=${c}: via gateway ${int(g.rate)}/s vs direct ${int(d.rate)}/s (${(g.rate / d.rate).toFixed(2)}), ` +
          `p50 ${signed(g.p50Us - d.p50Us)} (${(g.p50Us / d.p50Us).toFixed(2)}×), ` +
          `p99 ${signed(g.p99Us - d.p99Us)} (${(g.p99Us / d.p99Us).toFixed(2)}×), ` +
          `Gatehouse CPU per call ${gatehouseUs.toFixed(1)} µs = ${(gatehouseUs / upstreamUs).toFixed(2)}× the upstream's\n`,
      )
    }
    const targetLines: string[] = []
    if (levels.includes(TARGET_ADDED_P50_CONNECTIONS)) {
      const d = results.get(key('direct', TARGET_ADDED_P50_CONNECTIONS))!
      const g = results.get(key('gateway', TARGET_ADDED_P50_CONNECTIONS))!
      const added = g.p50Us - d.p50Us
      targetLines.push(
        `added p50 ${signed(added)} at c=${TARGET_ADDED_P50_CONNECTIONS} ` +
          `(target ≤ ${TARGET_ADDED_P50_US} µs: ${verdict(added <= TARGET_ADDED_P50_US)})`,
      )
    }
    for (const c of levels) {
      const g = results.get(key('gateway', c))!
      const cpu = perRequestUs(g.gatehouseCpuS, g.requests)
      targetLines.push(
        `Gatehouse CPU ${cpu.toFixed(1)} µs per proxied call at c=${c} ` +
          `(target ≤ ${TARGET_GATEHOUSE_CPU_US} µs: ${verdict(cpu <= TARGET_GATEHOUSE_CPU_US)})`,
      )
    }
    process.stdout.write(`gateway targets: ${targetLines.join('; ')}\n`)
  } finally {
    if (gatehouse) await stop(gatehouse, { expected: EXPECTED_LOG })
    await stop(upstream)
  }
}

await runBench(main)
