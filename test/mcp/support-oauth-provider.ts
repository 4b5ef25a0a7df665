import type {
  FetchLike,
  OAuthClientMetadata,
  OAuthClientProvider,
  OAuthDiscoveryState,
  StoredOAuthClientInformation,
  StoredOAuthTokens,
} from '@modelcontextprotocol/client'
import { decideAsUser } from '../fixtures/http.ts'

/** Every request of these tests is bounded, so a hung server fails the test instead of the run. */
export const TIMEOUT_MS = 5000

/** A loopback redirect URI; nothing listens there, as the tests read the Location without following it. */
export const REDIRECT_URL = 'http://127.0.0.1:8765/callback'

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
