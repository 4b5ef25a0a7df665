import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import type { Browser, Page } from 'playwright-core'
import { assertChromium, launchChromium } from '../fixtures/browser.ts'
import { findFreePort } from '../fixtures/cli-process.ts'
import { signUpOwner } from '../fixtures/http.ts'
import { OWNER, startTestServer } from '../setup.ts'

// Two Gatehouses on one host name, 127.0.0.1, on two ports, in one real browser (Debian's
// Chromium): cookies ignore ports, so this is what trying an OAuth upstream locally looks like.
// CI installs Chromium; without it these tests fail, never skip.

const TIMEOUT_MS = 10_000
const TEST_TIMEOUT_MS = 60_000

describe('two Gatehouses on one host name in one browser', () => {
  const servers: Awaited<ReturnType<typeof startTestServer>>[] = []
  let browser: Browser | undefined

  beforeAll(async () => {
    assertChromium()
    for (let i = 0; i < 2; i++) {
      const port = await findFreePort()
      const publicUrl = `http://127.0.0.1:${port}`
      servers.push(await startTestServer({ port, publicUrl }))
      await signUpOwner(publicUrl, TIMEOUT_MS)
    }
    browser = await launchChromium()
  }, TEST_TIMEOUT_MS)

  afterAll(async () => {
    await browser?.close()
    await Promise.all(servers.map((server) => server.close()))
  })

  /** Signs in on the sign-in page of the Gatehouse at `baseUrl`, then opens its connections. */
  async function signIn(page: Page, baseUrl: string): Promise<void> {
    await page.goto(`${baseUrl}/login?next=/connections`)
    await page.fill('#login', OWNER.username)
    await page.fill('#password', OWNER.password)
    await page.click('button[type=submit]')
    await page.waitForURL(`${baseUrl}/connections`)
  }

  /** Whether the browser is still signed in there: its connections page shows instead of the sign-in page. */
  async function isSignedIn(page: Page, baseUrl: string): Promise<boolean> {
    await page.goto(`${baseUrl}/connections`)
    return new URL(page.url()).pathname === '/connections' && (await page.textContent('h1')) === 'Your MCP servers'
  }

  it(
    'keeps the browser signed in to the first after signing in to the second',
    async () => {
      const [first, second] = servers.map((server) => server.url)
      const context = await browser!.newContext()
      context.setDefaultTimeout(TIMEOUT_MS)
      try {
        const page = await context.newPage()
        await signIn(page, first)
        await signIn(page, second)
        expect(await isSignedIn(page, first)).toBe(true)
        expect(await isSignedIn(page, second)).toBe(true)

        // One session cookie each, under names of their own, both HttpOnly.
        const sessions = (await context.cookies()).filter((cookie) => cookie.name.startsWith('gatehouse_session'))
        expect(sessions).toHaveLength(2)
        expect(new Set(sessions.map((cookie) => cookie.name)).size).toBe(2)
        for (const cookie of sessions) expect(cookie).toMatchObject({ domain: '127.0.0.1', path: '/', httpOnly: true })

        // Signing out of the second leaves the first signed in.
        const signedOut = await context.request.post(`${second}/api/v1/auth/logout`, {
          headers: {
            'x-csrf-token': (await (await context.request.get(`${second}/api/v1/auth/csrf`)).json()).csrf_token,
          },
        })
        expect(signedOut.status()).toBe(204)
        expect(await isSignedIn(page, second)).toBe(false)
        expect(await isSignedIn(page, first)).toBe(true)
      } finally {
        await context.close()
      }
    },
    TEST_TIMEOUT_MS,
  )
})
