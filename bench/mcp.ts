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
  EXPECTED_LOG,
  GATEHOUSE,
  HEALTH_TIMEOUT_MS,
  HOST,
  int,
  latencyStats,
  measureCpu,
  REQUEST_TIMEOUT_MS,
  requestFor,
  runBench,
  type Server,
  signIn,
  start,
  stop,
  STOP_TIMEOUT_MS,
  table,
  tempDir,
  TOOL,
  type Version,
  VERSIONS,
} from './support.ts'

const WARMUP_MS = 1_000
/** Targets printed next to the figures. */
const TARGET_RATIO_CONCURRENCY = 16
const TARGET_RATIO = 0.3
const TARGET_ADDED_P50_CONCURRENCY = 1
const TARGET_ADDED_P50_US = 100

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
if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 300) {
  process.stderr.write(`mcp: --seconds must be a number from 0 to 300, got "${values.seconds}"\n`)
  process.exit(2)
}
if (levels.length === 0 || levels.length > 10 || levels.some((c) => !Number.isInteger(c) || c < 1 || c > 1024)) {
  process.stderr.write(
    `mcp: --concurrency must be 1 to 10 whole numbers from 1 to 1024, separated by commas, got "${values.concurrency}"\n`,
  )
  process.exit(2)
}

// Bounded as a whole: setup, two starts and stops, and per phase its warm-up, its measured time and a request timeout
// at each end.
const phaseCount = 2 * VERSIONS.length * levels.length
bound(
  'mcp',
  60_000 +
    2 * (HEALTH_TIMEOUT_MS + STOP_TIMEOUT_MS) +
    phaseCount * (WARMUP_MS + seconds * 1000 + 2 * REQUEST_TIMEOUT_MS + 5_000),
)

interface PhaseResult extends CpuUsage {
  requests: number
  failures: number
  firstFailures: string[]
  rate: number
  p50: number
  p99: number
}

let nextId = 1

/** `concurrency` workers, each POSTing one tools/call after another until `ms` is up; every answer is checked. */
async function run(
  server: Running,
  version: Version,
  token: string,
  concurrency: number,
  ms: number,
): Promise<PhaseResult> {
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
  const cpu = await measureCpu(server.child.pid)
  const deadline = performance.now() + ms

  async function worker() {
    while (performance.now() < deadline) {
      const id = nextId++
      const requestStarted = performance.now()
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers,
          body: body(id),
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        })
        const text = await response.text()
        latencies.push(performance.now() - requestStarted)
        const problem = checkAnswer(
          response.status,
          response.headers.get('content-type') ?? '',
          text,
          checkId ? id : undefined,
        )
        if (problem) fail(problem)
      } catch (error) {
        latencies.push(performance.now() - requestStarted)
        fail(error instanceof Error ? `${error.name}: ${error.message}` : String(error))
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))

  const usage = await cpu()
  return { ...usage, ...latencyStats(latencies, usage.elapsedS), failures, firstFailures }
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

const ms = (value: number) => (value < 1 ? value.toFixed(3) : value < 10 ? value.toFixed(2) : value.toFixed(1))
const us = (value: number) => `${value >= 0 ? '+' : '−'}${int(Math.abs(value) * 1000)} µs`

async function main() {
  process.stdout.write(
    `mcp: bun ${Bun.version}, ${cpus().length} CPU(s), SQLite, tools/call ${TOOL}, concurrency ${levels.join(', ')}, ` +
      `${seconds} s per phase after ${WARMUP_MS / 1000} s of warm-up, ${HOST} only\n`,
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
      const id = nextId++
      const response = await call(gatehouse.base, '/mcp', { method: 'POST', headers, body: body(id) })
      const text = await response.text()
      const contentType = response.headers.get('content-type') ?? ''
      const problem = checkAnswer(response.status, contentType, text, id)
      if (problem) throw new Error(`gatehouse ${version}: the first tools/call failed: ${problem}`)
      captured[version] = { contentType, body: text }
    }
    const responsesPath = join(dir, 'bare-responses.json')
    await writeFile(responsesPath, JSON.stringify(captured))
    bare = await start('bare', bareCommand('bare-mcp-server.ts'), () => ({ BARE_MCP_RESPONSES: responsesPath }))
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
