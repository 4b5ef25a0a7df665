import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { connect } from 'node:net'
import {
  cliEnv,
  createTempDir,
  findFreePort,
  killChildren,
  spawnCli,
  waitUntilHealthy,
  withTimeout,
} from '../fixtures/cli-process.ts'

/** Collects a child's output; `waitFor` resolves once the output contains a piece of text. */
function watchOutput(stream: ReadableStream<Uint8Array>) {
  let output = ''
  const waiters: { text: string; resolve: () => void }[] = []
  const done = (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) {
      output += decoder.decode(chunk, { stream: true })
      for (const waiter of [...waiters])
        if (output.includes(waiter.text)) {
          waiters.splice(waiters.indexOf(waiter), 1)
          waiter.resolve()
        }
    }
  })()
  return {
    output: () => output,
    done,
    waitFor: (text: string) =>
      output.includes(text) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ text, resolve })),
  }
}

/**
 * Opens a fresh TCP connection (never a pooled keep-alive one, as fetch might reuse) and reports
 * whether the server accepted it.
 */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' })
    socket.once('connect', () => {
      socket.destroy()
      resolve('accepted')
    })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
  })
}

/**
 * A login whose JSON body arrives in two halves, the second only after `release()`, so the
 * request is provably still in flight while the server stops. `firstHalfSent` resolves once
 * fetch has taken the first half and asks for more.
 */
function startSlowLogin(base: string) {
  let release!: () => void
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  let markFirstHalfSent!: () => void
  const firstHalfSent = new Promise<void>((resolve) => {
    markFirstHalfSent = resolve
  })
  const encoder = new TextEncoder()
  let pulls = 0
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      pulls++
      if (pulls === 1) return controller.enqueue(encoder.encode('{"login":"nobody@example.com",'))
      markFirstHalfSent()
      await released
      controller.enqueue(encoder.encode('"password":"not-the-password"}'))
      controller.close()
    },
  })
  const response = fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    duplex: 'half',
  } as RequestInit).then(
    async (r) => ({ status: r.status, body: await r.json() }),
    (error: unknown) => ({ status: 0, body: String(error) }),
  )
  return { response, release, firstHalfSent }
}

describe('graceful shutdown on SIGTERM', () => {
  const dataDir = createTempDir()
  let inFlight: { status: number; body: unknown }
  let newConnection: string
  let exitCode: number | null
  let output: string

  beforeAll(async () => {
    const port = await findFreePort()
    const base = `http://127.0.0.1:${port}`
    const child = spawnCli(
      ['serve'],
      cliEnv({ PORT: String(port), GATEHOUSE_HOST: '127.0.0.1', GATEHOUSE_DATA_DIR: dataDir.path }),
    )
    const stdout = watchOutput(child.stdout)
    await waitUntilHealthy(`${base}/healthz`, child)

    const login = startSlowLogin(base)
    await withTimeout(login.firstHalfSent, 5_000, 'the first half of the login body to be sent')
    // Let the server read the request head it was just sent: until it has, the connection counts as
    // idle and a stopping server may close it. Generous, because a loaded CI machine is slow.
    await Bun.sleep(400)

    child.kill('SIGTERM')
    await withTimeout(stdout.waitFor('shutting down'), 5_000, 'the server to begin shutting down')
    // The log line comes just before the listener closes, so allow the server a moment to close it.
    const deadline = Date.now() + 5_000
    newConnection = await tryConnect(port)
    while (newConnection === 'accepted' && Date.now() < deadline) {
      await Bun.sleep(20)
      newConnection = await tryConnect(port)
    }

    login.release()
    inFlight = await withTimeout(login.response, 10_000, 'the in-flight login')
    exitCode = await withTimeout(child.exited, 10_000, 'the server to exit')
    await stdout.done
    output = stdout.output()
  })

  afterAll(() => {
    killChildren()
    dataDir.remove()
  })

  it('still answers a request that was in flight when SIGTERM arrived', () => {
    expect(inFlight).toEqual({ status: 401, body: { message: 'Incorrect email/username or password' } })
  })

  it('refuses new connections while it finishes the request in flight', () => {
    expect(newConnection).toBe('ECONNREFUSED')
  })

  it('exits with status 0 after logging that it stopped', () => {
    expect(exitCode).toBe(0)
    expect(output).toContain('"msg":"stopped"')
  })
})
