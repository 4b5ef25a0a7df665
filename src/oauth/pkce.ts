import { sha256 } from '@oslojs/crypto/sha2'
import { encodeBase64urlNoPadding } from '@oslojs/encoding'
import { constantTimeEqual } from '../auth/token.ts'

/** RFC 7636 §4.1: 43–128 characters of [A-Za-z0-9-._~]. A challenge (§4.2, S256) is 43 base64url characters. */
const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/
const S256_CHALLENGE = /^[A-Za-z0-9\-_]{43}$/

export function isValidCodeVerifier(verifier: string): boolean {
  return VERIFIER.test(verifier)
}

export function isValidS256Challenge(challenge: string): boolean {
  return S256_CHALLENGE.test(challenge)
}

/** RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge, compared in constant time. */
export function verifyS256Challenge(verifier: string, challenge: string): boolean {
  if (!isValidCodeVerifier(verifier)) return false
  const computed = encodeBase64urlNoPadding(sha256(new TextEncoder().encode(verifier)))
  return constantTimeEqual(computed, challenge)
}
