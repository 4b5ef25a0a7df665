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

import { parseArgs } from 'node:util'
import {
  bareCommand,
  bound,
  GATEHOUSE,
  HEALTH_TIMEOUT_MS,
  HOST,
  memoryKiB,
  quantile,
  removeTempDir,
  runBench,
  start,
  stop,
  STOP_TIMEOUT_MS,
  table,
  tempDir,
} from './support.ts'

const POLL_MS = 5
const IDLE_MS = 1_000

type Kind = 'bare' | 'gatehouse'

const COMMANDS: Record<Kind, string[]> = {
  bare: bareCommand('bare-server.ts'),
  gatehouse: GATEHOUSE,
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

// The whole benchmark is bounded: a round is at most two health timeouts, two idle waits and two stops per start.
const perStartMs = HEALTH_TIMEOUT_MS + IDLE_MS + 2 * STOP_TIMEOUT_MS
bound('startup', (runs + 1) * 3 * perStartMs + 10_000)

const freshDir = () => tempDir('gatehouse-bench-')

/** Spawns one server, waits for /healthz, lets it idle, reads its RSS and stops it. */
async function measure(kind: Kind, dataDir: string): Promise<Sample> {
  const server = await start(
    kind,
    COMMANDS[kind],
    (_, base) => ({ GATEHOUSE_PUBLIC_URL: base, GATEHOUSE_DATA_DIR: dataDir }),
    POLL_MS,
  )
  try {
    await Bun.sleep(IDLE_MS)
    return { startMs: server.startMs, rssMiB: (await memoryKiB(server.child.pid)).rss / 1024 }
  } finally {
    await stop(server, 'nothing')
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
      await removeTempDir(gatehouseDir)
    }
  } finally {
    await removeTempDir(bareDir)
  }
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
  const cells = rows.map((row) => [
    row.name,
    `${ms(row.start)} ms`,
    `${ms(row.p90)} ms`,
    `${ms(row.min)} ms`,
    `${ms(row.max)} ms`,
    `${mib(row.rss)} MiB`,
    row === bare ? '-' : ratio(row.start, bare.start),
    row === bare ? '-' : ratio(row.rss, bare.rss),
  ])
  process.stdout.write(table(header, cells, 1))

  process.stdout.write(
    `startup: gatehouse cold ${ms(cold.start)} ms vs bare ${ms(bare.start)} ms (${ratio(cold.start, bare.start)}), ` +
      `warm ${ms(warm.start)} ms (${ratio(warm.start, bare.start)}); ` +
      `idle RSS ${mib(cold.rss)} MiB vs ${mib(bare.rss)} MiB (${ratio(cold.rss, bare.rss)})\n`,
  )
}

await runBench(main)
