import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { assertChromium, launchChromium } from '../fixtures/browser.ts'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { OWNER, startTestServer } from '../setup.ts'
import { findFreePort } from '../fixtures/cli-process.ts'
import { postJson } from '../fixtures/http.ts'
import { createPkce, type Pkce } from './helpers.ts'

// The sign-in and consent pages in a real browser (Debian's Chromium), from the authorization
// URL to the client's callback. CI installs Chromium; without it these tests fail, never skip.

const CLIENT_NAME = 'Browser Test App'
const SCOPE = 'mcp offline_access'
const TIMEOUT_MS = 10_000

describe('the consent page in Chromium', () => {
  let server: Awaited<ReturnType<typeof startTestServer>> | undefined
  let issuer: string
  let browser: Browser | undefined
  /** The client's side: records each callback and serves a page that frames the authorize URL. */
  let client: ReturnType<typeof Bun.serve> | undefined
  let redirectUri: string
  const callbacks: URLSearchParams[] = []
  let framedUrl = ''

  beforeAll(async () => {
    assertChromium()

    client = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch(request) {
        const url = new URL(request.url)
        if (url.pathname === '/callback') {
          callbacks.push(url.searchParams)
          return new Response('done', { headers: { 'content-type': 'text/plain' } })
        }
        if (url.pathname === '/own')
          return new Response('<!doctype html><p id="own">framed fine</p>', {
            headers: { 'content-type': 'text/html' },
          })
        if (url.pathname === '/frame') {
          // A page on another origin that tries to show the consent page inside itself, next to
          // a frame of its own that may be shown (the control: frames are readable here).
          const html = `<!doctype html>
<iframe name="own" src="/own"></iframe>
<iframe name="consent" src="${Bun.escapeHTML(framedUrl)}" onload="window.consentLoaded = true"></iframe>`
          return new Response(html, { headers: { 'content-type': 'text/html' } })
        }
        return new Response('not found', { status: 404 })
      },
    })
    redirectUri = `http://127.0.0.1:${client.port}/callback`

    const port = await findFreePort()
    issuer = `http://127.0.0.1:${port}`
    server = await startTestServer({ port, publicUrl: issuer })
    const created = await postJson(`${server.url}/api/v1/users/first`, OWNER, TIMEOUT_MS)
    if (created.status !== 201) throw new Error(`first user: ${created.status} ${await created.text()}`)

    browser = await launchChromium()
  })

  afterAll(async () => {
    await browser?.close()
    await client?.stop(true)
    await server?.close()
  })

  /** A fresh public client per test, so consent given in one test cannot skip the page in another. */
  async function registerClient(): Promise<string> {
    const response = await postJson(
      `${issuer}/oauth2/register`,
      {
        client_name: CLIENT_NAME,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
      },
      TIMEOUT_MS,
    )
    if (response.status !== 201) throw new Error(`register: ${response.status} ${await response.text()}`)
    return (await response.json()).client_id
  }

  function authorizeUrl(clientId: string, pkce: Pkce, state: string): string {
    const url = new URL('/oauth2/authorize', issuer)
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUri,
      scope: SCOPE,
      state,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
    }).toString()
    return url.href
  }

  /** A new browser profile (no cookies), with every wait bounded. */
  async function newPage(): Promise<Page> {
    const context = await browser!.newContext()
    context.setDefaultTimeout(TIMEOUT_MS)
    context.setDefaultNavigationTimeout(TIMEOUT_MS)
    return context.newPage()
  }

  /** Opens the authorize URL, lands on the sign-in page and signs in as the owner. */
  async function signInThrough(page: Page, url: string): Promise<void> {
    await page.goto(url)
    expect(new URL(page.url()).pathname).toBe('/login')
    await page.fill('#login', OWNER.username)
    await page.fill('#password', OWNER.password)
    await page.click('button[type=submit]')
    await page.locator('#client-name').waitFor()
  }

  async function openConsent(): Promise<{ page: Page; clientId: string; pkce: Pkce; state: string }> {
    const clientId = await registerClient()
    const pkce = createPkce()
    const state = crypto.randomUUID()
    const page = await newPage()
    await signInThrough(page, authorizeUrl(clientId, pkce, state))
    return { page, clientId, pkce, state }
  }

  /** Clicks a button that leaves for the client's callback; returns the query the client received. */
  async function decide(page: Page, button: 'Allow' | 'Deny'): Promise<URLSearchParams> {
    const before = callbacks.length
    await page.getByRole('button', { name: button }).click()
    await page.waitForURL((url) => url.origin === new URL(redirectUri).origin && url.pathname === '/callback')
    expect(await page.textContent('body')).toBe('done')
    expect(callbacks.length).toBe(before + 1)
    return callbacks.at(-1)!
  }

  it('names the client, the host the code goes to and warns that it is this computer', async () => {
    const { page } = await openConsent()
    try {
      expect(await page.textContent('#client-name')).toBe(CLIENT_NAME)
      expect(await page.textContent('#redirect-host')).toBe(`127.0.0.1:${new URL(redirectUri).port}`)
      expect(await page.textContent('.warning')).toContain('localhost')
      const scopes = await page.locator('#scopes code').allTextContents()
      expect(scopes).toEqual(['mcp', 'offline_access'])

      const directory = await mkdtemp(join(tmpdir(), 'gatehouse-consent-'))
      const screenshot = join(directory, 'consent.png')
      await page.screenshot({ path: screenshot, fullPage: true })
      console.log(`consent page screenshot: ${screenshot}`)
    } finally {
      await page.context().close()
    }
  })

  it('sends the browser back with a code, the state and the issuer on Allow, and the code buys a token', async () => {
    const { page, clientId, pkce, state } = await openConsent()
    try {
      const callback = await decide(page, 'Allow')
      expect(callback.get('state')).toBe(state)
      expect(callback.get('iss')).toBe(issuer)
      expect(callback.get('error')).toBeNull()
      const code = callback.get('code')
      expect(code).toBeString()

      const response = await fetch(`${issuer}/oauth2/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: code!,
          redirect_uri: redirectUri,
          code_verifier: pkce.verifier,
          client_id: clientId,
        }),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
      expect(response.status).toBe(200)
      const tokens = await response.json()
      expect(tokens).toMatchObject({ token_type: 'Bearer', scope: SCOPE })
      expect(tokens.access_token).toBeString()
      expect(tokens.refresh_token).toBeString()
    } finally {
      await page.context().close()
    }
  })

  it('sends the browser back with access_denied and the state on Deny', async () => {
    const { page, state } = await openConsent()
    try {
      const callback = await decide(page, 'Deny')
      expect(callback.get('error')).toBe('access_denied')
      expect(callback.get('state')).toBe(state)
      expect(callback.get('iss')).toBe(issuer)
      expect(callback.get('code')).toBeNull()
    } finally {
      await page.context().close()
    }
  })

  it('serves the consent page with headers that forbid framing', async () => {
    const clientId = await registerClient()
    const page = await newPage()
    try {
      const consent = page.waitForResponse(
        (response) => new URL(response.url()).pathname === '/oauth2/authorize' && response.status() === 200,
      )
      await signInThrough(page, authorizeUrl(clientId, createPkce(), 'headers'))
      const headers = (await consent).headers()
      expect(headers['x-frame-options']).toBe('DENY')
      expect(headers['content-security-policy']).toContain("frame-ancestors 'none'")
    } finally {
      await page.context().close()
    }
  })

  it('does not show the consent page inside a frame on another origin', async () => {
    const clientId = await registerClient()
    const page = await newPage()
    try {
      // Signed in first, so the frame would get the consent page itself rather than the sign-in page.
      await signInThrough(page, authorizeUrl(clientId, createPkce(), 'signed-in'))
      framedUrl = authorizeUrl(clientId, createPkce(), 'framed')
      const served = page.waitForResponse((response) => response.url() === framedUrl && response.status() === 200)
      await page.goto(`http://127.0.0.1:${client!.port}/frame`)
      // The server did answer the framed request with the consent page ...
      expect((await served).headers()['x-frame-options']).toBe('DENY')
      await page.waitForFunction(() => (window as { consentLoaded?: boolean }).consentLoaded === true)

      // ... a frame the browser may show is readable here (the control) ...
      expect(await page.frame({ name: 'own' })!.textContent('#own')).toBe('framed fine')
      // ... but the consent page is not rendered in its frame: no client name, no Allow button.
      const framed = page.frame({ name: 'consent' })!
      expect(await framed.locator('#client-name').count()).toBe(0)
      expect(await framed.getByRole('button', { name: 'Allow' }).count()).toBe(0)
    } finally {
      await page.context().close()
    }
  })
})
