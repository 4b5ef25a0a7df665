/**
 * The checks scripts/binary-smoke.ts (the compiled binary, under Bun) and scripts/deno-smoke.ts
 * (`src/cli.ts serve` under Deno) run against a freshly started server, shared so both prove the
 * same things: health, first user, login, /users/me, readiness and a clean exit on SIGTERM.
 * Deno runs this file too: only web APIs here (fetch, setTimeout, performance, console), no Bun
 * or Node ones, and one line per check on stdout.
 */

/** Thrown after a check has printed its FAIL line, so the script prints the server's output and exits 1. */
export class CheckFailed extends Error {}

/** Runs one check and prints `ok   <name> (<detail>)`, or `FAIL <name>: <why>` and throws CheckFailed. */
export async function check(name: string, run: () => Promise<string>): Promise<void> {
  let detail: string
  try {
    detail = await run()
  } catch (error) {
    console.log(`FAIL ${name}: ${error instanceof Error ? error.message : String(error)}`)
    throw new CheckFailed(name)
  }
  console.log(`ok   ${name}${detail ? ` (${detail})` : ''}`)
}

/** Time since `since` (a performance.now()), as the checks print it: `1.23 s`. */
export function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(2)} s`
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** `promise`, or 'timeout' once `ms` have passed; the timer is cleared so it never holds the process open. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)))
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

const OWNER = { email: 'owner@example.com', username: 'owner', password: 'owner-password-1' }

async function expectStatus(response: Response, expected: number): Promise<any> {
  const text = await response.text()
  if (response.status !== expected)
    throw new Error(`expected ${expected}, got ${response.status}: ${text.slice(0, 300)}`)
  return text ? JSON.parse(text) : undefined
}

const postJson = (url: string, body: unknown) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

/** The server under test, as the checks see it whatever runtime started it. */
export interface SmokeServer {
  port: number
  /** When it was spawned (performance.now()), for the time to the first healthy answer. */
  spawned: number
  /** Its exit code once it has exited, undefined while it runs. */
  exitCode(): number | undefined
  /** Sends SIGTERM and resolves when it has exited, with its exit code and the signal that ended it, if any. */
  terminate(): Promise<{ code: number; signal: string | number | null }>
}

/**
 * Every check of a fresh server on 127.0.0.1:`server.port` with an empty database: /healthz
 * within `healthTimeoutMs`, the first user, its login and /users/me, the API reference at
 * /openapi (rendered from the routes, so a build that lost them shows here), /readyz
 * (`readyzLabel` says what a 200 there proves for this runtime) and exit code 0 within
 * `exitTimeoutMs` of SIGTERM.
 * Throws CheckFailed at the first failure.
 */
export async function checkServer(
  server: SmokeServer,
  options: { healthTimeoutMs: number; exitTimeoutMs: number; readyzLabel: string },
): Promise<void> {
  const base = `http://127.0.0.1:${server.port}`
  const { healthTimeoutMs, exitTimeoutMs } = options

  await check(`GET /healthz = 200 on port ${server.port}`, async () => {
    const deadline = server.spawned + healthTimeoutMs
    while (performance.now() < deadline) {
      const exitCode = server.exitCode()
      if (exitCode !== undefined) throw new Error(`the server exited with ${exitCode} before answering`)
      const response = await fetch(`${base}/healthz`).catch(() => undefined)
      if (response?.status === 200) return `after ${seconds(server.spawned)}`
      await response?.body?.cancel()
      await sleep(100)
    }
    throw new Error(`no 200 within ${healthTimeoutMs / 1000} s`)
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
    const me = await expectStatus(
      await fetch(`${base}/api/v1/users/me`, { headers: { authorization: `Bearer ${token}` } }),
      200,
    )
    if (me?.username !== OWNER.username) throw new Error(`signed in as ${JSON.stringify(me?.username)}`)
    return ''
  })

  await check('GET /openapi = 200, the API reference with no script', async () => {
    const response = await fetch(`${base}/openapi`)
    const html = await response.text()
    if (response.status !== 200) throw new Error(`expected 200, got ${response.status}: ${html.slice(0, 300)}`)
    if (!html.includes('Sign in with a password')) throw new Error('the page lists no operations')
    if (html.includes('<script')) throw new Error('the page carries a script')
    return `${Math.round(html.length / 1024)} KiB`
  })

  await check(`GET /readyz = 200 (${options.readyzLabel})`, async () => {
    await expectStatus(await fetch(`${base}/readyz`), 200)
    return ''
  })

  await check('SIGTERM: exit code 0', async () => {
    const signalled = performance.now()
    const result = await withTimeout(server.terminate(), exitTimeoutMs)
    if (result === 'timeout') throw new Error(`still running ${exitTimeoutMs / 1000} s after SIGTERM`)
    if (result.code !== 0) throw new Error(`exit code ${result.code}${result.signal ? ` (${result.signal})` : ''}`)
    return `after ${seconds(signalled)}`
  })
}
