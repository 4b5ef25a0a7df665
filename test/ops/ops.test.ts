import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { createApp } from '../../src/app.ts'
import { loadConfig, testConfig } from '../../src/config.ts'
import { openDatabase } from '../../src/db/index.ts'
import { loadMigrationSources } from '../../src/db/migrate.ts'
import { createOutboundFetch } from '../../src/http/outbound.ts'
import { outboundCapacityOf } from '../../src/http/outbound-capacity.ts'
import { LocalEventBus } from '../../src/events/bus.ts'
import { PrincipalCache } from '../../src/auth/principal-cache.ts'
import { UsableServerCache } from '../../src/upstreams/usable-server-cache.ts'
import { createLogger, silentLogger } from '../../src/ops/logger.ts'
import { HttpMetrics } from '../../src/ops/metrics.ts'
import { Keyring } from '../../src/secrets/keyring.ts'
import { createTestDatabase, startTestServer, TEST_KEY } from '../setup.ts'

describe('readiness before migrations', () => {
  it('answers /readyz with 503 naming the pending migrations', async () => {
    const database = await createTestDatabase()
    const store = await openDatabase(database.url) // opened, never migrated
    try {
      const app = createApp({
        db: store.db,
        dialect: store.dialect,
        config: testConfig({ databaseUrl: database.url }),
        logger: silentLogger,
        metrics: new HttpMetrics(),
        keyring: await Keyring.create([TEST_KEY]),
        outboundFetch: createOutboundFetch({ allowPrivate: false }),
        outboundCapacity: outboundCapacityOf(testConfig({})),
        events: new LocalEventBus(),
        principalCache: new PrincipalCache(),
        usableServers: new UsableServerCache(),
        identityProviders: new Map(),
      })
      const response = await app.handle(new Request('http://localhost/readyz'))
      expect(response.status).toBe(503)
      const pending = Object.keys(await loadMigrationSources(store.dialect)).sort()
      expect(pending[0]).toBe('0001_foundation')
      expect(await response.json()).toEqual({
        status: 'unavailable',
        detail: `pending migrations: ${pending.join(', ')}`,
      })
    } finally {
      await store.db.destroy()
      await database.drop()
    }
  })
})

describe('operations endpoints on a real server', () => {
  const lines: string[] = []
  let server: Awaited<ReturnType<typeof startTestServer>>
  beforeAll(async () => {
    server = await startTestServer(
      {},
      createLogger('info', (line) => lines.push(line)),
    )
  })
  afterAll(async () => {
    await server.close()
  })

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}${path}`, { headers })
  const requestLogLines = () =>
    lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'request')
  const metricsText = async () => (await get('/metrics')).text()
  /** The label sets of `gatehouse_http_requests_total`, e.g. `method="GET",route="/healthz",status="200"`. */
  const countedRequests = async () =>
    [...(await metricsText()).matchAll(/^gatehouse_http_requests_total\{(.*)\} \d+$/gm)].map((match) => match[1])

  it('answers /healthz with 200', async () => {
    const response = await get('/healthz')
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ status: 'ok' })
  })

  it('answers /readyz with 200 once migrations are applied', async () => {
    const response = await get('/readyz')
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ status: 'ready' })
  })

  it('gives every response an X-Request-Id, errors included', async () => {
    const responses = await Promise.all([get('/healthz'), get('/no/such/route'), get('/api/v1/users/me')])
    expect(responses.map((response) => response.status)).toEqual([200, 404, 401])
    for (const response of responses) expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('gives each request its own ID', async () => {
    const [first, second] = await Promise.all([get('/healthz'), get('/healthz')])
    expect(first.headers.get('x-request-id')).not.toBe(second.headers.get('x-request-id'))
  })

  it("echoes a caller's own X-Request-Id", async () => {
    const response = await get('/healthz', { 'x-request-id': 'trace-42.abc:7' })
    expect(response.headers.get('x-request-id')).toBe('trace-42.abc:7')
  })

  it('replaces a caller X-Request-Id that is not plain text', async () => {
    const response = await get('/healthz', { 'x-request-id': 'evil"id with spaces' })
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('serves /metrics as Prometheus text', async () => {
    const response = await get('/metrics')
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toStartWith('text/plain; version=0.0.4')
    expect(await response.text()).toContain('# TYPE gatehouse_http_requests_total counter')
  })

  it('counts /healthz requests by method, route and status', async () => {
    await get('/healthz')
    const match = /^gatehouse_http_requests_total\{method="GET",route="\/healthz",status="200"\} (\d+)$/m.exec(
      await metricsText(),
    )
    expect(match).not.toBeNull()
    expect(Number(match![1])).toBeGreaterThanOrEqual(1)
  })

  it('exports a latency histogram per route', async () => {
    await get('/healthz')
    const text = await metricsText()
    expect(text).toContain('# TYPE gatehouse_http_request_duration_seconds histogram')
    expect(text).toMatch(
      /^gatehouse_http_request_duration_seconds_bucket\{method="GET",route="\/healthz",le="\+Inf"\} \d+$/m,
    )
  })

  it('labels requests by route pattern, not by the raw ID in the path', async () => {
    const id = `user-${crypto.randomUUID()}`
    expect((await get(`/api/v1/users/${id}`)).status).toBe(401)
    expect(await countedRequests()).toContain('method="GET",route="/api/v1/users/:id",status="401"')
    expect(await metricsText()).not.toContain(id)
  })

  it('labels unknown paths as one route, so scanners cannot grow the metrics', async () => {
    const path = `/wp-admin-${crypto.randomUUID()}`
    expect((await get(path)).status).toBe(404)
    expect(await countedRequests()).toContain('method="GET",route="unmatched",status="404"')
    expect(await metricsText()).not.toContain(path)
  })

  it('labels a request whose body cannot be parsed by the route it was sent to', async () => {
    const response = await fetch(`${server.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"login":',
    })
    expect(response.status).toBe(400)
    expect(await countedRequests()).toContain('method="POST",route="/api/v1/auth/login",status="400"')
  })

  it('writes an access log line as JSON carrying the response request ID', async () => {
    const response = await get('/readyz')
    const requestId = response.headers.get('x-request-id')
    const line = requestLogLines().find((entry) => entry.request_id === requestId)
    expect(line).toMatchObject({ level: 'info', method: 'GET', path: '/readyz', route: '/readyz', status: 200 })
  })

  it('writes every log line as one JSON object', () => {
    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) {
      expect(line.endsWith('\n')).toBe(true)
      expect(() => JSON.parse(line)).not.toThrow()
    }
  })

  it('never logs the query string', async () => {
    const response = await get('/healthz?code=secret123&state=xyz')
    expect(response.status).toBe(200)
    const requestId = response.headers.get('x-request-id')
    expect(requestLogLines().find((entry) => entry.request_id === requestId)).toMatchObject({ path: '/healthz' })
    expect(lines.join('')).not.toContain('secret123')
  })
})

describe('/metrics with GATEHOUSE_METRICS_TOKEN set', () => {
  const TOKEN = 'scrape-token-0123456789abcdef'
  let server: Awaited<ReturnType<typeof startTestServer>>
  beforeAll(async () => {
    const { metricsToken } = loadConfig({ DATABASE_URL: ':memory:', GATEHOUSE_METRICS_TOKEN: TOKEN })
    server = await startTestServer({ metricsToken })
  })
  afterAll(async () => {
    await server.close()
  })

  const metrics = (headers: Record<string, string> = {}) => fetch(`${server.url}/metrics`, { headers })

  it('refuses a scrape without the token with 401 and a JSON error', async () => {
    const response = await metrics()
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toStartWith('Bearer')
    const body = await response.json()
    expect(body.message).toContain('GATEHOUSE_METRICS_TOKEN')
    expect(JSON.stringify(body)).not.toContain(TOKEN)
  })

  it('refuses a scrape with another token with 401', async () => {
    for (const authorization of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, 'Bearer x', `Basic ${TOKEN}`])
      expect((await metrics({ authorization })).status).toBe(401)
  })

  it('serves the metrics to a scrape with the token', async () => {
    const response = await metrics({ authorization: `Bearer ${TOKEN}` })
    expect(response.status).toBe(200)
    expect(await response.text()).toContain('# TYPE gatehouse_http_requests_total counter')
  })

  it('leaves /healthz and /readyz open', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200)
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200)
  })
})
