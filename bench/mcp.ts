// MCP endpoint benchmark: `tools/call` of get_authenticated_user against a real `gatehouse serve` (SQLite) at /mcp,
// and against a bare Bun.serve that answers the same POST with the same bytes (bench/bare-mcp-server.ts) as the
// ceiling, for two wire formats, with wrk as the load generator (a C program on one thread, so it leaves the cores
// to the servers, which a JS load generator in this process would not):
// - 2025-06-18: a stateless POST without initialize (mcp-protocol-version: 2025-06-18); Gatehouse answers SSE;
// - 2026-07-28: mcp-protocol-version, mcp-method and mcp-name headers, and the protocol version and client
//   capabilities in params._meta; Gatehouse answers JSON.
//
//   bun bench/mcp.ts [--seconds N] [--concurrency 1,16,64]
//
// Needs wrk (Debian's package: `sudo apt-get install -y wrk`); without it the benchmark says so and exits 1.
//
// Setup, untimed: Gatehouse starts on a fresh temp data dir (SQLite, GATEHOUSE_LOG_LEVEL=warn); through its HTTP API
// the first user is created and signed in, and the session token is the bearer of every /mcp request. One real
// answer per wire format is captured from Gatehouse (content-type and body bytes) and the bare server is started to
// return exactly those. Both servers then stay up, and the phases alternate between them (same wire format, same
// concurrency, Gatehouse then bare) so that drift on the machine hits both alike.
//
// Per phase: a wrk run (one thread, C keep-alive connections, one request at a time on each) of 1 s of warm-up,
// checked and discarded, then one of N s measured. Every request is the same tools/call, with the same id; a wrk Lua
// script checks every answer: 200, the user's username and the request's id in the body (the bare server's fixed
// bytes carry both, being Gatehouse's answer to that very request); any failure, non-2xx count or socket error fails
// the benchmark. Latency is wrk's, from the request's first byte sent to the answer's last byte read. Across the
// measured run the server's user+system CPU time is read from /proc/<pid>/stat, and wrk's from its resource usage.
// Everything runs on 127.0.0.1, each step is bounded in time, children are killed and the temp dir is removed.

import { writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  bareCommand,
  bound,
  call,
  checkAnswer,
  cpuColumns,
  CPU_HEADER,
  type CpuUsage,
  cpuSeconds,
  EXPECTED_LOG,
  GATEHOUSE,
  HEALTH_TIMEOUT_MS,
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
  STOP_TIMEOUT_MS,
  table,
  tempDir,
  TOOL,
  USER,
  type Version,
  VERSIONS,
  WRK_SLACK_S,
  wrkScript,
  wrkVersion,
} from './support.ts'

const WARMUP_S = 1
/** Targets printed next to the figures. */
const TARGET_RATIO_CONCURRENCY = 16
const TARGET_RATIO = 0.3
const TARGET_ADDED_P50_CONCURRENCY = 1
const TARGET_ADDED_P50_US = 100
/** The id of every request; Gatehouse's answer, and so the bare server's, carries it. */
const REQUEST_ID = 1

type Kind = 'gatehouse' | 'bare'
type Running = Server<Kind>

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '1,16,64' },
  },
})
const seconds = Number(values.seconds)
const levels = values.concurrency.split(',').map((part) => Number(part.trim()))
if (!Number.isInteger(seconds) || seconds < 1 || seconds > 300) {
  process.stderr.write(`mcp: --seconds must be a whole number from 1 to 300, got "${values.seconds}"\n`)
  process.exit(2)
}
if (levels.length === 0 || levels.length > 10 || levels.some((c) => !Number.isInteger(c) || c < 1 || c > 1024)) {
  process.stderr.write(
    `mcp: --concurrency must be 1 to 10 whole numbers from 1 to 1024, separated by commas, got "${values.concurrency}"\n`,
  )
  process.exit(2)
}

// Bounded as a whole: setup, two starts and stops, and per phase its warm-up and measured wrk runs.
const phaseCount = 2 * VERSIONS.length * levels.length
bound(
  'mcp',
  60_000 + 2 * (HEALTH_TIMEOUT_MS + STOP_TIMEOUT_MS) + phaseCount * (WARMUP_S + seconds + 2 * WRK_SLACK_S) * 1000,
)
const WRK = requireWrk()

interface PhaseResult extends CpuUsage {
  requests: number
  rate: number
  /** wrk's, in ms. */
  p50: number
  p99: number
}

/**
 * A checked warm-up wrk run, then the measured one, with the CPU time of the server, of wrk (the client) and of the
 * whole machine across it; any answer the script refuses fails the benchmark.
 */
async function measure(server: Running, script: string, concurrency: number): Promise<PhaseResult> {
  const url = `${server.base}/mcp`
  await runWrk(WRK, url, script, concurrency, WARMUP_S)
  const serverBefore = await cpuSeconds(server.child.pid)
  const machineBefore = await machineTicks()
  const started = performance.now()
  const result = await runWrk(WRK, url, script, concurrency, seconds)
  const elapsedS = (performance.now() - started) / 1000
  const serverCpuS = (await cpuSeconds(server.child.pid)) - serverBefore
  const machineAfter = await machineTicks()
  const machineBusy = (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total)
  return {
    elapsedS,
    serverCpuS,
    clientCpuS: result.wrkCpuS,
    machineBusy,
    requests: result.requests,
    rate: result.rate,
    p50: result.p50Us / 1000,
    p99: result.p99Us / 1000,
  }
}

const ms = (value: number) => (value < 1 ? value.toFixed(3) : value < 10 ? value.toFixed(2) : value.toFixed(1))
const us = (value: number) => `${value >= 0 ? '+' : '−'}${int(Math.abs(value) * 1000)} µs`

async function main() {
  process.stdout.write(
    `mcp: bun ${Bun.version}, wrk ${wrkVersion(WRK)} (1 thread), ${cpus().length} CPU(s), SQLite, tools/call ${TOOL}, ` +
      `concurrency ${levels.join(', ')}, ${seconds} s per phase after ${WARMUP_S} s of warm-up, ${HOST} only\n`,
  )
  const dir = await tempDir('gatehouse-bench-mcp-')
  const gatehouse = await start('gatehouse', GATEHOUSE, (_, base) => ({
    GATEHOUSE_DATA_DIR: join(dir, 'gatehouse'),
    GATEHOUSE_PUBLIC_URL: base,
  }))
  let bare: Running | undefined
  try {
    const token = await signIn(gatehouse.base)

    // One real answer per wire format, for the bare server to return byte for byte.
    const captured: Record<string, { contentType: string; body: string }> = {}
    for (const version of VERSIONS) {
      const { headers, body } = requestFor(version, token)
      const response = await call(gatehouse.base, '/mcp', { method: 'POST', headers, body: body(REQUEST_ID) })
      const text = await response.text()
      const contentType = response.headers.get('content-type') ?? ''
      const problem = checkAnswer(response.status, contentType, text, REQUEST_ID)
      if (problem) throw new Error(`gatehouse ${version}: the first tools/call failed: ${problem}`)
      captured[version] = { contentType, body: text }
    }
    const responsesPath = join(dir, 'bare-responses.json')
    await writeFile(responsesPath, JSON.stringify(captured))
    bare = await start('bare', bareCommand('bare-mcp-server.ts'), () => ({ BARE_MCP_RESPONSES: responsesPath }))
    // One wrk script per wire format, for both servers: the same request, the same checks of every answer (the user
    // id is a quoted UUID, so `"id":1` can only be the JSON-RPC id).
    const scripts = {} as Record<Version, string>
    for (const version of VERSIONS) {
      const { headers, body } = requestFor(version, token)
      const response = await call(bare.base, '/mcp', { method: 'POST', headers, body: body(REQUEST_ID) })
      const text = await response.text()
      if (text !== captured[version].body || response.headers.get('content-type') !== captured[version].contentType)
        throw new Error(`bare ${version}: did not answer the captured bytes`)
      scripts[version] = join(dir, `${version}.lua`)
      const expected = [`"username":"${USER.username}"`, `"id":${REQUEST_ID}`]
      await writeFile(scripts[version], wrkScript({ headers, body: body(REQUEST_ID), expected }))
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
          const result = await measure(server, scripts[version], c)
          results.set(key(server.kind, version, c), result)
          process.stdout.write(
            `  ${server.kind.padEnd(9)} ${version} c=${String(c).padEnd(3)} ${int(result.rate).padStart(7)}/s, ` +
              `p50 ${ms(result.p50)} ms, p99 ${ms(result.p99)} ms\n`,
          )
        }

    const header = ['server', 'version', 'c', 'requests', 'req/s', 'p50', 'p99', ...CPU_HEADER]
    const rows: string[][] = []
    for (const version of VERSIONS)
      for (const c of levels)
        for (const kind of ['gatehouse', 'bare'] as const) {
          const r = results.get(key(kind, version, c))!
          const latency = [int(r.requests), `${int(r.rate)}/s`, `${ms(r.p50)} ms`, `${ms(r.p99)} ms`]
          rows.push([kind, version, String(c), ...latency, ...cpuColumns(r, cpus().length)])
        }
    process.stdout.write(table(header, rows, 2))
    process.stdout.write(
      '  server CPU: user+system time of the server process over the measured run, in % of one core (its JS runs on\n' +
        '  one thread). per core: requests per CPU-second of the server process. client CPU: wrk, the load generator,\n' +
        '  which shares the machine with the server; other: everything else (kernel loopback work, other processes),\n' +
        '  in % of one core; machine busy: all cores, from /proc/stat. Near 100% busy the rates are bounded by the\n' +
        '  machine, the bare ceiling first of all; "per core" survives that.\n\n',
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
        targets.push(
          `ratio ${ratio.toFixed(2)} at c=${TARGET_RATIO_CONCURRENCY} (target ≥ ${TARGET_RATIO}: ${ratio >= TARGET_RATIO ? 'met' : 'MISSED'})`,
        )
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
    if (bare) await stop(bare, { expected: EXPECTED_LOG })
    await stop(gatehouse, { expected: EXPECTED_LOG })
  }
}

await runBench(main)
