import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import * as oauth from 'oauth4webapi'
import { OWNER, startTestServer } from '../setup.ts'
import { findFreePort } from '../fixtures/cli-process.ts'
import { decideAsUser, signUpOwner } from '../fixtures/http.ts'

// An independent client library (oauth4webapi) against a real server: if Gatehouse drifts from
// the RFCs in a way our own helpers would not notice, this is where it shows.

const REDIRECT_URI = 'http://127.0.0.1:8765/callback'
// The management API as the audience, so a token can be tried on /api/v1/users/me.
const SCOPE = 'api offline_access'
const TIMEOUT_MS = 5000

/** oauth4webapi refuses plain http unless told (the test server has no TLS); every request is bounded. */
const insecure = { [oauth.allowInsecureRequests]: true, signal: () => AbortSignal.timeout(TIMEOUT_MS) }

describe('oauth4webapi as the client', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>
  let issuer: URL
  let as: oauth.AuthorizationServer
  let sessionToken: string
  let resource: string

  beforeAll(async () => {
    const port = await findFreePort()
    server = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}` })
    issuer = new URL(server.deps.config.publicUrl)
    resource = `${issuer.origin}/api`
    sessionToken = await signUpOwner(server.url)
    as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
    )
  })

  afterAll(async () => {
    await server?.close()
  })

  async function register(metadata: Record<string, unknown>): Promise<oauth.OmitSymbolProperties<oauth.Client>> {
    const response = await oauth.dynamicClientRegistrationRequest(
      as,
      {
        client_name: 'oauth4webapi test client',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        ...metadata,
      },
      insecure,
    )
    return oauth.processDynamicClientRegistrationResponse(response)
  }

  /** An authorization request for `client`, approved by the owner; returns the redirect back to the client. */
  async function authorize(client: oauth.Client, codeChallenge: string, state: string): Promise<URL> {
    const url = new URL(as.authorization_endpoint!)
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: REDIRECT_URI,
      scope: SCOPE,
      resource,
      state,
      code_challenge: codeChallenge,
      code_challenge_method: 'S256',
    }).toString()
    return decideAsUser(url, sessionToken, 'approve', TIMEOUT_MS)
  }

  /** Authorization with PKCE, `validateAuthResponse`, then the code exchange. */
  async function obtainTokens(client: oauth.Client, auth: oauth.ClientAuth): Promise<oauth.TokenEndpointResponse> {
    const verifier = oauth.generateRandomCodeVerifier()
    const state = oauth.generateRandomState()
    const callback = await authorize(client, await oauth.calculatePKCECodeChallenge(verifier), state)
    const params = oauth.validateAuthResponse(as, client, callback, state)
    const response = await oauth.authorizationCodeGrantRequest(as, client, auth, params, REDIRECT_URI, verifier, {
      ...insecure,
      additionalParameters: { resource },
    })
    return oauth.processAuthorizationCodeResponse(as, client, response)
  }

  async function refresh(
    client: oauth.Client,
    auth: oauth.ClientAuth,
    refreshToken: string,
  ): Promise<oauth.TokenEndpointResponse> {
    const response = await oauth.refreshTokenGrantRequest(as, client, auth, refreshToken, insecure)
    return oauth.processRefreshTokenResponse(as, client, response)
  }

  async function revoke(client: oauth.Client, auth: oauth.ClientAuth, token: string): Promise<void> {
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, token, insecure))
  }

  async function refreshError(client: oauth.Client, auth: oauth.ClientAuth, refreshToken: string): Promise<unknown> {
    return refresh(client, auth, refreshToken).then(
      () => undefined,
      (error: unknown) => error,
    )
  }

  async function me(accessToken: string): Promise<Response> {
    return fetch(`${server.url}/api/v1/users/me`, {
      headers: { authorization: `Bearer ${accessToken}` },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
  }

  it('discovers the metadata through RFC 8414 with the public URL as the issuer', () => {
    expect(as.issuer).toBe(issuer.origin)
    expect(as.authorization_endpoint).toBe(`${issuer.origin}/oauth2/authorize`)
    expect(as.code_challenge_methods_supported).toEqual(['S256'])
    expect(as.authorization_response_iss_parameter_supported).toBe(true)
  })

  describe('with a public client (no client authentication)', () => {
    let client: oauth.Client
    const auth = oauth.None()

    beforeAll(async () => {
      client = await register({ token_endpoint_auth_method: 'none' })
    })

    it('registers dynamically and gets no secret', () => {
      expect(client.client_id).toBeString()
      expect(client.token_endpoint_auth_method).toBe('none')
      expect(client.client_secret).toBeUndefined()
    })

    it('exchanges a PKCE code whose redirect carries the right iss and state for a bearer token', async () => {
      const tokens = await obtainTokens(client, auth)
      expect(tokens.token_type).toBe('bearer')
      expect(tokens.scope).toBe(SCOPE)
      expect(tokens.refresh_token).toBeString()
      expect((await me(tokens.access_token)).status).toBe(200)
    })

    it('refreshes to a new access token that works', async () => {
      const tokens = await obtainTokens(client, auth)
      const refreshed = await refresh(client, auth, tokens.refresh_token!)
      expect(refreshed.access_token).not.toBe(tokens.access_token)
      expect((await me(refreshed.access_token)).status).toBe(200)
    })

    it('refuses a refresh with invalid_grant once the refresh token is revoked', async () => {
      const tokens = await obtainTokens(client, auth)
      await revoke(client, auth, tokens.refresh_token!)
      const error = await refreshError(client, auth, tokens.refresh_token!)
      expect(error).toBeInstanceOf(oauth.ResponseBodyError)
      expect((error as oauth.ResponseBodyError).error).toBe('invalid_grant')
    })

    it('ends the access token of the grant when its refresh token is revoked', async () => {
      const tokens = await obtainTokens(client, auth)
      await revoke(client, auth, tokens.refresh_token!)
      expect((await me(tokens.access_token)).status).toBe(401)
    })
  })

  describe('with a confidential client (client_secret_basic)', () => {
    let client: oauth.Client
    let auth: oauth.ClientAuth

    beforeAll(async () => {
      client = await register({ token_endpoint_auth_method: 'client_secret_basic' })
      auth = oauth.ClientSecretBasic(client.client_secret as string)
    })

    it('registers dynamically and gets a secret', () => {
      expect(client.token_endpoint_auth_method).toBe('client_secret_basic')
      expect(client.client_secret).toBeString()
    })

    it('exchanges a PKCE code for a bearer token, authenticating with HTTP Basic', async () => {
      const tokens = await obtainTokens(client, auth)
      expect(tokens.token_type).toBe('bearer')
      expect(tokens.scope).toBe(SCOPE)
      expect((await me(tokens.access_token)).status).toBe(200)
    })

    it('is refused the code exchange with a wrong secret', async () => {
      const verifier = oauth.generateRandomCodeVerifier()
      const state = oauth.generateRandomState()
      const callback = await authorize(client, await oauth.calculatePKCECodeChallenge(verifier), state)
      const params = oauth.validateAuthResponse(as, client, callback, state)
      const response = await oauth.authorizationCodeGrantRequest(
        as,
        client,
        oauth.ClientSecretBasic('not-the-secret'),
        params,
        REDIRECT_URI,
        verifier,
        insecure,
      )
      const error = await oauth.processAuthorizationCodeResponse(as, client, response).then(
        () => undefined,
        (error: unknown) => error,
      )
      // RFC 6749 §5.2: a client that tried HTTP Basic gets 401 with a Basic challenge.
      expect(error).toBeInstanceOf(oauth.WWWAuthenticateChallengeError)
      const challenge = error as oauth.WWWAuthenticateChallengeError
      expect(challenge.status).toBe(401)
      expect(challenge.cause.map((c) => c.scheme)).toEqual(['basic'])
      expect(await challenge.response.json()).toMatchObject({ error: 'invalid_client' })
    })

    it('refreshes to a new access token that works', async () => {
      const tokens = await obtainTokens(client, auth)
      const refreshed = await refresh(client, auth, tokens.refresh_token!)
      expect(refreshed.access_token).not.toBe(tokens.access_token)
      expect((await me(refreshed.access_token)).status).toBe(200)
    })

    it('introspects its access token as active, for the owner, with the granted scope', async () => {
      const tokens = await obtainTokens(client, auth)
      const response = await oauth.introspectionRequest(as, client, auth, tokens.access_token, insecure)
      const introspection = await oauth.processIntrospectionResponse(as, client, response)
      expect(introspection).toMatchObject({
        active: true,
        client_id: client.client_id,
        username: OWNER.username,
        scope: SCOPE,
        iss: issuer.origin,
        aud: resource,
        token_type: 'Bearer',
      })
    })

    it('introspects a revoked refresh token as inactive', async () => {
      const tokens = await obtainTokens(client, auth)
      await revoke(client, auth, tokens.refresh_token!)
      const response = await oauth.introspectionRequest(as, client, auth, tokens.refresh_token!, insecure)
      expect(await oauth.processIntrospectionResponse(as, client, response)).toEqual({ active: false })
    })

    it('refuses a refresh with invalid_grant once the refresh token is revoked', async () => {
      const tokens = await obtainTokens(client, auth)
      await revoke(client, auth, tokens.refresh_token!)
      const error = await refreshError(client, auth, tokens.refresh_token!)
      expect(error).toBeInstanceOf(oauth.ResponseBodyError)
      expect((error as oauth.ResponseBodyError).error).toBe('invalid_grant')
    })
  })
})
