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

const HEALTH_TIMEOUT_MS = 15_000
const EXIT_TIMEOUT_MS = 10_000
const OWNER = { email: 'owner@example.com', username: 'owner', password: 'owner-password-1' }

class CheckFailed extends Error {}

async function check(name: string, run: () => Promise<string>): Promise<void> {
  let detail: string
  try {
    detail = await run()
  } catch (error) {
    process.stdout.write(`FAIL ${name}: ${error instanceof Error ? error.message : String(error)}\n`)
    throw new CheckFailed(name)
  }
  process.stdout.write(`ok   ${name}${detail ? ` (${detail})` : ''}\n`)
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(2)} s`
}

/** A port nothing listens on right now: bind port 0, note what the OS picked, let it go. */
function freePort(): number {
  const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  const port = probe.port!
  probe.stop(true)
  return port
}

async function expectStatus(response: Response, expected: number): Promise<any> {
  const text = await response.text()
  if (response.status !== expected) throw new Error(`expected ${expected}, got ${response.status}: ${text.slice(0, 300)}`)
  return text ? JSON.parse(text) : undefined
}

const postJson = (url: string, body: unknown) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

const withTimeout = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([promise, Bun.sleep(ms).then(() => 'timeout' as const)])

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
  const base = `http://127.0.0.1:${port}`
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
    const spawned = performance.now()

    await check(`GET /healthz = 200 on port ${port}`, async () => {
      const deadline = spawned + HEALTH_TIMEOUT_MS
      while (performance.now() < deadline) {
        if (child!.exitCode !== null) throw new Error(`the server exited with ${child!.exitCode} before answering`)
        const response = await fetch(`${base}/healthz`).catch(() => undefined)
        if (response?.status === 200) return `after ${seconds(spawned)}`
        await Bun.sleep(100)
      }
      throw new Error(`no 200 within ${HEALTH_TIMEOUT_MS / 1000} s`)
    })

    await check('POST /api/v1/users/first = 201', async () => {
      const user = await expectStatus(await postJson(`${base}/api/v1/users/first`, OWNER), 201)
      return `role ${user.role}`
    })

    let token = ''
    await check('POST /api/v1/auth/login = 200 with a session token', async () => {
      const session = await expectStatus(
        await postJson(`${base}/api/v1/auth/login`, { login: OWNER.username, password: OWNER.password }),
        200,
      )
      if (typeof session?.session_token !== 'string') throw new Error('no session_token in the response')
      token = session.session_token
      return ''
    })

    await check('GET /api/v1/users/me = 200 as owner', async () => {
      const me = await expectStatus(await fetch(`${base}/api/v1/users/me`, { headers: { authorization: `Bearer ${token}` } }), 200)
      if (me?.username !== OWNER.username) throw new Error(`signed in as ${JSON.stringify(me?.username)}`)
      return ''
    })

    await check('GET /readyz = 200 (embedded migrations applied)', async () => {
      await expectStatus(await fetch(`${base}/readyz`), 200)
      return ''
    })

    await check('SIGTERM: exit code 0', async () => {
      const signalled = performance.now()
      child!.kill('SIGTERM')
      const result = await withTimeout(child!.exited, EXIT_TIMEOUT_MS)
      if (result === 'timeout') throw new Error(`still running ${EXIT_TIMEOUT_MS / 1000} s after SIGTERM`)
      if (result !== 0) throw new Error(`exit code ${result}${child!.signalCode ? ` (${child!.signalCode})` : ''}`)
      return `after ${seconds(signalled)}`
    })

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
  if (!(error instanceof CheckFailed)) process.stderr.write(`binary smoke test crashed: ${error instanceof Error ? error.stack : String(error)}\n`)
  process.exit(1)
}
