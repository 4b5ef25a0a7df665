/**
 * Proves Gatehouse runs on Deno: starts the real CLI (`deno run src/cli.ts serve`) as a child,
 * so the Deno branches of cli.ts, server.ts and src/runtime/ are what answer (Deno.serve,
 * node:sqlite, hash-wasm), on a fresh SQLite database in a temporary folder. Then checks health,
 * first-user creation, login, /users/me and readiness, and that SIGTERM ends it with exit code 0.
 *
 *   deno task smoke
 *
 * The server gets only the permissions it needs, so this also documents them: the network on its
 * own address, the environment, read access to migrations/ and read/write to its data folder.
 * Packages come from Bun's node_modules (deno.json: "nodeModulesDir": "manual").
 * One line per check; exits 1 on the first failure, with the server's output.
 */
import { join } from 'node:path'
import { CheckFailed, checkServer, seconds, withTimeout } from './smoke-checks.ts'

/** The few Deno APIs used here; declared locally because the project type-checks against Bun's types. */
interface DenoChildProcess {
  readonly stdout: ReadableStream<Uint8Array>
  readonly stderr: ReadableStream<Uint8Array>
  readonly status: Promise<{ success: boolean; code: number; signal: string | null }>
  kill(signal?: 'SIGTERM' | 'SIGKILL'): void
}
interface DenoApi {
  version: { deno: string }
  execPath(): string
  env: { get(name: string): string | undefined }
  makeTempDir(options: { prefix: string }): Promise<string>
  remove(path: string, options: { recursive: boolean }): Promise<void>
  listen(options: { hostname: string; port: number }): { addr: { port: number }; close(): void }
  addSignalListener(signal: 'SIGINT', handler: () => void): void
  exit(code: number): never
  Command: new (
    command: string,
    options: {
      args: string[]
      cwd: string
      env: Record<string, string>
      clearEnv: boolean
      stdin: 'null'
      stdout: 'piped'
      stderr: 'piped'
    },
  ) => { spawn(): DenoChildProcess }
}

const deno = (globalThis as unknown as { Deno?: DenoApi }).Deno
if (!deno) throw new Error('scripts/deno-smoke.ts runs under Deno: deno task smoke')

const ROOT = join(import.meta.dirname!, '..')
const HEALTH_TIMEOUT_MS = 30_000 // the first run also transpiles src/ and node_modules into Deno's cache
const EXIT_TIMEOUT_MS = 10_000
/** Passed through to the server so Deno finds its cache; nothing else from this shell leaks in. */
const PASS_THROUGH_ENV = ['PATH', 'HOME', 'DENO_DIR', 'XDG_CACHE_HOME', 'TMPDIR', 'NO_COLOR']

/** A port nothing listens on right now: bind port 0, note what the OS picked, let it go. */
function freePort(api: DenoApi): number {
  const listener = api.listen({ hostname: '127.0.0.1', port: 0 })
  const port = listener.addr.port
  listener.close()
  return port
}

async function main(api: DenoApi): Promise<number> {
  const started = performance.now()
  const dir = await api.makeTempDir({ prefix: 'gatehouse-deno-' })
  const dataDir = join(dir, 'data')
  const port = freePort(api)
  const base = `http://127.0.0.1:${port}`

  const env: Record<string, string> = {
    PORT: String(port),
    GATEHOUSE_HOST: '127.0.0.1',
    GATEHOUSE_PUBLIC_URL: base,
    GATEHOUSE_DATA_DIR: dataDir,
    DATABASE_URL: `sqlite:${join(dataDir, 'gatehouse.db')}`,
    GATEHOUSE_LOG_LEVEL: 'info',
  }
  for (const name of PASS_THROUGH_ENV) {
    const value = api.env.get(name)
    if (value !== undefined) env[name] = value
  }
  const args = [
    'run',
    '--no-prompt',
    `--allow-net=127.0.0.1:${port}`,
    '--allow-env',
    `--allow-read=${join(ROOT, 'migrations')},${dataDir}`,
    `--allow-write=${dataDir}`,
    join(ROOT, 'src/cli.ts'),
    'serve',
  ]
  const child = new api.Command(api.execPath(), {
    args,
    cwd: ROOT,
    env,
    clearEnv: true,
    stdin: 'null',
    stdout: 'piped',
    stderr: 'piped',
  }).spawn()
  let exited: { code: number; signal: string | null } | undefined
  const status = child.status.then((s) => (exited = s))
  const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()])
  const killChild = () => {
    if (!exited) child.kill('SIGKILL')
  }
  api.addSignalListener('SIGINT', () => {
    killChild()
    api.exit(130)
  })
  const spawned = performance.now()
  console.log(`     deno ${api.version.deno}: ${args.join(' ')}`)

  try {
    await checkServer(
      {
        port,
        spawned,
        exitCode: () => exited?.code,
        terminate: () => {
          child.kill('SIGTERM')
          return status
        },
      },
      {
        healthTimeoutMs: HEALTH_TIMEOUT_MS,
        exitTimeoutMs: EXIT_TIMEOUT_MS,
        readyzLabel: 'migrations applied through node:sqlite',
      },
    )

    console.log(`deno smoke test passed in ${seconds(started)}`)
    return 0
  } catch (error) {
    if (!(error instanceof CheckFailed)) throw error
    killChild()
    const captured = await withTimeout(output, 2000)
    if (captured !== 'timeout') console.log(`--- server output ---\n${captured[0]}${captured[1]}`)
    return 1
  } finally {
    killChild()
    await status
    await api.remove(dir, { recursive: true })
  }
}

try {
  deno.exit(await main(deno))
} catch (error) {
  if (!(error instanceof CheckFailed))
    console.error(`deno smoke test crashed: ${error instanceof Error ? error.stack : String(error)}`)
  deno.exit(1)
}
