import { describe, expect, it } from 'bun:test'
import { isValidCodeVerifier, verifyS256Challenge } from '../../src/oauth/pkce.ts'
import { checkRedirectUri, redirectUriMatches } from '../../src/oauth/redirect-uri.ts'
import { OAuthError } from '../../src/oauth/errors.ts'
import { resolveResource } from '../../src/oauth/resource.ts'
import { narrowScopes, parseScope } from '../../src/oauth/scope.ts'

describe('PKCE S256', () => {
  it('accepts the RFC 7636 Appendix B example', () => {
    expect(
      verifyS256Challenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'),
    ).toBe(true)
  })

  it('rejects a verifier that does not hash to the challenge', () => {
    expect(
      verifyS256Challenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'),
    ).toBe(false)
  })

  it('rejects verifiers that are too short, too long or use other characters', () => {
    expect(isValidCodeVerifier('a'.repeat(42))).toBe(false)
    expect(isValidCodeVerifier('a'.repeat(129))).toBe(false)
    expect(isValidCodeVerifier(`${'a'.repeat(42)}+`)).toBe(false)
    expect(isValidCodeVerifier('a'.repeat(43))).toBe(true)
  })
})

describe('redirect URI registration', () => {
  it('accepts https, loopback http and, for public clients, private-use schemes', () => {
    expect(checkRedirectUri('https://app.example.com/callback', { publicClient: false })).toBeUndefined()
    expect(checkRedirectUri('http://127.0.0.1:33418/callback', { publicClient: true })).toBeUndefined()
    expect(checkRedirectUri('http://localhost/callback', { publicClient: true })).toBeUndefined()
    expect(
      checkRedirectUri('cursor://anysphere.cursor-retrieval/oauth/callback', { publicClient: true }),
    ).toBeUndefined()
    expect(
      checkRedirectUri('vscode://vscode.github-authentication/did-authenticate', { publicClient: true }),
    ).toBeUndefined()
  })

  it('refuses scripts, data, fragments, non-loopback http and private-use schemes for confidential clients', () => {
    expect(checkRedirectUri('javascript:alert(1)', { publicClient: true })).toContain('javascript')
    expect(checkRedirectUri('data:text/html,hi', { publicClient: true })).toContain('data')
    expect(checkRedirectUri('https://app.example.com/cb#frag', { publicClient: true })).toContain('fragment')
    expect(checkRedirectUri('http://app.example.com/cb', { publicClient: true })).toContain('https')
    expect(checkRedirectUri('cursor://callback', { publicClient: false })).toContain('public clients')
    expect(checkRedirectUri('not a uri', { publicClient: true })).toContain('absolute')
  })
})

describe('redirect URI matching', () => {
  it('matches exactly, and loopback URIs on any port (RFC 8252 §7.3)', () => {
    expect(redirectUriMatches('https://app.example.com/cb', 'https://app.example.com/cb')).toBe(true)
    expect(redirectUriMatches('http://127.0.0.1/callback', 'http://127.0.0.1:51234/callback')).toBe(true)
    expect(redirectUriMatches('http://localhost:3000/callback', 'http://localhost:9999/callback')).toBe(true)
  })

  it('refuses any other difference', () => {
    expect(redirectUriMatches('https://app.example.com/cb', 'https://app.example.com/cb/')).toBe(false)
    expect(redirectUriMatches('https://app.example.com/cb', 'https://app.example.com:8443/cb')).toBe(false)
    expect(redirectUriMatches('https://app.example.com/cb', 'https://evil.example.com/cb')).toBe(false)
    expect(redirectUriMatches('http://127.0.0.1/callback', 'http://127.0.0.1:5000/other')).toBe(false)
    expect(redirectUriMatches('http://127.0.0.1/callback', 'http://localhost/callback')).toBe(false)
    expect(redirectUriMatches('https://app.example.com/cb', 'https://app.example.com/cb?next=https://evil')).toBe(false)
  })
})

describe('scope narrowing', () => {
  it('drops unknown scopes instead of failing and defaults to mcp', () => {
    expect(narrowScopes(parseScope('openid mcp profile'), { role: 'member' })).toEqual(['mcp'])
    expect(narrowScopes([], { role: 'member' })).toEqual(['mcp'])
  })

  it('never grants mcp:admin to a member, and respects the scopes a client registered', () => {
    expect(narrowScopes(parseScope('mcp mcp:admin'), { role: 'member' })).toEqual(['mcp'])
    expect(narrowScopes(parseScope('mcp mcp:admin'), { role: 'admin' })).toEqual(['mcp', 'mcp:admin'])
    expect(narrowScopes(parseScope('mcp api'), { role: 'owner', clientScopes: ['mcp'] })).toEqual(['mcp'])
  })
})

describe('resource resolution (RFC 8707)', () => {
  const PUBLIC_URL = 'http://127.0.0.1:4100'

  /** The OAuth error code resolving `resource` throws, or 'accepted'. */
  function outcomeOf(resource: string, publicUrl = PUBLIC_URL): string {
    try {
      resolveResource(publicUrl, resource)
      return 'accepted'
    } catch (error) {
      if (!(error instanceof OAuthError)) throw error
      return error.error
    }
  }

  it('names /mcp however the scheme, host, default port and trailing slash are written', () => {
    expect(resolveResource(PUBLIC_URL, 'HTTP://127.0.0.1:4100/mcp')).toBe(`${PUBLIC_URL}/mcp`)
    expect(resolveResource(PUBLIC_URL, 'http://127.0.0.1:4100/mcp/')).toBe(`${PUBLIC_URL}/mcp`)
    expect(resolveResource('https://gate.example.com', 'HTTPS://Gate.Example.COM:443/mcp')).toBe(
      'https://gate.example.com/mcp',
    )
    expect(resolveResource('http://localhost', 'http://LOCALHOST:80/api/')).toBe('http://localhost/api')
  })

  it('defaults to /mcp when no resource is given', () => {
    expect(resolveResource(PUBLIC_URL, undefined)).toBe(`${PUBLIC_URL}/mcp`)
    expect(resolveResource(PUBLIC_URL, '')).toBe(`${PUBLIC_URL}/mcp`)
  })

  it('accepts a per-server endpoint whose slug is lowercase letters, digits and dashes', () => {
    expect(resolveResource(PUBLIC_URL, 'HTTP://127.0.0.1:4100/mcp/servers/git-hub2/')).toBe(
      `${PUBLIC_URL}/mcp/servers/git-hub2`,
    )
    expect(resolveResource('https://example.com/gh', 'https://example.com/gh/mcp/servers/linear')).toBe(
      'https://example.com/gh/mcp/servers/linear',
    )
  })

  it('refuses dot segments, even when they would land on a resource of ours', () => {
    expect(outcomeOf(`${PUBLIC_URL}/mcp/servers/../../api`)).toBe('invalid_target')
    expect(outcomeOf(`${PUBLIC_URL}/mcp/servers/%2e%2e/%2E%2E/api`)).toBe('invalid_target')
    expect(outcomeOf(`${PUBLIC_URL}/mcp/./`)).toBe('invalid_target')
    expect(outcomeOf(`${PUBLIC_URL}/mcp/servers\\..\\..\\api`)).toBe('invalid_target')
  })

  it('refuses a slug that is not [a-z0-9-]{1,32}, or a path below it', () => {
    for (const slug of ['GitHub', 'git_hub', 'a'.repeat(33), '', 'github/tools', '%67ithub', 'git hub'])
      expect(outcomeOf(`${PUBLIC_URL}/mcp/servers/${slug}`), slug).toBe('invalid_target')
  })

  it('refuses a query, a fragment, a relative URI and another origin', () => {
    expect(outcomeOf(`${PUBLIC_URL}/mcp?x=1`)).toBe('invalid_target')
    expect(outcomeOf(`${PUBLIC_URL}/mcp/servers/github?x=1`)).toBe('invalid_target')
    expect(outcomeOf(`${PUBLIC_URL}/mcp#top`)).toBe('invalid_target')
    expect(outcomeOf('/mcp')).toBe('invalid_target')
    expect(outcomeOf('http://127.0.0.1:4101/mcp')).toBe('invalid_target')
    expect(outcomeOf('https://127.0.0.1:4100/mcp')).toBe('invalid_target')
    expect(outcomeOf('http://user@127.0.0.1:4100/mcp')).toBe('invalid_target')
  })

  it('keeps the path case-sensitive', () => {
    expect(outcomeOf(`${PUBLIC_URL}/MCP`)).toBe('invalid_target')
  })
})
