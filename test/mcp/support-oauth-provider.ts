import type {
  FetchLike,
  OAuthClientMetadata,
  OAuthClientProvider,
  OAuthDiscoveryState,
  StoredOAuthClientInformation,
  StoredOAuthTokens,
} from '@modelcontextprotocol/client'
import { OWNER } from '../setup.ts'

/** Every request of these tests is bounded, so a hung server fails the test instead of the run. */
export const TIMEOUT_MS = 5000

/** A loopback redirect URI; nothing listens there, as the tests read the Location without following it. */
export const REDIRECT_URL = 'http://127.0.0.1:8765/callback'

/** A port that was free a moment ago: the issuer (the public URL) must be known before the server starts. */
export async function freePort(): Promise<number> {
  const probe = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const port = probe.port!
  await probe.stop(true)
  return port
}

async function postJson(url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  })
}

/** Creates the first user over HTTP and signs them in; returns the session token. */
export async function signUpOwner(baseUrl: string): Promise<string> {
  const created = await postJson(`${baseUrl}/api/v1/users/first`, OWNER)
  if (created.status !== 201) throw new Error(`first user: ${created.status} ${await created.text()}`)
  const login = await postJson(`${baseUrl}/api/v1/auth/login`, { login: OWNER.username, password: OWNER.password })
  if (login.status !== 200) throw new Error(`login: ${login.status} ${await login.text()}`)
  return (await login.json()).session_token
}

/**
 * The user's part of an authorization, scripted: GET the authorization URL with the session as a
 * bearer token and, if the consent page comes back (rather than a redirect for a remembered
 * consent), POST the decision to the same URL. Returns the redirect back to the client.
 */
export async function decideAsUser(
  authorizationUrl: URL | string,
  sessionToken: string,
  decision: 'approve' | 'deny' = 'approve',
): Promise<URL> {
  const bearer = { authorization: `Bearer ${sessionToken}` }
  let response = await fetch(authorizationUrl, { headers: bearer, redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_MS) })
  if (response.status === 200) {
    await response.text()
    response = await fetch(authorizationUrl, {
      method: 'POST',
      headers: { ...bearer, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ decision }),
      redirect: 'manual',
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
  }
  const location = response.headers.get('location')
  if (response.status < 300 || response.status >= 400 || !location)
    throw new Error(`authorize: ${response.status} ${await response.text()}`)
  return new URL(location)
}

/** One request the SDK made, with the answer it got. */
export interface RecordedExchange {
  method: string
  url: string
  status: number
  wwwAuthenticate: string | null
}

/** A fetch for the transport that records every exchange (MCP and OAuth requests alike). */
export function recordingFetch(): { fetch: FetchLike; log: RecordedExchange[] } {
  const log: RecordedExchange[] = []
  const recording: FetchLike = async (input, init) => {
    const response = await fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(TIMEOUT_MS) })
    log.push({
      method: init?.method ?? 'GET',
      url: String(input instanceof Request ? input.url : input),
      status: response.status,
      wwwAuthenticate: response.headers.get('www-authenticate'),
    })
    return response
  }
  return { fetch: recording, log }
}

/**
 * An in-memory `OAuthClientProvider` whose user approves everything: `redirectToAuthorization`
 * signs the consent with the owner's session and keeps the callback's parameters for the test
 * to hand to `finishAuth`, as an app's redirect handler would.
 */
export class ScriptedOAuthProvider implements OAuthClientProvider {
  /** Every authorization URL the SDK sent the "browser" to, in order. */
  readonly authorizationUrls: URL[] = []
  /** The query of every callback the "browser" came back with, in order. */
  readonly callbacks: URLSearchParams[] = []
  /** Every token set the SDK saved, in order. */
  readonly savedTokens: StoredOAuthTokens[] = []
  /** The states handed out, to compare with the callbacks'. */
  readonly states: string[] = []
  /** What the SDK asked to forget, for diagnosing a failing flow. */
  readonly invalidations: string[] = []

  private client?: StoredOAuthClientInformation
  private latestTokens?: StoredOAuthTokens
  private verifier?: string
  private discovery?: OAuthDiscoveryState

  constructor(
    private readonly options: {
      sessionToken: string
      grantTypes?: string[]
      clientName?: string
      decision?: 'approve' | 'deny'
    },
  ) {}

  get redirectUrl(): string {
    return REDIRECT_URL
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: this.options.clientName ?? 'Scripted MCP client',
      redirect_uris: [REDIRECT_URL],
      grant_types: this.options.grantTypes ?? ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }
  }

  /** The callback of the latest authorization; what the test passes to `finishAuth`. */
  get lastCallback(): URLSearchParams {
    const callback = this.callbacks.at(-1)
    if (!callback) throw new Error('the SDK never redirected to the authorization endpoint')
    return callback
  }

  state(): string {
    const state = crypto.randomUUID()
    this.states.push(state)
    return state
  }

  clientInformation(): StoredOAuthClientInformation | undefined {
    return this.client
  }

  saveClientInformation(information: StoredOAuthClientInformation): void {
    this.client = information
  }

  /** One authorization server, so the latest token set whatever the context. */
  tokens(): StoredOAuthTokens | undefined {
    return this.latestTokens
  }

  saveTokens(tokens: StoredOAuthTokens): void {
    this.latestTokens = tokens
    this.savedTokens.push(tokens)
  }

  saveCodeVerifier(codeVerifier: string): void {
    this.verifier = codeVerifier
  }

  codeVerifier(): string {
    if (!this.verifier) throw new Error('no code verifier was saved')
    return this.verifier
  }

  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.discovery = state
  }

  discoveryState(): OAuthDiscoveryState | undefined {
    return this.discovery
  }

  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    this.invalidations.push(scope)
    if (scope === 'all' || scope === 'client') this.client = undefined
    if (scope === 'all' || scope === 'tokens') this.latestTokens = undefined
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined
    if (scope === 'all' || scope === 'discovery') this.discovery = undefined
  }

  async redirectToAuthorization(authorizationUrl: URL): Promise<void> {
    this.authorizationUrls.push(new URL(authorizationUrl))
    const callback = await decideAsUser(authorizationUrl, this.options.sessionToken, this.options.decision)
    this.callbacks.push(callback.searchParams)
  }
}
