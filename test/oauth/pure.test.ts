import { describe, expect, it } from 'bun:test'
import { isValidCodeVerifier, verifyS256Challenge } from '../../src/oauth/pkce.ts'
import { checkRedirectUri, redirectUriMatches } from '../../src/oauth/redirect-uri.ts'
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
