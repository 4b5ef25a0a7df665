import { describe, expect, it } from 'bun:test'
import type { Principal } from '../../src/auth/auth.service.ts'
import { PrincipalCache } from '../../src/auth/principal-cache.ts'

const principal = { via: 'session', credentialId: 'h', expiresAt: null, user: { id: 'u' } } as unknown as Principal

describe('principal cache', () => {
  it('serves a cached principal until its TTL, then forgets it', () => {
    const cache = new PrincipalCache(5000)
    cache.set('h', principal, Number.POSITIVE_INFINITY, cache.snapshot(), 1_000)
    expect(cache.get('h', 5_999)).toBe(principal)
    expect(cache.get('h', 6_000)).toBeUndefined()
  })

  it('never outlives the credential it caches', () => {
    const cache = new PrincipalCache(5000)
    cache.set('h', principal, 2_000, cache.snapshot(), 1_000)
    expect(cache.get('h', 2_000)).toBeUndefined()
  })

  it('drops everything on invalidation', () => {
    const cache = new PrincipalCache(5000)
    cache.set('h', principal, Number.POSITIVE_INFINITY, cache.snapshot(), 1_000)
    cache.invalidate(1_500)
    expect(cache.get('h', 1_600)).toBeUndefined()
  })

  it('does not cache a lookup that started before an invalidation', () => {
    const cache = new PrincipalCache(5000, 10000, 1000)
    const snapshot = cache.snapshot()
    cache.invalidate(1_000)
    cache.set('h', principal, Number.POSITIVE_INFINITY, snapshot, 5_000)
    expect(cache.get('h', 5_001)).toBeUndefined()
  })

  it('caches nothing shortly after an invalidation, while a revoking transaction may still be committing', () => {
    const cache = new PrincipalCache(5000, 10000, 1000)
    cache.invalidate(1_000)
    cache.set('h', principal, Number.POSITIVE_INFINITY, cache.snapshot(), 1_500)
    expect(cache.get('h', 1_501)).toBeUndefined()
    cache.set('h', principal, Number.POSITIVE_INFINITY, cache.snapshot(), 2_000)
    expect(cache.get('h', 2_001)).toBe(principal)
  })
})
