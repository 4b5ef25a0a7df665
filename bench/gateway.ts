// Gateway benchmark, with wrk as the load generator: a C program on one thread, so it leaves the cores to the
// servers, which a JS load generator in this process would not. Three sections, each with its targets and verdicts:
// 1. `tools/call` of an `echo` tool on a real upstream MCP server (bench/echo-upstream.ts, the v2 SDK's
//    createMcpHandler on Bun.serve, stateless), sent direct to the upstream, through a bare proxy (bench/bare-proxy.ts,
//    the ceiling of the proxied rows), through a real `gatehouse serve` (SQLite) at /mcp/servers/echo (the
//    passthrough), and through /mcp as `echo__echo` (the aggregation, which routes it to the upstream's `echo`), at 1
//    and 16 connections;
// 2. `tools/list` on /mcp aggregating 20 upstreams of 20 tools each, with warm caches;
// 3. `tools/call` of Gatehouse's own get_authenticated_user on /mcp, against a bare Bun.serve answering the same
//    bytes (bench/bare-mcp-server.ts) as the ceiling.
//
//   bun bench/gateway.ts [--seconds 10] [--warmup 2] [--connections 1,16]
//
// Needs wrk (Debian's package: `sudo apt-get install -y wrk`); without it the benchmark says so and exits 1.
//
// Setup, untimed: the upstream, the bare proxy and Gatehouse start as `bun` children on free ports of 127.0.0.1, the
// bare proxy with UPSTREAM_URL set to the upstream's /mcp, Gatehouse on a fresh temp data dir (SQLite,
// GATEHOUSE_LOG_LEVEL=warn so no per-request log line is written, and GATEHOUSE_OUTBOUND_ALLOW_PRIVATE=true so it may
// reach a loopback upstream). Through Gatehouse's HTTP API the first
// user is created and signed in; a tools/list on /mcp then gives Gatehouse's own tools (the user has no upstream yet).
// The user registers the upstream (slug `echo`, auth_type none, enabled, availability default_on, so it is in their
// /mcp); the session token is the bearer of every request through Gatehouse. One request each way is checked with
// fetch before any load: 200, the request's id, the echoed text, with no initialize first (all four answer the 2025
// revisions statelessly).
//
// The bare proxy row: a Bun.serve that forwards each POST to the upstream with the runtime's fetch (method; the
// content-type, accept and mcp-protocol-version headers; the body as bytes) and answers the upstream's status,
// content-type and body as they come, with no authentication and no checks: one server exchange plus one fetch
// exchange, the least any Bun proxy costs. It gets the same request as direct (no bearer) and the same wrk checks.
// The summary line of the passthrough and of the aggregation sets its CPU per call against the bare proxy's (ratio
// and difference in µs) and its p50 against the bare proxy's (difference), beside its comparison with direct; the
// targets stay measured against direct.
//
// The request is what a 2025-06-18 client sends after initialize, without the session it would not need here: a POST
// with content-type application/json, accept application/json and text/event-stream, mcp-protocol-version
// 2025-06-18, and a JSON-RPC body; every answer here is SSE. A wrk Lua script sets the method, headers and body, and
// checks every answer: status 200 and the expected text in the body (the echoed content; for a list, the first and
// the last upstream tool and one of Gatehouse's own; for get_authenticated_user, the username); any other answer, a
// non-2xx count or a socket error fails the benchmark.
//
// Section 2: the same upstream process also serves 20 MCP servers of 20 tools each at /list/1 … /list/20, each
// answering tools/list with a cache hint (ttlMs) of 60 s; each is registered as its own server (slugs list-01 …
// list-20, default_on) and `echo` is set to default_off, so /mcp lists exactly 20×20 upstream tools and Gatehouse's
// own. The first answer must list exactly those; a few more untimed lists warm the caches before the wrk runs. The
// upstream counts the requests it gets (GET /stats), so the table shows how many Gatehouse sent during each measured
// list run: 0 when its list cache is warm.
//
// Section 3: get_authenticated_user as a 2025-06-18 POST (support.ts's requestFor, as bench/mcp.ts sends it). One
// answer of Gatehouse's is captured and the bare server started to answer every POST /mcp with exactly those bytes;
// the ratio of the two CPU figures is Gatehouse's cost over the HTTP floor.
//
// Per phase (at each connection count, direct then bare proxy then passthrough then aggregated, Gatehouse then bare,
// so drift on the machine hits them alike): a wrk run of --warmup seconds, checked and discarded, then one of
// --seconds measured. Across the measured run the user+system CPU time of each server process is read from
// /proc/<pid>/stat and divided by the request count wrk reports: CPU time per request does not depend on how much of
// the machine the process got, so it holds up on a shared or busy machine where req/s and latency do not. p50 and p99
// are wrk's (--latency); req/s is its Requests/sec. Everything runs on 127.0.0.1, the run is bounded in time,
// children are stopped and the temp dir is removed on any exit.

import { writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  bareCommand,
  bound,
  call,
  checkAnswer,
  cpuSeconds,
  EXPECTED_LOG,
  expectStatus,
  GATEHOUSE,
  HOST,
  int,
  machineTicks,
  requestFor,
  requireWrk,
  runBench,
  runWrk,
  type Server,
  signIn,
  start,
  stop,
  table,
  tempDir,
  TOOL,
  USER,
  WRK_SLACK_S,
  type WrkRequest,
  type WrkResult,
  wrkScript,
  wrkVersion,
} from './support.ts'

/** The targets of the issues, printed with a verdict next to the figures. The passthrough (issue 12): */
const TARGET_ADDED_P50_CONNECTIONS = 1
const TARGET_ADDED_P50_US = 100
const TARGET_GATEHOUSE_CPU_US = 60
/** The aggregated /mcp (issue 13): a tools/call through it, the 20×20 tools/list, Gatehouse's own tool. */
const TARGET_AGGREGATED_ADDED_P50_US = 150
const TARGET_AGGREGATED_CPU_US = 100
const TARGET_LIST_CONNECTIONS = 1
const TARGET_LIST_P50_US = 1000
const TARGET_OWN_TOOL_CPU_US = 80

const VERSION = '2025-06-18'
const SLUG = 'echo'
/** What the echo tool is asked to return; its answer must carry it. */
const ECHO_TEXT = 'gatehouse-bench-echo'
const REQUEST_ID = 1
const callBody = (name: string) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id: REQUEST_ID,
    method: 'tools/call',
    params: { name, arguments: { text: ECHO_TEXT } },
  })
const BODY = callBody('echo')
/** The upstream's tool as /mcp names it: `<slug>__<tool>`. */
const AGGREGATED_TOOL = `${SLUG}__echo`
/** The tool's result as the SDK serialises it, looked for in every answer's body. */
const EXPECTED_CONTENT = JSON.stringify({ content: [{ type: 'text', text: ECHO_TEXT }] })
/** Through /mcp the result passes unchanged, with the `_meta` the 2026 upstream puts before `content`: its members. */
const EXPECTED_AGGREGATED_CONTENT = EXPECTED_CONTENT.slice(1, -1)
const MCP_HEADERS: Record<string, string> = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': VERSION,
}

/** Section 2: this many upstream servers of this many tools each, all served by the one upstream process. */
const LIST_SERVERS = 20
const LIST_TOOLS = 20
/** Untimed lists after the first, checked, before the wrk runs. */
const WARM_LISTS = 4
const LIST_BODY = JSON.stringify({ jsonrpc: '2.0', id: REQUEST_ID, method: 'tools/list' })
const twoDigits = (n: number) => String(n).padStart(2, '0')
const listSlug = (n: number) => `list-${twoDigits(n)}`
/** As bench/echo-upstream.ts names the tools of its list servers. */
const listToolName = (n: number) => `tool_${twoDigits(n)}`
const listedName = (server: number, tool: number) => `${listSlug(server)}__${listToolName(tool)}`

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

type Mode = 'direct' | 'bareProxy' | 'gateway' | 'aggregated'
const MODES: Mode[] = ['direct', 'bareProxy', 'gateway', 'aggregated']
const LABEL: Record<Mode, string> = {
  direct: 'direct',
  bareProxy: 'bare proxy',
  gateway: 'via gateway',
  aggregated: 'aggregated',
}
/** The kind (Server.kind, the key of its CPU figures) of bench/bare-proxy.ts. */
const BARE_PROXY = 'bare proxy'
type OwnKind = 'gatehouse' | 'bare'
const OWN_KINDS: OwnKind[] = ['gatehouse', 'bare']

// Bounded as a whole: four starts, setup (21 registrations, the untimed lists) and stops, then per phase its warm-up
// and measured wrk runs: four modes, the list and two servers, at each connection count.
const phaseCount = (MODES.length + 1 + OWN_KINDS.length) * levels.length
bound('gateway', 60_000 + phaseCount * (warmup + seconds + 2 * WRK_SLACK_S) * 1000)
const WRK = requireWrk()

interface PhaseResult extends WrkResult {
  elapsedS: number
  /** CPU seconds each server process (by kind) used over the run. */
  cpuS: Record<string, number>
  /** Share of all the machine's cores that was busy over the run. */
  machineBusy: number
}

/** The measured run of a phase, with the CPU time each of `servers` and the machine used across it. */
async function measured(url: string, script: string, connections: number, servers: Server[]): Promise<PhaseResult> {
  const before = await Promise.all(servers.map((server) => cpuSeconds(server.child.pid)))
  const machineBefore = await machineTicks()
  const started = performance.now()
  const result = await runWrk(WRK, url, script, connections, seconds)
  const elapsedS = (performance.now() - started) / 1000
  const after = await Promise.all(servers.map((server) => cpuSeconds(server.child.pid)))
  const machineAfter = await machineTicks()
  const machineBusy = (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total)
  const cpuS = Object.fromEntries(servers.map((server, i) => [server.kind, after[i] - before[i]]))
  return { ...result, elapsedS, cpuS, machineBusy }
}

/** A warm-up run of --warmup seconds (checked, discarded), then the measured one. */
async function phase(url: string, script: string, connections: number, servers: Server[]): Promise<PhaseResult> {
  await runWrk(WRK, url, script, connections, warmup)
  return measured(url, script, connections, servers)
}

interface RpcAnswer {
  id?: unknown
  result?: { content?: { text?: unknown }[]; tools?: { name?: unknown }[] }
  error?: unknown
}

/** One POST checked with fetch: 200, SSE or JSON, a result for the request's id; the answer and how it came. */
async function answerOf(base: string, path: string, headers: Record<string, string>, body: string, what: string) {
  const response = await call(base, path, { method: 'POST', headers, body })
  const text = await response.text()
  const contentType = response.headers.get('content-type') ?? ''
  if (response.status !== 200) throw new Error(`${what}: status ${response.status}: ${text.slice(0, 300)}`)
  const messages: RpcAnswer[] = contentType.startsWith('text/event-stream')
    ? text
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => JSON.parse(line.slice(5)))
    : [JSON.parse(text)]
  const answer = messages.find((message) => 'result' in message || 'error' in message)
  if (answer?.id !== REQUEST_ID || !answer.result)
    throw new Error(`${what}: no result for request ${REQUEST_ID}: ${text.slice(0, 300)}`)
  return { result: answer.result, description: `${contentType.split(';')[0]}, ${text.length} bytes` }
}

/** One tools/call of an echo tool checked with fetch: the answer must carry the echoed text. */
async function checkEcho(base: string, path: string, headers: Record<string, string>, body: string, what: string) {
  const { result, description } = await answerOf(base, path, headers, body, what)
  if (result.content?.[0]?.text !== ECHO_TEXT)
    throw new Error(`${what}: not the echo answer: ${JSON.stringify(result)}`)
  return description
}

/** The tool names of one tools/list answer. */
async function listedTools(base: string, headers: Record<string, string>, what: string) {
  const { result, description } = await answerOf(base, '/mcp', headers, LIST_BODY, what)
  if (!Array.isArray(result.tools)) throw new Error(`${what}: no tools in ${JSON.stringify(result).slice(0, 300)}`)
  return { names: result.tools.map((tool) => String(tool.name)), description }
}

/** Registers an upstream through the API (auth_type none, enabled); returns its id. */
async function registerServer(base: string, token: string, slug: string, url: string): Promise<string> {
  const response = await expectStatus(
    await call(base, '/api/v1/mcp/servers', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ display_name: `Bench ${slug}`, slug, url, enabled: true, availability: 'default_on' }),
    }),
    201,
    `registering the upstream ${slug}`,
  )
  return ((await response.json()) as { id: string }).id
}

/** How many MCP requests the upstream process has answered, on /mcp (echo) and on its list servers. */
async function upstreamCounts(upstream: Server): Promise<{ echo: number; list: number }> {
  return (await expectStatus(await call(upstream.base, '/stats'), 200, 'upstream stats')).json() as Promise<{
    echo: number
    list: number
  }>
}

const us = (value: number) => `${int(value)} µs`
const perRequestUs = (cpuS: number, requests: number) => (cpuS * 1e6) / requests
/** A table cell: CPU seconds over a run, per request. */
const cpuCell = (cpuS: number, requests: number) => `${perRequestUs(cpuS, requests).toFixed(1)} µs`
/** The table cells every run has: requests, their rate, p50 and p99. */
const loadColumns = (r: { requests: number; rate: number; p50Us: number; p99Us: number }) => [
  int(r.requests),
  `${int(r.rate)}/s`,
  us(r.p50Us),
  us(r.p99Us),
]
const signed = (value: number) => `${value >= 0 ? '+' : '−'}${int(Math.abs(value))} µs`
const signedCpu = (value: number) => `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(1)} µs`
const verdict = (met: boolean) => (met ? 'met' : 'MISSED')
const wrkCpu = (r: PhaseResult) => `${Math.round((100 * r.wrkCpuS) / r.elapsedS)}%`
const busy = (r: PhaseResult) => `${Math.round(100 * r.machineBusy)}% of ${cpus().length}`
const phaseLine = (label: string, c: number, r: PhaseResult, cpu: string) =>
  `  ${label.padEnd(11)} c=${String(c).padEnd(3)} ${int(r.rate).padStart(7)}/s, p50 ${us(r.p50Us)}, ` +
  `p99 ${us(r.p99Us)}, ${cpu}\n`

async function main() {
  process.stdout.write(
    `gateway: bun ${Bun.version}, wrk ${wrkVersion(WRK)} (1 thread), ${cpus().length} CPU(s), SQLite, tools/call echo ` +
      `(${VERSION}, stateless) direct, through a bare proxy, passthrough and aggregated, ` +
      `tools/list of ${LIST_SERVERS}×${LIST_TOOLS} and ${TOOL} on /mcp, connections ${levels.join(', ')}, ` +
      `${seconds} s per run after ${warmup} s of warm-up, ${HOST} only\n`,
  )
  const dir = await tempDir('gatehouse-bench-gateway-')
  const upstream = await start('upstream', bareCommand('echo-upstream.ts'), () => ({
    BENCH_LIST_SERVERS: String(LIST_SERVERS),
    BENCH_LIST_TOOLS: String(LIST_TOOLS),
  }))
  let gatehouse: Server | undefined
  let bareProxy: Server | undefined
  let bare: Server | undefined
  try {
    bareProxy = await start(BARE_PROXY, bareCommand('bare-proxy.ts'), () => ({ UPSTREAM_URL: `${upstream.base}/mcp` }))
    gatehouse = await start('gatehouse', GATEHOUSE, (_, base) => ({
      GATEHOUSE_DATA_DIR: join(dir, 'gatehouse'),
      GATEHOUSE_PUBLIC_URL: base,
      GATEHOUSE_LOG_LEVEL: 'warn',
      GATEHOUSE_OUTBOUND_ALLOW_PRIVATE: 'true',
    }))
    const token = await signIn(gatehouse.base)
    const gatehouseHeaders = { ...MCP_HEADERS, authorization: `Bearer ${token}` }
    // Before any upstream is in the user's /mcp, its tools/list is Gatehouse's own tools.
    const ownTools = (await listedTools(gatehouse.base, gatehouseHeaders, 'tools/list without upstreams')).names
    if (!ownTools.includes(TOOL)) throw new Error(`/mcp does not list ${TOOL}: ${ownTools.join(', ')}`)
    const echoId = await registerServer(gatehouse.base, token, SLUG, `${upstream.base}/mcp`)

    const targets: Record<Mode, { base: string; path: string; request: WrkRequest }> = {
      direct: {
        base: upstream.base,
        path: '/mcp',
        request: { headers: MCP_HEADERS, body: BODY, expected: [EXPECTED_CONTENT] },
      },
      bareProxy: {
        base: bareProxy.base,
        path: '/mcp',
        request: { headers: MCP_HEADERS, body: BODY, expected: [EXPECTED_CONTENT] },
      },
      gateway: {
        base: gatehouse.base,
        path: `/mcp/servers/${SLUG}`,
        request: { headers: gatehouseHeaders, body: BODY, expected: [EXPECTED_CONTENT] },
      },
      aggregated: {
        base: gatehouse.base,
        path: '/mcp',
        request: {
          headers: gatehouseHeaders,
          body: callBody(AGGREGATED_TOOL),
          expected: [EXPECTED_AGGREGATED_CONTENT],
        },
      },
    }
    const scripts = {} as Record<Mode, string>
    const checked: string[] = []
    for (const mode of MODES) {
      const { base, path, request } = targets[mode]
      checked.push(
        `${LABEL[mode]} ${await checkEcho(base, path, request.headers, request.body, `${LABEL[mode]} tools/call`)}`,
      )
      scripts[mode] = join(dir, `${mode}.lua`)
      await writeFile(scripts[mode], wrkScript(request))
    }
    process.stdout.write(
      `  setup: upstream registered as /mcp/servers/${SLUG} (default_on: ${AGGREGATED_TOOL} on /mcp) by the first ` +
        `user, its session token as bearer; the bare proxy forwards to the upstream's /mcp; tools/call without ` +
        `initialize answered: ${checked.join('; ')}\n`,
    )

    // 1. tools/call of echo: direct, through the bare proxy, passthrough, aggregated.
    const results = new Map<string, PhaseResult>()
    const key = (mode: Mode, c: number) => `${mode} ${c}`
    for (const c of levels)
      for (const mode of MODES) {
        const r = await phase(`${targets[mode].base}${targets[mode].path}`, scripts[mode], c, [
          gatehouse,
          bareProxy,
          upstream,
        ])
        results.set(key(mode, c), r)
        const proxy = mode === 'bareProxy' ? BARE_PROXY : 'gatehouse'
        process.stdout.write(
          phaseLine(
            LABEL[mode],
            c,
            r,
            `${proxy} ${perRequestUs(r.cpuS[proxy], r.requests).toFixed(1)} µs/req, ` +
              `upstream ${perRequestUs(r.cpuS.upstream, r.requests).toFixed(1)} µs/req`,
          ),
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
      'bare proxy CPU/req',
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
          ...loadColumns(r),
          cpuCell(r.cpuS.gatehouse, r.requests),
          cpuCell(r.cpuS[BARE_PROXY], r.requests),
          cpuCell(r.cpuS.upstream, r.requests),
          wrkCpu(r),
          busy(r),
        ])
      }
    process.stdout.write(table(header, rows, 1))
    process.stdout.write(
      `  via gateway: /mcp/servers/${SLUG} (passthrough); aggregated: /mcp, tools/call of ${AGGREGATED_TOOL}.\n` +
        '  bare proxy: bench/bare-proxy.ts, a Bun.serve that forwards each POST to the upstream with fetch and\n' +
        '  hands its answer back, nothing else: the least any Bun proxy costs, the ceiling of the rows after it.\n' +
        '  CPU/req: user+system time of the process over the measured run (/proc/<pid>/stat), divided by the requests\n' +
        '  wrk completed; a proxy not in the path is idle and its figure is its background. wrk CPU: the load\n' +
        '  generator, in % of one core; machine busy: all cores, from /proc/stat. When the machine is busy,\n' +
        '  req/s and latency are bounded by it; CPU/req is not.\n\n',
    )

    for (const mode of ['gateway', 'aggregated'] as const)
      for (const c of levels) {
        const d = results.get(key('direct', c))!
        const b = results.get(key('bareProxy', c))!
        const g = results.get(key(mode, c))!
        const gatehouseUs = perRequestUs(g.cpuS.gatehouse, g.requests)
        const upstreamUs = perRequestUs(g.cpuS.upstream, g.requests)
        const bareProxyUs = perRequestUs(b.cpuS[BARE_PROXY], b.requests)
        process.stdout.write(
          `${mode} c=${c}: ${LABEL[mode]} ${int(g.rate)}/s vs direct ${int(d.rate)}/s (${(g.rate / d.rate).toFixed(2)}), ` +
            `p50 ${signed(g.p50Us - d.p50Us)} (${(g.p50Us / d.p50Us).toFixed(2)}×), ` +
            `p99 ${signed(g.p99Us - d.p99Us)} (${(g.p99Us / d.p99Us).toFixed(2)}×), ` +
            `Gatehouse CPU per call ${gatehouseUs.toFixed(1)} µs = ${(gatehouseUs / upstreamUs).toFixed(2)}× ` +
            `the upstream's; vs the bare proxy: CPU per call ${(gatehouseUs / bareProxyUs).toFixed(2)}× ` +
            `its ${bareProxyUs.toFixed(1)} µs (${signedCpu(gatehouseUs - bareProxyUs)}), ` +
            `p50 ${signed(g.p50Us - b.p50Us)}\n`,
        )
      }
    const callTargets = (mode: 'gateway' | 'aggregated', addedUs: number, cpuUs: number, what: string) => {
      const lines: string[] = []
      if (levels.includes(TARGET_ADDED_P50_CONNECTIONS)) {
        const d = results.get(key('direct', TARGET_ADDED_P50_CONNECTIONS))!
        const g = results.get(key(mode, TARGET_ADDED_P50_CONNECTIONS))!
        const added = g.p50Us - d.p50Us
        lines.push(
          `added p50 ${signed(added)} at c=${TARGET_ADDED_P50_CONNECTIONS} ` +
            `(target ≤ ${addedUs} µs: ${verdict(added <= addedUs)})`,
        )
      }
      for (const c of levels) {
        const g = results.get(key(mode, c))!
        const cpu = perRequestUs(g.cpuS.gatehouse, g.requests)
        lines.push(
          `Gatehouse CPU ${cpu.toFixed(1)} µs per ${what} call at c=${c} (target ≤ ${cpuUs} µs: ${verdict(cpu <= cpuUs)})`,
        )
      }
      process.stdout.write(`${mode} targets: ${lines.join('; ')}\n`)
    }
    callTargets('gateway', TARGET_ADDED_P50_US, TARGET_GATEHOUSE_CPU_US, 'proxied')
    callTargets('aggregated', TARGET_AGGREGATED_ADDED_P50_US, TARGET_AGGREGATED_CPU_US, 'aggregated')

    // 2. tools/list on /mcp aggregating LIST_SERVERS × LIST_TOOLS.
    await expectStatus(
      await call(gatehouse.base, `/api/v1/mcp/servers/${echoId}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ availability: 'default_off' }),
      }),
      200,
      `taking ${SLUG} out of /mcp`,
    )
    for (let n = 1; n <= LIST_SERVERS; n++)
      await registerServer(gatehouse.base, token, listSlug(n), `${upstream.base}/list/${n}`)
    const wanted = [...ownTools]
    for (let n = 1; n <= LIST_SERVERS; n++) for (let t = 1; t <= LIST_TOOLS; t++) wanted.push(listedName(n, t))
    const wantedSorted = JSON.stringify([...wanted].sort())
    const listStarted = performance.now()
    let listDescription = ''
    for (let i = 0; i <= WARM_LISTS; i++) {
      const what = i === 0 ? 'the first aggregated tools/list' : `untimed aggregated tools/list ${i}`
      const { names, description } = await listedTools(gatehouse.base, gatehouseHeaders, what)
      if (JSON.stringify([...names].sort()) !== wantedSorted) {
        const missing = wanted.filter((name) => !names.includes(name))
        const extra = names.filter((name) => !wanted.includes(name))
        throw new Error(
          `${what}: ${names.length} tools, not the ${wanted.length} of ${LIST_SERVERS}×${LIST_TOOLS} and ` +
            `Gatehouse's ${ownTools.length}; missing ${missing.slice(0, 5).join(', ') || 'none'} ` +
            `(${missing.length}), unexpected ${extra.slice(0, 5).join(', ') || 'none'} (${extra.length})`,
        )
      }
      if (i === 0) listDescription = `${description}, in ${int(performance.now() - listStarted)} ms`
    }
    const listScript = join(dir, 'list.lua')
    await writeFile(
      listScript,
      wrkScript({
        headers: gatehouseHeaders,
        body: LIST_BODY,
        expected: [
          `"name":"${TOOL}"`,
          `"name":"${listedName(1, 1)}"`,
          `"name":"${listedName(LIST_SERVERS, LIST_TOOLS)}"`,
        ],
      }),
    )
    process.stdout.write(
      `\n  tools/list setup: ${SLUG} set to default_off, ${LIST_SERVERS} upstreams of ${LIST_TOOLS} tools ` +
        `(${listSlug(1)} … ${listSlug(LIST_SERVERS)}, each a path of the upstream process, tools/list ttlMs 60 s) ` +
        `registered default_on; the first tools/list on /mcp listed exactly their ${LIST_SERVERS * LIST_TOOLS} ` +
        `tools and Gatehouse's ${ownTools.length} (${listDescription}), then ${WARM_LISTS} more untimed\n`,
    )
    const lists = new Map<number, PhaseResult & { upstreamRequests: number }>()
    for (const c of levels) {
      await runWrk(WRK, `${gatehouse.base}/mcp`, listScript, c, warmup)
      const countsBefore = await upstreamCounts(upstream)
      const r = await measured(`${gatehouse.base}/mcp`, listScript, c, [gatehouse, upstream])
      const upstreamRequests = (await upstreamCounts(upstream)).list - countsBefore.list
      lists.set(c, { ...r, upstreamRequests })
      process.stdout.write(
        phaseLine(
          'tools/list',
          c,
          r,
          `gatehouse ${perRequestUs(r.cpuS.gatehouse, r.requests).toFixed(1)} µs/list, ` +
            `${upstreamRequests} upstream requests`,
        ),
      )
    }
    const listRows = levels.map((c) => {
      const r = lists.get(c)!
      return [
        `${LIST_SERVERS}×${LIST_TOOLS} + ${ownTools.length}`,
        String(c),
        ...loadColumns(r),
        cpuCell(r.cpuS.gatehouse, r.requests),
        cpuCell(r.cpuS.upstream, r.requests),
        int(r.upstreamRequests),
        wrkCpu(r),
        busy(r),
      ]
    })
    process.stdout.write(
      table(
        [
          'tools/list',
          'c',
          'requests',
          'req/s',
          'p50',
          'p99',
          'gatehouse CPU/list',
          'upstream CPU/list',
          'upstream requests',
          'wrk CPU',
          'machine busy',
        ],
        listRows,
        1,
      ),
    )
    process.stdout.write(
      '  upstream requests: what the upstream process was asked during the measured run (its /stats); 0 means every\n' +
        '  list came from Gatehouse’s caches.\n\n',
    )
    const listTargets: string[] = []
    if (levels.includes(TARGET_LIST_CONNECTIONS)) {
      const r = lists.get(TARGET_LIST_CONNECTIONS)!
      listTargets.push(
        `p50 ${us(r.p50Us)} at c=${TARGET_LIST_CONNECTIONS} ` +
          `(target ≤ ${int(TARGET_LIST_P50_US)} µs: ${verdict(r.p50Us <= TARGET_LIST_P50_US)})`,
      )
    }
    for (const c of levels)
      listTargets.push(
        `Gatehouse CPU ${perRequestUs(lists.get(c)!.cpuS.gatehouse, lists.get(c)!.requests).toFixed(1)} µs per list ` +
          `at c=${c} (no target)`,
      )
    process.stdout.write(`tools/list targets: ${listTargets.join('; ')}\n`)

    // 3. Gatehouse's own get_authenticated_user, and the bare ceiling answering the same bytes.
    const own = requestFor(VERSION, token)
    const ownBody = own.body(REQUEST_ID)
    const captured = await call(gatehouse.base, '/mcp', { method: 'POST', headers: own.headers, body: ownBody })
    const capturedText = await captured.text()
    const capturedType = captured.headers.get('content-type') ?? ''
    const problem = checkAnswer(captured.status, capturedType, capturedText, REQUEST_ID)
    if (problem) throw new Error(`gatehouse ${TOOL}: the first tools/call failed: ${problem}`)
    const responsesPath = join(dir, 'bare-responses.json')
    await writeFile(responsesPath, JSON.stringify({ [VERSION]: { contentType: capturedType, body: capturedText } }))
    bare = await start('bare', bareCommand('bare-mcp-server.ts'), () => ({ BARE_MCP_RESPONSES: responsesPath }))
    const bareAnswer = await call(bare.base, '/mcp', { method: 'POST', headers: own.headers, body: ownBody })
    if ((await bareAnswer.text()) !== capturedText || bareAnswer.headers.get('content-type') !== capturedType)
      throw new Error('bare: did not answer the captured bytes')
    const ownScript = join(dir, 'own.lua')
    await writeFile(
      ownScript,
      wrkScript({ headers: own.headers, body: ownBody, expected: [`"username":"${USER.username}"`] }),
    )
    process.stdout.write(
      `\n  ${TOOL} setup: Gatehouse's answer on /mcp (${VERSION} POST) captured, ` +
        `${capturedType.split(';')[0]}, ${capturedText.length} bytes; the bare server answers those bytes\n`,
    )
    const owned = new Map<string, PhaseResult>()
    const ownKey = (kind: OwnKind, c: number) => `${kind} ${c}`
    const servers: Record<OwnKind, Server> = { gatehouse, bare }
    for (const c of levels)
      for (const kind of OWN_KINDS) {
        const r = await phase(`${servers[kind].base}/mcp`, ownScript, c, [gatehouse, bare])
        owned.set(ownKey(kind, c), r)
        process.stdout.write(
          phaseLine(kind, c, r, `${kind} ${perRequestUs(r.cpuS[kind], r.requests).toFixed(1)} µs/call`),
        )
      }
    const ownRows: string[][] = []
    for (const c of levels)
      for (const kind of OWN_KINDS) {
        const r = owned.get(ownKey(kind, c))!
        ownRows.push([kind, String(c), ...loadColumns(r), cpuCell(r.cpuS[kind], r.requests), wrkCpu(r), busy(r)])
      }
    process.stdout.write(
      table([TOOL, 'c', 'requests', 'req/s', 'p50', 'p99', 'server CPU/call', 'wrk CPU', 'machine busy'], ownRows, 1),
    )
    process.stdout.write(
      '  server CPU/call: the CPU time of the server answering (Gatehouse, or the bare Bun.serve answering the\n' +
        '  captured bytes) over the measured run, divided by the calls.\n\n',
    )
    const ownTargets: string[] = []
    for (const c of levels) {
      const g = owned.get(ownKey('gatehouse', c))!
      const b = owned.get(ownKey('bare', c))!
      const gatehouseUs = perRequestUs(g.cpuS.gatehouse, g.requests)
      const bareUs = perRequestUs(b.cpuS.bare, b.requests)
      process.stdout.write(
        `${TOOL} c=${c}: gatehouse ${int(g.rate)}/s vs bare ${int(b.rate)}/s (${(g.rate / b.rate).toFixed(2)}), ` +
          `p50 ${signed(g.p50Us - b.p50Us)}, CPU per call ${gatehouseUs.toFixed(1)} µs vs ${bareUs.toFixed(1)} µs ` +
          `(${(gatehouseUs / bareUs).toFixed(2)}× the bare ceiling's)\n`,
      )
      ownTargets.push(
        `Gatehouse CPU ${gatehouseUs.toFixed(1)} µs per call at c=${c} ` +
          `(target ≤ ${TARGET_OWN_TOOL_CPU_US} µs: ${verdict(gatehouseUs <= TARGET_OWN_TOOL_CPU_US)})`,
      )
    }
    process.stdout.write(`${TOOL} targets: ${ownTargets.join('; ')}\n`)
  } finally {
    if (bare) await stop(bare, { expected: EXPECTED_LOG })
    if (gatehouse) await stop(gatehouse, { expected: EXPECTED_LOG })
    if (bareProxy) await stop(bareProxy)
    await stop(upstream)
  }
}

await runBench(main)
