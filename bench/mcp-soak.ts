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

import { cpus } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  bound,
  checkAnswer,
  cpuSeconds,
  EXPECTED_LOG,
  GATEHOUSE,
  HEALTH_TIMEOUT_MS,
  HOST,
  int,
  memoryKiB,
  REQUEST_TIMEOUT_MS,
  requestFor,
  runBench,
  signIn,
  start,
  stop,
  STOP_TIMEOUT_MS,
  tempDir,
  TOOL,
  VERSIONS,
} from './support.ts'

const READ_EVERY_MS = 1_000
const REPORT_EVERY_MS = 30_000
const WARMUP_MS = 60_000
const FLAT_KIB_PER_1000 = 1
const MAX_FAILURES = 10

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

// Bounded as a whole: setup, the run, the last requests' timeout and the stop.
bound('mcp-soak', durationMs + 60_000 + HEALTH_TIMEOUT_MS + 2 * REQUEST_TIMEOUT_MS + STOP_TIMEOUT_MS)

/** The server's JavaScript heap in use, in KiB, from its own /metrics. */
async function heapKiB(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).text()
  const match = /^gatehouse_process_heap_used_bytes (\d+)$/m.exec(text)
  if (!match) throw new Error('no gatehouse_process_heap_used_bytes in /metrics')
  return Number(match[1]) / 1024
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
  const dir = await tempDir('gatehouse-bench-mcp-soak-')
  const server = await start('gatehouse', GATEHOUSE, (_, base) => ({
    GATEHOUSE_DATA_DIR: join(dir, 'gatehouse'),
    GATEHOUSE_PUBLIC_URL: base,
  }))
  const pid = server.child.pid
  try {
    const token = await signIn(server.base)
    const requests = VERSIONS.map((version) => requestFor(version, token))
    const url = `${server.base}/mcp`
    const idle = await memoryKiB(pid)
    process.stdout.write(
      `  setup: 1 user signed in through the HTTP API; idle RSS ${mib(idle.rss)}, HWM ${mib(idle.hwm)}, pid ${pid}\n`,
    )

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
          const response = await fetch(url, {
            method: 'POST',
            headers,
            body: body(id),
            signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
          })
          problem = checkAnswer(response.status, response.headers.get('content-type') ?? '', await response.text(), id)
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
        const sample = {
          ms: performance.now() - started,
          requests: served,
          ...(await memoryKiB(pid)),
          heap: await heapKiB(server.base),
        }
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
      throw new Error(
        `${failures} tools/call failed (stopped at ${MAX_FAILURES}) after ${int(served)} good ones, the first:\n  ${firstFailures.join('\n  ')}`,
      )

    const steady = samples.filter((sample) => sample.ms >= warmupMs - 1)
    if (steady.length < 3) throw new Error(`only ${steady.length} sample(s) after the warm-up: run for longer`)
    const rssFit = fit(steady.map((sample) => ({ x: sample.requests, y: sample.rss })))
    const { slope, slopeError } = fit(steady.map((sample) => ({ x: sample.requests, y: sample.heap })))
    const growth = slope * 1000
    const growthError = slopeError * 1000
    const first = steady[0]
    const last = steady[steady.length - 1]
    // Flat below the threshold; growing only when the growth stands clear of the threshold by two standard errors.
    const verdict =
      growth < FLAT_KIB_PER_1000
        ? 'flat'
        : growth - 2 * growthError >= FLAT_KIB_PER_1000
          ? 'GROWING'
          : 'UNCLEAR (within noise; run longer)'
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
    await stop(server, { expected: EXPECTED_LOG })
  }
}

await runBench(main)
