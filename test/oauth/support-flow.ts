import type { TestContext } from '../setup.ts'
import { cookieNamesFor } from '../../src/auth/cookies.ts'
import { testConfig } from '../../src/config.ts'
import { authorizeUrl, authorizeWithBearer, createPkce, REDIRECT_URI, tokenRequest, type Pkce } from './helpers.ts'

export const ISSUER = 'http://localhost:3000'
export const MCP_RESOURCE = 'http://localhost:3000/mcp'
export const API_RESOURCE = 'http://localhost:3000/api'

type Ctx = Pick<TestContext, 'app'>

/** RFC 6749 §2.3.1: client_id and secret are form-urlencoded, joined by a colon, then base64. */
export function basicAuth(clientId: string, secret: string): Record<string, string> {
  return { authorization: `Basic ${btoa(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`)}` }
}

/** The authorization parameters a well-behaved client sends, with its PKCE challenge. */
export function authorizeParams(clientId: string, pkce: Pkce, extra: Record<string, string | undefined> = {}) {
  return {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT_URI,
    code_challenge: pkce.challenge,
    code_challenge_method: 'S256',
    state: 'the-state',
    ...extra,
  }
}

/** GET /oauth2/authorize with the given parameters and headers (no redirect following). */
export function getAuthorize(
  ctx: Ctx,
  params: Record<string, string | undefined>,
  headers: Record<string, string> = {},
) {
  return ctx.app.handle(new Request(authorizeUrl(params), { headers }))
}

/** Runs the authorization step as a signed-in user and returns the code with its PKCE verifier. */
export async function authorizeCode(
  ctx: Ctx,
  sessionToken: string,
  clientId: string,
  extra: Record<string, string | undefined> = {},
): Promise<{ code: string; pkce: Pkce; location: URL }> {
  const pkce = createPkce()
  const location = await authorizeWithBearer(ctx, sessionToken, authorizeParams(clientId, pkce, extra))
  const code = location.searchParams.get('code')
  if (!code) throw new Error(`no code in ${location}`)
  return { code, pkce, location }
}

/** A code exchange; `auth` adds client authentication (headers or form fields). */
export function exchangeCode(
  ctx: Ctx,
  input: { clientId?: string; code: string; verifier: string; redirectUri?: string },
  extraForm: Record<string, string> = {},
  headers: Record<string, string> = {},
) {
  const form: Record<string, string> = {
    grant_type: 'authorization_code',
    code: input.code,
    redirect_uri: input.redirectUri ?? REDIRECT_URI,
    code_verifier: input.verifier,
    ...(input.clientId ? { client_id: input.clientId } : {}),
    ...extraForm,
  }
  return tokenRequest(ctx, form, headers)
}

/** A refresh for a public client. */
export function refresh(ctx: Ctx, clientId: string, refreshToken: string, extraForm: Record<string, string> = {}) {
  return tokenRequest(ctx, {
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
    client_id: clientId,
    ...extraForm,
  })
}

/** POST to an OAuth endpoint with a urlencoded form; returns status, headers and the parsed JSON. */
export async function oauthPost(
  ctx: Ctx,
  path: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
) {
  const response = await ctx.app.handle(
    new Request(`http://localhost${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    }),
  )
  const text = await response.text()
  return {
    status: response.status,
    headers: response.headers,
    body: (text ? JSON.parse(text) : undefined) as Record<string, any>,
  }
}

/** What GET /api/v1/users/me answers to a bearer token: the status and body a frontend sees. */
export async function callApi(ctx: Ctx, token: string): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await ctx.app.handle(
    new Request('http://localhost/api/v1/users/me', { headers: { authorization: `Bearer ${token}` } }),
  )
  return { status: response.status, body: await response.json(), headers: response.headers }
}

/** Hidden form fields of a rendered page, as a browser would submit them. */
export function hiddenFieldsOf(html: string): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const match of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g))
    fields[decodeHtml(match[1])] = decodeHtml(match[2])
  return fields
}

function decodeHtml(value: string): string {
  return value
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&')
}

/** The Cookie header for a browser signed in to a Gatehouse at `publicUrl` (the tests' default). */
export function sessionCookie(sessionToken: string, publicUrl = testConfig().publicUrl): Record<string, string> {
  return { cookie: `${cookieNamesFor(publicUrl).session}=${sessionToken}` }
}
