import { sha256 } from '@oslojs/crypto/sha2'
import { encodeBase64urlNoPadding } from '@oslojs/encoding'
import type { TestContext } from '../setup.ts'

export interface Pkce {
  verifier: string
  challenge: string
}

export function createPkce(): Pkce {
  const verifier = encodeBase64urlNoPadding(crypto.getRandomValues(new Uint8Array(32)))
  return { verifier, challenge: encodeBase64urlNoPadding(sha256(new TextEncoder().encode(verifier))) }
}

export const REDIRECT_URI = 'http://127.0.0.1:8765/callback'

/** Registers a client through RFC 7591 and returns the registration response. */
export async function registerClient(ctx: Pick<TestContext, 'app'>, metadata: Record<string, unknown> = {}) {
  const response = await ctx.app.handle(
    new Request('http://localhost/oauth2/register', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'Test client',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
        ...metadata,
      }),
    }),
  )
  if (response.status !== 201) throw new Error(`register: ${response.status} ${await response.text()}`)
  return response.json() as Promise<{ client_id: string; client_secret?: string; registration_access_token: string }>
}

export function authorizeUrl(params: Record<string, string | undefined>): string {
  const url = new URL('http://localhost/oauth2/authorize')
  for (const [name, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(name, value)
  return url.href
}

/**
 * Runs the authorization step as a scripted client does (seed behaviour): GET the authorize URL
 * with a bearer session token and, if the consent page comes back, POST the approval.
 * Returns the redirect Location.
 */
export async function authorizeWithBearer(
  ctx: Pick<TestContext, 'app'>,
  token: string,
  params: Record<string, string | undefined>,
  decision: 'approve' | 'deny' = 'approve',
): Promise<URL> {
  const url = authorizeUrl(params)
  let response = await ctx.app.handle(new Request(url, { headers: { authorization: `Bearer ${token}` } }))
  if (response.status === 200) {
    response = await ctx.app.handle(
      new Request(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ decision }).toString(),
      }),
    )
  }
  const location = response.headers.get('location')
  if (response.status < 300 || response.status >= 400 || !location)
    throw new Error(`authorize: ${response.status} ${await response.text()}`)
  return new URL(location)
}

export async function tokenRequest(
  ctx: Pick<TestContext, 'app'>,
  form: Record<string, string>,
  headers: Record<string, string> = {},
) {
  const response = await ctx.app.handle(
    new Request('http://localhost/oauth2/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    }),
  )
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, any> }
}

/** Registration, authorization and code exchange in one go; returns the token response. */
export async function obtainTokens(
  ctx: Pick<TestContext, 'app'>,
  sessionToken: string,
  options: { scope?: string; resource?: string; metadata?: Record<string, unknown> } = {},
) {
  const client = await registerClient(ctx, options.metadata)
  const pkce = createPkce()
  const location = await authorizeWithBearer(ctx, sessionToken, {
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: REDIRECT_URI,
    code_challenge: pkce.challenge,
    code_challenge_method: 'S256',
    state: 'xyz',
    scope: options.scope,
    resource: options.resource,
  })
  const code = location.searchParams.get('code')
  if (!code) throw new Error(`no code in ${location}`)
  const tokens = await tokenRequest(ctx, {
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT_URI,
    code_verifier: pkce.verifier,
    client_id: client.client_id,
  })
  if (tokens.status !== 200) throw new Error(`token: ${tokens.status} ${JSON.stringify(tokens.body)}`)
  return { client, tokens: tokens.body, code, pkce }
}
