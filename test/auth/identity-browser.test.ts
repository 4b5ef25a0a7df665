import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { cookieNamesFor } from '../../src/auth/cookies.ts'
import { assertChromium, launchChromium } from '../fixtures/browser.ts'
import type { Browser } from 'playwright-core'
import { loadConfig } from '../../src/config.ts'
import { findFreePort } from '../fixtures/cli-process.ts'
import { postJson } from '../fixtures/http.ts'
import { gatehouseLoginClient } from '../fixtures/identity-providers.ts'
import { type OidcProviderServer, startOidcProvider } from '../fixtures/upstreams.ts'
import { OWNER, startTestServer } from '../setup.ts'

// Signing in with an identity provider in a real browser (Debian's Chromium): Gatehouse's sign-in
// page, its "Sign in with …" button, a real OpenID provider (oidc-provider, whose interaction route
// signs the fixture's account in and consents without a page of its own), and back to where the
// user was going, signed in. CI installs Chromium; without it this test fails, never skips.

const TIMEOUT_MS = 10_000
const CLIENT_ID = 'gatehouse-browser'
const CLIENT_SECRET = 'gatehouse-client-secret'

describe('identity-provider sign-in in Chromium', () => {
  let idp: OidcProviderServer | undefined
  let server: Awaited<ReturnType<typeof startTestServer>> | undefined
  let browser: Browser | undefined
  let publicUrl: string

  beforeAll(async () => {
    assertChromium()
    const port = await findFreePort()
    publicUrl = `http://127.0.0.1:${port}`
    idp = await startOidcProvider({
      accountId: 'wanda',
      accounts: { wanda: { email: 'wanda@example.com', email_verified: true, name: 'Wanda Browser' } },
      clients: [gatehouseLoginClient(publicUrl, CLIENT_ID, CLIENT_SECRET)],
    })
    const { oidc } = loadConfig({
      GATEHOUSE_OIDC_ISSUER: idp.issuer,
      GATEHOUSE_OIDC_CLIENT_ID: CLIENT_ID,
      GATEHOUSE_OIDC_CLIENT_SECRET: CLIENT_SECRET,
      GATEHOUSE_OIDC_DISPLAY_NAME: 'Acme SSO',
    })
    server = await startTestServer({ port, publicUrl, oidc })
    const created = await postJson(`${server.url}/api/v1/users/first`, OWNER, TIMEOUT_MS)
    if (created.status !== 201) throw new Error(`first user: ${created.status} ${await created.text()}`)

    browser = await launchChromium()
  })

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    await idp?.close()
  })

  it('signs in by clicking "Sign in with Acme SSO" and lands back where the user was going, signed in', async () => {
    const context = await browser!.newContext()
    context.setDefaultTimeout(TIMEOUT_MS)
    context.setDefaultNavigationTimeout(TIMEOUT_MS)
    const page = await context.newPage()
    try {
      await page.goto(`${publicUrl}/login?next=/connections`)
      const visitedProvider = page.waitForRequest((request) => request.url().startsWith(idp!.issuer))
      await page.getByRole('link', { name: 'Sign in with Acme SSO' }).click()
      await visitedProvider
      await page.waitForURL(`${publicUrl}/connections`)
      expect(await page.textContent('h1')).toBe('Your MCP servers')

      // The browser holds the session: the API answers for the new user through its cookies
      // (the page's CSP allows it no fetch, so the context's own requests carry them).
      const me = await (await context.request.get(`${publicUrl}/api/v1/users/me`)).json()
      expect(me).toMatchObject({ email: 'wanda@example.com', display_name: 'Wanda Browser', login_type: 'oidc' })
      const cookies = await context.cookies(publicUrl)
      expect(cookies.find((cookie) => cookie.name === cookieNamesFor(publicUrl).session)).toMatchObject({
        httpOnly: true,
      })
      expect(cookies.find((cookie) => cookie.name === cookieNamesFor(publicUrl).identityFlow('oidc'))).toBeUndefined()

      // Back on the sign-in page, it now says who is signed in.
      await page.goto(`${publicUrl}/login`)
      expect(await page.textContent('h1')).toBe('Signed in')
      expect(await page.textContent('strong')).toBe('wanda')
    } finally {
      await context.close()
    }
  })
})
