import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { assertChromium, launchChromium } from '../fixtures/browser.ts'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, BrowserContextOptions, Locator, Page } from 'playwright-core'
import { findFreePort } from '../fixtures/cli-process.ts'
import { signUpOwner } from '../fixtures/http.ts'
import { startOAuthServer, startV2McpServer, type OAuthServer, type UpstreamServer } from '../fixtures/upstreams.ts'
import { OWNER, startTestServer } from '../setup.ts'

// The connections page in a real browser (Debian's Chromium) against a real Gatehouse, whose
// oauth2 upstream is a real MCP server behind a real authorization server that approves at once.
// CI installs Chromium; without it these tests fail, never skip.

const TIMEOUT_MS = 10_000
const TEST_TIMEOUT_MS = 60_000
const PHONE = { width: 375, height: 800 }

describe('the connections page in Chromium', () => {
  let as: OAuthServer | undefined
  let upstream: UpstreamServer | undefined
  let server: Awaited<ReturnType<typeof startTestServer>> | undefined
  let browser: Browser | undefined
  let baseUrl: string
  let ownerToken: string
  let oauthServerId: string
  let optInServerId: string

  async function api(method: string, path: string, body?: unknown): Promise<any> {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${ownerToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    const text = await response.text()
    if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`)
    return text ? JSON.parse(text) : undefined
  }

  beforeAll(async () => {
    assertChromium()
    as = await startOAuthServer()
    upstream = await startV2McpServer({ protectedBy: as.protect() })
    const port = await findFreePort()
    baseUrl = `http://127.0.0.1:${port}`
    server = await startTestServer({ port, publicUrl: baseUrl, outboundAllowPrivate: true })
    ownerToken = await signUpOwner(baseUrl, TIMEOUT_MS)
    // Created through the API: discovery finds the fixture AS and registers Gatehouse there.
    const oauth = await api('POST', '/api/v1/mcp/servers', {
      display_name: 'Fixture tracker with a rather long name that has to wrap on a phone',
      slug: 'tracker',
      description: 'Issues and projects, served by https://tracker.internal.example.com/mcp/v1/streamable-endpoint',
      url: upstream.url,
      auth_type: 'oauth2',
      availability: 'default_on',
      enabled: true,
    })
    expect(oauth.oauth2_registration).toBe('dynamic')
    oauthServerId = oauth.id
    const optIn = await api('POST', '/api/v1/mcp/servers', {
      display_name: 'Docs',
      slug: 'docs',
      description: 'Public documentation search; no sign-in needed.',
      url: upstream.url,
      auth_type: 'none',
      availability: 'default_off',
      enabled: true,
    })
    optInServerId = optIn.id

    browser = await launchChromium()
  }, TEST_TIMEOUT_MS)

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    await upstream?.close()
    await as?.close()
  })

  /** A new browser profile (no cookies), phone-sized, with every wait bounded. */
  async function newPage(options: BrowserContextOptions = {}): Promise<Page> {
    const context = await browser!.newContext({ viewport: PHONE, ...options })
    context.setDefaultTimeout(TIMEOUT_MS)
    context.setDefaultNavigationTimeout(TIMEOUT_MS)
    return context.newPage()
  }

  /** Opens /connections signed out, signs in on the page it is sent to, and comes back. */
  async function signInToConnections(page: Page): Promise<void> {
    await page.goto(`${baseUrl}/connections`)
    expect(new URL(page.url()).pathname).toBe('/login')
    await page.fill('#login', OWNER.username)
    await page.fill('#password', OWNER.password)
    await page.click('button[type=submit]')
    await page.waitForURL((url) => url.pathname === '/connections')
  }

  const item = (page: Page, slug: string): Locator => page.locator(`li.server[data-slug="${slug}"]`)
  const statusOf = (page: Page, slug: string) => item(page, slug).locator('.status').textContent()

  async function disconnectAll(): Promise<void> {
    await api('DELETE', `/api/v1/mcp/servers/${oauthServerId}/oauth2/disconnect`)
    await api('PUT', `/api/v1/mcp/servers/${optInServerId}/selection`, { selected: false })
  }

  it(
    'connects, disconnects and includes a server without JavaScript, and fits a phone screen',
    async () => {
      await disconnectAll()
      const page = await newPage({ javaScriptEnabled: false })
      try {
        await signInToConnections(page)
        expect(await statusOf(page, 'tracker')).toBe('Not connected')
        expect(await statusOf(page, 'docs')).toBe('No sign-in needed')

        // Connect: the whole flow in this window, through the upstream's AS and back here.
        await item(page, 'tracker').getByRole('link', { name: 'Connect' }).click()
        await page.waitForURL((url) => url.origin === baseUrl && url.pathname === '/connections')
        expect(await statusOf(page, 'tracker')).toBe('Connected · renews automatically')
        expect((await api('GET', `/api/v1/mcp/servers/${oauthServerId}`)).connection.status).toBe('connected')

        // Include the default_off server in /mcp with its switch.
        const toggle = item(page, 'docs').getByRole('switch', { name: 'Include in /mcp' })
        expect(await toggle.getAttribute('aria-checked')).toBe('false')
        await toggle.click()
        await page.waitForURL((url) => url.pathname === '/connections')
        expect(await item(page, 'docs').getByRole('switch').getAttribute('aria-checked')).toBe('true')
        expect((await api('GET', `/api/v1/mcp/servers/${optInServerId}`)).selected).toBe(true)

        const directory = await mkdtemp(join(tmpdir(), 'gatehouse-connections-'))
        const screenshot = join(directory, 'connections-375.png')
        await page.screenshot({ path: screenshot, fullPage: true })
        console.log(`connections page screenshot: ${screenshot}`)
        expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width)
        await page.setViewportSize({ width: 1280, height: 800 })
        const desktop = join(directory, 'connections-1280.png')
        await page.screenshot({ path: desktop, fullPage: true })
        console.log(`connections page screenshot (desktop): ${desktop}`)
        await page.setViewportSize(PHONE)

        // Disconnect.
        await item(page, 'tracker').getByRole('button', { name: 'Disconnect' }).click()
        await page.waitForURL((url) => url.pathname === '/connections')
        expect(await statusOf(page, 'tracker')).toBe('Not connected')
        expect((await api('GET', `/api/v1/mcp/servers/${oauthServerId}`)).connection.status).toBe('not_connected')
        expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width)
      } finally {
        await page.context().close()
      }
    },
    TEST_TIMEOUT_MS,
  )

  it(
    'connects in a popup with JavaScript and refreshes the list when the popup is done',
    async () => {
      await disconnectAll()
      const page = await newPage()
      try {
        await signInToConnections(page)
        expect(await statusOf(page, 'tracker')).toBe('Not connected')
        const popup = page.waitForEvent('popup')
        const reloaded = page.waitForEvent('load')
        await item(page, 'tracker').getByRole('link', { name: 'Connect' }).click()
        const opened = await popup
        // The callback page tells the opener and closes itself; the list reloads.
        // It may already be gone by the time the listener could be attached.
        if (!opened.isClosed()) await opened.waitForEvent('close')
        await reloaded
        expect(page.url()).toBe(`${baseUrl}/connections`)
        expect(await statusOf(page, 'tracker')).toBe('Connected · renews automatically')
      } finally {
        await page.context().close()
      }
    },
    TEST_TIMEOUT_MS,
  )

  it(
    'starts connecting from the link an MCP client shows, signing in first',
    async () => {
      await disconnectAll()
      const page = await newPage()
      try {
        await page.goto(`${baseUrl}/connections?connect=${oauthServerId}`)
        expect(new URL(page.url()).pathname).toBe('/login')
        await page.fill('#login', OWNER.username)
        await page.fill('#password', OWNER.password)
        await page.click('button[type=submit]')
        // Sign-in, the connect route, the upstream AS, the callback, and back to the list.
        await page.waitForURL((url) => url.origin === baseUrl && url.pathname === '/connections' && !url.search)
        expect(await statusOf(page, 'tracker')).toBe('Connected · renews automatically')
      } finally {
        await page.context().close()
      }
    },
    TEST_TIMEOUT_MS,
  )
})
