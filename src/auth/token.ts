import { createHash } from 'node:crypto'
import { constantTimeEqual as constantTimeEqualBytes } from '@oslojs/crypto/subtle'
import { encodeBase32LowerCaseNoPadding } from '@oslojs/encoding'

/**
 * Token kinds and their prefixes. A fixed, distinctive prefix lets secret scanners spot a
 * leaked Gatehouse token and lets the server pick the right table without guessing.
 */
export const TOKEN_PREFIXES = {
  session: 'gth_ses_',
  apiToken: 'gth_pat_',
  oauthAccess: 'gth_oat_',
  oauthRefresh: 'gth_ort_',
  oauthCode: 'gth_code_',
  clientSecret: 'gth_cs_',
  registration: 'gth_reg_',
} as const

export type TokenKind = keyof typeof TOKEN_PREFIXES

/** 160 bits from the CSPRNG, base32 (URL-safe, case-insensitive). */
export function generateSecret(): string {
  const bytes = new Uint8Array(20)
  crypto.getRandomValues(bytes)
  return encodeBase32LowerCaseNoPadding(bytes)
}

export function generateToken(kind: TokenKind): string {
  return TOKEN_PREFIXES[kind] + generateSecret()
}

/** The kind a presented token claims by its prefix, or undefined for a foreign token. */
export function tokenKindOf(token: string): TokenKind | undefined {
  for (const [kind, prefix] of Object.entries(TOKEN_PREFIXES)) if (token.startsWith(prefix)) return kind as TokenKind
  return undefined
}

/** Lookup key stored instead of the token. SHA-256 suits high-entropy secrets (not passwords). */
export function hashToken(token: string): string {
  // node:crypto's native SHA-256 (Bun, Deno and Node alike): a token is hashed on every request.
  return createHash('sha256').update(token).digest('hex')
}

/** The first characters of a token, safe to show in lists so a user can tell tokens apart. */
export function displayPrefix(token: string): string {
  const kind = tokenKindOf(token)
  const head = kind ? TOKEN_PREFIXES[kind].length : 0
  return token.slice(0, head + 6)
}

export function constantTimeEqual(a: string, b: string): boolean {
  const left = new TextEncoder().encode(a)
  const right = new TextEncoder().encode(b)
  return left.length === right.length && constantTimeEqualBytes(left, right)
}
