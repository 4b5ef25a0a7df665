import { CodeChallengeMethod, OAuth2Client, type OAuth2Tokens } from 'arctic'
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose'
import type { Config } from '../config.ts'

/**
 * The identity providers people sign in with, behind one adapter: `arctic`'s OAuth2Client runs
 * the code flow with PKCE S256 for both; for OpenID Connect the metadata comes from the issuer
 * (the MCP SDK's discovery: RFC 8414 then OpenID Connect Discovery, issuer checked) and the ID
 * token is verified with `jose` (signature against the provider's JWKS, `iss`, `aud`, `exp`,
 * `nonce`), since arctic's `decodeIdToken` only decodes. GitHub is OAuth only: the profile and
 * the verified primary email come from its API.
 */
export type ProviderId = 'oidc' | 'github'

export interface IdentityProfile {
  subject: string
  email: string
  emailVerified: boolean
  name: string
  username?: string
  claims: Record<string, unknown>
}

export interface ProviderTokens {
  accessToken: string
  refreshToken?: string
  /** Unix seconds, when the provider said. */
  expiresAt?: number
}

export interface LoginProvider {
  id: ProviderId
  displayName: string
  authorizationUrl(input: { state: string; codeVerifier: string; nonce: string }): Promise<URL>
  finish(input: { code: string; codeVerifier: string; nonce: string }): Promise<{
    profile: IdentityProfile
    tokens: ProviderTokens
  }>
  refresh(refreshToken: string): Promise<ProviderTokens>
}

/** A refusal that is the provider's or its token's fault; the message is safe to show. */
export class LoginProviderError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'LoginProviderError'
  }
}

const PROVIDER_TIMEOUT_MS = 10_000

export function callbackUrlOf(publicUrl: string, provider: ProviderId): string {
  return `${publicUrl}/login/${provider}/callback`
}

function tokensOf(tokens: OAuth2Tokens, previousRefreshToken?: string): ProviderTokens {
  const data = tokens.data as { expires_in?: unknown; refresh_token?: unknown }
  return {
    accessToken: tokens.accessToken(),
    refreshToken: typeof data.refresh_token === 'string' ? data.refresh_token : previousRefreshToken,
    expiresAt: typeof data.expires_in === 'number' ? Math.floor(Date.now() / 1000) + data.expires_in : undefined,
  }
}

interface OidcMetadata {
  issuer: string
  authorization_endpoint: string
  token_endpoint: string
  jwks_uri: string
}

function oidcProvider(config: NonNullable<Config['oidc']>, publicUrl: string): LoginProvider {
  const client = new OAuth2Client(config.clientId, config.clientSecret ?? null, callbackUrlOf(publicUrl, 'oidc'))
  let metadata: Promise<OidcMetadata> | undefined
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined
  // Discovered on first use and kept; a failure is forgotten so the next sign-in tries again.
  const metadataOf = () =>
    (metadata ??= (async () => {
      const { discoverAuthorizationServerMetadata } = await import('@modelcontextprotocol/client')
      const found = (await discoverAuthorizationServerMetadata(config.issuer)) as Partial<OidcMetadata> | undefined
      if (!found?.authorization_endpoint || !found.token_endpoint || !found.jwks_uri)
        throw new LoginProviderError(`the identity provider ${config.issuer} publishes no usable OpenID metadata`)
      jwks = createRemoteJWKSet(new URL(found.jwks_uri), { timeoutDuration: PROVIDER_TIMEOUT_MS })
      return found as OidcMetadata
    })().catch((error) => {
      metadata = undefined
      throw error instanceof LoginProviderError
        ? error
        : new LoginProviderError(`the identity provider ${config.issuer} could not be reached`)
    }))

  return {
    id: 'oidc',
    displayName: config.displayName,
    async authorizationUrl({ state, codeVerifier, nonce }) {
      const meta = await metadataOf()
      const url = client.createAuthorizationURLWithPKCE(
        meta.authorization_endpoint,
        state,
        CodeChallengeMethod.S256,
        codeVerifier,
        config.scopes,
      )
      url.searchParams.set('nonce', nonce)
      // Many providers issue a refresh token for offline_access only after an explicit consent.
      if (config.scopes.includes('offline_access')) url.searchParams.set('prompt', 'consent')
      return url
    },
    async finish({ code, codeVerifier, nonce }) {
      const meta = await metadataOf()
      let tokens: OAuth2Tokens
      try {
        tokens = await client.validateAuthorizationCode(meta.token_endpoint, code, codeVerifier)
      } catch {
        throw new LoginProviderError('the identity provider did not exchange the sign-in code')
      }
      let payload: JWTPayload
      try {
        // OpenID Connect Core §2 requires exp and iat; without exp a token would never expire.
        ;({ payload } = await jwtVerify(tokens.idToken(), jwks!, {
          issuer: meta.issuer,
          audience: config.clientId,
          requiredClaims: ['exp', 'iat'],
        }))
      } catch {
        throw new LoginProviderError('the identity provider sent an ID token that does not verify')
      }
      if (payload.nonce !== nonce) throw new LoginProviderError('the ID token was not issued for this sign-in (nonce)')
      if (typeof payload.sub !== 'string' || !payload.sub) throw new LoginProviderError('the ID token names no subject')
      return {
        profile: {
          subject: payload.sub,
          email: typeof payload.email === 'string' ? payload.email.trim().toLowerCase() : '',
          emailVerified: payload.email_verified === true,
          name: typeof payload.name === 'string' ? payload.name : '',
          username: typeof payload.preferred_username === 'string' ? payload.preferred_username : undefined,
          claims: payload as Record<string, unknown>,
        },
        tokens: tokensOf(tokens),
      }
    },
    async refresh(refreshToken) {
      const meta = await metadataOf()
      return tokensOf(await client.refreshAccessToken(meta.token_endpoint, refreshToken, []), refreshToken)
    },
  }
}

function githubProvider(config: NonNullable<Config['github']>, publicUrl: string): LoginProvider {
  const client = new OAuth2Client(config.clientId, config.clientSecret, callbackUrlOf(publicUrl, 'github'))
  const tokenEndpoint = `${config.url}/login/oauth/access_token`
  const api = async <T>(path: string, accessToken: string): Promise<T> => {
    const response = await fetch(`${config.apiUrl}${path}`, {
      headers: {
        authorization: `Bearer ${accessToken}`,
        accept: 'application/vnd.github+json',
        'user-agent': 'gatehouse',
      },
      signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS),
    }).catch(() => {
      throw new LoginProviderError(`GitHub's API could not be reached for ${path}`)
    })
    if (!response.ok) throw new LoginProviderError(`GitHub's API answered ${response.status} for ${path}`)
    return (await response.json().catch(() => {
      throw new LoginProviderError(`GitHub's API answered ${path} with something other than JSON`)
    })) as T
  }
  return {
    id: 'github',
    displayName: 'GitHub',
    async authorizationUrl({ state, codeVerifier }) {
      return client.createAuthorizationURLWithPKCE(
        `${config.url}/login/oauth/authorize`,
        state,
        CodeChallengeMethod.S256,
        codeVerifier,
        ['read:user', 'user:email'],
      )
    },
    async finish({ code, codeVerifier }) {
      let tokens: OAuth2Tokens
      let accessToken: string
      try {
        tokens = await client.validateAuthorizationCode(tokenEndpoint, code, codeVerifier)
        // GitHub refuses a code with 200 and an `error` body, which arctic returns as tokens.
        accessToken = tokens.accessToken()
      } catch {
        throw new LoginProviderError('GitHub did not exchange the sign-in code')
      }
      const user = await api<{ id: number; login: string; name?: string | null }>('/user', accessToken)
      const emails = await api<{ email: string; primary: boolean; verified: boolean }[]>('/user/emails', accessToken)
      // Only the verified primary address identifies the person (GitHub lets anyone add unverified ones).
      const primary = emails.find((entry) => entry.primary && entry.verified)
      return {
        profile: {
          subject: String(user.id),
          email: primary?.email.trim().toLowerCase() ?? '',
          emailVerified: primary !== undefined,
          name: user.name ?? '',
          username: user.login,
          claims: { id: user.id, login: user.login, name: user.name ?? null },
        },
        tokens: tokensOf(tokens),
      }
    },
    async refresh(refreshToken) {
      return tokensOf(await client.refreshAccessToken(tokenEndpoint, refreshToken, []), refreshToken)
    },
  }
}

/** The providers the configuration names, in the order the sign-in page shows them. */
export function configuredProviders(config: Config): Map<ProviderId, LoginProvider> {
  const providers = new Map<ProviderId, LoginProvider>()
  if (config.oidc) providers.set('oidc', oidcProvider(config.oidc, config.publicUrl))
  if (config.github) providers.set('github', githubProvider(config.github, config.publicUrl))
  return providers
}
