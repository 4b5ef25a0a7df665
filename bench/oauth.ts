// OAuth token endpoint benchmark: authorization-code exchanges and refresh-token rotations per second against a real
// `gatehouse serve` on SQLite, and against a bare Bun.serve doing the same SQLite work (bench/bare-token-server.ts)
// as the storage ceiling.
//
//   bun bench/oauth.ts [--seconds N] [--concurrency C]
//
// Setup, untimed: Gatehouse starts on a fresh temp data dir (SQLite, GATEHOUSE_LOG_LEVEL=warn). Through its HTTP API
// the first user is created and signed in, one public client is registered, and one authorization is made with the
// session as bearer (consent page, then approve): that code's row is the template. The database is then copied
// (VACUUM INTO) for the bare server, and the same codes are inserted straight into both files: fresh random codes
// whose sha256 hashes are stored like Gatehouse stores them, cloned from the template row (same client, user, PKCE
// challenge, scope and resource), with expires_at pushed past the end of the run instead of the 5-minute code TTL.
//
// Per server: a warm-up, then C workers POST /oauth2/token for N seconds (or until the codes run out):
// - exchange: each request redeems one pre-created code (grant_type=authorization_code with the PKCE verifier);
// - refresh: each request rotates one refresh token; the pool starts with the refresh tokens the exchanges returned,
//   and each new token goes to the back of the queue, so no token is presented twice and each grant sees few rotations.
// Every request must answer 200 or the run fails. Afterwards the rows in each database are counted, to show that
// both servers wrote the same. Everything runs on 127.0.0.1, each step is bounded in time, children are killed and
// the temp dir is removed.

import { Database } from 'bun:sqlite'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  bareCommand,
  bound,
  call,
  cpuColumns,
  CPU_HEADER,
  type CpuUsage,
  expectStatus,
  GATEHOUSE,
  HEALTH_TIMEOUT_MS,
  HOST,
  int,
  latencyStats,
  measureCpu,
  REQUEST_TIMEOUT_MS,
  runBench,
  type Server,
  signIn,
  start,
  stop,
  STOP_TIMEOUT_MS,
  table,
  tempDir,
} from './support.ts'

const WARMUP_REQUESTS = 1_000
/** Codes pre-created per second of --seconds: well above what either server redeems on this kind of machine. */
const CODES_PER_SECOND = 12_000
const MAX_CODES = 600_000
const REDIRECT_URI = 'http://127.0.0.1:9/callback'

type Kind = 'gatehouse' | 'bare'
type PhaseName = 'exchange' | 'refresh'
type Running = Server<Kind>

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '16' },
  },
})
const seconds = Number(values.seconds)
const concurrency = Number(values.concurrency)
if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 300) {
  process.stderr.write(`oauth: --seconds must be a number from 0 to 300, got "${values.seconds}"\n`)
  process.exit(2)
}
if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) {
  process.stderr.write(`oauth: --concurrency must be a whole number from 1 to 1024, got "${values.concurrency}"\n`)
  process.exit(2)
}
const codeCount = Math.min(MAX_CODES, WARMUP_REQUESTS + Math.ceil(seconds * CODES_PER_SECOND))

// Bounded as a whole: setup, two servers' starts, warm-ups, timed phases (plus a request timeout each) and stops.
const budgetMs =
  120_000 + 2 * (HEALTH_TIMEOUT_MS + STOP_TIMEOUT_MS + 2 * (seconds * 1000 + 2 * REQUEST_TIMEOUT_MS + 30_000))
bound('oauth', budgetMs)

const sha256Hex = (text: string) => new Bun.CryptoHasher('sha256').update(text).digest('hex')
const sha256Base64url = (text: string) => new Bun.CryptoHasher('sha256').update(text).digest('base64url')
const randomText = (bytes: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('base64url')

interface Seed {
  clientId: string
  verifier: string
  /** The template code's row, as the real /oauth2/authorize wrote it. */
  template: Record<string, string | number | null>
}

/** First user, login, one public client and one real authorization, all through Gatehouse's HTTP API. */
async function seedThroughApi(base: string, databasePath: string): Promise<Seed> {
  const session = await signIn(base)
  const registered = await expectStatus(
    await call(base, '/oauth2/register', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'oauth bench',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
      }),
    }),
    201,
    'client registration',
  )
  const clientId = ((await registered.json()) as { client_id: string }).client_id

  const verifier = randomText(32)
  const authorize = new URL(`${base}/oauth2/authorize`)
  for (const [name, value] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT_URI,
    code_challenge: sha256Base64url(verifier),
    code_challenge_method: 'S256',
    state: 'bench',
    scope: 'mcp',
  }))
    authorize.searchParams.set(name, value)
  const bearer = { authorization: `Bearer ${session}` }
  const path = authorize.pathname + authorize.search
  await expectStatus(await call(base, path, { headers: bearer }), 200, 'authorize (consent page)')
  const approved = await expectStatus(
    await call(base, path, {
      method: 'POST',
      headers: { ...bearer, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'decision=approve',
    }),
    303,
    'authorize (approve)',
  )
  const code = new URL(approved.headers.get('location')!).searchParams.get('code')
  if (!code) throw new Error(`no code in ${approved.headers.get('location')}`)

  const db = new Database(databasePath)
  try {
    db.exec('PRAGMA busy_timeout = 5000')
    const template = db.query('SELECT * FROM oauth_authorization_codes WHERE code_hash = ?').get(sha256Hex(code))
    if (!template) throw new Error('the authorized code is not in the database')
    return { clientId, verifier, template: template as Seed['template'] }
  } finally {
    db.close()
  }
}

/** Inserts `codes` into a database, cloned from the template row: same client, user, challenge, scope and resource. */
function insertCodes(databasePath: string, template: Seed['template'], codes: string[], expiresAt: number) {
  const db = new Database(databasePath)
  try {
    db.exec('PRAGMA busy_timeout = 5000')
    const insert = db.query(
      `INSERT INTO oauth_authorization_codes
         (code_hash, client_id, user_id, redirect_uri, scope, resource, code_challenge, created_at, expires_at, used_at, grant_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)`,
    )
    db.transaction(() => {
      for (const code of codes)
        insert.run(
          sha256Hex(code),
          template.client_id,
          template.user_id,
          template.redirect_uri,
          template.scope,
          template.resource,
          template.code_challenge,
          template.created_at,
          expiresAt,
        )
    })()
  } finally {
    db.close()
  }
}

interface PhaseResult extends CpuUsage {
  requests: number
  rate: number
  p50: number
  p99: number
  /** Stopped because the pre-created codes ran out, not because the time was up. */
  exhausted: boolean
}

/**
 * Runs `concurrency` workers that each POST the next form body until `limit` (a time in ms or a request count) is
 * reached or `next` has nothing left. Any answer but 200 fails the benchmark.
 */
async function run(
  server: Running,
  next: () => string | undefined,
  onAnswer: (body: { refresh_token?: string }) => void,
  limit: { ms: number } | { requests: number },
): Promise<PhaseResult> {
  const url = `${server.base}/oauth2/token`
  const headers = { 'content-type': 'application/x-www-form-urlencoded' }
  const latencies: number[] = []
  let sent = 0
  let exhausted = false
  const deadline = 'ms' in limit ? performance.now() + limit.ms : Infinity
  const maxRequests = 'requests' in limit ? limit.requests : Infinity
  const cpu = await measureCpu(server.child.pid)

  async function worker() {
    while (performance.now() < deadline && sent < maxRequests) {
      const body = next()
      if (body === undefined) {
        exhausted = true
        return
      }
      sent++
      const requestStarted = performance.now()
      const response = await fetch(url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      })
      const answer = await response.text()
      latencies.push(performance.now() - requestStarted)
      if (response.status !== 200)
        throw new Error(`${server.kind}: POST /oauth2/token answered ${response.status} ${answer}`)
      onAnswer(JSON.parse(answer))
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))

  const usage = await cpu()
  return { ...usage, ...latencyStats(latencies, usage.elapsedS), exhausted }
}

type Results = Record<PhaseName, PhaseResult>

/** Warm-up and timed exchange phase, then warm-up and timed refresh phase, on one running server. */
async function measure(server: Running, seed: Seed, codes: string[]): Promise<Results> {
  let nextCode = 0
  const exchangeBody = () =>
    nextCode < codes.length
      ? new URLSearchParams({
          grant_type: 'authorization_code',
          code: codes[nextCode++],
          redirect_uri: REDIRECT_URI,
          code_verifier: seed.verifier,
          client_id: seed.clientId,
        }).toString()
      : undefined
  const refreshTokens: string[] = []
  let nextToken = 0
  const keep = (body: { refresh_token?: string }) => {
    if (!body.refresh_token) throw new Error(`${server.kind}: a token response without a refresh token`)
    refreshTokens.push(body.refresh_token)
  }
  const refreshBody = () =>
    nextToken < refreshTokens.length
      ? new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: refreshTokens[nextToken++],
          client_id: seed.clientId,
        }).toString()
      : undefined

  await run(server, exchangeBody, keep, { requests: WARMUP_REQUESTS })
  const exchange = await run(server, exchangeBody, keep, { ms: seconds * 1000 })
  await run(server, refreshBody, keep, { requests: WARMUP_REQUESTS })
  const refresh = await run(server, refreshBody, keep, { ms: seconds * 1000 })
  return { exchange, refresh }
}

/** Rows the runs wrote, to show that Gatehouse and the bare server did the same work. */
function countRows(databasePath: string): string {
  const db = new Database(databasePath, { readonly: true })
  try {
    const count = (sql: string) => (db.query(sql).get() as { n: number }).n
    return [
      `${count('SELECT count(*) AS n FROM oauth_authorization_codes WHERE used_at IS NOT NULL')} codes used`,
      `${count('SELECT count(*) AS n FROM oauth_grants')} grants`,
      `${count('SELECT count(*) AS n FROM oauth_access_tokens')} access tokens`,
      `${count('SELECT count(*) AS n FROM oauth_refresh_tokens')} refresh tokens (${count('SELECT count(*) AS n FROM oauth_refresh_tokens WHERE used_at IS NULL')} unused)`,
    ].join(', ')
  } finally {
    db.close()
  }
}

const ms = (value: number) => (value < 10 ? value.toFixed(2) : value.toFixed(1))

async function main() {
  process.stdout.write(
    `oauth: bun ${Bun.version}, ${cpus().length} CPU(s), SQLite, concurrency ${concurrency}, ${seconds} s per phase ` +
      `after ${WARMUP_REQUESTS} warm-up requests, ${HOST} only\n`,
  )
  const dir = await tempDir('gatehouse-bench-oauth-')
  const gatehouseDir = join(dir, 'gatehouse')
  const gatehouseDb = join(gatehouseDir, 'gatehouse.db')
  const bareDb = join(dir, 'bare.db')

  const gatehouse = await start('gatehouse', GATEHOUSE, () => ({
    GATEHOUSE_DATA_DIR: gatehouseDir,
    GATEHOUSE_PUBLIC_URL: `http://${HOST}`,
  }))
  const seed = await seedThroughApi(gatehouse.base, gatehouseDb)
  const copy = new Database(gatehouseDb)
  try {
    copy.exec('PRAGMA busy_timeout = 5000')
    copy.exec(`VACUUM INTO '${bareDb.replaceAll("'", "''")}'`)
  } finally {
    copy.close()
  }
  const codes = Array.from({ length: codeCount }, () => `gth_code_${randomText(20)}`)
  const expiresAt = Math.floor(Date.now() / 1000) + Math.ceil(budgetMs / 1000) + 600
  insertCodes(gatehouseDb, seed.template, codes, expiresAt)
  insertCodes(bareDb, seed.template, codes, expiresAt)
  process.stdout.write(
    `  setup: 1 user, 1 public client and 1 authorization through the HTTP API; ${int(codes.length)} codes cloned ` +
      `from that authorization inserted into each database (sha256-hashed)\n`,
  )

  const results = {} as Record<Kind, Results>
  try {
    results.gatehouse = await measure(gatehouse, seed, codes)
  } finally {
    await stop(gatehouse)
  }
  const bare = await start('bare', bareCommand('bare-token-server.ts'), () => ({ BARE_DATABASE: bareDb }))
  try {
    results.bare = await measure(bare, seed, codes)
  } finally {
    await stop(bare)
  }

  const header = ['server', 'phase', 'requests', 'req/s', 'p50', 'p99', ...CPU_HEADER]
  const rows: string[][] = []
  for (const kind of ['gatehouse', 'bare'] as const)
    for (const phase of ['exchange', 'refresh'] as const) {
      const r = results[kind][phase]
      const phaseName = phase + (r.exhausted ? ' (codes ran out)' : '')
      rows.push([
        kind,
        phaseName,
        int(r.requests),
        `${int(r.rate)}/s`,
        `${ms(r.p50)} ms`,
        `${ms(r.p99)} ms`,
        ...cpuColumns(r, cpus().length),
      ])
    }
  process.stdout.write(table(header, rows, 2))
  process.stdout.write(
    '  server CPU: user+system time of the server process over the phase, in % of one core. The server is\n' +
      '  single-threaded: one JS thread runs every handler and every (synchronous) bun:sqlite call, so it can use\n' +
      '  about one core whatever the machine has (the rest of its CPU time is GC and I/O helper threads).\n' +
      '  per core: requests per CPU-second of the server process, the rate one core sustains when it is the limit.\n' +
      '  client CPU: the load generator (this process, all its threads), which shares the machine with the server;\n' +
      '  other: CPU used by anything else on the machine (kernel work for loopback TCP, other processes), in % of one\n' +
      '  core; machine busy: all cores, from /proc/stat. Near 100% busy, or much "other", means the rates are bounded\n' +
      '  by this machine rather than by the server alone; "per core" is the figure that survives that.\n',
  )
  process.stdout.write(`  rows written, gatehouse: ${countRows(gatehouseDb)}\n`)
  process.stdout.write(`  rows written, bare:      ${countRows(bareDb)}\n\n`)

  const g = results.gatehouse
  const b = results.bare
  const ratio = (a: PhaseResult, c: PhaseResult) => (a.rate / c.rate).toFixed(2)
  const perCore = (r: PhaseResult) => int(r.requests / r.serverCpuS)
  process.stdout.write(
    `oauth: per core, code exchange ${perCore(g.exchange)}/s vs ${perCore(b.exchange)}/s, ` +
      `refresh ${perCore(g.refresh)}/s vs ${perCore(b.refresh)}/s (single-threaded server process)\n`,
  )
  process.stdout.write(
    `oauth: code exchange ${int(g.exchange.rate)}/s vs storage ceiling ${int(b.exchange.rate)}/s (${ratio(g.exchange, b.exchange)}), ` +
      `refresh ${int(g.refresh.rate)}/s vs ${int(b.refresh.rate)}/s (${ratio(g.refresh, b.refresh)}) on SQLite, concurrency ${concurrency}\n`,
  )
}

await runBench(main)
