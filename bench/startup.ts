// Startup benchmark: how long Gatehouse takes from spawn to its first healthy answer, and how much memory it
// holds at rest, against a bare Bun.serve (bench/bare-server.ts) as the ceiling.
//
//   bun bench/startup.ts [--runs N]
//
// Each run spawns the server as a `bun` child on a fresh free port of 127.0.0.1 with a fresh empty data dir:
// - cold start: spawn -> first 200 from GET /healthz (polled every ~5 ms); Gatehouse creates its SQLite
//   database, key file and runs every migration.
// - warm start (Gatehouse only): a second start on the same data dir, everything already migrated.
// - idle RSS: VmRSS from /proc/<pid>/status ~1 s after the server became healthy, with no traffic.
// One untimed warm-up round comes first so the OS file cache and Bun's transpiler cache are primed; "cold"
// means a cold database, not a cold disk. Nothing leaves 127.0.0.1.

import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { Subprocess } from 'bun'

const ROOT = resolve(import.meta.dir, '..')
const HOST = '127.0.0.1'
const POLL_MS = 5
const HEALTH_TIMEOUT_MS = 20_000
const FETCH_TIMEOUT_MS = 1_000
const IDLE_MS = 1_000
const STOP_TIMEOUT_MS = 5_000

type Kind = 'bare' | 'gatehouse'

const COMMANDS: Record<Kind, string[]> = {
  bare: [process.execPath, join(ROOT, 'bench/bare-server.ts')],
  gatehouse: [process.execPath, join(ROOT, 'src/cli.ts'), 'serve'],
}

interface Sample {
  startMs: number
  rssMiB: number
}

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: { runs: { type: 'string', default: '10' } },
})
const runs = Number(values.runs)
if (!Number.isInteger(runs) || runs < 1 || runs > 1000) {
  process.stderr.write(`startup: --runs must be a whole number from 1 to 1000, got "${values.runs}"\n`)
  process.exit(2)
}

const liveChildren = new Set<Subprocess>()
const tempDirs = new Set<string>()

async function cleanup() {
  for (const child of liveChildren) child.kill('SIGKILL')
  await Promise.all([...liveChildren].map((child) => child.exited))
  liveChildren.clear()
  await Promise.all([...tempDirs].map((dir) => rm(dir, { recursive: true, force: true })))
  tempDirs.clear()
}

async function abort(message: string, code = 1): Promise<never> {
  process.stderr.write(`startup: ${message}\n`)
  await cleanup()
  process.exit(code)
}

// The whole benchmark is bounded: a round is at most two health timeouts, two idle waits and two stops per start.
const perStartMs = HEALTH_TIMEOUT_MS + IDLE_MS + 2 * STOP_TIMEOUT_MS
const budgetMs = (runs + 1) * 3 * perStartMs + 10_000
setTimeout(() => void abort(`gave up after ${Math.round(budgetMs / 1000)} s`), budgetMs).unref()
process.on('SIGINT', () => void abort('interrupted', 130))
process.on('SIGTERM', () => void abort('terminated', 143))

/** A port the kernel just handed out on 127.0.0.1; the tiny window before the child binds it is acceptable here. */
function freePort(): number {
  const listener = Bun.listen({ hostname: HOST, port: 0, socket: { data() {} } })
  const port = listener.port
  listener.stop(true)
  return port
}

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-bench-'))
  tempDirs.add(dir)
  return dir
}

async function removeDir(dir: string) {
  await rm(dir, { recursive: true, force: true })
  tempDirs.delete(dir)
}

/** The parent's environment without any Gatehouse settings, so nothing leaks in (a DATABASE_URL, real keys…). */
function childEnv(port: number, dataDir: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || name.startsWith('GATEHOUSE_') || name === 'DATABASE_URL' || name === 'PORT') continue
    env[name] = value
  }
  return {
    ...env,
    PORT: String(port),
    GATEHOUSE_HOST: HOST,
    GATEHOUSE_PUBLIC_URL: `http://${HOST}:${port}`,
    GATEHOUSE_DATA_DIR: dataDir,
    GATEHOUSE_LOG_LEVEL: 'warn',
  }
}

async function healthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, {
      headers: { connection: 'close' },
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    })
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

async function vmRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`)
  return Number(match[1]) / 1024
}

async function stop(child: Subprocess) {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
  const exited = await Promise.race([child.exited.then(() => true), Bun.sleep(STOP_TIMEOUT_MS).then(() => false)])
  if (!exited) {
    process.stderr.write(`startup: pid ${child.pid} ignored SIGTERM for ${STOP_TIMEOUT_MS} ms, killing it\n`)
    child.kill('SIGKILL')
    await child.exited
  }
  liveChildren.delete(child)
}

/** Spawns one server, waits for /healthz, lets it idle, reads its RSS and stops it. */
async function measure(kind: Kind, dataDir: string): Promise<Sample> {
  const port = freePort()
  const url = `http://${HOST}:${port}/healthz`
  const started = performance.now()
  const child = Bun.spawn(COMMANDS[kind], {
    cwd: ROOT,
    env: childEnv(port, dataDir),
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  liveChildren.add(child)
  const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()])
  try {
    let startMs: number | undefined
    while (startMs === undefined) {
      if (child.exitCode !== null || child.signalCode !== null) {
        const [stdout, stderr] = await output
        throw new Error(`${kind} exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${stdout}${stderr}`)
      }
      if (await healthy(url)) startMs = performance.now() - started
      else if (performance.now() - started > HEALTH_TIMEOUT_MS)
        throw new Error(`${kind} was not healthy on ${url} within ${HEALTH_TIMEOUT_MS} ms`)
      else await Bun.sleep(POLL_MS)
    }
    await Bun.sleep(IDLE_MS)
    return { startMs, rssMiB: await vmRssMiB(child.pid) }
  } finally {
    await stop(child)
  }
}

interface Round {
  bare: Sample
  cold: Sample
  warm: Sample
}

async function round(): Promise<Round> {
  const bareDir = await freshDir()
  try {
    const bare = await measure('bare', bareDir)
    const gatehouseDir = await freshDir()
    try {
      const cold = await measure('gatehouse', gatehouseDir)
      const warm = await measure('gatehouse', gatehouseDir)
      return { bare, cold, warm }
    } finally {
      await removeDir(gatehouseDir)
    }
  } finally {
    await removeDir(bareDir)
  }
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] // nearest rank
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

const ms = (value: number) => (value < 10 ? value.toFixed(1) : value.toFixed(0))
const mib = (value: number) => value.toFixed(1)
const ratio = (a: number, b: number) => `${(a / b).toFixed(1)}x`

async function main() {
  process.stdout.write(`startup: bun ${Bun.version}, ${runs} run(s) + 1 warm-up, ${HOST} only\n`)
  await round() // warm-up, discarded
  const rounds: Round[] = []
  for (let i = 0; i < runs; i++) {
    const r = await round()
    rounds.push(r)
    process.stdout.write(
      `  run ${String(i + 1).padStart(2)}: bare ${ms(r.bare.startMs)} ms, cold ${ms(r.cold.startMs)} ms, ` +
        `warm ${ms(r.warm.startMs)} ms; RSS ${mib(r.bare.rssMiB)} / ${mib(r.cold.rssMiB)} / ${mib(r.warm.rssMiB)} MiB\n`,
    )
  }

  const rows = (['bare', 'cold', 'warm'] as const).map((key) => {
    const starts = rounds.map((r) => r[key].startMs).sort((a, b) => a - b)
    const rss = rounds.map((r) => r[key].rssMiB)
    return {
      name: key === 'bare' ? 'bare' : `gatehouse-${key}`,
      start: median(starts),
      p90: quantile(starts, 0.9),
      min: starts[0],
      max: starts[starts.length - 1],
      rss: median(rss),
    }
  })
  const [bare, cold, warm] = rows

  const header = ['server', 'start med', 'p90', 'min', 'max', 'RSS med', 'start/bare', 'RSS/bare']
  const table = rows.map((row) => [
    row.name,
    `${ms(row.start)} ms`,
    `${ms(row.p90)} ms`,
    `${ms(row.min)} ms`,
    `${ms(row.max)} ms`,
    `${mib(row.rss)} MiB`,
    row === bare ? '-' : ratio(row.start, bare.start),
    row === bare ? '-' : ratio(row.rss, bare.rss),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((cells) => cells[i].length)))
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')
  process.stdout.write(`\n${line(header)}\n${table.map(line).join('\n')}\n\n`)

  process.stdout.write(
    `startup: gatehouse cold ${ms(cold.start)} ms vs bare ${ms(bare.start)} ms (${ratio(cold.start, bare.start)}), ` +
      `warm ${ms(warm.start)} ms (${ratio(warm.start, bare.start)}); ` +
      `idle RSS ${mib(cold.rss)} MiB vs ${mib(bare.rss)} MiB (${ratio(cold.rss, bare.rss)})\n`,
  )
}

try {
  await main()
} catch (error) {
  await abort(error instanceof Error ? error.message : String(error))
}
await cleanup()
process.exit(0)
