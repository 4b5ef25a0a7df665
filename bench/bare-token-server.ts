// The storage ceiling for bench/oauth.ts: a bare Bun.serve that answers POST /oauth2/token the way Gatehouse
// does, with nothing but the work no token endpoint can skip. Per request it parses the same form body, hashes
// the presented secret (SHA-256, as Gatehouse stores hashes) and runs the same SQLite statements against the
// same schema (a copy of a Gatehouse database made by the benchmark):
//
//   authorization_code: reads the client, the code and its user; checks PKCE S256; then in one transaction
//     inserts the grant, claims the code (conditional UPDATE), inserts the access token and the refresh token;
//     then, at most once a minute per client, its last_used_at UPDATE (Gatehouse's touchClient). 4 writes, 1 commit.
//   refresh_token: reads the client, the refresh token, its grant and its user; then in one transaction locks the
//     grant (UPDATE … SET revoked_at = revoked_at), re-reads it, claims the token (conditional UPDATE), deletes
//     the grant's unused refresh tokens, inserts the new access and refresh tokens. 5 writes, 1 commit.
//   (The grace-window retry and the reuse revocation are not exercised: every bench request presents a fresh token.)
//
// No routing framework, validation library, logging, metrics or error mapping: what is left is the floor.
// Configured by PORT, GATEHOUSE_HOST and BARE_DATABASE (the SQLite file), with the pragmas of src/db/index.ts.

import { Database } from 'bun:sqlite'

export {} // a module, so its names stay out of the global scope the type checker shares with the other benches

const port = Number(process.env.PORT ?? '3000')
const hostname = process.env.GATEHOUSE_HOST ?? '127.0.0.1'
const path = process.env.BARE_DATABASE
if (!path) {
  process.stderr.write('bare-token-server: BARE_DATABASE is required\n')
  process.exit(2)
}

const ACCESS_TTL = 3600
const REFRESH_TTL = 30 * 86400

const db = new Database(path)
for (const pragma of [
  'PRAGMA journal_mode = WAL',
  'PRAGMA busy_timeout = 5000',
  'PRAGMA foreign_keys = ON',
  'PRAGMA synchronous = NORMAL',
])
  db.exec(pragma)

type Row = Record<string, string | number | null>

const q = {
  client: db.query<Row, [string]>('SELECT * FROM oauth_clients WHERE id = ?'),
  code: db.query<Row, [string]>('SELECT * FROM oauth_authorization_codes WHERE code_hash = ?'),
  user: db.query<Row, [string]>('SELECT * FROM users WHERE id = ?'),
  insertGrant: db.query(
    'INSERT INTO oauth_grants (id, client_id, user_id, scope, resource, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, NULL)',
  ),
  claimCode: db.query(
    'UPDATE oauth_authorization_codes SET used_at = ?, grant_id = ? WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?',
  ),
  insertAccess: db.query(
    'INSERT INTO oauth_access_tokens (token_hash, grant_id, client_id, user_id, scope, audience, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  ),
  insertRefresh: db.query(
    'INSERT INTO oauth_refresh_tokens (token_hash, grant_id, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, NULL)',
  ),
  touchClient: db.query('UPDATE oauth_clients SET last_used_at = ? WHERE id = ?'),
  refresh: db.query<Row, [string]>('SELECT * FROM oauth_refresh_tokens WHERE token_hash = ?'),
  grant: db.query<Row, [string]>('SELECT * FROM oauth_grants WHERE id = ?'),
  lockGrant: db.query('UPDATE oauth_grants SET revoked_at = revoked_at WHERE id = ?'),
  claimRefresh: db.query(
    'UPDATE oauth_refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?',
  ),
  deleteUnused: db.query('DELETE FROM oauth_refresh_tokens WHERE grant_id = ? AND used_at IS NULL'),
}

const sha256Hex = (text: string) => new Bun.CryptoHasher('sha256').update(text).digest('hex')
const sha256Base64url = (text: string) => new Bun.CryptoHasher('sha256').update(text).digest('base64url')
const randomToken = (prefix: string) =>
  prefix + Buffer.from(crypto.getRandomValues(new Uint8Array(20))).toString('base64url')

const HEADERS = { 'cache-control': 'no-store', pragma: 'no-cache' }
const invalidGrant = () => Response.json({ error: 'invalid_grant' }, { status: 400, headers: HEADERS })

/** Inserts an access and a refresh token for a grant; both hashes, as Gatehouse stores them. */
function issue(grant: Row, clientId: string, now: number) {
  const access = randomToken('gth_oat_')
  const refresh = randomToken('gth_ort_')
  q.insertAccess.run(
    sha256Hex(access),
    grant.id,
    clientId,
    grant.user_id,
    grant.scope,
    grant.resource,
    now,
    now + ACCESS_TTL,
  )
  q.insertRefresh.run(sha256Hex(refresh), grant.id, now, now + REFRESH_TTL)
  return {
    access_token: access,
    token_type: 'Bearer',
    expires_in: ACCESS_TTL,
    scope: grant.scope,
    refresh_token: refresh,
  }
}

const exchange = db.transaction((grant: Row, codeHash: string, clientId: string, now: number) => {
  q.insertGrant.run(grant.id, clientId, grant.user_id, grant.scope, grant.resource, now)
  if (q.claimCode.run(now, grant.id, codeHash, now).changes === 0) return undefined
  return issue(grant, clientId, now)
})

const rotate = db.transaction((grantId: string, tokenHash: string, clientId: string, now: number) => {
  q.lockGrant.run(grantId)
  const grant = q.grant.get(grantId)
  if (!grant || grant.revoked_at !== null) return undefined
  if (q.claimRefresh.run(now, tokenHash, now).changes === 0) return undefined // no grace window here
  q.deleteUnused.run(grantId)
  return issue(grant, clientId, now)
})

async function token(request: Request): Promise<Response> {
  const form = new URLSearchParams(await request.text())
  const clientId = form.get('client_id') ?? ''
  const client = q.client.get(clientId)
  if (!client) return Response.json({ error: 'invalid_client' }, { status: 401, headers: HEADERS })
  const now = Math.floor(Date.now() / 1000)
  if (form.get('grant_type') === 'authorization_code') {
    const codeHash = sha256Hex(form.get('code') ?? '')
    const code = q.code.get(codeHash)
    if (!code || code.client_id !== clientId || code.used_at !== null) return invalidGrant()
    if (sha256Base64url(form.get('code_verifier') ?? '') !== code.code_challenge) return invalidGrant()
    if (q.user.get(code.user_id as string)?.status !== 'active') return invalidGrant()
    const grant: Row = { id: crypto.randomUUID(), user_id: code.user_id, scope: code.scope, resource: code.resource }
    const body = exchange(grant, codeHash, clientId, now)
    if (!body) return invalidGrant()
    if (((client.last_used_at as number | null) ?? 0) < now - 60) q.touchClient.run(now, clientId)
    return Response.json(body, { headers: HEADERS })
  }
  if (form.get('grant_type') === 'refresh_token') {
    const tokenHash = sha256Hex(form.get('refresh_token') ?? '')
    const found = q.refresh.get(tokenHash)
    const grant = found ? q.grant.get(found.grant_id as string) : undefined
    if (!found || !grant || grant.client_id !== clientId || grant.revoked_at !== null) return invalidGrant()
    if (q.user.get(grant.user_id as string)?.status !== 'active') return invalidGrant()
    const body = rotate(grant.id as string, tokenHash, clientId, now)
    return body ? Response.json(body, { headers: HEADERS }) : invalidGrant()
  }
  return Response.json({ error: 'unsupported_grant_type' }, { status: 400, headers: HEADERS })
}

const server = Bun.serve({
  port,
  hostname,
  fetch(request) {
    const { pathname } = new URL(request.url)
    if (pathname === '/healthz') return Response.json({ status: 'ok' })
    if (pathname === '/oauth2/token' && request.method === 'POST') return token(request)
    return new Response('not found', { status: 404 })
  },
})

const stop = () => {
  void server.stop().then(() => {
    db.close()
    process.exit(0)
  })
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
