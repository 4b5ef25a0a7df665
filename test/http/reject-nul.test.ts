import { describe, expect, it } from 'bun:test'
import { bodyHasNul, findNulInUrl } from '../../src/http/reject-nul.ts'

const bytes = (text: string) => new TextEncoder().encode(text)

describe('findNulInUrl', () => {
  it('finds nothing in a URL without an encoded NUL', () => {
    expect(findNulInUrl('http://localhost/api/v1/users/a%2500b?x=%2500')).toBeUndefined()
  })

  it('names the path when the NUL is there', () => {
    expect(findNulInUrl('http://localhost/api/v1/users/a%00b?x=1')).toBe('path')
  })

  it('names the query parameter that holds the NUL', () => {
    expect(findNulInUrl('http://localhost/oauth2/authorize?state=1&client_id=a%00')).toBe('query parameter client_id')
  })
})

describe('bodyHasNul', () => {
  it('finds the \\u0000 escape in JSON', () => {
    expect(bodyHasNul(bytes(JSON.stringify({ login: 'a\u0000b' })), 'application/json')).toBe(true)
  })

  it('does not take an escaped backslash before u0000 for a NUL', () => {
    expect(bodyHasNul(bytes('{"a":"\\\\u0000"}'), 'application/json')).toBe(false)
    expect(bodyHasNul(bytes('{"a":"\\\\\\u0000"}'), 'application/json')).toBe(true)
  })

  it('finds %00 in a form body but not %2500', () => {
    expect(bodyHasNul(bytes('a=1&b=x%00'), 'application/x-www-form-urlencoded')).toBe(true)
    expect(bodyHasNul(bytes('a=1&b=x%2500'), 'application/x-www-form-urlencoded')).toBe(false)
  })

  it('finds a raw NUL byte whatever the content type', () => {
    expect(bodyHasNul(new Uint8Array([0x61, 0x00]), 'text/plain')).toBe(true)
  })

  it('leaves a body without NUL alone', () => {
    expect(bodyHasNul(bytes('{"jsonrpc":"2.0","method":"tools/list","id":1}'), 'application/json')).toBe(false)
  })
})
