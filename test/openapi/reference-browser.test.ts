import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import type { Browser } from 'playwright-core'
import { assertChromium, launchChromium } from '../fixtures/browser.ts'
import { startTestServer } from '../setup.ts'

// The API reference at /openapi in a real browser (Debian's Chromium) cut off from everything
// but loopback, as a self-hosted Gatehouse without Internet is. CI installs Chromium; without it
// these tests fail, never skip.

const TIMEOUT_MS = 10_000
const TEST_TIMEOUT_MS = 60_000

describe('the API reference in a browser without Internet', () => {
  let server: Awaited<ReturnType<typeof startTestServer>> | undefined
  let browser: Browser | undefined

  beforeAll(async () => {
    assertChromium()
    server = await startTestServer()
    browser = await launchChromium()
  }, TEST_TIMEOUT_MS)

  afterAll(async () => {
    await browser?.close()
    await server?.close()
  })

  it(
    'lists the operations with nothing loaded from another host, under a CSP that allows no other',
    async () => {
      const context = await browser!.newContext()
      context.setDefaultTimeout(TIMEOUT_MS)
      const elsewhere: string[] = []
      await context.route('**/*', (route) => {
        const { hostname, href } = new URL(route.request().url())
        if (hostname === '127.0.0.1' || hostname === 'localhost') return route.continue()
        elsewhere.push(href)
        return route.abort('internetdisconnected')
      })
      try {
        const page = await context.newPage()
        const refused: string[] = []
        page.on('console', (message) => {
          if (message.type() === 'error') refused.push(message.text())
        })
        const response = await page.goto(`${server!.url}/openapi`)
        expect(response?.status()).toBe(200)

        const operation = page.locator('details', { hasText: 'Register an MCP server (organization admins)' })
        await expect(operation.locator('summary').isVisible()).resolves.toBe(true)
        expect(await operation.locator('summary').textContent()).toContain('/api/v1/mcp/servers')
        // It opens without JavaScript and shows what to send.
        await operation.locator('summary').click()
        await expect(operation.getByText('display_name', { exact: true }).isVisible()).resolves.toBe(true)
        expect(await page.getByText('Sign in with a password').isVisible()).toBe(true)

        const csp = response!.headers()['content-security-policy'] ?? ''
        expect(csp).toMatch(/default-src '(none|self)'/)
        expect(csp).toContain("frame-ancestors 'none'")
        expect(csp).not.toMatch(/https?:|\*|unsafe-eval|unsafe-inline/)
        expect(elsewhere).toEqual([])
        expect(refused).toEqual([])
      } finally {
        await context.close()
      }
    },
    TEST_TIMEOUT_MS,
  )
})
