/**
 * Proves the compiled binary stands on its own: copied alone into an empty folder (no
 * node_modules, no migrations/), it migrates a fresh SQLite database, answers, signs a user in and
 * stops cleanly on SIGTERM. Login and /users/me are checked because they are what a broken
 * minification breaks first (see the flags in scripts/build.ts).
 *
 *   bun scripts/binary-smoke.ts              build dist/gatehouse first
 *   bun scripts/binary-smoke.ts --no-build   use the dist/gatehouse that is there
 *
 * One line per check; exits 1 on the first failure, with the server's output.
 */
import { access, chmod, copyFile, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build, OUTFILE } from './build.ts'
import { check, CheckFailed, checkServer, seconds, withTimeout } from './smoke-checks.ts'

const HEALTH_TIMEOUT_MS = 15_000
const EXIT_TIMEOUT_MS = 10_000

/** A port nothing listens on right now: bind port 0, note what the OS picked, let it go. */
function freePort(): number {
  const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  const port = probe.port!
  probe.stop(true)
  return port
}

async function main(): Promise<number> {
  const started = performance.now()
  if (process.argv.includes('--no-build')) {
    await check('existing binary', async () => {
      await access(OUTFILE)
      return OUTFILE
    })
  } else {
    await check('build', async () => {
      const { bytes } = await build()
      return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
    })
  }

  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-binary-'))
  const binary = join(dir, 'gatehouse')
  const port = freePort()
  let child: Bun.Subprocess<'ignore', 'pipe', 'pipe'> | undefined
  let output: Promise<string[]> | undefined
  const killChild = () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  process.on('SIGINT', () => {
    killChild()
    process.exit(130)
  })

  try {
    await check('copied alone into an empty folder', async () => {
      await copyFile(OUTFILE, binary)
      await chmod(binary, 0o755)
      const entries = await readdir(dir)
      if (entries.join() !== 'gatehouse') throw new Error(`folder holds ${entries.join(', ')}`)
      return dir
    })

    child = Bun.spawn([binary, 'serve'], {
      cwd: dir,
      // Only what the binary needs: nothing from this shell (DATABASE_URL, keys) leaks in.
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        PORT: String(port),
        GATEHOUSE_HOST: '127.0.0.1',
        GATEHOUSE_DATA_DIR: join(dir, 'data'),
        GATEHOUSE_LOG_LEVEL: 'info',
      },
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    })
    output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()])
    const server = child
    await checkServer(
      {
        port,
        spawned: performance.now(),
        exitCode: () => server.exitCode ?? undefined,
        terminate: async () => {
          server.kill('SIGTERM')
          return { code: await server.exited, signal: server.signalCode }
        },
      },
      {
        healthTimeoutMs: HEALTH_TIMEOUT_MS,
        exitTimeoutMs: EXIT_TIMEOUT_MS,
        readyzLabel: 'embedded migrations applied',
      },
    )

    process.stdout.write(`binary smoke test passed in ${seconds(started)}\n`)
    return 0
  } catch (error) {
    if (!(error instanceof CheckFailed)) throw error
    killChild()
    if (output) {
      const [stdout, stderr] = await withTimeout(output, 2000).then((o) => (o === 'timeout' ? ['', ''] : o))
      process.stdout.write(`--- server output ---\n${stdout}${stderr}`)
    }
    return 1
  } finally {
    killChild()
    await rm(dir, { recursive: true, force: true })
  }
}

try {
  process.exit(await main())
} catch (error) {
  if (!(error instanceof CheckFailed))
    process.stderr.write(`binary smoke test crashed: ${error instanceof Error ? error.stack : String(error)}\n`)
  process.exit(1)
}
